//! What installing unloop gives a user besides the binary: `--version` naming the commit it was
//! built from, and man pages generated from the command line's own definition.

#![allow(clippy::print_stderr)] // says which renderer checked the man pages

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{repo_root, unloop};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The commit the tests' binaries were built from: HEAD now (cargo reruns build.rs when HEAD
/// moves), or "unknown" where there is no git.
fn head_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| stdout(&o).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[test]
fn version_names_the_version_and_the_commit() {
    let want = format!(
        "unloop {} (commit {})\n",
        env!("CARGO_PKG_VERSION"),
        head_commit()
    );
    let o = unloop(&["--version"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), want);
    let o = Command::new(env!("CARGO_BIN_EXE_kubectl-unloop"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), want);
}

/// The subcommands `unloop --help` lists, and the long flags `unloop SUB --help` lists.
fn subcommands() -> Vec<(String, Vec<String>)> {
    let help = stdout(&unloop(&["--help"]));
    let names: Vec<String> = help
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        // A subcommand's line starts with its name; a wrapped description starts further in.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    names
        .into_iter()
        .map(|name| {
            let help = stdout(&unloop(&[&name, "--help"]));
            let mut flags: Vec<String> = help
                .split_whitespace()
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| {
                    w.trim_end_matches([',', '.', ')', ']', ':'])
                        .split(['=', '['])
                        .next()
                        .unwrap()
                        .to_string()
                })
                .filter(|w| w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
                .collect();
            flags.sort();
            flags.dedup();
            (name, flags)
        })
        .collect()
}

/// A man page as a reader sees it: rendered by man or groff when the machine has one (the
/// second value says which), else the roff with its escaped hyphens undone.
fn rendered(page: &Path) -> (String, &'static str) {
    let tries: [(&str, &[&str]); 2] = [
        ("man", &["-l", "-P", "cat"]),
        ("groff", &["-man", "-Tutf8"]),
    ];
    for (prog, args) in tries {
        let out = Command::new(prog)
            .args(args)
            .arg(page)
            .env("MANWIDTH", "200")
            .env("LC_ALL", "C.UTF-8")
            .output();
        if let Ok(o) = out
            && o.status.success()
            && !o.stdout.is_empty()
        {
            // Bold and underline as overstrikes (groff's tty output without -c): drop them.
            let text = stdout(&o);
            let mut plain = String::new();
            for c in text.chars() {
                if c == '\u{8}' {
                    plain.pop();
                } else {
                    plain.push(c);
                }
            }
            // Hyphens as the Unicode hyphen or minus sign: the flags as typed.
            let plain = plain.replace(['\u{2010}', '\u{2212}'], "-");
            return (plain, prog);
        }
    }
    let roff = std::fs::read_to_string(page).unwrap();
    (
        roff.replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fR", ""),
        "none",
    )
}

#[test]
fn the_man_pages_name_every_subcommand_and_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let o = unloop(&["man", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let subs = subcommands();
    assert!(subs.len() >= 5, "{subs:?}");

    let (main, renderer) = rendered(&dir.path().join("unloop.1"));
    if renderer == "none" {
        eprintln!(
            "neither man nor groff on this machine: checked the roff source, not a rendering"
        );
    } else {
        eprintln!("rendered with {renderer}");
    }
    assert!(main.contains("unloop"), "{main}");
    for (name, flags) in &subs {
        assert!(
            main.contains(&format!("unloop-{name}(1)")) || main.contains(name.as_str()),
            "main page lacks {name}:\n{main}"
        );
        let page = dir.path().join(format!("unloop-{name}.1"));
        assert!(page.exists(), "no page for {name}");
        let (text, _) = rendered(&page);
        assert!(!flags.is_empty(), "{name} has no flags?");
        for flag in flags {
            assert!(
                text.contains(flag.as_str()),
                "unloop-{name}.1 lacks {flag}:\n{text}"
            );
        }
    }
}
