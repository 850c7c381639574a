//! The ONNX Runtime column of `bench-infer`: the dense ONNX of the pruned model (hf-onnx's
//! writer, the same weights as the other columns) run by ONNX Runtime through the `ort` crate.
//!
//! ONNX Runtime is not linked: `libonnxruntime.so` is loaded at run time from the PyPI
//! `onnxruntime` wheel that `scripts/setup.sh` installs into `.venv`
//! (`.venv/lib/python3.*/site-packages/onnxruntime/capi/libonnxruntime.so.*`), or from the
//! file `ORT_DYLIB_PATH` names.

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What the column says when the library is not there.
pub const NOT_INSTALLED: &str = "not installed (run scripts/setup.sh)";

/// The loaded ONNX Runtime (one environment per process) and where it came from.
pub struct Ort {
    env: ort::environment::Environment,
    /// The library file.
    pub path: PathBuf,
}

static ORT: OnceLock<Result<Ort, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process; the error says why it is unavailable
/// ([`NOT_INSTALLED`] when no library file was found).
pub fn load() -> Result<&'static Ort, String> {
    ORT.get_or_init(|| {
        let path = find_library().ok_or_else(|| NOT_INSTALLED.to_string())?;
        let env = ort::init_from(&path)
            .map_err(|e| format!("cannot load {}: {e}", path.display()))?
            .with_name("hyperflux")
            .build()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        Ok(Ort { env, path })
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// `libonnxruntime.so*` of the onnxruntime wheel in a project venv: `ORT_DYLIB_PATH` if set,
/// else `.venv` in the current directory, next to the executable's `target/` directory, or
/// in the source tree the binary was built from.
pub fn find_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut venvs = vec![PathBuf::from(".venv")];
    if let Ok(exe) = std::env::current_exe() {
        // target/{release,debug}/hyperflux (or target/*/deps/…) → the repository root
        venvs.extend(exe.ancestors().skip(1).take(4).map(|d| d.join(".venv")));
    }
    venvs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    venvs.iter().find_map(|v| in_venv(v))
}

/// The library inside one venv, if there.
fn in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let mut found: Vec<PathBuf> = lib
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
        .filter_map(|e| {
            let capi = e.path().join("site-packages/onnxruntime/capi");
            std::fs::read_dir(capi).ok()
        })
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                && p.is_file()
        })
        .collect();
    found.sort();
    found.pop()
}

/// One ONNX Runtime session of a model: all graph optimisations, `threads` intra-op threads,
/// sequential execution (one inter-op thread).
pub struct OrtModel {
    session: Session,
    /// Input dimensions of one example (`input_shape`).
    shape: Vec<usize>,
}

impl OrtModel {
    /// A session of the ONNX `bytes`.
    pub fn new(ort: &Ort, bytes: &[u8], shape: &[usize], threads: usize) -> Result<Self, String> {
        let session = Session::builder(&ort.env)
            .map_err(|e| e.to_string())?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| e.to_string())?
            .with_intra_threads(threads)
            .map_err(|e| e.to_string())?
            .with_inter_threads(1)
            .map_err(|e| e.to_string())?
            .with_parallel_execution(false)
            .map_err(|e| e.to_string())?
            .commit_from_memory(bytes)
            .map_err(|e| e.to_string())?;
        Ok(OrtModel {
            session,
            shape: shape.to_vec(),
        })
    }

    /// The logits (`batch x classes`, row-major) of `batch` examples `x`.
    pub fn forward(&mut self, x: &[f32], batch: usize) -> Result<Vec<f32>, String> {
        let mut dims = vec![batch];
        dims.extend_from_slice(&self.shape);
        let input = TensorRef::from_array_view((dims, x)).map_err(|e| e.to_string())?;
        let out = self
            .session
            .run(ort::inputs!["input" => input])
            .map_err(|e| e.to_string())?;
        let (_, y) = out["logits"]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        Ok(y.to_vec())
    }
}
