//! The libtorch column of `bench-infer`: the export's own layer graph run as dense libtorch ops
//! (`linear`, `conv2d`, pooling, adds), pruned weights as zeros and BatchNorm folded — what a
//! PyTorch user would run the pruned network with. Any export works: trained, imported from
//! ONNX, or synthetic.

use hf_sparse::{Activation, LayerSpec, Model};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// One layer of the graph, with the index of the value it reads (0: the network's input,
/// `i + 1`: layer `i`'s output).
enum Op {
    Linear {
        w: Tensor,
        b: Option<Tensor>,
        act: Activation,
    },
    Conv {
        w: Tensor,
        b: Option<Tensor>,
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
        groups: i64,
        act: Activation,
    },
    MaxPool {
        kernel: [i64; 2],
        stride: [i64; 2],
        padding: [i64; 2],
    },
    AvgPool {
        kernel: [i64; 2],
        stride: [i64; 2],
        padding: [i64; 2],
    },
    GlobalAvgPool,
    Flatten,
    Add {
        other: usize,
        act: Activation,
    },
}

/// The network of an export as dense libtorch ops.
pub struct TorchRef {
    ops: Vec<(Op, usize)>,
    shape: Vec<i64>,
}

fn act(t: Tensor, a: Activation) -> Tensor {
    match a {
        Activation::None => t,
        Activation::Relu => t.relu(),
        Activation::Relu6 => t.clamp(0.0, 6.0),
    }
}

fn pair(v: [usize; 2]) -> [i64; 2] {
    [v[0] as i64, v[1] as i64]
}

impl TorchRef {
    /// The graph of `model`, checked once against the runtime's logits; or why not.
    pub fn new(model: &Model) -> Result<Self, String> {
        let weights: HashMap<String, (Vec<f32>, Option<Vec<f32>>)> = model
            .dense_weights()
            .into_iter()
            .map(|(n, w, b)| (n, (w, b)))
            .collect();
        let specs = model.layer_specs();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut ops = Vec::with_capacity(specs.len());
        let src = |input: &Option<String>, i: usize, index: &HashMap<String, usize>| match input {
            None => Ok(i),
            Some(n) => index
                .get(n)
                .copied()
                .ok_or_else(|| format!("layer input {n:?} is not an earlier layer")),
        };
        for (i, spec) in specs.iter().enumerate() {
            let wb = |shape: Vec<i64>| -> Result<(Tensor, Option<Tensor>), String> {
                let (w, b) = weights
                    .get(spec.name())
                    .ok_or_else(|| format!("no weights for layer {}", spec.name()))?;
                Ok((
                    Tensor::from_slice(w).view(shape.as_slice()),
                    b.as_ref().map(|b| Tensor::from_slice(b)),
                ))
            };
            let (op, from) = match spec {
                LayerSpec::Linear {
                    in_features,
                    out_features,
                    activation,
                    input,
                    ..
                } => {
                    let (w, b) = wb(vec![*out_features as i64, *in_features as i64])?;
                    let op = Op::Linear {
                        w,
                        b,
                        act: *activation,
                    };
                    (op, src(input, i, &index)?)
                }
                LayerSpec::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    activation,
                    input,
                    ..
                } => {
                    let (w, b) = wb(vec![
                        *out_channels as i64,
                        (*in_channels / (*groups).max(1)) as i64,
                        kernel[0] as i64,
                        kernel[1] as i64,
                    ])?;
                    let op = Op::Conv {
                        w,
                        b,
                        stride: pair(*stride),
                        padding: pair(*padding),
                        dilation: pair(*dilation),
                        groups: *groups as i64,
                        act: *activation,
                    };
                    (op, src(input, i, &index)?)
                }
                LayerSpec::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                    input,
                    ..
                } => (
                    Op::MaxPool {
                        kernel: pair(*kernel),
                        stride: pair(*stride),
                        padding: pair(*padding),
                    },
                    src(input, i, &index)?,
                ),
                LayerSpec::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    input,
                    ..
                } => (
                    Op::AvgPool {
                        kernel: pair(*kernel),
                        stride: pair(*stride),
                        padding: pair(*padding),
                    },
                    src(input, i, &index)?,
                ),
                LayerSpec::GlobalAvgPool { input, .. } => {
                    (Op::GlobalAvgPool, src(input, i, &index)?)
                }
                LayerSpec::Flatten { input, .. } => (Op::Flatten, src(input, i, &index)?),
                LayerSpec::Add {
                    inputs, activation, ..
                } => {
                    let a = src(&Some(inputs[0].clone()), i, &index)?;
                    let b = src(&Some(inputs[1].clone()), i, &index)?;
                    (
                        Op::Add {
                            other: b,
                            act: *activation,
                        },
                        a,
                    )
                }
            };
            ops.push((op, from));
            index.insert(spec.name().to_string(), i + 1);
        }
        let r = TorchRef {
            ops,
            shape: model.meta().input_shape.iter().map(|&d| d as i64).collect(),
        };
        // The same logits as the runtime, or no column.
        let n = 2;
        let x: Vec<f32> = (0..n * model.input_len())
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let ours = model.forward(&x, n).map_err(|e| e.to_string())?;
        let theirs =
            hf_engine::network::to_vec_f32(&r.forward(&r.input(Tensor::from_slice(&x), n)));
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, |m, d| if d.is_nan() || d > m { d } else { m });
        let scale = ours.iter().fold(1f32, |m, v| m.max(v.abs()));
        if ours.len() != theirs.len() || diff.is_nan() || diff > 1e-3 * scale {
            return Err(format!(
                "libtorch's logits differ from the runtime's (max difference {diff})"
            ));
        }
        Ok(r)
    }

    /// A batch of `n` inputs shaped for the graph from `n` rows of flat values.
    pub fn input(&self, t: Tensor, n: usize) -> Tensor {
        let mut shape = vec![n as i64];
        shape.extend(&self.shape);
        t.view(shape.as_slice())
    }

    /// The logits of a batch.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let mut vals: Vec<Tensor> = vec![x.shallow_clone()];
            for (op, from) in &self.ops {
                let h = &vals[*from];
                let y = match op {
                    // the runtime's values are flat per example: a linear layer reads them so
                    Op::Linear { w, b, act: a } => act(h.flatten(1, -1).linear(w, b.as_ref()), *a),
                    Op::Conv {
                        w,
                        b,
                        stride,
                        padding,
                        dilation,
                        groups,
                        act: a,
                    } => act(
                        h.conv2d(w, b.as_ref(), stride, padding, dilation, *groups),
                        *a,
                    ),
                    Op::MaxPool {
                        kernel,
                        stride,
                        padding,
                    } => h.max_pool2d(kernel, stride, padding, [1, 1], false),
                    Op::AvgPool {
                        kernel,
                        stride,
                        padding,
                    } => h.avg_pool2d(kernel, stride, padding, false, true, None::<i64>),
                    Op::GlobalAvgPool => h.mean_dim(&[-1i64, -2][..], true, Kind::Float),
                    Op::Flatten => h.flatten(1, -1),
                    Op::Add { other, act: a } => act(h + &vals[*other], *a),
                };
                vals.push(y);
            }
            vals.pop().unwrap_or_else(|| x.shallow_clone())
        })
    }

    /// What the column measures.
    pub fn describe(&self) -> String {
        "libtorch: the export's layer graph as dense libtorch ops (linear, conv2d, pooling; \
         pruned weights as zeros, BatchNorm folded), intra-op threads as the column's"
            .to_string()
    }
}
