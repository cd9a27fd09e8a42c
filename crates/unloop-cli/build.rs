//! Records the commit the binary is built from, for `unloop --version`: `git rev-parse` run in
//! this crate's directory (so it is right in a git worktree, where `.git` is a file), "unknown"
//! without git (a source tarball). Rebuilt when HEAD moves: cargo watches the HEAD file and the
//! ref it points at, both found through git itself.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=UNLOOP_BUILD_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=GIT_DIR");
    // HEAD of this worktree (its own git dir), and the branch ref it points at (in the common dir
    // for a worktree); packed-refs for a ref git has packed.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        rerun_if(&head);
    }
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &r])
    {
        rerun_if(&p);
    }
    if let Some(p) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        rerun_if(&p);
    }
}

fn rerun_if(path: &str) {
    let p = Path::new(path);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    };
    // A path that does not exist would make cargo rerun this script on every build.
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
