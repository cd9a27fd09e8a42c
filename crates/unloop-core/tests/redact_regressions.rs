//! Leaks the `redact` fuzz target found (fuzz/fuzz_targets/redact.rs): a planted secret that
//! survives `redact::text`.

use unloop_core::redact;

/// Every line's secret, `hunter2`, is masked.
#[track_caller]
fn assert_all_masked(lines: &[&str]) {
    for line in lines {
        let out = redact::text(line);
        assert!(!out.contains("hunter2"), "{line:?} -> {out:?}");
    }
}

/// A value that opens a quote and does not close it (a cut line, an apostrophe) pairs with the
/// opening quote of the next assignment's value, so that value's secret is left outside.
#[test]
fn an_unclosed_quote_does_not_uncover_the_next_secret() {
    assert_all_masked(&[
        "secret=' pwd='hunter2'",
        "token: '\nlevel=info password='hunter2'",
        "token=\"abc password=\"hunter2\"",
        // The value of `cred` runs on into the next key: `-D...Password=` up to its quote.
        "cred= -Djavax.net.ssl.keyStorePassword='hunter2'&===",
    ]);
}

/// A key with an empty value takes the next key as its value, so the next key's secret is left:
/// a config dump in a log with an empty `token:` above `password: ...`.
#[test]
fn an_empty_value_does_not_uncover_the_next_secret() {
    assert_all_masked(&[
        "auth:\n  token:\n  password: hunter2\n",
        "token: PWD = hunter2",
        "secret=\npassword = hunter2",
    ]);
}

/// A credential scheme followed by an assignment: `Bearer` took the assignment as its credential
/// and masked the key, which left the value after it with nothing to name it.
#[test]
fn a_scheme_does_not_swallow_the_key_of_the_next_secret() {
    assert_all_masked(&[
        "  code:bearer  ACCESS_KEY=hunter2 OTseENddddddddddddddddd",
        "Authorization: Basic PASSWORD=hunter2",
        "  code:bearer  keyStorePassword = hunter2 OTseENddddddddddd%dddddd",
        "bearer token: hunter2",
        "de:bearer PGPASSWORD=\"hunter2\" .0 (ion 1.0",
        "bearer DB_TOKEN='hunter2'",
        "cookie:cach]d 0 stertico;e:bearer se_r1.0. access_key=\"hunter2\"\nrer",
    ]);
}

/// One stage masking the key of an assignment hid it from the stage that masks the value: the
/// header stage took `keyStorePassword` for the credential after `authorization=` (found by the
/// fuzz smoke run in CI). The class is closed by computing every stage's spans on the original
/// text and masking their union once; these lines cross each pair of stages that can overlap.
#[test]
fn no_stage_hides_a_key_from_another() {
    assert_all_masked(&[
        "authorization= keyStorePassword = \"hunter2\"\ns:  ",
        "authorization: DB_PASSWORD=hunter2",
        "Proxy-Authorization=token PGPASSWORD='hunter2'",
        "Cookie: session=abc; password=hunter2",
        "set-cookie: token=\"x\" secret=hunter2",
        "bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig password=hunter2",
        "postgres://u:pw@h/db?password=hunter2",
        "mysql -uroot -phunter2 --password hunter2",
        "curl -u admin:hunter2 -H 'Authorization: Bearer hunter2'",
        "Authorization: Bearer --password hunter2",
    ]);
}

/// Masking the union once keeps redaction idempotent: redacted text redacts to itself.
#[test]
fn redacting_twice_changes_nothing() {
    let corpus = include_str!("redaction/secrets.txt");
    for line in corpus.lines() {
        let once = redact::text(line);
        assert_eq!(redact::text(&once), once, "{line:?}");
    }
}

/// A word taken as a flag's value is still read as a word: it may be the program whose own
/// password flag follows (`-token redis-cli -a pw`: the value swallowed `redis-cli`, so `-a` was
/// never seen as redis-cli's password flag).
#[test]
fn a_value_word_is_still_read_as_a_program() {
    assert_all_masked(&[
        "rrno: -5\0:\0token\0 redis-cli -h redis -a hunter2 ping",
        "--secret mysql -phunter2",
        "--api-token mongosh -p hunter2",
        "-u a:b sshpass -p hunter2 ssh host",
    ]);
}
