//! Hostile inputs to `--from` and to the command line: each ends, quickly, in a report or in one
//! `error:` line (plus at most one `hint:` line) and the documented exit code. Never a hang, a
//! panic, or memory that grows with the input. Cluster state comes from captured bundles.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::repo_root;

fn bundle(name: &str) -> PathBuf {
    repo_root()
        .join("testbed/scenarios")
        .join(name)
        .join("bundle.json.gz")
}

fn captured(name: &str) -> serde_json::Value {
    let src = std::fs::read(bundle(name)).unwrap();
    serde_json::from_reader(flate2::read::GzDecoder::new(&src[..])).unwrap()
}

/// Runs unloop, killing it (and failing) if it takes longer than `limit`: a hang is a failure,
/// not a stuck test run.
fn unloop_within(limit: Duration, args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_unloop"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unloop runs");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unloop {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

fn diagnose_from(path: &Path) -> Output {
    unloop_within(
        Duration::from_secs(600),
        &["diagnose".as_ref(), "--from".as_ref(), path.as_os_str()],
    )
}

/// Asserts exit `code` and stderr of exactly `error: ...` plus at most one `hint: ...`; returns
/// the error line.
fn one_error(o: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        (1..=2).contains(&lines.len())
            && lines[0].starts_with("error: ")
            && lines.get(1).is_none_or(|h| h.starts_with("hint: ")),
        "not one error line and an optional hint:\n{err}"
    );
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "raw control characters: {err:?}"
    );
    lines[0].to_string()
}

/// A `kubectl cluster-info dump --output-directory` tree of a captured scenario: its pods and
/// events under `NS/`, and the container log under `NS/POD/logs.txt`.
fn dump_of(scenario: &str, dir: &Path) -> (String, String) {
    let b = captured(scenario);
    let ns = scenario.to_string();
    std::fs::create_dir_all(dir.join(&ns)).unwrap();
    for (file, kind, field) in [
        ("pods.json", "PodList", "pods"),
        ("events.json", "EventList", "events"),
    ] {
        let list =
            serde_json::json!({"kind": kind, "apiVersion": "v1", "items": b["state"][field]});
        std::fs::write(dir.join(&ns).join(file), serde_json::to_vec(&list).unwrap()).unwrap();
    }
    let nodes =
        serde_json::json!({"kind": "NodeList", "apiVersion": "v1", "items": b["state"]["nodes"]});
    std::fs::write(dir.join("nodes.json"), serde_json::to_vec(&nodes).unwrap()).unwrap();
    let pod = b["state"]["logs"][0]["pod"].as_str().unwrap().to_string();
    (ns, pod)
}

fn mkfifo(p: &Path) {
    let made = Command::new("mkfifo").arg(p).status().unwrap();
    assert!(made.success(), "mkfifo {}", p.display());
}

/// The gaps `diagnose --from DIR -o json` reports for a dump with one crash loop in it (exit 1),
/// within a minute.
fn dump_gaps(dir: &Path) -> Vec<String> {
    let o = unloop_within(
        Duration::from_secs(60),
        &[
            "diagnose".as_ref(),
            "--from".as_ref(),
            dir.as_os_str(),
            "-o".as_ref(),
            "json".as_ref(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    gaps(&o)
}

fn gaps(o: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    v["gaps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| format!("{}: {}", g["what"], g["why"]))
        .collect()
}

#[test]
fn fifos_in_a_dump_directory_are_skipped_with_a_note_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, pod) = dump_of("oom-limit", dir.path());
    std::fs::create_dir_all(dir.path().join(&ns).join(&pod)).unwrap();
    // Nobody ever writes to these: opening either would block for ever.
    mkfifo(&dir.path().join(&ns).join("replicasets.json"));
    mkfifo(&dir.path().join(&ns).join(&pod).join("logs.txt"));
    let gaps = dump_gaps(dir.path());
    assert!(
        gaps.iter()
            .any(|g| g.contains("replicasets.json") && g.contains("FIFO")),
        "{gaps:?}"
    );
    assert!(
        gaps.iter()
            .any(|g| g.contains("logs.txt") && g.contains("FIFO")),
        "{gaps:?}"
    );
}

#[test]
fn a_fifo_or_a_device_as_the_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("incident.json.gz");
    mkfifo(&fifo);
    let line = one_error(&diagnose_from(&fifo), 3);
    assert!(
        line.ends_with("is a FIFO (named pipe), not a regular file"),
        "{line}"
    );
    let line = one_error(&diagnose_from(Path::new("/dev/zero")), 3);
    assert_eq!(
        line,
        "error: /dev/zero is a character device, not a regular file"
    );
}

#[test]
fn a_gzip_bomb_stops_at_the_decompressed_limit() {
    // A bundle header, then more than 1 GiB of blanks the JSON parser would happily skip: a few
    // MiB compressed.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb.json.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(br#"{"kind":"UnloopSnapshot","schemaVersion":1,"state":"#)
        .unwrap();
    let blanks = vec![b' '; 1 << 20];
    for _ in 0..1100 {
        gz.write_all(&blanks).unwrap();
    }
    gz.write_all(b"{}}").unwrap();
    gz.finish().unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() < 8 << 20);
    let line = one_error(&diagnose_from(&p), 3);
    assert!(
        line.ends_with("is too large: unloop reads at most 1 GiB of JSON once decompressed"),
        "{line}"
    );
}

#[test]
fn truncated_gzip_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(bundle("jvm-heap")).unwrap();
    for cut in [3, 10, bytes.len() / 3, bytes.len() - 4] {
        let p = dir.path().join(format!("cut-{cut}.json.gz"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let line = one_error(&diagnose_from(&p), 3);
        assert!(
            line.contains("is truncated or corrupt"),
            "cut at {cut}: {line}"
        );
    }
}

#[test]
fn oversized_json_is_refused_before_it_is_read() {
    // Sparse files: the size is real, the disk use is not.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pods.json");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(br#"{"kind":"List","items":["#).unwrap();
    f.set_len((1 << 30) + 1).unwrap();
    drop(f);
    let line = one_error(&diagnose_from(&p), 3);
    assert!(
        line.ends_with("is too large: unloop reads at most 1 GiB of JSON"),
        "{line}"
    );

    let gz = dir.path().join("big.json.gz");
    let mut f = std::fs::File::create(&gz).unwrap();
    f.write_all(&[0x1f, 0x8b, 8, 0]).unwrap();
    f.set_len((256 << 20) + 1).unwrap();
    drop(f);
    let line = one_error(&diagnose_from(&gz), 3);
    assert!(
        line.ends_with("is too large: unloop reads at most 256 MiB of compressed bundle"),
        "{line}"
    );

    let dump = dir.path().join("dump");
    let (ns, _) = dump_of("oom-limit", &dump);
    let mut f = std::fs::File::create(dump.join(&ns).join("replicasets.json")).unwrap();
    f.write_all(br#"{"kind":"ReplicaSetList","items":["#)
        .unwrap();
    f.set_len((1 << 30) + 1).unwrap();
    drop(f);
    let line = one_error(&diagnose_from(&dump), 3);
    assert!(
        line.contains("replicasets.json is too large: unloop reads at most 1 GiB of JSON per file of a dump directory"),
        "{line}"
    );
}

#[test]
fn deeply_nested_json_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        r#"{{"kind":"List","items":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let p = dir.path().join("deep.json");
    std::fs::write(&p, &deep).unwrap();
    let line = one_error(&diagnose_from(&p), 3);
    assert!(line.contains("recursion limit exceeded"), "{line}");

    let gz = dir.path().join("deep.json.gz");
    let mut w = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    write!(
        w,
        r#"{{"kind":"UnloopSnapshot","schemaVersion":1,"state":{{"controllerRevisions":[{{"revision":1,"data":{}"#,
        "[".repeat(100_000)
    )
    .unwrap();
    w.finish().unwrap();
    let line = one_error(&diagnose_from(&gz), 3);
    assert!(line.contains("recursion limit exceeded"), "{line}");

    let dump = dir.path().join("dump");
    let (ns, _) = dump_of("oom-limit", &dump);
    std::fs::write(dump.join(&ns).join("replicasets.json"), &deep).unwrap();
    let line = one_error(&diagnose_from(&dump), 3);
    assert!(line.contains("recursion limit exceeded"), "{line}");
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_deep_trees_in_a_dump_end() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, pod) = dump_of("oom-limit", dir.path());
    std::os::unix::fs::symlink("..", dir.path().join(&ns).join("loop")).unwrap();
    std::os::unix::fs::symlink("nowhere", dir.path().join(&ns).join("dangling.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join(&ns).join(&pod)).unwrap();
    let mut deep = dir.path().join(&ns).join("d");
    for _ in 0..40 {
        deep = deep.join("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("pods.json"), "not read").unwrap();
    let gaps = dump_gaps(dir.path());
    for want in [
        "a symbolic link to a directory, not followed",
        "a symbolic link that leads nowhere",
        "a symbolic link to a character device",
        "deeper than 8 levels",
    ] {
        assert!(gaps.iter().any(|g| g.contains(want)), "{want}: {gaps:?}");
    }
}

#[cfg(unix)]
#[test]
fn non_utf8_and_control_character_names_stay_on_one_line() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"in\xffcident\n\x1b[2Jerror: fake.json.gz");
    let line = one_error(&diagnose_from(&dir.path().join(name)), 3);
    assert!(line.contains(r"\n\x1b[2J"), "{line}");

    // A dump holding a file with such a name is still read.
    let (ns, _) = dump_of("oom-limit", dir.path());
    std::fs::write(
        dir.path()
            .join(&ns)
            .join(std::ffi::OsStr::from_bytes(b"\xff\x1b]0;owned\x07.txt")),
        "x",
    )
    .unwrap();
    let o = diagnose_from(dir.path());
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn usage_errors_are_one_line_and_a_hint() {
    let run = |args: &[&str]| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        unloop_within(Duration::from_secs(30), &args)
    };
    let o = run(&["diagnose", "--frm", "x"]);
    assert_eq!(one_error(&o, 2), "error: unexpected argument '--frm' found");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().nth(1),
        Some("hint: a similar argument exists: '--from'; see 'unloop diagnose --help'")
    );
    let o = run(&["diagnose", "-o", "\x1b[2Jtable\nerror: fake"]);
    let line = one_error(&o, 2);
    assert!(line.contains(r"\x1b[2Jtable\nerror: fake"), "{line}");
    one_error(&run(&["diagnoze"]), 2);
    // Bare `unloop` shows the help (on stderr, exit 2), as clap does.
    assert_eq!(run(&[]).status.code(), Some(2));
    one_error(&run(&["debug"]), 2);
    one_error(&run(&["diagnose", "--tail", "many"]), 2);
    one_error(&run(&["diagnose", "-n", "a", "-A"]), 2);

    // Help and version are not errors.
    let o = run(&["diagnose", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).lines().count() > 10);
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("unloop "));
}
