//! The imported network: a small layer graph with its initial tensors.
//!
//! A [`GraphSpec`] is what [`crate::read`] makes of an ONNX model and what the training engine
//! builds a prunable network from (every [`Op::Conv`] and [`Op::Linear`] weight gets a mask;
//! BatchNorm trains). It is plain serde data, so a checkpoint stores it as JSON metadata and a
//! run can be resumed without the original ONNX file.
//!
//! Values are named: the network input is `"input"`, every node's output carries the node's
//! name. Shapes are per example (no batch dimension): `[C, H, W]` for images, `[D]` for flat
//! vectors.

use serde::{Deserialize, Serialize};

/// The name of the network input value.
pub const INPUT: &str = "input";

/// A network as a list of nodes in execution order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphSpec {
    /// A short name for the network (e.g. the ONNX file's stem).
    pub name: String,
    /// Shape of one example as the model takes it: `[C, H, W]`, or `[D]` for a flat input.
    pub input: Vec<usize>,
    /// Number of logits the network outputs.
    pub classes: usize,
    /// The nodes, each reading values named by earlier nodes or [`INPUT`].
    pub nodes: Vec<Node>,
    /// The value holding the logits (the last node's name).
    pub output: String,
}

/// One operation of the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name; also the name of its output value and the prefix of its tensors
    /// (`{name}.weight`, `{name}.bias`, `{name}.running_mean`, …).
    pub name: String,
    /// Values read: one, or two for [`Op::Add`].
    pub inputs: Vec<String>,
    /// What the node computes.
    pub op: Op,
}

/// The operations an imported network may use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// 2-D convolution (cross-correlation) with a prunable weight
    /// `out_channels × in_channels/groups × kernel[0] × kernel[1]`; symmetric zero padding.
    Conv {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Kernel `[height, width]`.
        kernel: [usize; 2],
        /// Stride `[vertical, horizontal]`.
        stride: [usize; 2],
        /// Zero padding `[top/bottom, left/right]`.
        padding: [usize; 2],
        /// Dilation `[vertical, horizontal]`.
        dilation: [usize; 2],
        /// Groups (1 = dense, `in_channels` = depthwise).
        groups: usize,
        /// Whether a bias of `out_channels` values follows.
        bias: bool,
    },
    /// Fully connected layer `y = W x + b` with a prunable `W` of `out_features × in_features`;
    /// reads a flat `[in_features]` value.
    Linear {
        /// Input width.
        in_features: usize,
        /// Output width.
        out_features: usize,
        /// Whether a bias of `out_features` values follows.
        bias: bool,
    },
    /// Batch normalisation over channels (trainable scale and shift, running statistics).
    BatchNorm {
        /// Channels normalised.
        channels: usize,
        /// The ε added to the variance.
        eps: f64,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (ONNX `Clip` with bounds 0 and 6).
    Relu6,
    /// Max pooling per channel (floor mode; padded positions never win).
    MaxPool {
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Implicit padding.
        padding: [usize; 2],
    },
    /// Average pooling per channel (floor mode; padded zeros count in the divisor).
    AvgPool {
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Implicit zero padding.
        padding: [usize; 2],
    },
    /// Mean over each channel's plane: `[C, H, W]` → `[C, 1, 1]`.
    GlobalAvgPool,
    /// Everything after the batch dimension into one: `[C, H, W]` → `[C·H·W]`.
    Flatten,
    /// Elementwise sum of two values of the same shape (a residual connection).
    Add,
}

impl Op {
    /// The operation's name in messages (`conv`, `linear`, `batch_norm`, …).
    pub fn tag(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "conv",
            Op::Linear { .. } => "linear",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::MaxPool { .. } => "max_pool",
            Op::AvgPool { .. } => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Add => "add",
        }
    }

    /// Whether the node owns a prunable weight (conv and linear).
    pub fn is_prunable(&self) -> bool {
        matches!(self, Op::Conv { .. } | Op::Linear { .. })
    }
}

/// A named f32 tensor (row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// Engine name: `{node}.weight`, `{node}.bias`, `{node}.running_mean`, `{node}.running_var`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// An imported network: its graph and its initial tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The layer graph.
    pub spec: GraphSpec,
    /// Every parameter and buffer the graph's nodes need, under engine names.
    pub tensors: Vec<NamedTensor>,
    /// The model's `metadata_props` (key, value), e.g. `dataset` in files hyperflux wrote.
    pub metadata: Vec<(String, String)>,
}

impl GraphSpec {
    /// The names of the tensors node `n` owns, with their shapes, in a fixed order.
    pub fn tensors_of(n: &Node) -> Vec<(String, Vec<usize>)> {
        let t = |s: &str| format!("{}.{s}", n.name);
        match &n.op {
            Op::Conv {
                in_channels,
                out_channels,
                kernel,
                groups,
                bias,
                ..
            } => {
                let mut v = vec![(
                    t("weight"),
                    vec![
                        *out_channels,
                        in_channels / (*groups).max(1),
                        kernel[0],
                        kernel[1],
                    ],
                )];
                if *bias {
                    v.push((t("bias"), vec![*out_channels]));
                }
                v
            }
            Op::Linear {
                in_features,
                out_features,
                bias,
            } => {
                let mut v = vec![(t("weight"), vec![*out_features, *in_features])];
                if *bias {
                    v.push((t("bias"), vec![*out_features]));
                }
                v
            }
            Op::BatchNorm { channels, .. } => ["weight", "bias", "running_mean", "running_var"]
                .iter()
                .map(|s| (t(s), vec![*channels]))
                .collect(),
            _ => vec![],
        }
    }

    /// Number of prunable weights N.
    pub fn prunable(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.op.is_prunable())
            .flat_map(|n| Self::tensors_of(n).into_iter().take(1))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// How many nodes read each value (the graph output counts as one reader).
    pub fn readers(&self, value: &str) -> usize {
        self.nodes
            .iter()
            .flat_map(|n| n.inputs.iter())
            .filter(|i| *i == value)
            .count()
            + usize::from(self.output == value)
    }

    /// Per-example shape of every value, in node order after the input, checking that each
    /// node's input fits it. Fails with a message naming the node.
    pub fn shapes(&self) -> Result<Vec<(String, Vec<usize>)>, String> {
        let mut known: Vec<(String, Vec<usize>)> = vec![(INPUT.to_string(), self.input.clone())];
        for n in &self.nodes {
            let get = |name: &str| {
                known
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, s)| s.clone())
                    .ok_or_else(|| format!("node {}: reads unknown value {name:?}", n.name))
            };
            let x = get(n.inputs.first().map(String::as_str).unwrap_or(""))?;
            let out = node_shape(n, &x, |i| get(i))?;
            known.push((n.name.clone(), out));
        }
        Ok(known)
    }

    /// Checks names, inputs, shapes and the output width once (after import or loading a
    /// checkpoint's JSON).
    pub fn validate(&self) -> Result<(), String> {
        if self.input.is_empty() || self.input.contains(&0) || self.input.len() > 3 {
            return Err(format!(
                "input shape {:?} is not [C,H,W] or [D] with positive sizes",
                self.input
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for n in &self.nodes {
            if n.name == INPUT || !seen.insert(n.name.as_str()) {
                return Err(format!("node name {:?} is used twice", n.name));
            }
        }
        let shapes = self.shapes()?;
        let (last, shape) = shapes
            .iter()
            .find(|(k, _)| *k == self.output)
            .ok_or_else(|| format!("output {:?} is not a node", self.output))?;
        let width: usize = shape.iter().product();
        if width != self.classes || shape.iter().filter(|&&d| d != 1).count() > 1 {
            return Err(format!(
                "output {last:?} has shape {shape:?}, expected {} logits per example",
                self.classes
            ));
        }
        if self.prunable() == 0 {
            return Err("the network has no Conv, Gemm or MatMul weight to prune".into());
        }
        Ok(())
    }
}

fn window_out(size: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (size + 2 * p)
        .checked_sub(span)
        .filter(|_| s > 0 && k > 0)
        .map(|r| r / s + 1)
}

fn node_shape(
    n: &Node,
    x: &[usize],
    get: impl Fn(&str) -> Result<Vec<usize>, String>,
) -> Result<Vec<usize>, String> {
    let want_arity = if matches!(n.op, Op::Add) { 2 } else { 1 };
    if n.inputs.len() != want_arity {
        return Err(format!(
            "node {} ({}): reads {} values, expected {want_arity}",
            n.name,
            n.op.tag(),
            n.inputs.len()
        ));
    }
    let image = |what: &str| -> Result<[usize; 3], String> {
        match x {
            [c, h, w] => Ok([*c, *h, *w]),
            _ => Err(format!(
                "node {} ({what}): needs a C×H×W input, got {x:?}",
                n.name
            )),
        }
    };
    let bad = |msg: String| format!("node {} ({}): {msg}", n.name, n.op.tag());
    Ok(match &n.op {
        Op::Conv {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            ..
        } => {
            let [c, h, w] = image("conv")?;
            if c != *in_channels {
                return Err(bad(format!(
                    "input has {c} channels, weight expects {in_channels}"
                )));
            }
            if *groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
                return Err(bad(format!(
                    "{groups} groups do not divide {in_channels} → {out_channels} channels"
                )));
            }
            let oh = window_out(h, kernel[0], stride[0], padding[0], dilation[0]);
            let ow = window_out(w, kernel[1], stride[1], padding[1], dilation[1]);
            match (oh, ow) {
                (Some(oh), Some(ow)) if dilation[0] > 0 && dilation[1] > 0 => {
                    vec![*out_channels, oh, ow]
                }
                _ => {
                    return Err(bad(format!(
                        "kernel {kernel:?} does not fit a {h}×{w} input"
                    )))
                }
            }
        }
        Op::Linear {
            in_features,
            out_features,
            ..
        } => {
            let width: usize = x.iter().product();
            if x.len() != 1 && x.iter().filter(|&&d| d != 1).count() > 1 {
                return Err(bad(format!(
                    "reads a {x:?} value; flatten it first (Flatten or Reshape to (N, -1))"
                )));
            }
            if width != *in_features {
                return Err(bad(format!(
                    "input has {width} features, weight expects {in_features}"
                )));
            }
            vec![*out_features]
        }
        Op::BatchNorm { channels, .. } => {
            if x.first() != Some(channels) {
                return Err(bad(format!(
                    "input {x:?} does not have {channels} channels"
                )));
            }
            x.to_vec()
        }
        Op::Relu | Op::Relu6 => x.to_vec(),
        Op::MaxPool {
            kernel,
            stride,
            padding,
        }
        | Op::AvgPool {
            kernel,
            stride,
            padding,
        } => {
            let [c, h, w] = image(n.op.tag())?;
            if padding[0] * 2 > kernel[0] || padding[1] * 2 > kernel[1] {
                return Err(bad(format!(
                    "padding {padding:?} is more than half the window {kernel:?}"
                )));
            }
            match (
                window_out(h, kernel[0], stride[0], padding[0], 1),
                window_out(w, kernel[1], stride[1], padding[1], 1),
            ) {
                (Some(oh), Some(ow)) => vec![c, oh, ow],
                _ => return Err(bad(format!("window {kernel:?} does not fit {h}×{w}"))),
            }
        }
        Op::GlobalAvgPool => {
            let [c, _, _] = image("global_avg_pool")?;
            vec![c, 1, 1]
        }
        Op::Flatten => vec![x.iter().product()],
        Op::Add => {
            let y = get(&n.inputs[1])?;
            if y != x {
                return Err(bad(format!("adds values of shapes {x:?} and {y:?}")));
            }
            x.to_vec()
        }
    })
}
