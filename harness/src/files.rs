//! The user's files, checked before use: a file the harness reads (a case
//! file, a baseline) must be a regular file and is read only up to a limit,
//! and a path it will write (`--junit`, `--write-baseline`, `fuzz --save`) is
//! checked writable before any work starts.
//!
//! Why this needs care: opening a FIFO for reading blocks until a writer
//! comes, so `--baseline some-fifo` would hang the harness before it ran
//! anything, and `/dev/zero` never ends, so reading it whole takes all the
//! memory there is. And an output path is written only once the run is over:
//! a typo in its folder would cost the whole run and lose its result.

use std::fmt;
use std::fs::{File, FileType};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::AccessFlags;

/// Why a file the user named could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// It could not be opened, or its type not be read.
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// It is a FIFO, a socket, a device or a folder.
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead, as [`kind`] names it.
        kind: &'static str,
    },
    /// It holds more than the limit.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most bytes allowed.
        limit: u64,
    },
    /// Reading failed part way, or it is not UTF-8 text.
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Open { path, source } => write!(f, "{}: {source}", path.display()),
            ReadError::NotRegular { path, kind } => {
                write!(f, "{}: {kind}, not a regular file", path.display())
            }
            ReadError::TooLarge { path, limit } => write!(
                f,
                "{}: larger than {} (the most the harness reads)",
                path.display(),
                size(*limit)
            ),
            ReadError::Read { path, source } => {
                write!(f, "{}: reading: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// A byte count as people write it (`1 MiB`), exact.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// What a file type is, for messages: `a FIFO`, `a folder`, ...
pub fn kind(file_type: FileType) -> &'static str {
    if file_type.is_file() {
        "a regular file"
    } else if file_type.is_dir() {
        "a folder"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

/// Reads `path` as text if it is a regular file of at most `limit` bytes.
///
/// What is not a regular file by its path is never opened (opening a device
/// can have effects of its own). The file is then opened with `O_NONBLOCK`
/// and its type taken again from the open descriptor (fstat): a FIFO put in
/// its place between the look and the open could otherwise block the open
/// forever. For a regular file `O_NONBLOCK` changes nothing. The read goes
/// through `take`, so a file that grows, or lies about its size (`/proc`),
/// still stops at the limit.
pub fn read_regular(path: &Path, limit: u64) -> Result<String, ReadError> {
    let open_error = |source| ReadError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file_type = std::fs::metadata(path).map_err(open_error)?.file_type();
    if !file_type.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind(file_type),
        });
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_error)?;
    let file_type = file.metadata().map_err(open_error)?.file_type();
    if !file_type.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind(file_type),
        });
    }
    let mut text = String::new();
    // One byte past the limit tells "exactly the limit" from "more".
    file.take(limit.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|source| ReadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(text)
}

/// Why an output path cannot be written.
#[derive(Debug, PartialEq, Eq)]
pub enum OutputError {
    /// The path is empty.
    Empty,
    /// The path is a folder (or ends in `/`), where a file must go.
    IsFolder {
        /// The path.
        path: PathBuf,
    },
    /// A folder on the way does not exist.
    MissingFolder {
        /// The folder.
        folder: PathBuf,
    },
    /// Something on the way that must be a folder is not one.
    NotAFolder {
        /// The path that is not a folder.
        path: PathBuf,
        /// What it is instead, as [`kind`] names it.
        kind: &'static str,
    },
    /// The file, or the folder it goes in, may not be written (access(2)).
    NotWritable {
        /// The file or folder.
        path: PathBuf,
        /// What access(2) said.
        errno: Errno,
    },
    /// The path could not be looked at (permissions on the way, a loop).
    Inaccessible {
        /// The path.
        path: PathBuf,
        /// The error, as text (io::Error is not comparable).
        reason: String,
    },
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Empty => write!(f, "the path is empty"),
            OutputError::IsFolder { path } => {
                write!(f, "{} is a folder, not a file", path.display())
            }
            OutputError::MissingFolder { folder } => {
                write!(f, "the folder {} does not exist", folder.display())
            }
            OutputError::NotAFolder { path, kind } => {
                write!(f, "{} is {kind}, not a folder", path.display())
            }
            OutputError::NotWritable { path, errno } => {
                write!(f, "{} is not writable: {}", path.display(), errno.desc())
            }
            OutputError::Inaccessible { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for OutputError {}

/// The folder a relative file name without one goes in: the current one.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether looking at a path failed only because it, or a folder on its
/// way, does not exist as a folder (ENOENT, or ENOTDIR for a file on the way).
fn is_absent(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ENOTDIR)
}

/// Checks that `folder` exists, is a folder, and that files can be created
/// in it (write and search permission).
fn check_folder(folder: &Path) -> Result<(), OutputError> {
    match std::fs::metadata(folder) {
        Ok(meta) if meta.is_dir() => {
            nix::unistd::access(folder, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| {
                OutputError::NotWritable {
                    path: folder.to_path_buf(),
                    errno,
                }
            })
        }
        Ok(meta) => Err(OutputError::NotAFolder {
            path: folder.to_path_buf(),
            kind: kind(meta.file_type()),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(OutputError::MissingFolder {
                folder: folder.to_path_buf(),
            })
        }
        Err(error) => Err(OutputError::Inaccessible {
            path: folder.to_path_buf(),
            reason: error.to_string(),
        }),
    }
}

/// Checks that a file can be written at `path` (created, or truncated if it
/// exists) without creating or touching it: an existing path must not be a
/// folder and must be writable; otherwise its folder must exist and take
/// new files.
///
/// Run as root, access(2) allows writing almost anywhere, so this check
/// passes where the write may still fail (a read-only mount says so, though).
/// What it is for is the common mistake, a folder that is not there, and
/// that it catches for everyone.
pub fn check_output_file(path: &Path) -> Result<(), OutputError> {
    if path.as_os_str().is_empty() {
        return Err(OutputError::Empty);
    }
    // `out/` names a folder even when no such folder exists yet.
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(OutputError::IsFolder {
            path: path.to_path_buf(),
        });
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(OutputError::IsFolder {
            path: path.to_path_buf(),
        }),
        Ok(_) => {
            nix::unistd::access(path, AccessFlags::W_OK).map_err(|errno| OutputError::NotWritable {
                path: path.to_path_buf(),
                errno,
            })
        }
        Err(error) if is_absent(&error) => check_folder(folder_of(path)),
        Err(error) => Err(OutputError::Inaccessible {
            path: path.to_path_buf(),
            reason: error.to_string(),
        }),
    }
}

/// Checks that `folder` is a writable folder or can be created as one
/// (`create_dir_all`), without creating it: the nearest part of it that
/// exists must be a folder that takes new entries.
pub fn check_output_folder(folder: &Path) -> Result<(), OutputError> {
    if folder.as_os_str().is_empty() {
        return Err(OutputError::Empty);
    }
    for ancestor in folder.ancestors() {
        let ancestor = if ancestor.as_os_str().is_empty() {
            Path::new(".")
        } else {
            ancestor
        };
        match std::fs::metadata(ancestor) {
            Ok(_) => return check_folder(ancestor),
            Err(error) if is_absent(&error) => continue,
            Err(error) => {
                return Err(OutputError::Inaccessible {
                    path: ancestor.to_path_buf(),
                    reason: error.to_string(),
                })
            }
        }
    }
    // `ancestors` ends at `/` or `.`, which exist; only a vanished current
    // folder gets here.
    Err(OutputError::MissingFolder {
        folder: folder.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// A fresh folder in the temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "harness-files-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let scratch = Scratch::new("within");
        let path = scratch.file("a.txt", "0123456789");
        assert_eq!(read_regular(&path, 10).unwrap(), "0123456789");
    }

    #[test]
    fn a_file_past_the_limit_is_an_error_naming_file_and_limit() {
        let scratch = Scratch::new("past");
        let path = scratch.file("a.txt", &"x".repeat(2049));
        let error = read_regular(&path, 2048).unwrap_err();
        assert!(matches!(error, ReadError::TooLarge { limit: 2048, .. }));
        let message = error.to_string();
        assert!(
            message.contains("a.txt") && message.contains("2 KiB"),
            "{message}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let scratch = Scratch::new("fifo");
        let path = scratch.0.join("pipe");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // No writer ever comes: a blocking open would never return.
        let error = read_regular(&path, 1 << 20).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{}: a FIFO, not a regular file", path.display())
        );
    }

    #[rstest]
    #[case::endless_device("/dev/zero", "a character device")]
    #[case::folder("/", "a folder")]
    fn what_is_not_a_regular_file_is_refused(#[case] path: &str, #[case] kind: &str) {
        let error = read_regular(Path::new(path), 1 << 20).unwrap_err();
        assert!(error.to_string().contains(kind), "{error}");
    }

    #[test]
    fn an_output_file_in_an_existing_folder_can_be_written_and_is_not_created() {
        let scratch = Scratch::new("out-ok");
        let path = scratch.0.join("report.xml");
        assert_eq!(check_output_file(&path), Ok(()));
        assert!(!path.exists(), "the check creates nothing");
        let existing = scratch.file("old.xml", "keep me");
        assert_eq!(check_output_file(&existing), Ok(()));
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");
    }

    #[test]
    fn an_output_file_needs_its_folder_to_exist_and_be_a_folder() {
        let scratch = Scratch::new("out-bad");
        let missing = scratch.0.join("no-such-folder");
        assert_eq!(
            check_output_file(&missing.join("x.xml")),
            Err(OutputError::MissingFolder {
                folder: missing.clone()
            })
        );
        let file = scratch.file("plain", "");
        assert_eq!(
            check_output_file(&file.join("x.xml")),
            Err(OutputError::NotAFolder {
                path: file,
                kind: "a regular file"
            })
        );
        assert_eq!(
            check_output_file(&scratch.0),
            Err(OutputError::IsFolder {
                path: scratch.0.clone()
            })
        );
        let trailing = PathBuf::from(format!("{}/", missing.display()));
        assert!(matches!(
            check_output_file(&trailing),
            Err(OutputError::IsFolder { .. })
        ));
        assert_eq!(check_output_file(Path::new("")), Err(OutputError::Empty));
    }

    #[test]
    fn an_output_folder_may_be_missing_if_it_can_be_created() {
        let scratch = Scratch::new("folder");
        let deep = scratch.0.join("a/b/c");
        assert_eq!(check_output_folder(&deep), Ok(()));
        assert!(!scratch.0.join("a").exists(), "the check creates nothing");
        assert_eq!(check_output_folder(&scratch.0), Ok(()));
        assert_eq!(
            check_output_folder(Path::new("relative/below/here")),
            Ok(())
        );
    }

    #[test]
    fn an_output_folder_under_a_file_is_an_error_naming_the_file() {
        let scratch = Scratch::new("under-file");
        let file = scratch.file("plain", "");
        let error = check_output_folder(&file.join("x/y")).unwrap_err();
        assert_eq!(
            error,
            OutputError::NotAFolder {
                path: file.clone(),
                kind: "a regular file"
            }
        );
        assert_eq!(
            error.to_string(),
            format!("{} is a regular file, not a folder", file.display())
        );
    }
}
