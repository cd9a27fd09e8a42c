//! Opening input files safely: regular files only (a FIFO would block for ever, a device would
//! never end), every read capped, logs read from their tail. Shared by `bundle` and `files`.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::SourceError;

/// What a file-system entry is, in words, when it is not a regular file or a directory.
pub(crate) fn kind_of(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else if meta.is_symlink() {
        "a symbolic link"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens `path` for reading only if it is a regular file. The type is checked before the file is
/// opened (opening a FIFO blocks until a writer comes), and again on the open handle, which is
/// opened non-blocking so a file swapped for a FIFO in between cannot hang the reader either.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), SourceError> {
    let before = std::fs::metadata(path).map_err(io_error(path))?;
    if !before.is_file() {
        return Err(SourceError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&before),
        });
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).map_err(io_error(path))?;
    let meta = file.metadata().map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(SourceError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    Ok((file, meta))
}

/// The io error a [`Capped`] reader returns once its limit is passed; `SourceError::TooLarge`
/// names `what` and `limit`.
#[derive(Debug)]
pub(crate) struct LimitExceeded {
    pub what: &'static str,
    pub limit: u64,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", human_bytes(self.limit), self.what)
    }
}

impl std::error::Error for LimitExceeded {}

/// A reader that fails with [`LimitExceeded`] instead of yielding byte `limit + 1`.
pub(crate) struct Capped<R> {
    inner: R,
    left: u64,
    what: &'static str,
    limit: u64,
}

impl<R: Read> Capped<R> {
    pub fn new(inner: R, limit: u64, what: &'static str) -> Self {
        Capped {
            inner,
            left: limit,
            what,
            limit,
        }
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the limit: one more byte means the input is too large; none means it fits.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    LimitExceeded {
                        what: self.what,
                        limit: self.limit,
                    },
                )),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The limit a read error reports, if it came from a [`Capped`] reader.
pub(crate) fn limit_of(e: &io::Error) -> Option<&LimitExceeded> {
    e.get_ref()?.downcast_ref::<LimitExceeded>()
}

/// The error for an input over a limit, from the io error a [`Capped`] reader returned.
pub(crate) fn too_large(path: &Path, l: &LimitExceeded) -> SourceError {
    SourceError::TooLarge {
        path: path.to_path_buf(),
        limit: l.to_string(),
    }
}

/// Reads at most the last `max + 1` bytes of a regular file by seeking, so memory does not grow
/// with the file. One byte over `max` tells the caller that older bytes were dropped.
pub(crate) fn read_tail(
    path: &Path,
    file: &mut File,
    len: u64,
    max: u64,
) -> Result<Vec<u8>, SourceError> {
    let want = max.saturating_add(1);
    let start = len.saturating_sub(want);
    file.seek(SeekFrom::Start(start)).map_err(io_error(path))?;
    let mut out = Vec::with_capacity(usize::try_from(want.min(len)).unwrap_or(0));
    // `take`: a file that grows while being read still yields at most `want` bytes.
    file.take(want)
        .read_to_end(&mut out)
        .map_err(io_error(path))?;
    Ok(out)
}

/// `1 GiB`, `256 MiB`, `64 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

/// A dump entry that was not read, as the relative path the user sees.
pub(crate) fn shown(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root).unwrap_or(p).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_reads_up_to_the_limit_and_not_a_byte_more() {
        let mut ok = Vec::new();
        Capped::new(&[1u8; 10][..], 10, "test")
            .read_to_end(&mut ok)
            .unwrap();
        assert_eq!(ok.len(), 10);
        let mut over = Vec::new();
        let e = Capped::new(&[1u8; 11][..], 10, "test")
            .read_to_end(&mut over)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(limit_of(&e).unwrap().limit, 10);
        assert!(over.len() <= 10);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(256 << 20), "256 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_devices_are_refused_without_opening_them() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO with no writer would block this test for ever.
        assert!(matches!(
            open_regular(&fifo),
            Err(SourceError::NotRegular {
                kind: "a FIFO (named pipe)",
                ..
            })
        ));
        assert!(matches!(
            open_regular(Path::new("/dev/zero")),
            Err(SourceError::NotRegular {
                kind: "a character device",
                ..
            })
        ));
    }
}
