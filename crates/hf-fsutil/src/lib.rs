//! Atomic file output: every file the project writes goes through here, so a crash or an error
//! never leaves a half-written output behind (write to a temporary file beside it, then rename).
//! Temporary files are named `.hf-tmp-<pid>-…`, so the temporaries a killed process left behind
//! can be told from those of a live one and removed ([`remove_stale_temps`]). A run's output
//! folder is held by a [`DirLock`] while the run writes into it.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Prefix of every temporary file.
pub const TEMP_PREFIX: &str = ".hf-tmp-";

/// The prefix of this process's temporary files: `.hf-tmp-<pid>-`.
fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// Writes a file atomically: `fill` writes into a temporary file in the same directory, which is
/// renamed over `path` only if `fill` succeeds. Creates the parent directory if needed.
pub fn atomic_write<F>(path: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix())
        .tempfile_in(dir)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    set_readable(tmp.path())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write_bytes(path: &Path, bytes: &[u8]) -> io::Result<()> {
    atomic_write(path, |w| w.write_all(bytes))
}

/// Like [`atomic_write`], but for writers that need a real file path (e.g. plotting backends):
/// `fill` receives a temporary path in the destination directory with the same extension,
/// which is renamed over `path` if `fill` succeeds and is removed otherwise.
pub fn atomic_write_via_path<F, E>(path: &Path, fill: F) -> Result<(), E>
where
    F: FnOnce(&Path) -> Result<(), E>,
    E: From<io::Error>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&temp_prefix())
        .suffix(&ext)
        .tempfile_in(dir)?;
    let tmp_path = tmp.into_temp_path();
    fill(&tmp_path)?;
    set_readable(&tmp_path)?;
    tmp_path.persist(path).map_err(|e| E::from(e.error))?;
    Ok(())
}

/// Temporary files are created private (0600); outputs get the usual 0644.
fn set_readable(p: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o644))?;
    }
    let _ = p;
    Ok(())
}

/// Whether process `pid` is alive. Where that cannot be told, it is assumed alive (so nothing
/// of a possibly live process is ever removed).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        Path::new("/proc").join(pid.to_string()).exists()
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// Removes the temporary files in `dir` that processes no longer alive left behind (a run
/// killed while writing a checkpoint leaves its partial file). Temporaries of live processes
/// are kept; those of an older naming without a pid count as stale. Returns what was removed.
pub fn remove_stale_temps(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let owner = rest
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        if owner.is_some_and(process_alive) || !e.file_type()?.is_file() {
            continue;
        }
        fs::remove_file(e.path())?;
        removed.push(e.path());
    }
    removed.sort();
    Ok(removed)
}

/// Name of the lock file in a locked output folder.
pub const LOCK_NAME: &str = ".hyperflux.lock";

/// An output folder held by this process: `<dir>/.hyperflux.lock` holds our pid and is removed
/// when the lock is dropped. A second process asking for the same folder is refused while the
/// holder lives; a lock whose process is gone (killed) is stale and taken over.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    /// The pid of the dead process whose stale lock was taken over, if any.
    pub took_over: Option<u32>,
}

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the folder.
    #[error("output folder {} is in use by another hyperflux run (pid {pid}, lock file {}): wait for it to finish, or choose another --out", dir.display(), lock.display())]
    Held {
        /// The folder.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder's pid.
        pid: u32,
    },
    /// The lock file could not be created or read.
    #[error("cannot lock output folder {}: {source}", dir.display())]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl DirLock {
    /// Takes the lock of `dir` (creating the folder).
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let io_err = |source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io_err)?;
        let path = dir.join(LOCK_NAME);
        let mut took_over = None;
        for _ in 0..5 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).map_err(io_err)?;
                    f.sync_all().map_err(io_err)?;
                    return Ok(DirLock { path, took_over });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let text = match fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err(e)),
                    };
                    match text.trim().parse::<u32>() {
                        Ok(pid) if process_alive(pid) => {
                            return Err(LockError::Held {
                                dir: dir.to_path_buf(),
                                lock: path,
                                pid,
                            })
                        }
                        // Being written right now by a process that just created it.
                        Err(_) if text.is_empty() => {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            let again = fs::read_to_string(&path).unwrap_or_default();
                            if again.is_empty() {
                                took_over = Some(0);
                                let _ = fs::remove_file(&path);
                            }
                        }
                        stale => {
                            took_over = Some(stale.unwrap_or(0));
                            match fs::remove_file(&path) {
                                Ok(()) => {}
                                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                                Err(e) => return Err(io_err(e)),
                            }
                        }
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other(
            "the lock file keeps changing: another run is starting in the same folder",
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Only remove a lock that is still ours.
        if fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == std::process::id().to_string())
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        let r = atomic_write(&target, |w| {
            w.write_all(b"partial")?;
            Err(io::Error::other("boom"))
        });
        assert!(r.is_err());
        assert!(!target.exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file left behind"
        );
    }

    #[test]
    fn successful_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/out.txt");
        atomic_write_bytes(&target, b"one").unwrap();
        atomic_write_bytes(&target, b"two").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
    }

    #[test]
    fn via_path_keeps_extension_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plot.png");
        let r: Result<(), io::Error> = atomic_write_via_path(&target, |p| {
            assert_eq!(p.extension().unwrap(), "png");
            fs::write(p, b"x")?;
            Err(io::Error::other("fail"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        atomic_write_via_path::<_, io::Error>(&target, |p| fs::write(p, b"ok")).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"ok");
    }

    /// A pid that is not running: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn temporaries_carry_the_pid_and_stale_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let ours = format!(".hf-tmp-{}-abc", std::process::id());
        let dead = format!(".hf-tmp-{}-partial", dead_pid());
        for n in [
            &ours,
            &dead,
            &".hf-tmp-old".to_string(),
            &"keep.txt".to_string(),
        ] {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        let removed = remove_stale_temps(dir.path()).unwrap();
        let names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![dead.clone(), ".hf-tmp-old".to_string()]);
        assert!(dir.path().join(&ours).exists() && dir.path().join("keep.txt").exists());
        assert!(remove_stale_temps(&dir.path().join("none"))
            .unwrap()
            .is_empty());
        // atomic_write's temporaries use this process's prefix.
        let r = atomic_write(&dir.path().join("f"), |w| {
            w.write_all(b"x")?;
            let mine = fs::read_dir(dir.path()).unwrap().flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with(&temp_prefix())
                    && e.file_name().to_string_lossy() != ours
            });
            assert!(mine);
            Ok(())
        });
        r.unwrap();
    }

    #[test]
    fn lock_is_exclusive_released_on_drop_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("run");
        let lock = DirLock::acquire(&d).unwrap();
        assert_eq!(lock.took_over, None);
        let text = fs::read_to_string(d.join(LOCK_NAME)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // A live holder (here: the parent of this test, pid 1 is always alive) refuses.
        fs::write(d.join(LOCK_NAME), "1\n").unwrap();
        let e = DirLock::acquire(&d).unwrap_err().to_string();
        assert!(
            e.contains("in use by another hyperflux run (pid 1") && e.contains("--out"),
            "{e}"
        );
        // Dropping a lock that is no longer ours leaves the other one alone.
        drop(lock);
        assert!(d.join(LOCK_NAME).exists());
        // A dead holder's lock is stale.
        let pid = dead_pid();
        fs::write(d.join(LOCK_NAME), format!("{pid}\n")).unwrap();
        let lock = DirLock::acquire(&d).unwrap();
        assert_eq!(lock.took_over, Some(pid));
        drop(lock);
        assert!(!d.join(LOCK_NAME).exists());
    }
}
