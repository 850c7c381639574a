//! Checkpoints in safetensors: weights, masks, free parameters and buffers under conventional
//! names, the optimizer states (`optim.weights.{i}.s0` …), and the run state as JSON metadata,
//! so `--resume` continues a run exactly. Every checkpoint carries the SHA-256 of its tensor
//! data (`tensor_sha256`, see `hf_core::checksum`); loading verifies it and refuses non-finite
//! values, so a damaged or diverged checkpoint never silently gives wrong numbers.

use crate::network::{self, Network};
use crate::step::HyperfluxOptim;
use crate::EngineError;
use hf_core::checksum::{self, Integrity};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Metadata key holding the checkpoint format tag.
pub const FORMAT_KEY: &str = "hyperflux";
/// Current checkpoint format tag.
pub const FORMAT: &str = "checkpoint-v1";

/// A loaded checkpoint: metadata plus raw f32 tensors.
#[derive(Debug)]
pub struct Checkpoint {
    /// Where it came from.
    pub path: PathBuf,
    /// safetensors `__metadata__`.
    pub meta: BTreeMap<String, String>,
    /// Whether the tensor-data checksum was verified, or the file has none.
    pub integrity: Integrity,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

fn err(path: &Path, msg: impl Into<String>) -> EngineError {
    EngineError::Checkpoint {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// All tensors of a network (and optionally its optimizers) under their checkpoint names.
pub fn named_tensors(net: &dyn Network, opt: Option<&HyperfluxOptim>) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for mw in net.masked() {
        out.push((format!("{}.weight", mw.name), mw.w.shallow_clone()));
        out.push((format!("{}.mask", mw.name), mw.m.shallow_clone()));
    }
    for p in net.params() {
        out.push((p.name.clone(), p.t.shallow_clone()));
    }
    for (n, t) in net.buffers() {
        out.push((n, t));
    }
    if let Some(o) = opt {
        for (group, g) in [("weights", &o.weights), ("masks", &o.masks)] {
            for (i, st) in g.states.iter().enumerate() {
                for (k, t) in st.iter().enumerate() {
                    if t.numel() > 0 {
                        out.push((format!("optim.{group}.{i}.s{k}"), t.shallow_clone()));
                    }
                }
            }
        }
    }
    out
}

/// Saves a checkpoint atomically.
pub fn save(
    path: &Path,
    net: &dyn Network,
    opt: Option<&HyperfluxOptim>,
    meta: BTreeMap<String, String>,
) -> Result<(), EngineError> {
    let named = named_tensors(net, opt);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = named
        .iter()
        .map(|(n, t)| {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let bytes: Vec<u8> = network::to_vec_f32(t)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (n.clone(), shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| err(path, format!("cannot serialise {n}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut meta: HashMap<String, String> = meta.into_iter().collect();
    meta.insert(FORMAT_KEY.into(), FORMAT.into());
    meta.insert(
        checksum::KEY.into(),
        checksum::tensor_digest(data.iter().map(|(n, _, b)| (n.as_str(), b.as_slice()))),
    );
    let bytes = safetensors::serialize(views, &Some(meta))
        .map_err(|e| err(path, format!("cannot serialise: {e}")))?;
    hf_core::fsutil::atomic_write_bytes(path, &bytes)
        .map_err(|e| err(path, format!("cannot write: {e}")))
}

impl Checkpoint {
    /// Like [`Checkpoint::load`], and tells `note` when the file has no checksum to verify.
    pub fn load_noted(path: &Path, note: impl FnOnce(&str)) -> Result<Self, EngineError> {
        let ck = Self::load(path)?;
        if let Some(n) = ck.integrity.note(&path.display().to_string()) {
            note(&n);
        }
        Ok(ck)
    }

    /// Reads and checks a checkpoint file (an ONNX model, `.onnx`, is imported and served as a
    /// checkpoint of its graph: see [`Checkpoint::from_onnx`]): parseable, tagged as a hyperflux checkpoint, its
    /// tensor-data checksum (when present) matches, every tensor is F32 and finite.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        if hf_onnx::read::is_onnx_path(path) {
            return Self::from_onnx(path);
        }
        let bytes = std::fs::read(path).map_err(|e| {
            err(
                path,
                format!("cannot read ({e}); check the path, or train one with `hyperflux train`"),
            )
        })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            err(
                path,
                format!("not a readable safetensors file ({e}); it is truncated or corrupt — use another checkpoint"),
            )
        })?;
        let (_, md) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| err(path, format!("unreadable header ({e})")))?;
        let meta: BTreeMap<String, String> = md
            .metadata()
            .clone()
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            return Err(err(
                path,
                "not a hyperflux checkpoint (metadata tag missing); export files are read by `hyperflux infer`",
            ));
        }
        let integrity = checksum::verify(meta.get(checksum::KEY).map(String::as_str), || {
            checksum::tensor_digest(st.tensors().iter().map(|(n, t)| (n.as_str(), t.data())))
        })
        .map_err(|e| err(path, format!("{e} — use another checkpoint")))?;
        let mut tensors = HashMap::new();
        let mut views = st.tensors();
        views.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, view) in views {
            if view.dtype() != Dtype::F32 {
                return Err(err(
                    path,
                    format!("tensor {name} has dtype {:?}, expected F32", view.dtype()),
                ));
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    path,
                    format!(
                        "tensor {name}[{i}] = {} is not finite: the checkpoint is corrupt or its run diverged — use another checkpoint",
                        data[i]
                    ),
                ));
            }
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            integrity,
            tensors,
        })
    }

    /// Imports an ONNX model as a checkpoint: metadata `arch` = `onnx:<name>`, `graph` (the
    /// layer graph as JSON), `input_shape`, `classes`, `dataset` when the file names one; its
    /// weights, biases and BatchNorm tensors; and masks that keep every non-zero weight (so a
    /// pruned export evaluates at its own density, a dense model at 100%).
    pub fn from_onnx(path: &Path) -> Result<Self, EngineError> {
        let imp = hf_onnx::read::import_file(path)
            .map_err(|e| EngineError::Model(format!("cannot import ONNX: {e}")))?;
        let mut meta = BTreeMap::new();
        meta.insert(FORMAT_KEY.to_string(), FORMAT.to_string());
        meta.insert(
            "arch".into(),
            format!("{}{}", crate::models::graph::ARCH_PREFIX, imp.spec.name),
        );
        let shape: [i64; 3] = match imp.spec.input.as_slice() {
            [c, h, w] => [*c as i64, *h as i64, *w as i64],
            [d] => [*d as i64, 1, 1],
            other => {
                return Err(err(path, format!("input shape {other:?} is not supported")));
            }
        };
        meta.insert(
            "input_shape".into(),
            serde_json::to_string(&shape).unwrap_or_default(),
        );
        meta.insert("classes".into(), imp.spec.classes.to_string());
        meta.insert(
            "graph".into(),
            serde_json::to_string(&imp.spec)
                .map_err(|e| err(path, format!("cannot describe the graph: {e}")))?,
        );
        for (k, v) in &imp.metadata {
            if k == "dataset" {
                meta.insert("dataset".into(), v.clone());
            }
        }
        let mut tensors = HashMap::new();
        let prunable: std::collections::HashSet<String> = imp
            .spec
            .nodes
            .iter()
            .filter(|n| n.op.is_prunable())
            .map(|n| format!("{}.weight", n.name))
            .collect();
        for t in imp.tensors {
            if prunable.contains(&t.name) {
                let mask: Vec<f32> = t
                    .data
                    .iter()
                    .map(|&v| if v != 0.0 { 1.0 } else { -1.0 })
                    .collect();
                let mname = format!("{}.mask", t.name.trim_end_matches(".weight"));
                tensors.insert(mname, (t.shape.clone(), mask));
            }
            tensors.insert(t.name, (t.shape, t.data));
        }
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            tensors,
            // ONNX has no checksum to verify (the protobuf decoded whole, values are finite).
            integrity: hf_core::checksum::Integrity::NotApplicable,
        })
    }

    /// A metadata value, or an error naming the missing key.
    pub fn meta_str(&self, key: &str) -> Result<&str, EngineError> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| err(&self.path, format!("metadata key {key:?} missing")))
    }

    /// A JSON metadata value.
    pub fn meta_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, EngineError> {
        serde_json::from_str(self.meta_str(key)?)
            .map_err(|e| err(&self.path, format!("metadata {key:?} is malformed: {e}")))
    }

    /// Whether a tensor is stored.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The names of all stored tensors, sorted.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tensors.keys().cloned().collect();
        v.sort();
        v
    }

    fn copy_into(&self, name: &str, dst: &Tensor) -> Result<(), EngineError> {
        let (shape, data) = self.tensors.get(name).ok_or_else(|| {
            err(
                &self.path,
                format!("tensor {name} missing; is it a checkpoint of this model?"),
            )
        })?;
        let want: Vec<usize> = dst.size().iter().map(|&d| d as usize).collect();
        if *shape != want {
            return Err(err(
                &self.path,
                format!("tensor {name} has shape {shape:?}, the model expects {want:?}"),
            ));
        }
        let src = Tensor::from_slice(data)
            .view(dst.size().as_slice())
            .to_kind(Kind::Float)
            .to_device(dst.device());
        tch::no_grad(|| {
            let mut d = dst.shallow_clone();
            d.copy_(&src);
        });
        Ok(())
    }

    /// Copies weights, biases, buffers and (if `masks`) masks into `net`.
    pub fn restore_net(&self, net: &dyn Network, masks: bool) -> Result<(), EngineError> {
        for mw in net.masked() {
            self.copy_into(&format!("{}.weight", mw.name), &mw.w)?;
            if masks {
                self.copy_into(&format!("{}.mask", mw.name), &mw.m)?;
            }
        }
        for p in net.params() {
            self.copy_into(&p.name, &p.t)?;
        }
        for (n, t) in net.buffers() {
            self.copy_into(&n, &t)?;
        }
        Ok(())
    }

    /// Copies optimizer states into `opt` (step counts come from the run state).
    pub fn restore_optim(&self, opt: &HyperfluxOptim) -> Result<(), EngineError> {
        for (group, g) in [("weights", &opt.weights), ("masks", &opt.masks)] {
            for (i, st) in g.states.iter().enumerate() {
                for (k, t) in st.iter().enumerate() {
                    if t.numel() > 0 {
                        self.copy_into(&format!("optim.{group}.{i}.s{k}"), t)?;
                    }
                }
            }
        }
        Ok(())
    }
}
