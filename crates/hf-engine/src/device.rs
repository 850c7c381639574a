//! Device selection: `cpu`, `cuda` or `auto` (CUDA when libtorch sees a GPU).

use crate::EngineError;
use tch::Device;

/// Resolves a device name.
pub fn resolve(name: &str) -> Result<Device, EngineError> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(EngineError::Device(
                    "--device cuda: libtorch sees no CUDA GPU here; use --device cpu or auto"
                        .into(),
                ))
            }
        }
        "auto" => Ok(Device::cuda_if_available()),
        other => Err(EngineError::Device(format!(
            "unknown device {other:?}: use cpu, cuda or auto"
        ))),
    }
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
