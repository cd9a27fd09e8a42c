//! `--from DIR` on a hostile `kubectl cluster-info dump --output-directory` tree.
//!
//! Input format (so real dumps seed it, see seed.sh): sections `\0FILE path\n` followed by the
//! file's bytes. Paths are confined to the scratch directory: components keep only
//! `[A-Za-z0-9._-]`, `..` and empty components are dropped, at most 4 deep and 16 files.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MARK: &[u8] = b"\0FILE ";

fn sections(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(start) = find(rest, MARK) {
        rest = &rest[start + MARK.len()..];
        let header_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let path = &rest[..header_end];
        rest = rest.get(header_end + 1..).unwrap_or_default();
        let body_end = find(rest, MARK).unwrap_or(rest.len());
        out.push((path, &rest[..body_end]));
        rest = &rest[body_end..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let root = unloop_fuzz::scratch_dir("dump");
    for (path, body) in sections(data).into_iter().take(16) {
        let parts: Vec<String> = String::from_utf8_lossy(path)
            .split('/')
            .map(|p| {
                p.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                    .collect::<String>()
            })
            .filter(|p| !p.is_empty() && p != "." && p != "..")
            .take(4)
            .collect();
        if parts.is_empty() {
            continue;
        }
        let rel: std::path::PathBuf = parts.iter().collect();
        let path = root.join(rel);
        // A name used both as a file and as a directory: skip the clash.
        if std::fs::create_dir_all(path.parent().expect("has a parent")).is_err() || path.is_dir() {
            continue;
        }
        let _ = std::fs::write(&path, body);
    }
    if let Ok(state) = unloop_source::files::load(&root) {
        unloop_fuzz::diagnose_and_render(&state);
    }
});
