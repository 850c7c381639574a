//! Device selection: `cpu`, `cuda` or `auto` (CUDA when libtorch sees a GPU).
//!
//! The linker drops `libtorch_cuda.so` from the binary (nothing in the Rust code calls into it
//! directly), and without it libtorch registers no CUDA backend and never sees a GPU. So the
//! CUDA library is loaded at run time, before libtorch is first asked about CUDA: from the
//! directory the running `libtorch_cpu.so` was loaded from, so the two always match. Loading
//! it registers libtorch's CUDA hooks, exactly as `import torch` does in Python.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::EngineError;
use tch::Device;

/// Resolves a device name. `cuda` loads libtorch's CUDA library first and fails with one
/// line saying why when it cannot (CPU-only libtorch, missing CUDA libraries, no GPU).
pub fn resolve(name: &str) -> Result<Device, EngineError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            let lib = load_cuda().map_err(|why| {
                EngineError::Device(format!("--device cuda: {why}; or use --device cpu"))
            })?;
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(EngineError::Device(format!(
                    "--device cuda: {} loaded, but libtorch sees no CUDA GPU (no device, or the \
                     NVIDIA driver is missing or older than this CUDA build needs: check \
                     nvidia-smi); or use --device cpu",
                    lib.display()
                )))
            }
        }
        "auto" => {
            if load_cuda().is_ok() && tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Ok(Device::Cpu)
            }
        }
        other => Err(EngineError::Device(format!(
            "unknown device {other:?}: use cpu, cuda or auto"
        ))),
    }
}

/// Loads libtorch's CUDA library (once per process) and returns its path, or says why it
/// cannot be loaded.
pub fn load_cuda() -> Result<PathBuf, String> {
    static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LOADED.get_or_init(load_cuda_once).clone()
}

fn load_cuda_once() -> Result<PathBuf, String> {
    let dir = libtorch_dir().ok_or_else(|| {
        "cannot tell which libtorch this process runs (libtorch_cpu.so not found in \
         /proc/self/maps)"
            .to_string()
    })?;
    let lib = dir.join(CUDA_LIB);
    if !lib.exists() {
        return Err(format!(
            "the libtorch in {} is a CPU-only build (no {CUDA_LIB}); run with a CUDA build of \
             libtorch {} first on the library path (e.g. LD_LIBRARY_PATH=<python \
             site-packages>/torch/lib of a CUDA PyTorch 2.11)",
            dir.display(),
            LIBTORCH_VERSION
        ));
    }
    open_global(&lib).map_err(|e| {
        format!(
            "{} is there but cannot be loaded ({}); the CUDA runtime libraries it needs \
             (cuBLAS, cuDNN, … from the nvidia-* wheels a CUDA torch wheel installs) are \
             missing or do not match",
            lib.display(),
            one_line(&e)
        )
    })?;
    Ok(lib)
}

/// libtorch's CUDA library (registers the CUDA backend when loaded).
const CUDA_LIB: &str = "libtorch_cuda.so";
/// The libtorch version this build is made for.
const LIBTORCH_VERSION: &str = "2.11";

/// The directory the running `libtorch_cpu.so` was loaded from.
fn libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    libtorch_dir_in(&maps)
}

/// The directory of `libtorch_cpu.so` in the text of a `/proc/<pid>/maps` file.
fn libtorch_dir_in(maps: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(Path::new)
        .find(|p| p.file_name().is_some_and(|n| n == "libtorch_cpu.so"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

#[cfg(unix)]
fn open_global(lib: &Path) -> Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: loading libtorch's own CUDA library runs its static initialisers, which only
    // register the CUDA backend with the already-loaded libtorch (what `import torch` does).
    let handle = unsafe { Library::open(Some(lib), RTLD_NOW | RTLD_GLOBAL) }.map_err(|e| {
        // libloading's message is "dlopen failed"; the loader's own words are its source.
        match std::error::Error::source(&e) {
            Some(src) => src.to_string(),
            None => e.to_string(),
        }
    })?;
    // Stays loaded for the life of the process: libtorch keeps pointers into it.
    std::mem::forget(handle);
    Ok(())
}

#[cfg(not(unix))]
fn open_global(_lib: &Path) -> Result<(), String> {
    Err("loading CUDA at run time is supported on Linux only".into())
}

/// The first line of a loader message, without trailing noise.
fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// Sets libtorch's CPU thread count (0: all cores).
pub fn set_threads(threads: usize) {
    let n = if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    };
    tch::set_num_threads(n as i32);
    // libtorch refuses a second interop setting once parallel work has run (a second run in
    // the same process would panic): set it once.
    static INTEROP: std::sync::Once = std::sync::Once::new();
    INTEROP.call_once(|| tch::set_num_interop_threads(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_libtorch_in_a_maps_file() {
        let maps = "\
7f00-7f01 r--p 00000000 08:01 1 /usr/lib/libc.so.6
7f02-7f03 r-xp 00000000 08:01 2 /opt/venv/torch/lib/libtorch_cpu.so
7f04-7f05 rw-p 00000000 00:00 0 
7f06-7f07 r--p 00000000 08:01 3 /opt/venv/torch/lib/libc10.so";
        assert_eq!(
            libtorch_dir_in(maps),
            Some(PathBuf::from("/opt/venv/torch/lib"))
        );
        assert_eq!(
            libtorch_dir_in("7f00-7f01 r--p 0 0 1 /usr/lib/libc.so.6"),
            None
        );
        // a similarly named library is not libtorch_cpu
        assert_eq!(
            libtorch_dir_in("7f00-7f01 r--p 0 0 1 /x/libtorch_cpu.so.bak"),
            None
        );
    }

    #[test]
    fn cuda_in_this_process_loads_or_says_why_in_one_line() {
        // Touch libtorch so libtorch_cpu.so is mapped.
        let _ = tch::Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
        match resolve("cuda") {
            Ok(d) => assert_eq!(d, Device::Cuda(0)),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("--device cuda"), "{msg}");
                assert!(msg.contains("--device cpu"), "{msg}");
                assert!(!msg.contains('\n'), "{msg}");
            }
        }
        // auto never fails
        let auto = resolve("auto").unwrap();
        assert!(matches!(auto, Device::Cpu | Device::Cuda(0)));
    }
}
