//! Writing and reading the two safetensors layouts described in FORMAT.md.

use crate::formats::Csr;
use crate::model::{Model, RtLayer};
use crate::spec::{ExportMeta, ExportModel, Format, LayerSpec};
use crate::validate::{self, RESERVED_KEYS};
use crate::Preprocessing;
use crate::SparseError;
use hf_interchange::checksum::{self, Integrity};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// One tensor to serialise: name, dtype, shape, little-endian bytes.
struct OwnedTensor {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_tensor(name: String, shape: Vec<usize>, v: &[f32]) -> OwnedTensor {
    OwnedTensor {
        name,
        dtype: Dtype::F32,
        shape,
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// The narrowest unsigned dtype able to hold `max`, among `choices` (ascending width).
pub(crate) fn narrowest(max: u64, choices: &[Dtype]) -> Dtype {
    for &d in choices {
        let fits = match d {
            Dtype::U8 => max <= u8::MAX as u64,
            Dtype::U16 => max <= u16::MAX as u64,
            Dtype::U32 => max <= u32::MAX as u64,
            _ => true,
        };
        if fits {
            return d;
        }
    }
    Dtype::U64
}

/// Dtype of `{name}.col_idx` for a layer with `in_features` inputs: fits `in_features - 1`.
pub fn col_idx_dtype(in_features: usize) -> Dtype {
    narrowest(
        in_features.saturating_sub(1) as u64,
        &[Dtype::U8, Dtype::U16, Dtype::U32],
    )
}

/// Dtype of `{name}.row_ptr` for a layer with `nnz` stored weights: fits `nnz`.
pub fn row_ptr_dtype(nnz: usize) -> Dtype {
    narrowest(nnz as u64, &[Dtype::U16, Dtype::U32, Dtype::U64])
}

fn uint_tensor(
    name: String,
    dtype: Dtype,
    v: impl Iterator<Item = u64>,
    len: usize,
) -> OwnedTensor {
    let width = dtype.size();
    let mut bytes = Vec::with_capacity(len * width);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes()[..width]);
    }
    OwnedTensor {
        name,
        dtype,
        shape: vec![len],
        bytes,
    }
}

fn encode_meta(
    format: Format,
    meta: &ExportMeta,
    specs: &[LayerSpec],
    per: &[(String, f64)],
    total: f64,
) -> BTreeMap<String, String> {
    // serde_json cannot fail on these plain types (finite floats were validated)
    fn js<T: serde::Serialize + ?Sized>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let mut m = BTreeMap::new();
    m.insert("format".into(), format.tag().into());
    m.insert("architecture".into(), meta.architecture.clone());
    m.insert("dataset".into(), meta.dataset.clone());
    m.insert("layers".into(), js(specs));
    m.insert("input_shape".into(), js(&meta.input_shape));
    m.insert("classes".into(), meta.classes.to_string());
    m.insert("accuracy".into(), js(&meta.accuracy));
    m.insert("density_per_layer".into(), js(per));
    m.insert("total_density".into(), js(&total));
    if let Some(p) = &meta.preprocessing {
        m.insert("input_scale".into(), js(&p.scale));
        m.insert("input_mean".into(), js(&p.mean));
        m.insert("input_std".into(), js(&p.std));
    }
    for (k, v) in &meta.extra {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// Serialises a safetensors file deterministically (the `safetensors` crate's writer takes the
/// metadata as a `HashMap`, whose order changes from run to run, so the same model would give
/// different bytes). Layout as the reference writer: tensors sorted by dtype alignment
/// (widest first) then name, header padded with spaces to a multiple of 8, so every tensor's
/// data is aligned to its element size.
fn serialize(
    mut tensors: Vec<OwnedTensor>,
    meta: &BTreeMap<String, String>,
) -> Result<Vec<u8>, serde_json::Error> {
    tensors.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
    let mut header = String::from("{\"__metadata__\":");
    header.push_str(&serde_json::to_string(meta)?);
    let mut offset = 0usize;
    for t in &tensors {
        let end = offset + t.bytes.len();
        header.push(',');
        header.push_str(&serde_json::to_string(&t.name)?);
        header.push_str(&format!(
            ":{{\"dtype\":\"{:?}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            t.dtype,
            serde_json::to_string(&t.shape)?
        ));
        offset = end;
    }
    header.push('}');
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for t in &tensors {
        out.extend_from_slice(&t.bytes);
    }
    Ok(out)
}

/// Writes `model` to `path` in the given layout, atomically (a crash never leaves a partial
/// file), and returns the file's size in bytes.
///
/// The model is validated first (shapes, layer chain, finite values, densities; see
/// [`Model::from_export`]). Weights are multiplied by the mask's Heaviside again, so the dense
/// file's `{name}.weight` holds exactly the effective weights. The sparse layout stores every
/// weight whose mask is `>= 0` (even one whose value happens to be 0), so its nnz is the
/// pruned network's true size. If `meta.density_per_layer` is empty, both density fields are
/// filled from the masks.
pub fn write_export(path: &Path, model: &ExportModel, format: Format) -> Result<u64, SparseError> {
    let file = path.display().to_string();
    let (per, total, _) = validate::export_model(model, &file)?;
    let specs: Vec<LayerSpec> = model.layers.iter().map(|(s, _)| s.clone()).collect();
    let mut tensors = Vec::new();
    for (spec, t) in &model.layers {
        let Some(shape) = spec.weight_shape() else {
            continue; // pooling, flatten, add: no tensors
        };
        let name = spec.name();
        let (out, inp) = (spec.out_features(), spec.in_features());
        match format {
            Format::Dense => {
                let eff: Vec<f32> = t
                    .weight
                    .iter()
                    .zip(&t.mask)
                    .map(|(w, m)| if *m >= 0.0 { *w } else { 0.0 })
                    .collect();
                tensors.push(f32_tensor(format!("{name}.weight"), shape.clone(), &eff));
                tensors.push(f32_tensor(format!("{name}.mask"), shape, &t.mask));
            }
            Format::Sparse => {
                let csr = Csr::from_dense_where(out, inp, &t.weight, |i| t.mask[i] >= 0.0);
                let nnz = csr.nnz();
                tensors.push(f32_tensor(format!("{name}.values"), vec![nnz], &csr.values));
                tensors.push(uint_tensor(
                    format!("{name}.col_idx"),
                    col_idx_dtype(inp),
                    csr.col_idx.iter().map(|&c| c as u64),
                    nnz,
                ));
                tensors.push(uint_tensor(
                    format!("{name}.row_ptr"),
                    row_ptr_dtype(nnz),
                    csr.row_ptr.iter().map(|&p| p as u64),
                    out + 1,
                ));
            }
        }
        if let Some(b) = &t.bias {
            tensors.push(f32_tensor(format!("{name}.bias"), vec![out], b));
        }
    }
    let mut meta = encode_meta(format, &model.meta, &specs, &per, total);
    meta.insert(
        checksum::KEY.into(),
        checksum::tensor_digest(
            tensors
                .iter()
                .map(|t| (t.name.as_str(), t.bytes.as_slice())),
        ),
    );
    let bytes = serialize(tensors, &meta).map_err(|e| SparseError::InvalidModel {
        file: file.clone(),
        detail: format!("metadata cannot be encoded: {e}"),
    })?;
    hf_fsutil::atomic_write_bytes(path, &bytes).map_err(|e| SparseError::Io {
        file: file.clone(),
        action: "write",
        source: e,
    })?;
    Ok(bytes.len() as u64)
}

/// Loads an exported file of either layout (detected from the `format` metadata key) and
/// validates everything: the tensor-data checksum (when the file has one), metadata, every
/// tensor's presence, dtype and shape, CSR structure, finiteness, the layer chain. A sparse
/// file loads onto the sparse path, a dense file onto the dense path. Never panics on a bad
/// file; errors name the file and the problem.
pub fn load(path: &Path) -> Result<Model, SparseError> {
    load_checked(path).map(|(m, _)| m)
}

/// Like [`load`], and says whether the file's checksum was verified or the file has none
/// (written by another tool), so a caller can tell its user.
pub fn load_checked(path: &Path) -> Result<(Model, Integrity), SparseError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SparseError::Io {
        file: file.clone(),
        action: "read",
        source: e,
    })?;
    load_bytes_checked(&bytes, &file)
}

/// Like [`load`], from bytes already in memory; `name` is used in error messages.
pub fn load_bytes(bytes: &[u8], name: &str) -> Result<Model, SparseError> {
    load_bytes_checked(bytes, name).map(|(m, _)| m)
}

/// Like [`load_checked`], from bytes already in memory.
pub fn load_bytes_checked(bytes: &[u8], name: &str) -> Result<(Model, Integrity), SparseError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| SparseError::Unreadable {
        file: name.to_string(),
        detail: format!("{e:?}"),
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| SparseError::Unreadable {
        file: name.to_string(),
        detail: format!("{e:?}"),
    })?;
    let reader = Reader {
        file: name,
        st: &st,
        used: RefCell::new(BTreeSet::new()),
    };
    let raw = header.metadata().as_ref().ok_or_else(|| {
        reader.corrupt("missing metadata (no __metadata__ section; not a hyperflux export)".into())
    })?;
    let integrity = checksum::verify(raw.get(checksum::KEY).map(String::as_str), || {
        checksum::tensor_digest(st.tensors().iter().map(|(n, t)| (n.as_str(), t.data())))
    })
    .map_err(|e| reader.corrupt(e))?;
    let (format, mut meta, specs) = reader.decode_meta(raw)?;
    let spec_refs: Vec<&LayerSpec> = specs.iter().collect();
    let plan = validate::specs(&spec_refs, &meta).map_err(|e| reader.corrupt(e))?;
    validate::meta_fields(&meta).map_err(|e| reader.corrupt(e))?;

    let mut layers = Vec::with_capacity(specs.len());
    for spec in &specs {
        layers.push(match format {
            _ if !spec.has_weights() => RtLayer {
                spec: spec.clone(),
                bias: None,
                csr: Csr::from_dense_where(0, 0, &[], |_| false),
                dense: None,
                sell: None,
                skip: None,
                conv: crate::conv::ConvPrep::default(),
            },
            Format::Dense => reader.dense_layer(spec)?,
            Format::Sparse => reader.sparse_layer(spec)?,
        });
    }
    let used = reader.used.borrow();
    let mut names: Vec<&String> = st.names();
    names.sort();
    if let Some(extra) = names.into_iter().find(|n| !used.contains(n.as_str())) {
        return Err(reader.corrupt(format!(
            "unexpected tensor '{extra}' (not part of any layer in the 'layers' metadata of a {} file)",
            format.tag()
        )));
    }
    let actual: Vec<(String, usize, usize)> = layers
        .iter()
        .filter(|l| l.spec.has_weights())
        .map(|l: &RtLayer| {
            (
                l.spec.name().to_string(),
                l.csr.nnz(),
                l.csr.rows * l.csr.cols,
            )
        })
        .collect();
    validate::stated_densities(&meta, &actual).map_err(|e| reader.corrupt(e))?;
    if meta.density_per_layer.is_empty() {
        let total: usize = actual.iter().map(|a| a.2).sum();
        let kept: usize = actual.iter().map(|a| a.1).sum();
        meta.density_per_layer = actual
            .iter()
            .map(|(n, k, t)| (n.clone(), crate::spec::ratio(*k, *t)))
            .collect();
        meta.total_density = crate::spec::ratio(kept, total);
    }
    let model = Model::assemble(meta, layers, plan);
    let model = match format {
        Format::Dense => model,
        Format::Sparse => model.to_sparse(),
    };
    Ok((model, integrity))
}

struct Reader<'a, 'd> {
    file: &'a str,
    st: &'a SafeTensors<'d>,
    used: RefCell<BTreeSet<String>>,
}

impl Reader<'_, '_> {
    fn corrupt(&self, detail: String) -> SparseError {
        SparseError::Corrupt {
            file: self.file.to_string(),
            detail,
        }
    }

    fn decode_meta(
        &self,
        raw: &HashMap<String, String>,
    ) -> Result<(Format, ExportMeta, Vec<LayerSpec>), SparseError> {
        let get = |key: &str| {
            raw.get(key)
                .ok_or_else(|| self.corrupt(format!("missing metadata key '{key}'")))
        };
        let tag = get("format")?;
        let format = Format::from_tag(tag).ok_or_else(|| SparseError::Unsupported {
            file: self.file.to_string(),
            detail: format!(
                "metadata format '{tag}' is not supported by this runtime (it reads {} and {})",
                Format::Dense.tag(),
                Format::Sparse.tag()
            ),
        })?;
        fn json<T: serde::de::DeserializeOwned>(
            r: &Reader<'_, '_>,
            key: &str,
            text: &str,
            what: &str,
        ) -> Result<T, SparseError> {
            serde_json::from_str(text).map_err(|e| {
                r.corrupt(format!(
                    "metadata '{key}' is not {what} ({e}): {}",
                    shorten(text)
                ))
            })
        }
        // Parse layers in two steps so an unknown layer type is reported as unsupported rather
        // than as corruption.
        let layers_text = get("layers")?;
        let values: Vec<serde_json::Value> =
            json(self, "layers", layers_text, "a JSON list of layers")?;
        let mut specs = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let ty = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
            if !LayerSpec::TYPE_TAGS.contains(&ty) {
                return Err(SparseError::Unsupported {
                    file: self.file.to_string(),
                    detail: format!(
                        "layer {i} has type '{ty}', which this runtime does not support (it runs: {})",
                        LayerSpec::TYPE_TAGS.join(", ")
                    ),
                });
            }
            let spec: LayerSpec = serde_json::from_value(v).map_err(|e| {
                self.corrupt(format!(
                    "metadata 'layers' entry {i} is not a valid layer ({e})"
                ))
            })?;
            specs.push(spec);
        }
        let input_shape: Vec<usize> = json(
            self,
            "input_shape",
            get("input_shape")?,
            "a JSON list of sizes",
        )?;
        let classes: usize = json(self, "classes", get("classes")?, "a class count")?;
        let accuracy: Option<f64> = json(self, "accuracy", get("accuracy")?, "a number or null")?;
        let density_per_layer: Vec<(String, f64)> = json(
            self,
            "density_per_layer",
            get("density_per_layer")?,
            "a JSON list of [name, density] pairs",
        )?;
        let total_density: f64 = json(self, "total_density", get("total_density")?, "a number")?;
        // Optional (files written before them lack all three); validated with the rest.
        let pre = ["input_scale", "input_mean", "input_std"].map(|k| raw.get(k));
        let preprocessing = match pre {
            [None, None, None] => None,
            [Some(scale), Some(mean), Some(std)] => Some(Preprocessing {
                scale: json(self, "input_scale", scale, "a number")?,
                mean: json(self, "input_mean", mean, "a JSON list of numbers")?,
                std: json(self, "input_std", std, "a JSON list of numbers")?,
            }),
            _ => {
                return Err(self.corrupt(
                    "metadata has some but not all of input_scale, input_mean, input_std".into(),
                ))
            }
        };
        let extra: BTreeMap<String, String> = raw
            .iter()
            .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()) && k.as_str() != checksum::KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let meta = ExportMeta {
            architecture: get("architecture")?.clone(),
            dataset: get("dataset")?.clone(),
            input_shape,
            classes,
            accuracy,
            density_per_layer,
            total_density,
            preprocessing,
            extra,
        };
        Ok((format, meta, specs))
    }

    /// Looks a tensor up, checks its shape, and marks it used.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<TensorView<'_>, SparseError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| self.corrupt(format!("missing tensor '{name}'")))?;
        if t.shape() != shape {
            return Err(self.corrupt(format!(
                "tensor '{name}' has shape {:?}, expected {shape:?}",
                t.shape()
            )));
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(t)
    }

    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, SparseError> {
        let t = self.tensor(name, shape)?;
        if t.dtype() != Dtype::F32 {
            return Err(self.corrupt(format!(
                "tensor '{name}' has dtype {:?}, expected F32",
                t.dtype()
            )));
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(self.corrupt(format!("tensor '{name}'[{i}] = {} is not finite", v[i])));
        }
        Ok(v)
    }

    /// Reads an index tensor of any unsigned width (writers use the narrowest; readers accept
    /// all).
    fn uints(&self, name: &str, len: usize) -> Result<(Dtype, Vec<u64>), SparseError> {
        let t = self.tensor(name, &[len])?;
        let d = t.data();
        let v: Vec<u64> = match t.dtype() {
            Dtype::U8 => d.iter().map(|&b| b as u64).collect(),
            Dtype::U16 => d
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]) as u64)
                .collect(),
            Dtype::U32 => d
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
                .collect(),
            Dtype::U64 => d
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            other => {
                return Err(self.corrupt(format!(
                    "tensor '{name}' has dtype {other:?}, expected an unsigned integer type (U8/U16/U32/U64)"
                )))
            }
        };
        Ok((t.dtype(), v))
    }

    fn bias(&self, spec: &LayerSpec) -> Result<Option<Vec<f32>>, SparseError> {
        if spec.has_bias() {
            Ok(Some(self.f32s(
                &format!("{}.bias", spec.name()),
                &[spec.out_features()],
            )?))
        } else {
            Ok(None)
        }
    }

    fn dense_layer(&self, spec: &LayerSpec) -> Result<RtLayer, SparseError> {
        let name = spec.name();
        let shape = spec.weight_shape().unwrap_or_default();
        let weight = self.f32s(&format!("{name}.weight"), &shape)?;
        let mask = self.f32s(&format!("{name}.mask"), &shape)?;
        if let Some(i) = (0..weight.len()).find(|&i| mask[i] < 0.0 && weight[i] != 0.0) {
            return Err(self.corrupt(format!(
                "layer {name} weight[{i}] = {} where the mask prunes it (the weight must hold w·H(m))",
                weight[i]
            )));
        }
        let bias = self.bias(spec)?;
        let csr = Csr::from_dense_where(spec.out_features(), spec.in_features(), &weight, |i| {
            mask[i] >= 0.0
        });
        Ok(RtLayer {
            spec: spec.clone(),
            bias,
            csr,
            dense: Some(weight),
            sell: None,
            skip: None,
            conv: crate::conv::ConvPrep::default(),
        })
    }

    fn sparse_layer(&self, spec: &LayerSpec) -> Result<RtLayer, SparseError> {
        let name = spec.name();
        let (out, inp) = (spec.out_features(), spec.in_features());
        // the values' length defines nnz
        let vname = format!("{name}.values");
        let nnz = match self.st.tensor(&vname) {
            Err(_) => return Err(self.corrupt(format!("missing tensor '{vname}'"))),
            Ok(t) => match t.shape() {
                [n] => *n,
                s => {
                    return Err(self.corrupt(format!(
                        "tensor '{vname}' has shape {s:?}, expected a 1-D [nnz]"
                    )))
                }
            },
        };
        let values = self.f32s(&format!("{name}.values"), &[nnz])?;
        let (_, cols) = self.uints(&format!("{name}.col_idx"), nnz)?;
        if let Some(k) = cols.iter().position(|&c| c >= inp as u64) {
            return Err(self.corrupt(format!(
                "layer {name} col_idx[{k}] = {} out of bounds (in_features {inp})",
                cols[k]
            )));
        }
        let (_, ptr) = self.uints(&format!("{name}.row_ptr"), out + 1)?;
        if let Some(k) = ptr.iter().position(|&p| p > nnz as u64) {
            return Err(self.corrupt(format!(
                "layer {name} row_ptr[{k}] = {} exceeds nnz {nnz}",
                ptr[k]
            )));
        }
        let bias = self.bias(spec)?;
        let csr = Csr::from_parts(
            out,
            inp,
            ptr.into_iter().map(|p| p as usize).collect(),
            cols.into_iter().map(|c| c as u32).collect(),
            values,
        )
        .map_err(|e| self.corrupt(format!("layer {name} {e}")))?;
        Ok(RtLayer {
            spec: spec.clone(),
            bias,
            csr,
            dense: None,
            sell: None,
            skip: None,
            conv: crate::conv::ConvPrep::default(),
        })
    }
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("'{s}'")
    } else {
        format!("'{}…'", s.chars().take(MAX).collect::<String>())
    }
}
