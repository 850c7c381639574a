//! ONNX → [`Imported`]: the network as a [`GraphSpec`] plus its initial tensors.
//!
//! Supported (opset 13 or newer, default domain): `Gemm`, `MatMul` (+ `Add` of a constant as
//! its bias), `Conv` (2-D; stride, symmetric padding, dilation, groups), `BatchNormalization`
//! (inference form), `Relu`, `Clip` as ReLU or ReLU6, `MaxPool`, `AveragePool`,
//! `GlobalAveragePool`, `Flatten` (axis 1), `Reshape` to `(N, -1)`, `Add` of two values
//! (residual), `Identity`, `Dropout` (identity at inference), and `Constant` nodes feeding
//! those. Weights must be float32 initializers (or `Constant`s) stored in the file. Anything
//! else is refused with one line naming the node, the operator and what is supported.

use crate::graph::{GraphSpec, Imported, NamedTensor, Node, Op, INPUT};
use crate::pb;
use crate::OnnxError;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The oldest default-domain opset accepted.
pub const MIN_OPSET: i64 = 13;

/// The operators the importer understands (for messages).
pub const SUPPORTED: &str = "Gemm, MatMul(+Add bias), Conv, BatchNormalization, Relu, Clip(0[,6]), MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape(N,-1), Add, Identity, Dropout, Constant";

/// Whether `path` names an ONNX file (by its `.onnx` extension, any case).
pub fn is_onnx_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Reads and imports an ONNX file.
pub fn import_file(path: &Path) -> Result<Imported, OnnxError> {
    let file_err = |msg: String| OnnxError::File {
        path: path.display().to_string(),
        msg,
    };
    let bytes =
        std::fs::read(path).map_err(|e| file_err(format!("cannot read ({e}); check the path")))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("onnx")
        .to_string();
    import_bytes(&bytes, &stem).map_err(|e| match e {
        OnnxError::File { msg, .. } => file_err(msg),
        other => other,
    })
}

/// Decodes ONNX bytes.
pub fn decode(bytes: &[u8]) -> Result<pb::ModelProto, OnnxError> {
    if bytes.is_empty() {
        return Err(OnnxError::File {
            path: String::new(),
            msg: "the file is empty; export the model again".into(),
        });
    }
    pb::ModelProto::decode(bytes).map_err(|e| OnnxError::File {
        path: String::new(),
        msg: format!("not a readable ONNX model ({e}); it is truncated or not ONNX — export it again with torch.onnx.export"),
    })
}

/// Imports ONNX bytes; `name` becomes the graph's name.
pub fn import_bytes(bytes: &[u8], name: &str) -> Result<Imported, OnnxError> {
    let model = decode(bytes)?;
    import_model(&model, name)
}

fn model_err(msg: impl Into<String>) -> OnnxError {
    OnnxError::Model(msg.into())
}

/// A float or integer constant known at import time.
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    floats: Option<Vec<f32>>,
    ints: Option<Vec<i64>>,
}

fn tensor_const(t: &pb::TensorProto, what: &str) -> Result<Const, OnnxError> {
    use pb::tensor_proto::DataType;
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(model_err(format!(
            "tensor {what:?} is stored as external data; re-export with the weights inside the file (torch.onnx.export of a model under 2 GB does this)"
        )));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            model_err(format!(
                "tensor {what:?} has a negative dimension {:?}",
                t.dims
            ))
        })?;
    let n: usize = dims.iter().product();
    let dt = t.data_type;
    let raw = &t.raw_data;
    let (floats, ints) = if dt == DataType::Float as i32 {
        let v: Vec<f32> = if !raw.is_empty() {
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            t.float_data.clone()
        };
        (Some(v), None)
    } else if dt == DataType::Double as i32 {
        let v: Vec<f32> = if !raw.is_empty() {
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
                .collect()
        } else {
            t.double_data.iter().map(|&x| x as f32).collect()
        };
        (Some(v), None)
    } else if dt == DataType::Int64 as i32 {
        let v: Vec<i64> = if !raw.is_empty() {
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()
        } else {
            t.int64_data.clone()
        };
        (None, Some(v))
    } else if dt == DataType::Int32 as i32 {
        let v: Vec<i64> = if !raw.is_empty() {
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect()
        } else {
            t.int32_data.iter().map(|&x| x as i64).collect()
        };
        (None, Some(v))
    } else {
        return Err(model_err(format!(
            "tensor {what:?} has ONNX data type {dt}; only float32 weights (and int64 shapes) are supported — export the model in float32"
        )));
    };
    let len = floats
        .as_ref()
        .map(Vec::len)
        .or(ints.as_ref().map(Vec::len))
        .unwrap_or(0);
    if len != n {
        return Err(model_err(format!(
            "tensor {what:?} holds {len} values for shape {dims:?} ({n} expected); the file is corrupt — export it again"
        )));
    }
    if let Some(f) = &floats {
        if let Some(i) = f.iter().position(|v| !v.is_finite()) {
            return Err(model_err(format!(
                "tensor {what:?} has a non-finite value ({}) at index {i}; fix the model before importing it",
                f[i]
            )));
        }
    }
    Ok(Const { dims, floats, ints })
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map(|a| a.i).unwrap_or(default)
}

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map(|a| a.f).unwrap_or(default)
}

fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &pb::NodeProto, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// The importer's state while it walks the nodes.
struct Walk {
    consts: HashMap<String, Const>,
    /// ONNX value name → graph value name (aliases through Identity/Dropout).
    values: HashMap<String, String>,
    /// Per-example shapes of graph values.
    shapes: HashMap<String, Vec<usize>>,
    nodes: Vec<Node>,
    tensors: Vec<NamedTensor>,
    used_names: HashSet<String>,
    /// Linear nodes made from MatMul that have no bias yet: graph value → node index.
    open_matmul: HashMap<String, usize>,
}

fn sanitize(s: &str) -> String {
    let t: String = s
        .trim_matches(|c: char| c == '/' || c == '.' || c == ':')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    t.trim_matches('_').to_string()
}

impl Walk {
    /// A unique node name: from the weight initializer (`conv1.weight` → `conv1`) when there is
    /// one, else from the ONNX node name, else the operator and position.
    fn name_for(&mut self, n: &pb::NodeProto, weight: Option<&str>, index: usize) -> String {
        let from_weight = weight
            .and_then(|w| w.strip_suffix(".weight"))
            .map(sanitize)
            .filter(|s| !s.is_empty() && !s.starts_with("onnx"));
        let from_node = {
            let s = sanitize(&n.name);
            // torch.onnx's "/layer1/conv/Conv" → "layer1_conv_Conv"; keep it short.
            let s = s
                .strip_suffix(&format!("_{}", n.op_type))
                .map(str::to_string)
                .unwrap_or(s);
            (!s.is_empty()).then_some(s)
        };
        let base = from_weight
            .or(from_node)
            .unwrap_or_else(|| format!("{}{index}", n.op_type.to_lowercase()));
        let base = if base == INPUT {
            format!("{base}_node")
        } else {
            base
        };
        let mut name = base.clone();
        let mut k = 1;
        while self.used_names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.used_names.insert(name.clone());
        name
    }

    fn value(&self, n: &pb::NodeProto, onnx: &str) -> Result<(String, Vec<usize>), OnnxError> {
        let v = self.values.get(onnx).ok_or_else(|| {
            unsupported(
                n,
                format!(
                    "reads {onnx:?}, which is neither the network input nor the output of a supported node (shape computations such as Shape/Gather are not supported: flatten with torch.flatten(x, 1))"
                ),
            )
        })?;
        Ok((v.clone(), self.shapes[v].clone()))
    }

    fn konst(&self, n: &pb::NodeProto, onnx: &str, what: &str) -> Result<Const, OnnxError> {
        self.consts.get(onnx).cloned().ok_or_else(|| {
            unsupported(
                n,
                format!("its {what} {onnx:?} must be a constant (initializer) in the file"),
            )
        })
    }

    fn floats(&self, n: &pb::NodeProto, onnx: &str, what: &str) -> Result<Const, OnnxError> {
        let c = self.konst(n, onnx, what)?;
        if c.floats.is_none() {
            return Err(unsupported(
                n,
                format!("its {what} {onnx:?} is not float32"),
            ));
        }
        Ok(c)
    }

    fn push(&mut self, n: &pb::NodeProto, node: Node, shape: Vec<usize>) {
        let name = node.name.clone();
        self.nodes.push(node);
        self.shapes.insert(name.clone(), shape);
        if let Some(out) = n.output.first() {
            self.values.insert(out.clone(), name);
        }
    }

    fn tensor(&mut self, name: String, shape: Vec<usize>, data: Vec<f32>) {
        self.tensors.push(NamedTensor { name, shape, data });
    }
}

fn unsupported(n: &pb::NodeProto, msg: impl Into<String>) -> OnnxError {
    OnnxError::Unsupported {
        node: if n.name.is_empty() {
            n.output.first().cloned().unwrap_or_default()
        } else {
            n.name.clone()
        },
        op: n.op_type.clone(),
        msg: msg.into(),
    }
}

fn pair(n: &pb::NodeProto, name: &str, default: [usize; 2]) -> Result<[usize; 2], OnnxError> {
    match attr_ints(n, name) {
        None => Ok(default),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(unsupported(
            n,
            format!("{name} {v:?}: only 2-D operations (two non-negative values) are supported"),
        )),
    }
}

/// Symmetric `pads` `[top, left, bottom, right]` → `[vertical, horizontal]`.
fn pads(n: &pb::NodeProto) -> Result<[usize; 2], OnnxError> {
    if let Some(p) = attr_s(n, "auto_pad") {
        if !(p.is_empty() || p == "NOTSET" || p == "VALID") {
            return Err(unsupported(
                n,
                format!("auto_pad {p}: only explicit pads (NOTSET) or VALID are supported"),
            ));
        }
        if p == "VALID" {
            return Ok([0, 0]);
        }
    }
    match attr_ints(n, "pads") {
        None => Ok([0, 0]),
        Some(v) if v.len() == 4 && v[0] == v[2] && v[1] == v[3] && v.iter().all(|&x| x >= 0) => {
            Ok([v[0] as usize, v[1] as usize])
        }
        Some(v) => Err(unsupported(
            n,
            format!("pads {v:?}: only symmetric 2-D padding [t, l, t, l] is supported"),
        )),
    }
}

/// The per-example shape of the model input, from its `ValueInfoProto`: the first dimension
/// is the batch (any size or symbolic), the others must be fixed.
fn input_shape(vi: &pb::ValueInfoProto) -> Result<Vec<usize>, OnnxError> {
    use pb::tensor_shape_proto::dimension::Value;
    let tensor = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        _ => return Err(model_err(format!("input {:?} is not a tensor", vi.name))),
    };
    if tensor.elem_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(model_err(format!(
            "input {:?} has ONNX element type {}; only float32 inputs are supported",
            vi.name, tensor.elem_type
        )));
    }
    let dims = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or(&[]);
    if !(dims.len() == 2 || dims.len() == 4) {
        return Err(model_err(format!(
            "input {:?} has rank {}; supported are N×D and N×C×H×W",
            vi.name,
            dims.len()
        )));
    }
    dims[1..]
        .iter()
        .enumerate()
        .map(|(i, d)| match &d.value {
            Some(Value::DimValue(v)) if *v > 0 => Ok(*v as usize),
            other => Err(model_err(format!(
                "input {:?} has a dynamic or unknown dimension {} ({other:?}); only the batch dimension may be dynamic — export with a fixed example shape",
                vi.name,
                i + 1
            ))),
        })
        .collect()
}

/// Imports a decoded model.
pub fn import_model(model: &pb::ModelProto, name: &str) -> Result<Imported, OnnxError> {
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or_else(|| model_err("the model declares no default-domain opset; export it again"))?;
    if opset < MIN_OPSET {
        return Err(model_err(format!(
            "opset {opset} is older than {MIN_OPSET}; re-export with torch.onnx.export(..., opset_version=13) or newer"
        )));
    }
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| model_err("the model has no graph"))?;
    let mut w = Walk {
        consts: HashMap::new(),
        values: HashMap::new(),
        shapes: HashMap::new(),
        nodes: Vec::new(),
        tensors: Vec::new(),
        used_names: HashSet::new(),
        open_matmul: HashMap::new(),
    };
    for t in &g.initializer {
        w.consts.insert(t.name.clone(), tensor_const(t, &t.name)?);
    }
    let inputs: Vec<&pb::ValueInfoProto> = g
        .input
        .iter()
        .filter(|i| !w.consts.contains_key(&i.name))
        .collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(model_err("the model has no input")),
        more => {
            return Err(model_err(format!(
                "the model has {} inputs ({}); only single-input networks are supported",
                more.len(),
                more.iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let in_shape = input_shape(input)?;
    w.values.insert(input.name.clone(), INPUT.to_string());
    w.shapes.insert(INPUT.to_string(), in_shape.clone());
    w.used_names.insert(INPUT.to_string());
    for (i, n) in g.node.iter().enumerate() {
        import_node(&mut w, n, i)?;
    }
    let out = match g.output.as_slice() {
        [one] => one,
        [] => return Err(model_err("the model has no output")),
        more => {
            return Err(model_err(format!(
                "the model has {} outputs; only single-output classifiers are supported",
                more.len()
            )))
        }
    };
    let out_value =
        w.values.get(&out.name).cloned().ok_or_else(|| {
            model_err(format!("output {:?} is not computed by any node", out.name))
        })?;
    let out_shape = w.shapes[&out_value].clone();
    let classes: usize = out_shape.iter().product();
    if out_shape.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(model_err(format!(
            "output {:?} has per-example shape {out_shape:?}; a classifier's output is N×classes",
            out.name
        )));
    }
    // Only nodes the output depends on, in order.
    let mut live: HashSet<String> = HashSet::from([out_value.clone()]);
    for node in w.nodes.iter().rev() {
        if live.contains(&node.name) {
            live.extend(node.inputs.iter().cloned());
        }
    }
    let nodes: Vec<Node> = w
        .nodes
        .into_iter()
        .filter(|n| live.contains(&n.name))
        .collect();
    let keep: HashSet<String> = nodes
        .iter()
        .flat_map(|n| GraphSpec::tensors_of(n).into_iter().map(|(t, _)| t))
        .collect();
    let tensors = w
        .tensors
        .into_iter()
        .filter(|t| keep.contains(&t.name))
        .collect();
    let spec = GraphSpec {
        name: sanitize(name),
        input: in_shape,
        classes,
        nodes,
        output: out_value,
    };
    spec.validate().map_err(model_err)?;
    let metadata = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    Ok(Imported {
        spec,
        tensors,
        metadata,
    })
}

fn import_node(w: &mut Walk, n: &pb::NodeProto, index: usize) -> Result<(), OnnxError> {
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return Err(unsupported(
            n,
            format!(
                "operator domain {:?} is not supported; supported: {SUPPORTED}",
                n.domain
            ),
        ));
    }
    let input0 = || -> Result<&str, OnnxError> {
        n.input
            .first()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unsupported(n, "has no input"))
    };
    match n.op_type.as_str() {
        "Constant" => {
            let a = attr(n, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                unsupported(n, "only Constant with a tensor `value` is supported")
            })?;
            let out = n.output.first().cloned().unwrap_or_default();
            let c = tensor_const(a, &out)?;
            w.consts.insert(out, c);
        }
        "Identity" | "Dropout" => {
            if n.output.len() > 1 && n.output[1..].iter().any(|o| !o.is_empty()) {
                return Err(unsupported(
                    n,
                    "a Dropout whose mask output is used is not supported",
                ));
            }
            let src = input0()?;
            if let Some(c) = w.consts.get(src).cloned() {
                w.consts.insert(n.output[0].clone(), c);
            } else {
                let (v, _) = w.value(n, src)?;
                w.values.insert(n.output[0].clone(), v);
            }
        }
        "Relu" | "Clip" => {
            let (x, shape) = w.value(n, input0()?)?;
            let op = if n.op_type == "Relu" {
                Op::Relu
            } else {
                clip_op(w, n)?
            };
            let name = w.name_for(n, None, index);
            w.push(
                n,
                Node {
                    name,
                    inputs: vec![x],
                    op,
                },
                shape,
            );
        }
        "Gemm" => {
            if attr_i(n, "transA", 0) != 0 {
                return Err(unsupported(n, "transA = 1 is not supported"));
            }
            if attr_f(n, "alpha", 1.0) != 1.0 || attr_f(n, "beta", 1.0) != 1.0 {
                return Err(unsupported(n, "only alpha = beta = 1 is supported"));
            }
            let (x, shape) = w.value(n, input0()?)?;
            let wname = n.input.get(1).cloned().unwrap_or_default();
            let wt = w.floats(n, &wname, "weight")?;
            if wt.dims.len() != 2 {
                return Err(unsupported(
                    n,
                    format!("weight of shape {:?} is not 2-D", wt.dims),
                ));
            }
            let trans_b = attr_i(n, "transB", 0) != 0;
            let (out_f, in_f) = if trans_b {
                (wt.dims[0], wt.dims[1])
            } else {
                (wt.dims[1], wt.dims[0])
            };
            let data = wt.floats.unwrap_or_default();
            let data = if trans_b {
                data
            } else {
                transpose(&data, in_f, out_f)
            };
            let bias = match n.input.get(2).filter(|s| !s.is_empty()) {
                None => None,
                Some(b) => {
                    let c = w.floats(n, b, "bias")?;
                    let v = c.floats.unwrap_or_default();
                    if v.len() == out_f {
                        Some(v)
                    } else if v.len() == 1 {
                        Some(vec![v[0]; out_f])
                    } else {
                        return Err(unsupported(
                            n,
                            format!("bias of shape {:?} does not broadcast to [{out_f}]", c.dims),
                        ));
                    }
                }
            };
            check_flat(n, &shape, in_f)?;
            let name = w.name_for(n, Some(&wname), index);
            w.tensor(format!("{name}.weight"), vec![out_f, in_f], data);
            let has_bias = bias.is_some();
            if let Some(b) = bias {
                w.tensor(format!("{name}.bias"), vec![out_f], b);
            }
            w.push(
                n,
                Node {
                    name,
                    inputs: vec![x],
                    op: Op::Linear {
                        in_features: in_f,
                        out_features: out_f,
                        bias: has_bias,
                    },
                },
                vec![out_f],
            );
        }
        "MatMul" => {
            let (x, shape) = w.value(n, input0()?)?;
            let wname = n.input.get(1).cloned().unwrap_or_default();
            let wt = w.floats(n, &wname, "weight (second operand)")?;
            if wt.dims.len() != 2 {
                return Err(unsupported(
                    n,
                    format!("weight of shape {:?} is not 2-D", wt.dims),
                ));
            }
            let (in_f, out_f) = (wt.dims[0], wt.dims[1]);
            check_flat(n, &shape, in_f)?;
            let data = transpose(&wt.floats.unwrap_or_default(), in_f, out_f);
            let name = w.name_for(n, Some(&wname), index);
            w.tensor(format!("{name}.weight"), vec![out_f, in_f], data);
            w.open_matmul.insert(name.clone(), w.nodes.len());
            w.push(
                n,
                Node {
                    name,
                    inputs: vec![x],
                    op: Op::Linear {
                        in_features: in_f,
                        out_features: out_f,
                        bias: false,
                    },
                },
                vec![out_f],
            );
        }
        "Add" => import_add(w, n, index)?,
        "Conv" => import_conv(w, n, index)?,
        "BatchNormalization" => {
            if attr_i(n, "training_mode", 0) != 0 || n.output.iter().skip(1).any(|o| !o.is_empty())
            {
                return Err(unsupported(
                    n,
                    "training-mode BatchNormalization is not supported; export the model in eval mode (model.eval())",
                ));
            }
            let (x, shape) = w.value(n, input0()?)?;
            let ch = *shape.first().unwrap_or(&0);
            let mut parts = Vec::new();
            for (i, what) in ["scale", "bias", "mean", "var"].iter().enumerate() {
                let src = n.input.get(i + 1).cloned().unwrap_or_default();
                let c = w.floats(n, &src, what)?;
                let v = c.floats.unwrap_or_default();
                if v.len() != ch {
                    return Err(unsupported(
                        n,
                        format!("{what} has {} values for {ch} channels", v.len()),
                    ));
                }
                parts.push(v);
            }
            if parts[3].iter().any(|&v| v < 0.0) {
                return Err(unsupported(n, "a running variance is negative"));
            }
            let eps = attr_f(n, "epsilon", 1e-5) as f64;
            let name = w.name_for(n, n.input.get(1).map(String::as_str), index);
            for (suffix, v) in ["weight", "bias", "running_mean", "running_var"]
                .iter()
                .zip(parts)
            {
                w.tensor(format!("{name}.{suffix}"), vec![ch], v);
            }
            w.push(
                n,
                Node {
                    name,
                    inputs: vec![x],
                    op: Op::BatchNorm { channels: ch, eps },
                },
                shape,
            );
        }
        "MaxPool" | "AveragePool" => {
            let (x, _) = w.value(n, input0()?)?;
            if attr_i(n, "ceil_mode", 0) != 0 {
                return Err(unsupported(
                    n,
                    "ceil_mode = 1 is not supported (use floor mode)",
                ));
            }
            if n.op_type == "MaxPool" {
                if attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|&v| v != 1)) {
                    return Err(unsupported(n, "dilated pooling is not supported"));
                }
                if n.output.len() > 1 && !n.output[1].is_empty() {
                    return Err(unsupported(n, "the Indices output is not supported"));
                }
            }
            let kernel = pair(n, "kernel_shape", [0, 0])?;
            let stride = pair(n, "strides", [1, 1])?;
            let padding = pads(n)?;
            if n.op_type == "AveragePool"
                && attr_i(n, "count_include_pad", 0) == 0
                && padding != [0, 0]
            {
                return Err(unsupported(
                    n,
                    "padded average pooling with count_include_pad = 0 is not supported (PyTorch's default count_include_pad=True is)",
                ));
            }
            let op = if n.op_type == "MaxPool" {
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                }
            } else {
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                }
            };
            push_checked(w, n, index, vec![x], op)?;
        }
        "GlobalAveragePool" => {
            let (x, _) = w.value(n, input0()?)?;
            push_checked(w, n, index, vec![x], Op::GlobalAvgPool)?;
        }
        "Flatten" => {
            let (x, shape) = w.value(n, input0()?)?;
            if attr_i(n, "axis", 1) != 1 {
                return Err(unsupported(
                    n,
                    "only axis = 1 (keep the batch) is supported",
                ));
            }
            flatten_or_alias(w, n, index, x, &shape);
        }
        "Reshape" => {
            let (x, shape) = w.value(n, input0()?)?;
            let target = n.input.get(1).cloned().unwrap_or_default();
            let c = w.konst(n, &target, "target shape")?;
            let t = c.ints.unwrap_or_default();
            let per: usize = shape.iter().product();
            let ok = t.len() == 2
                && (t[1] == -1 || t[1] as usize == per)
                && (t[0] == 0 || t[0] == -1 || t[0] >= 1)
                && !(t[0] == -1 && t[1] == -1);
            if !ok {
                return Err(unsupported(
                    n,
                    format!("Reshape to {t:?}: only (N, -1) / (-1, {per}) flattening is supported"),
                ));
            }
            flatten_or_alias(w, n, index, x, &shape);
        }
        other => {
            return Err(unsupported(
                n,
                format!("operator {other} is not supported; supported: {SUPPORTED}"),
            ))
        }
    }
    Ok(())
}

fn check_flat(n: &pb::NodeProto, shape: &[usize], in_f: usize) -> Result<(), OnnxError> {
    if shape.len() != 1 {
        return Err(unsupported(
            n,
            format!(
                "reads a value of per-example shape {shape:?}; it must be flat (Flatten first)"
            ),
        ));
    }
    if shape[0] != in_f {
        return Err(unsupported(
            n,
            format!(
                "input has {} features but the weight expects {in_f}",
                shape[0]
            ),
        ));
    }
    Ok(())
}

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// A flatten of a value that is already flat is an alias.
fn flatten_or_alias(w: &mut Walk, n: &pb::NodeProto, index: usize, x: String, shape: &[usize]) {
    if shape.len() == 1 {
        w.values.insert(n.output[0].clone(), x);
        return;
    }
    let name = w.name_for(n, None, index);
    let per = shape.iter().product();
    w.push(
        n,
        Node {
            name,
            inputs: vec![x],
            op: Op::Flatten,
        },
        vec![per],
    );
}

fn push_checked(
    w: &mut Walk,
    n: &pb::NodeProto,
    index: usize,
    inputs: Vec<String>,
    op: Op,
) -> Result<(), OnnxError> {
    let name = w.name_for(n, None, index);
    push_named(w, n, name, inputs, op)
}

/// Appends node `name` after checking that its first input fits it (shape by the graph's own
/// rules); a node that does not fit is refused, naming the ONNX node.
fn push_named(
    w: &mut Walk,
    n: &pb::NodeProto,
    name: String,
    inputs: Vec<String>,
    op: Op,
) -> Result<(), OnnxError> {
    let node = Node {
        name: name.clone(),
        inputs,
        op,
    };
    let probe = GraphSpec {
        name: String::new(),
        input: w.shapes[&node.inputs[0]].clone(),
        classes: 0,
        nodes: vec![Node {
            inputs: node.inputs.iter().map(|_| INPUT.to_string()).collect(),
            ..node.clone()
        }],
        output: name.clone(),
    };
    let shapes = probe
        .shapes()
        .map_err(|e| unsupported(n, e.replacen(&format!("node {name} "), "", 1)))?;
    let out = shapes.last().map(|(_, s)| s.clone()).unwrap_or_default();
    w.push(n, node, out);
    Ok(())
}

fn clip_op(w: &Walk, n: &pb::NodeProto) -> Result<Op, OnnxError> {
    // Opset ≥ 11: bounds are optional inputs 1 and 2 (constants); older: attributes.
    let bound = |i: usize| -> Result<Option<f32>, OnnxError> {
        match n.input.get(i).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => {
                let c = w.konst(n, s, "bound")?;
                let v = c
                    .floats
                    .map(|f| f.first().copied())
                    .or(c.ints.map(|v| v.first().map(|&x| x as f32)))
                    .flatten();
                Ok(v)
            }
        }
    };
    let (lo, hi) = (bound(1)?, bound(2)?);
    let is = |v: Option<f32>, x: f32| v.is_some_and(|v| v == x);
    match (lo, hi) {
        _ if is(lo, 0.0) && hi.is_none() => Ok(Op::Relu),
        _ if is(lo, 0.0) && is(hi, 6.0) => Ok(Op::Relu6),
        _ => Err(unsupported(
            n,
            format!(
                "Clip({lo:?}, {hi:?}): only Clip(0) as ReLU and Clip(0, 6) as ReLU6 are supported"
            ),
        )),
    }
}

fn import_add(w: &mut Walk, n: &pb::NodeProto, index: usize) -> Result<(), OnnxError> {
    let a = n.input.first().cloned().unwrap_or_default();
    let b = n.input.get(1).cloned().unwrap_or_default();
    let (ca, cb) = (w.consts.contains_key(&a), w.consts.contains_key(&b));
    if ca || cb {
        // A constant added to a MatMul's output is that layer's bias.
        let (v, c) = if ca { (&b, &a) } else { (&a, &b) };
        let (value, shape) = w.value(n, v)?;
        let konst = w.floats(n, c, "addend")?;
        let idx = w.open_matmul.get(&value).copied();
        let node_idx =
            match idx {
                Some(i) if !w.nodes.iter().any(|m| m.inputs.contains(&value)) => i,
                _ => return Err(unsupported(
                    n,
                    "adding a constant is supported only as the bias of a MatMul (a Linear layer)",
                )),
            };
        let out_f = shape[0];
        let vals = konst.floats.unwrap_or_default();
        let vals = match vals.len() {
            1 => vec![vals[0]; out_f],
            l if l == out_f => vals,
            _ => {
                return Err(unsupported(
                    n,
                    format!(
                        "bias of shape {:?} does not broadcast to [{out_f}]",
                        konst.dims
                    ),
                ))
            }
        };
        w.open_matmul.remove(&value);
        if let Op::Linear { bias, .. } = &mut w.nodes[node_idx].op {
            *bias = true;
        }
        w.tensor(format!("{value}.bias"), vec![out_f], vals);
        w.values.insert(n.output[0].clone(), value);
        return Ok(());
    }
    let (va, _) = w.value(n, &a)?;
    let (vb, _) = w.value(n, &b)?;
    push_checked(w, n, index, vec![va, vb], Op::Add)
}

fn import_conv(w: &mut Walk, n: &pb::NodeProto, index: usize) -> Result<(), OnnxError> {
    let (x, shape) = w.value(
        n,
        n.input
            .first()
            .map(String::as_str)
            .ok_or_else(|| unsupported(n, "has no input"))?,
    )?;
    let wname = n.input.get(1).cloned().unwrap_or_default();
    let wt = w.floats(n, &wname, "weight")?;
    if wt.dims.len() != 4 {
        return Err(unsupported(
            n,
            format!(
                "weight of shape {:?}: only 2-D convolutions are supported",
                wt.dims
            ),
        ));
    }
    let groups = attr_i(n, "group", 1);
    if groups < 1 {
        return Err(unsupported(n, format!("group {groups} is not valid")));
    }
    let groups = groups as usize;
    let kernel = [wt.dims[2], wt.dims[3]];
    if let Some(k) = attr_ints(n, "kernel_shape") {
        if k.len() != 2 || k[0] as usize != kernel[0] || k[1] as usize != kernel[1] {
            return Err(unsupported(
                n,
                format!("kernel_shape {k:?} disagrees with the weight {:?}", wt.dims),
            ));
        }
    }
    let stride = pair(n, "strides", [1, 1])?;
    let dilation = pair(n, "dilations", [1, 1])?;
    let padding = pads(n)?;
    let out_c = wt.dims[0];
    let in_c = wt.dims[1] * groups;
    if shape.first() != Some(&in_c) {
        return Err(unsupported(
            n,
            format!(
                "input of shape {shape:?} does not have the {in_c} channels the weight expects"
            ),
        ));
    }
    let bias = match n.input.get(2).filter(|s| !s.is_empty()) {
        None => None,
        Some(b) => {
            let c = w.floats(n, b, "bias")?;
            let v = c.floats.unwrap_or_default();
            if v.len() != out_c {
                return Err(unsupported(
                    n,
                    format!("bias has {} values for {out_c} channels", v.len()),
                ));
            }
            Some(v)
        }
    };
    let name = w.name_for(n, Some(&wname), index);
    let op = Op::Conv {
        in_channels: in_c,
        out_channels: out_c,
        kernel,
        stride,
        padding,
        dilation,
        groups,
        bias: bias.is_some(),
    };
    // Shape check before the tensors are recorded.
    let wshape = wt.dims.clone();
    let data = wt.floats.unwrap_or_default();
    push_named(w, n, name.clone(), vec![x], op)?;
    w.tensor(format!("{name}.weight"), wshape, data);
    if let Some(b) = bias {
        w.tensor(format!("{name}.bias"), vec![out_c], b);
    }
    Ok(())
}
