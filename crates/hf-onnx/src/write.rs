//! `hf-sparse` layers → a standard ONNX model.
//!
//! The model is plain dense ONNX (opset [`OPSET`], IR version [`IR_VERSION`]) that any ONNX
//! runtime runs: pruned weights are exact zeros in dense initializers, BatchNorm is already
//! folded into the convolutions (as in the sparse export). The input is `input`, shaped
//! `[batch, ...input_shape]` with a symbolic batch dimension `batch`; the output is `logits`,
//! `[batch, classes]`.
//!
//! | layer | ONNX nodes |
//! | --- | --- |
//! | `linear` | `Flatten(axis=1)` when its input is not `[N, F]`, then `Gemm(transB=1)` |
//! | `conv2d` | `Conv` (`group`, `dilations`, symmetric `pads`) |
//! | `max_pool2d` / `avg_pool2d` | `MaxPool` / `AveragePool(count_include_pad=1)`, floor mode |
//! | `global_avg_pool` | `GlobalAveragePool` (output `[N, C, 1, 1]`) |
//! | `flatten` | `Flatten(axis=1)` |
//! | `add` | `Add` |
//! | activation `relu` / `relu6` | `Relu` / `Clip(0, 6)` after the node |
//!
//! A layer that needs `[N, C, H, W]` but reads a flat tensor (or the reverse, for `add`) gets a
//! `Reshape` first. Tensors are named after the layers (`{name}` for a layer's output,
//! `{name}.weight` / `{name}.bias` for its initializers).
//!
//! `metadata_props` carries the export metadata under the keys of the safetensors formats
//! (`architecture`, `dataset`, `input_shape`, `classes`, `accuracy`, `density_per_layer`,
//! `total_density`, every extra entry) plus `preprocessing` when known (see
//! [`Preprocessing`]).

use crate::OnnxError;
use hf_sparse::{Activation, ExportModel, LayerSpec, Model};
use prost::Message;
use std::path::Path;
use tract_onnx::pb;

/// The default-domain opset the writer targets.
pub const OPSET: i64 = 13;

/// The IR version that goes with [`OPSET`] (ONNX 1.8: IR 7, opset 13).
pub const IR_VERSION: i64 = 7;

/// How raw inputs become the network's input (`(raw·scale − mean[c]) / std[c]` per channel):
/// the one type the safetensors exports record too. Stored as the `preprocessing` metadata
/// entry, `{"scale":…,"mean":[…],"std":[…]}`, so a client can prepare its inputs.
pub use hf_sparse::Preprocessing;

/// Builds the ONNX model of `model` (validated as [`hf_sparse::write_export`] does: shapes,
/// tensors, stated densities), with `preprocessing` in the metadata when given.
pub fn onnx_model(
    model: &ExportModel,
    preprocessing: Option<&Preprocessing>,
) -> Result<pb::ModelProto, OnnxError> {
    // the runtime's validation also gives every layer's output shape
    let rt = Model::from_export(model).map_err(|e| OnnxError::Model(e.to_string()))?;
    let shapes = rt.layer_shapes();
    let meta = rt.meta();
    if let Some(p) = preprocessing {
        check_preprocessing(p, &meta.input_shape)?;
    }
    let mut g = Builder::default();
    let input_layout = match meta.input_shape.len() {
        3 => Layout::Nchw,
        1 => Layout::Flat,
        _ => Layout::Raw,
    };
    let input_shape = match meta.input_shape[..] {
        [c, h, w] => [c, h, w],
        _ => [meta.input_shape.iter().product(), 1, 1],
    };
    // (onnx tensor name, layout, [C, H, W]) of "input" and every layer output so far
    let mut tensors: Vec<(String, String, Layout, [usize; 3])> =
        vec![("input".into(), "input".into(), input_layout, input_shape)];
    let find = |tensors: &[(String, String, Layout, [usize; 3])], want: Option<&str>| match want {
        None => tensors.len() - 1,
        Some(n) => tensors
            .iter()
            .position(|t| t.0 == n)
            .unwrap_or(tensors.len() - 1),
    };
    let n_layers = model.layers.len();
    for (i, ((spec, t), (_, out_shape))) in model.layers.iter().zip(&shapes).enumerate() {
        let name = spec.name();
        if name == "logits" && i + 1 < n_layers {
            return Err(OnnxError::Model(
                "a layer other than the last is named 'logits', the name of the ONNX output; rename it".into(),
            ));
        }
        let srcs: Vec<usize> = spec
            .inputs()
            .into_iter()
            .map(|s| find(&tensors, s))
            .collect();
        let (x, x_layout, x_shape) = {
            let s = &tensors[srcs[0]];
            (s.1.clone(), s.2, s.3)
        };
        let out_name = name.to_string();
        let (produced, layout) = match spec {
            LayerSpec::Linear {
                in_features,
                out_features,
                bias,
                ..
            } => {
                let flat = g.flat(&x, x_layout, &format!("{name}.flat"));
                let w = effective(&t.weight, &t.mask);
                g.init(
                    &format!("{name}.weight"),
                    &[*out_features, *in_features],
                    &w,
                );
                let mut inputs = vec![flat, format!("{name}.weight")];
                if *bias {
                    let b = t.bias.as_deref().unwrap_or(&[]);
                    g.init(&format!("{name}.bias"), &[*out_features], b);
                    inputs.push(format!("{name}.bias"));
                }
                let y = g.node("Gemm", name, inputs, vec![attr_int("transB", 1)]);
                (y, Layout::Flat)
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                bias,
                ..
            } => {
                let x4 = g.nchw(&x, x_layout, x_shape, &format!("{name}.nchw"));
                let w = effective(&t.weight, &t.mask);
                g.init(
                    &format!("{name}.weight"),
                    &[*out_channels, in_channels / groups, kernel[0], kernel[1]],
                    &w,
                );
                let mut inputs = vec![x4, format!("{name}.weight")];
                if *bias {
                    let b = t.bias.as_deref().unwrap_or(&[]);
                    g.init(&format!("{name}.bias"), &[*out_channels], b);
                    inputs.push(format!("{name}.bias"));
                }
                let attrs = vec![
                    attr_ints("kernel_shape", kernel),
                    attr_ints("strides", stride),
                    attr_ints("pads", &[padding[0], padding[1], padding[0], padding[1]]),
                    attr_ints("dilations", dilation),
                    attr_int("group", *groups as i64),
                ];
                (g.node("Conv", name, inputs, attrs), Layout::Nchw)
            }
            LayerSpec::MaxPool2d {
                kernel,
                stride,
                padding,
                ..
            }
            | LayerSpec::AvgPool2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let x4 = g.nchw(&x, x_layout, x_shape, &format!("{name}.nchw"));
                let mut attrs = vec![
                    attr_ints("kernel_shape", kernel),
                    attr_ints("strides", stride),
                    attr_ints("pads", &[padding[0], padding[1], padding[0], padding[1]]),
                ];
                let op = if matches!(spec, LayerSpec::MaxPool2d { .. }) {
                    "MaxPool"
                } else {
                    attrs.push(attr_int("count_include_pad", 1));
                    "AveragePool"
                };
                (g.node(op, name, vec![x4], attrs), Layout::Nchw)
            }
            LayerSpec::GlobalAvgPool { .. } => {
                let x4 = g.nchw(&x, x_layout, x_shape, &format!("{name}.nchw"));
                (
                    g.node("GlobalAveragePool", name, vec![x4], vec![]),
                    Layout::Nchw,
                )
            }
            LayerSpec::Flatten { .. } => (
                g.node("Flatten", name, vec![x], vec![attr_int("axis", 1)]),
                Layout::Flat,
            ),
            LayerSpec::Add { .. } => {
                let (y, y_layout, _) = {
                    let s = &tensors[srcs[1]];
                    (s.1.clone(), s.2, s.3)
                };
                let (a, b, layout) = if x_layout == y_layout {
                    (x, y, x_layout)
                } else {
                    (
                        g.nchw(&x, x_layout, x_shape, &format!("{name}.a_nchw")),
                        g.nchw(&y, y_layout, x_shape, &format!("{name}.b_nchw")),
                        Layout::Nchw,
                    )
                };
                (g.node("Add", name, vec![a, b], vec![]), layout)
            }
        };
        let y = g.activation(spec.activation(), produced, name);
        tensors.push((out_name, y, layout, *out_shape));
    }
    // the output: [batch, classes] named "logits"
    // (never empty: it starts with the input)
    let (_, last, layout, _) = tensors[tensors.len() - 1].clone();
    if layout == Layout::Flat {
        g.rename_output(&last, "logits");
    } else {
        g.node_named(
            "Flatten",
            "logits",
            "logits",
            vec![last],
            vec![attr_int("axis", 1)],
        );
    }
    let mut input_dims = vec![dim_param("batch")];
    input_dims.extend(meta.input_shape.iter().map(|&d| dim_value(d)));
    let graph = pb::GraphProto {
        name: meta.architecture.clone(),
        node: g.nodes,
        initializer: g.inits,
        input: vec![value_info("input", input_dims)],
        output: vec![value_info(
            "logits",
            vec![dim_param("batch"), dim_value(meta.classes)],
        )],
        doc_string: format!(
            "{} pruned by hyperflux: {:.4}% of the prunable weights kept (pruned weights are zeros)",
            meta.architecture,
            100.0 * meta.total_density
        ),
        ..Default::default()
    };
    Ok(pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "hyperflux".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "A network pruned with Hyperflux, exported by hf-onnx.".into(),
        graph: Some(graph),
        metadata_props: metadata(meta, preprocessing)?,
        ..Default::default()
    })
}

/// [`onnx_model`] encoded as ONNX protobuf bytes.
pub fn to_onnx_bytes(
    model: &ExportModel,
    preprocessing: Option<&Preprocessing>,
) -> Result<Vec<u8>, OnnxError> {
    Ok(onnx_model(model, preprocessing)?.encode_to_vec())
}

/// Writes the ONNX file of `model` to `path` atomically (a temporary file in the same
/// directory, then a rename); returns the number of bytes written.
pub fn write_onnx(
    path: &Path,
    model: &ExportModel,
    preprocessing: Option<&Preprocessing>,
) -> Result<u64, OnnxError> {
    let bytes = to_onnx_bytes(model, preprocessing)?;
    hf_fsutil::atomic_write_bytes(path, &bytes).map_err(|e| OnnxError::File {
        path: path.display().to_string(),
        msg: format!("cannot write: {e}"),
    })?;
    Ok(bytes.len() as u64)
}

/// Loads a hyperflux export (sparse or dense safetensors, with [`hf_sparse::load`]'s full
/// validation) as the in-memory model the writer takes.
pub fn load_export(path: &Path) -> Result<ExportModel, OnnxError> {
    let m = hf_sparse::load(path).map_err(|e| OnnxError::File {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    Ok(m.to_export())
}

/// Converts a hyperflux export file into an ONNX file (atomically written); returns the number
/// of bytes written.
pub fn convert_file(
    export: &Path,
    onnx: &Path,
    preprocessing: Option<&Preprocessing>,
) -> Result<u64, OnnxError> {
    write_onnx(onnx, &load_export(export)?, preprocessing)
}

/// Checks that the preprocessing is finite, has positive stds and one entry (or one per input
/// channel).
fn check_preprocessing(p: &Preprocessing, input_shape: &[usize]) -> Result<(), OnnxError> {
    let channels = if input_shape.len() == 3 {
        input_shape[0]
    } else {
        1
    };
    let checked = p.validate(channels).and_then(|()| {
        if p.mean.len() == p.std.len() {
            Ok(())
        } else {
            Err("input_mean and input_std differ in length".to_string())
        }
    });
    if let Err(why) = checked {
        return Err(OnnxError::Model(format!(
            "preprocessing {p:?} must be finite with positive stds and as many means and stds as input channels ({channels}) or one: {why}"
        )));
    }
    Ok(())
}

/// The `metadata_props` entries, sorted by key.
fn metadata(
    meta: &hf_sparse::ExportMeta,
    pre: Option<&Preprocessing>,
) -> Result<Vec<pb::StringStringEntryProto>, OnnxError> {
    let mut kv: std::collections::BTreeMap<String, String> = meta.extra.clone();
    kv.insert("architecture".into(), meta.architecture.clone());
    kv.insert("dataset".into(), meta.dataset.clone());
    kv.insert("input_shape".into(), json(&meta.input_shape)?);
    kv.insert("classes".into(), meta.classes.to_string());
    kv.insert("accuracy".into(), json(&meta.accuracy)?);
    kv.insert("density_per_layer".into(), json(&meta.density_per_layer)?);
    kv.insert("total_density".into(), json(&meta.total_density)?);
    if let Some(p) = pre {
        kv.insert("preprocessing".into(), json(p)?);
    }
    Ok(kv
        .into_iter()
        .map(|(key, value)| pb::StringStringEntryProto { key, value })
        .collect())
}

/// Compact JSON of a metadata value.
fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, OnnxError> {
    serde_json::to_string(v).map_err(|e| OnnxError::Model(e.to_string()))
}

/// `w·H(m)`: the weight where the mask keeps it, exactly 0 where it prunes it.
fn effective(weight: &[f32], mask: &[f32]) -> Vec<f32> {
    weight
        .iter()
        .zip(mask)
        .map(|(w, m)| if *m >= 0.0 { *w } else { 0.0 })
        .collect()
}

/// How a tensor is laid out in the ONNX graph (the batch dimension first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `[N, F]`.
    Flat,
    /// `[N, C, H, W]`.
    Nchw,
    /// `[N, ...input_shape]` for an input shape that is neither `[F]` nor `[C, H, W]`.
    Raw,
}

/// Nodes and initializers under construction.
#[derive(Default)]
struct Builder {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    have_clip: bool,
}

impl Builder {
    /// Adds a float initializer.
    fn init(&mut self, name: &str, dims: &[usize], data: &[f32]) {
        self.inits.push(pb::TensorProto {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }

    /// Adds an int64 initializer.
    fn init_i64(&mut self, name: &str, data: &[i64]) {
        self.inits.push(pb::TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }

    /// Adds a node whose node name and single output are `out`; returns `out`.
    fn node(
        &mut self,
        op: &str,
        out: &str,
        inputs: Vec<String>,
        attrs: Vec<pb::AttributeProto>,
    ) -> String {
        self.node_named(op, out, out, inputs, attrs)
    }

    /// Adds a node named `name` with the single output `out`; returns `out`.
    fn node_named(
        &mut self,
        op: &str,
        name: &str,
        out: &str,
        inputs: Vec<String>,
        attribute: Vec<pb::AttributeProto>,
    ) -> String {
        self.nodes.push(pb::NodeProto {
            name: name.into(),
            op_type: op.into(),
            input: inputs,
            output: vec![out.into()],
            attribute,
            ..Default::default()
        });
        out.into()
    }

    /// Renames the output of the node that produces `from` (the last one) to `to`.
    fn rename_output(&mut self, from: &str, to: &str) {
        if let Some(n) = self
            .nodes
            .iter_mut()
            .rev()
            .find(|n| n.output.iter().any(|o| o == from))
        {
            for o in &mut n.output {
                if o == from {
                    *o = to.into();
                }
            }
        }
    }

    /// `x` as `[N, F]`: itself when flat, else a `Flatten(axis=1)` named `out`.
    fn flat(&mut self, x: &str, layout: Layout, out: &str) -> String {
        if layout == Layout::Flat {
            x.into()
        } else {
            self.node("Flatten", out, vec![x.into()], vec![attr_int("axis", 1)])
        }
    }

    /// `x` as `[N, C, H, W]`: itself when it is, else a `Reshape` to `[-1, C, H, W]` named `out`.
    fn nchw(&mut self, x: &str, layout: Layout, shape: [usize; 3], out: &str) -> String {
        if layout == Layout::Nchw {
            return x.into();
        }
        let shape_name = format!("{out}.shape");
        self.init_i64(
            &shape_name,
            &[-1, shape[0] as i64, shape[1] as i64, shape[2] as i64],
        );
        self.node("Reshape", out, vec![x.into(), shape_name], vec![])
    }

    /// The activation after the node that produced `pre`; the layer's output is then named
    /// `name` (the producing node's output is renamed `{name}.pre`).
    fn activation(&mut self, act: Activation, pre: String, name: &str) -> String {
        if act == Activation::None {
            return pre;
        }
        let renamed = format!("{name}.pre");
        self.rename_output(&pre, &renamed);
        let node = format!("{name}.act");
        match act {
            Activation::Relu => self.node_named("Relu", &node, name, vec![renamed], vec![]),
            _ => {
                if !self.have_clip {
                    // scalar bounds shared by every Clip (inputs since opset 11)
                    self.inits.push(scalar_f32("relu6.min", 0.0));
                    self.inits.push(scalar_f32("relu6.max", 6.0));
                    self.have_clip = true;
                }
                self.node_named(
                    "Clip",
                    &node,
                    name,
                    vec![renamed, "relu6.min".into(), "relu6.max".into()],
                    vec![],
                )
            }
        }
    }
}

fn scalar_f32(name: &str, v: f32) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![],
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: v.to_le_bytes().to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn dim_value(d: usize) -> pb::tensor_shape_proto::Dimension {
    pb::tensor_shape_proto::Dimension {
        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d as i64)),
        ..Default::default()
    }
}

fn dim_param(p: &str) -> pb::tensor_shape_proto::Dimension {
    pb::tensor_shape_proto::Dimension {
        value: Some(pb::tensor_shape_proto::dimension::Value::DimParam(p.into())),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<pb::tensor_shape_proto::Dimension>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
