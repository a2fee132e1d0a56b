//! From the name a client asks for to an open regular file inside the root.
//!
//! Two steps, so that no name can lead outside the root:
//! 1. `relative` (pure): backslashes become slashes (Windows boot loaders
//!    send `boot\x86\wdsnbp.com`), a leading `/` means the root (as with
//!    `in.tftpd -s`), `.` and empty parts are dropped, `..` is refused.
//! 2. `Root::open`: the kernel resolves the name with `openat2` and
//!    `RESOLVE_BENEATH` from a descriptor of the root, so a symlink (or a
//!    directory renamed while we look) that leads out of the root fails in
//!    the kernel, not in a check that could race. The result is opened
//!    `O_PATH` first and must be a regular, world-readable file (as
//!    tftpd-hpa serves only those) before it is opened for reading: a device
//!    or FIFO is never opened at all.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why a name is not served; `code` and the text go into the ERROR packet.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("file not found")]
    NotFound,
    #[error("'..' is not allowed in file names")]
    DotDot,
    #[error("the name leads out of the TFTP root")]
    OutsideRoot,
    #[error("not a regular file")]
    NotRegular,
    #[error("not world-readable")]
    NotReadable,
    #[error("permission denied")]
    Denied,
    #[error("cannot open: {0}")]
    Other(String),
}

impl Refusal {
    pub fn code(&self) -> super::packet::ErrorCode {
        use super::packet::ErrorCode;
        match self {
            Refusal::NotFound => ErrorCode::FileNotFound,
            Refusal::Other(_) => ErrorCode::NotDefined,
            _ => ErrorCode::AccessViolation,
        }
    }
}

/// The name as a path relative to the root, or why it cannot be one.
pub fn relative(name: &str) -> Result<PathBuf, Refusal> {
    let mut out = PathBuf::new();
    for part in name.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return Err(Refusal::DotDot),
            p => out.push(p),
        }
    }
    if out.as_os_str().is_empty() {
        // "/" or "." names the root itself: a directory.
        return Err(Refusal::NotRegular);
    }
    Ok(out)
}

/// An open descriptor of the TFTP root, which every name is resolved from.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Open the root, and check that this kernel resolves names beneath it
    /// (openat2, Linux 5.6): without it the server does not start.
    pub fn open(path: &Path) -> io::Result<Root> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just opened and own.
        let root = Root {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        };
        drop(root.beneath(Path::new("."), libc::O_PATH)?);
        Ok(root)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open `rel` (from `relative`) for reading; returns the file and its size.
    pub fn open_file(&self, rel: &Path) -> Result<(File, u64), Refusal> {
        let handle = self.beneath(rel, libc::O_PATH).map_err(|e| refusal(&e))?;
        let meta = File::from(handle.try_clone().map_err(|e| refusal(&e))?)
            .metadata()
            .map_err(|e| refusal(&e))?;
        if !meta.file_type().is_file() {
            return Err(Refusal::NotRegular);
        }
        if meta.mode() & 0o004 == 0 {
            return Err(Refusal::NotReadable);
        }
        // Reopen the very inode the O_PATH descriptor holds, for reading.
        let proc = format!("/proc/self/fd/{}", handle.as_raw_fd());
        let file = File::open(proc).map_err(|e| refusal(&e))?;
        Ok((file, meta.len()))
    }

    fn beneath(&self, rel: &Path, flags: i32) -> io::Result<OwnedFd> {
        let c = CString::new(rel.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the name"))?;
        // SAFETY: open_how is plain integers; all zero is its empty value.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: valid descriptor, C string and open_how of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor the kernel just gave us.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

fn refusal(e: &io::Error) -> Refusal {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => Refusal::NotFound,
        // RESOLVE_BENEATH: the name (or a symlink in it) leaves the root.
        Some(libc::EXDEV) | Some(libc::ELOOP) => Refusal::OutsideRoot,
        Some(libc::EACCES) | Some(libc::EPERM) => Refusal::Denied,
        _ => Refusal::Other(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn names_become_relative_paths() {
        assert_eq!(relative("pxelinux.0"), Ok(PathBuf::from("pxelinux.0")));
        assert_eq!(relative("/boot//x/./y"), Ok(PathBuf::from("boot/x/y")));
        assert_eq!(
            relative("boot\\x86\\wdsnbp.com"),
            Ok(PathBuf::from("boot/x86/wdsnbp.com"))
        );
        assert_eq!(relative("../etc/passwd"), Err(Refusal::DotDot));
        assert_eq!(relative("a/../../b"), Err(Refusal::DotDot));
        assert_eq!(relative("a\\..\\b"), Err(Refusal::DotDot));
        assert_eq!(relative("/"), Err(Refusal::NotRegular));
        assert_eq!(relative("./"), Err(Refusal::NotRegular));
    }

    /// Opening needs no root: a temporary tree with every trap in it.
    #[test]
    fn only_regular_readable_files_beneath_the_root_open() {
        let base = std::env::temp_dir().join(format!("headnode-tftp-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret"), "outside").unwrap();
        std::fs::write(root.join("sub/kernel"), "inside").unwrap();
        std::fs::write(root.join("private"), "x").unwrap();
        std::fs::set_permissions(root.join("private"), PermissionsExt::from_mode(0o600)).unwrap();
        symlink("../secret", root.join("escape")).unwrap();
        symlink(base.join("secret"), root.join("absolute")).unwrap();
        symlink("sub/kernel", root.join("inner")).unwrap();
        symlink("/dev/null", root.join("null")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();

        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

        let r = Root::open(&root).unwrap();
        let open = |name: &str| {
            r.open_file(&relative(name)?).map(|(f, n)| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut { f }, &mut s).unwrap();
                (s, n)
            })
        };
        assert_eq!(open("sub/kernel"), Ok(("inside".into(), 6)));
        assert_eq!(open("/sub/kernel"), Ok(("inside".into(), 6)));
        assert_eq!(open("inner"), Ok(("inside".into(), 6)));
        assert_eq!(open("escape"), Err(Refusal::OutsideRoot));
        assert_eq!(open("absolute"), Err(Refusal::OutsideRoot));
        assert_eq!(open("null"), Err(Refusal::OutsideRoot));
        assert_eq!(open("magic"), Err(Refusal::OutsideRoot));
        assert_eq!(open("sub"), Err(Refusal::NotRegular));
        // Not opened (that would block): refused from its O_PATH handle.
        assert_eq!(open("fifo"), Err(Refusal::NotRegular));
        assert_eq!(open("private"), Err(Refusal::NotReadable));
        assert_eq!(open("missing"), Err(Refusal::NotFound));
        assert_eq!(open("sub/kernel/x"), Err(Refusal::NotFound));
        assert_eq!(open("../secret"), Err(Refusal::DotDot));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
