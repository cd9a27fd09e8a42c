//! Every rendered command, whatever its arguments hold, runs exactly its argv in a real bash:
//! nothing else runs, no file appears but an intended redirect target, placeholders stay text.

mod support;

use proptest::prelude::*;
use support::bash;
use unloop_core::shell::{Arg, Argv, Cmd, Pipeline, Script, Word, render};

/// Text that means something to a shell or a terminal, mixed with ordinary text.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "",
        "'",
        "\"",
        "\\",
        "$(id)",
        "`id`",
        "${HOME}",
        "$HOME",
        ";",
        "|",
        "&",
        "&&",
        ">",
        "<",
        ">>",
        "\n",
        "\r",
        "\x1b[2J",
        "\x1b]0;title\x07",
        "\t",
        "\0",
        "\x7f",
        "\u{85}",
        "\u{202e}",
        "\u{2028}",
        "é",
        "日本",
        "-",
        "--all",
        "~",
        "~root",
        "*",
        "?",
        "[a]",
        "{a,b}",
        "#",
        "=",
        "!",
        "!!",
        "%1",
        " ",
        "x",
        "app",
        "/etc/passwd",
        "../",
        "if",
        "<value>",
        "$'",
        "'\\''",
    ]);
    prop::collection::vec(pieces, 0..6).prop_map(|v| v.concat())
}

fn arg() -> impl Strategy<Value = Arg> {
    let word = prop_oneof![
        3 => hostile().prop_map(Word::Lit),
        1 => prop::sample::select(vec!["value", "image:tag", "KEY", "a b"])
            .prop_map(|p| Word::Placeholder(p.to_string())),
    ];
    prop::collection::vec(word, 0..3).prop_map(Arg)
}

fn argv() -> impl Strategy<Value = Argv> {
    (
        prop::sample::select(bash::PROGRAMS.to_vec()),
        prop::collection::vec(arg(), 0..5),
    )
        .prop_map(|(p, args)| Argv::new(p).args(args))
}

fn pipeline() -> impl Strategy<Value = Pipeline> {
    (
        prop::collection::vec(argv(), 1..3),
        prop::option::of(hostile()),
    )
        .prop_map(|(cmds, file)| {
            let p = Pipeline::of(cmds);
            match file {
                Some(f) => p.to_file(&f),
                None => p,
            }
        })
}

fn script() -> impl Strategy<Value = Script> {
    prop::collection::vec(pipeline(), 1..3).prop_map(|steps| Script { steps })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rendered_scripts_run_exactly_their_argv(s in script()) {
        // One visible line that a Markdown or Slack code span carries unchanged.
        let line = render(&s);
        prop_assert!(!line.contains('`') && !line.contains('\n'), "{}", line);
        // Two steps writing the same file would leave one: compare sets, as `expected` does.
        if let Err(e) = bash::check(&s) {
            prop_assert!(false, "{}", e);
        }
    }

    #[test]
    fn kubectl_operands_are_never_read_as_flags(name in hostile(), ns in hostile()) {
        let argv = Cmd::kubectl(&["delete", "pod"]).operand(&name).flag_value("-n", &ns).build();
        let texts = argv.texts();
        // Either in place, or after a `--` that ends the flags.
        let name_text = Arg::lit(&name).text();
        if name_text.starts_with('-') {
            prop_assert_eq!(&texts[texts.len() - 2..], &["--".to_string(), name_text][..]);
        } else {
            prop_assert_eq!(&texts[3], &name_text);
        }
        if let Err(e) = bash::check(&Script::from(argv)) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn the_log_line_that_used_to_run_id_is_one_argument() {
    let file = "x;id;.yaml";
    let s = Script::new(Pipeline::of(vec![
        Argv::new("kubectl")
            .args(["create", "configmap", "app", "-n", "shop"])
            .arg(format!("--from-file={file}=./{file}")),
        Argv::new("kubectl").args(["apply", "-f", "-"]),
    ]));
    assert_eq!(
        render(&s),
        "kubectl create configmap app -n shop --from-file='x;id;.yaml=./x;id;.yaml' | kubectl apply -f -"
    );
    bash::check(&s).unwrap();
}

#[test]
fn placeholders_come_out_as_their_text() {
    let s = Script::from(
        Argv::new("kubectl")
            .args(["set", "env", "deploy/api"])
            .arg(Arg::lit("DB_HOST=").then_placeholder("value")),
    );
    let ran = bash::run(&render(&s));
    assert_eq!(
        ran.calls,
        vec![vec![
            "kubectl",
            "set",
            "env",
            "deploy/api",
            "DB_HOST=<value>"
        ]]
    );
    assert!(ran.files.is_empty(), "{ran:?}");
}

#[test]
fn the_harness_sees_what_escapes() {
    // Unquoted, these would run or write something: the harness must notice.
    let ran = bash::run("kubectl get pod x;id");
    assert_eq!(ran.unexpected, vec![vec!["id"]]);
    let ran = bash::run("kubectl get pod <value>");
    assert!(!ran.stderr.is_empty() || ran.status != Some(0), "{ran:?}");
    let ran = bash::run("kubectl get pod x > out");
    assert!(ran.files.contains("out"));
    let ran = bash::run("kubectl x; echo hi");
    assert_eq!(ran.unexpected, vec![vec!["echo", "hi"]]);
}
