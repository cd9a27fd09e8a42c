//! A 100 MB manifest stream is read one document at a time: memory stays near the size of one
//! document, not of the input. Alone in its test binary so the process's peak memory is its own.

use std::io::{BufRead, BufReader, Read};

use unloop_audit::Inventory;
use unloop_audit::load::{LoadOptions, load_reader};

/// Generates `total` bytes of multi-document YAML on the fly: ConfigMaps with a 64 KiB value
/// each (what the inventory keeps of one is its key names) and a Deployment every 50 documents.
struct Manifests {
    total: usize,
    produced: usize,
    n: usize,
    pending: Vec<u8>,
    offset: usize,
}

impl Read for Manifests {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.offset == self.pending.len() {
            if self.produced >= self.total {
                return Ok(0);
            }
            self.n += 1;
            let doc = if self.n.is_multiple_of(50) {
                format!(
                    "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d{n}, namespace: big}}\nspec:\n  selector: {{}}\n  template:\n    spec:\n      containers: [{{name: c, image: 'app:1', envFrom: [{{configMapRef: {{name: cm{m}}}}}]}}]\n",
                    n = self.n,
                    m = self.n - 1
                )
            } else {
                format!(
                    "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm{}, namespace: big}}\ndata:\n  blob: |\n{}",
                    self.n,
                    "    0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"
                        .repeat(1024)
                )
            };
            self.produced += doc.len();
            self.pending = doc.into_bytes();
            self.offset = 0;
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// Peak resident memory of this process, from /proc (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_100_mb_input_is_streamed() {
    let total = 100 * 1024 * 1024;
    let reader: Box<dyn BufRead> = Box::new(BufReader::new(Manifests {
        total,
        produced: 0,
        n: 0,
        pending: Vec::new(),
        offset: 0,
    }));
    let mut inv = Inventory::default();
    load_reader(reader, "<stdin>", &LoadOptions::default(), &mut inv).expect("loads");
    assert!(inv.objects_read > 1500, "{} objects", inv.objects_read);
    assert_eq!(inv.workloads.len(), inv.objects_read / 50);
    assert!(inv.config.config_maps.iter().all(|c| c.keys == ["blob"]));
    if let Some(peak) = peak_rss() {
        assert!(
            peak < 60 * 1024 * 1024,
            "peak memory {} MiB for a 100 MiB input",
            peak / (1024 * 1024)
        );
    }
}
