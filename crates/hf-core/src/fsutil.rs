//! Atomic file output: every file the project writes goes through here, so a crash or an error
//! never leaves a half-written output behind (write to a temporary file beside it, then rename).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

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
        .prefix(".hf-tmp-")
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
        .prefix(".hf-tmp-")
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
}
