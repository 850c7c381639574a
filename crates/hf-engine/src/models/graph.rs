//! A network imported from ONNX (or rebuilt from a checkpoint's graph JSON): the layer graph of
//! [`hf_onnx::graph::GraphSpec`] run with tch.
//!
//! Every conv and linear weight is a [`MaskedWeight`] (so Hyperflux prunes it like any built-in
//! model's), biases and BatchNorm scale/shift are free parameters, running statistics are
//! buffers. The forward pass interprets the node list; gradients come from autograd
//! ([`crate::network::autograd_grads`]).

use crate::init::Init;
use crate::masked::MaskedWeight;
use crate::models::Exporter;
use crate::network::{to_vec_f32, Network, Param};
use crate::norm::BatchNorm2d;
use crate::EngineError;
use hf_onnx::graph::{GraphSpec, NamedTensor, Op, INPUT};
use hf_sparse::{Activation, LayerSpec, LayerTensors};
use std::collections::HashMap;
use tch::{Device, Tensor};

/// Architecture names of imported networks start with this prefix (`onnx:<name>`).
pub const ARCH_PREFIX: &str = "onnx:";

enum Layer {
    Conv {
        index: usize,
        bias: Option<Tensor>,
        stride: [i64; 2],
        padding: [i64; 2],
        dilation: [i64; 2],
        groups: i64,
    },
    Linear {
        index: usize,
        bias: Option<Tensor>,
    },
    Bn(BatchNorm2d),
    Relu,
    Relu6,
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
    Gap,
    Flatten,
    Add,
}

/// An imported network.
pub struct GraphNet {
    arch: String,
    spec: GraphSpec,
    input: [i64; 3],
    masked: Vec<MaskedWeight>,
    params: Vec<Param>,
    layers: Vec<Layer>,
    /// Value slots read by each node (0 = the input, `i + 1` = node `i`'s output).
    reads: Vec<Vec<usize>>,
    out_slot: usize,
}

fn i2(v: [usize; 2]) -> [i64; 2] {
    [v[0] as i64, v[1] as i64]
}

impl GraphNet {
    /// Builds the network of `spec` on `device`. With `tensors` (an import), weights, biases,
    /// BatchNorm parameters and statistics start from them; without (a checkpoint restores
    /// them next), weights are initialised as the built-in models' are, from `init`. Masks
    /// start uniform in `init.mask`, each node's from the stream of its `{node}.mask`.
    pub fn new(
        spec: GraphSpec,
        tensors: Option<&[NamedTensor]>,
        init: Init,
        device: Device,
    ) -> Result<Self, EngineError> {
        spec.validate()
            .map_err(|e| EngineError::Model(format!("imported network {}: {e}", spec.name)))?;
        let given: HashMap<&str, &NamedTensor> = tensors
            .unwrap_or(&[])
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let fetch = |name: &str, shape: &[usize]| -> Result<Option<Tensor>, EngineError> {
            if tensors.is_none() {
                return Ok(None);
            }
            let t = given.get(name).ok_or_else(|| {
                EngineError::Model(format!(
                    "imported network {}: tensor {name} missing",
                    spec.name
                ))
            })?;
            if t.shape != shape {
                return Err(EngineError::Model(format!(
                    "imported network {}: tensor {name} has shape {:?}, expected {shape:?}",
                    spec.name, t.shape
                )));
            }
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            Ok(Some(
                Tensor::from_slice(&t.data)
                    .view(dims.as_slice())
                    .to_device(device),
            ))
        };
        let mut masked = Vec::new();
        let mut params = Vec::new();
        let mut layers = Vec::new();
        let mut slots: HashMap<&str, usize> = HashMap::from([(INPUT, 0)]);
        let mut reads = Vec::new();
        let bias_param = |params: &mut Vec<Param>,
                          name: &str,
                          given: Option<Tensor>,
                          n: usize,
                          fan_in: usize|
         -> Tensor {
            let t = given
                .unwrap_or_else(|| crate::conv::bias(name, n as i64, fan_in as i64, init, device))
                .set_requires_grad(true);
            params.push(Param {
                name: format!("{name}.bias"),
                t: t.shallow_clone(),
            });
            t
        };
        for (i, node) in spec.nodes.iter().enumerate() {
            reads.push(
                node.inputs
                    .iter()
                    .map(|v| slots[v.as_str()])
                    .collect::<Vec<usize>>(),
            );
            let owned = GraphSpec::tensors_of(node);
            let layer = match &node.op {
                Op::Conv {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    bias,
                } => {
                    let (wname, wshape) = &owned[0];
                    let fan_in = in_channels / groups * kernel[0] * kernel[1];
                    let w = match fetch(wname, wshape)? {
                        Some(w) => w,
                        None => {
                            let dims: Vec<i64> = wshape.iter().map(|&d| d as i64).collect();
                            let std = (2.0 / fan_in.max(1) as f64).sqrt();
                            init.normal(wname, &dims, 0.0, std, device)
                        }
                    };
                    let index = masked.len();
                    masked.push(MaskedWeight::new(&node.name, w, init));
                    let bias = if *bias {
                        let given = fetch(&owned[1].0, &owned[1].1)?;
                        Some(bias_param(
                            &mut params,
                            &node.name,
                            given,
                            *out_channels,
                            fan_in,
                        ))
                    } else {
                        None
                    };
                    Layer::Conv {
                        index,
                        bias,
                        stride: i2(*stride),
                        padding: i2(*padding),
                        dilation: i2(*dilation),
                        groups: *groups as i64,
                    }
                }
                Op::Linear {
                    in_features,
                    out_features,
                    bias,
                } => {
                    let (wname, wshape) = &owned[0];
                    let w = match fetch(wname, wshape)? {
                        Some(w) => w,
                        None => {
                            let b = 1.0 / (*in_features as f64).sqrt();
                            let dims = [*out_features as i64, *in_features as i64];
                            init.uniform(wname, &dims, -b, b, device)
                        }
                    };
                    let index = masked.len();
                    masked.push(MaskedWeight::new(&node.name, w, init));
                    let bias = if *bias {
                        let given = fetch(&owned[1].0, &owned[1].1)?;
                        Some(bias_param(
                            &mut params,
                            &node.name,
                            given,
                            *out_features,
                            *in_features,
                        ))
                    } else {
                        None
                    };
                    Layer::Linear { index, bias }
                }
                Op::BatchNorm { channels, eps } => {
                    let (mut bn, ps) = BatchNorm2d::new(&node.name, *channels as i64, device);
                    bn.eps = *eps;
                    for ((name, shape), dst) in
                        owned
                            .iter()
                            .zip([&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var])
                    {
                        if let Some(src) = fetch(name, shape)? {
                            tch::no_grad(|| dst.shallow_clone().copy_(&src));
                        }
                    }
                    params.extend(ps);
                    Layer::Bn(bn)
                }
                Op::Relu => Layer::Relu,
                Op::Relu6 => Layer::Relu6,
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => Layer::MaxPool {
                    kernel: i2(*kernel),
                    stride: i2(*stride),
                    padding: i2(*padding),
                },
                Op::AvgPool {
                    kernel,
                    stride,
                    padding,
                } => Layer::AvgPool {
                    kernel: i2(*kernel),
                    stride: i2(*stride),
                    padding: i2(*padding),
                },
                Op::GlobalAvgPool => Layer::Gap,
                Op::Flatten => Layer::Flatten,
                Op::Add => Layer::Add,
            };
            layers.push(layer);
            slots.insert(node.name.as_str(), i + 1);
        }
        let out_slot = slots[spec.output.as_str()];
        let input = match spec.input.as_slice() {
            [c, h, w] => [*c as i64, *h as i64, *w as i64],
            [d] => [*d as i64, 1, 1],
            [c, h] => [*c as i64, *h as i64, 1],
            _ => [0, 0, 0],
        };
        Ok(Self {
            arch: format!("{ARCH_PREFIX}{}", spec.name),
            spec,
            input,
            masked,
            params,
            layers,
            reads,
            out_slot,
        })
    }

    /// The graph this network runs.
    pub fn spec(&self) -> &GraphSpec {
        &self.spec
    }
}

impl Network for GraphNet {
    fn arch(&self) -> &str {
        &self.arch
    }

    fn input_shape(&self) -> [i64; 3] {
        self.input
    }

    fn accepts_input(&self, shape: [i64; 3]) -> bool {
        if self.spec.input.len() == 1 {
            shape.iter().product::<i64>() == self.input[0]
        } else {
            shape == self.input
        }
    }

    fn classes(&self) -> i64 {
        self.spec.classes as i64
    }

    fn masked(&self) -> &[MaskedWeight] {
        &self.masked
    }

    fn masked_mut(&mut self) -> &mut [MaskedWeight] {
        &mut self.masked
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Bn(bn) => Some(bn.buffers()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn graph_json(&self) -> Option<String> {
        serde_json::to_string(&self.spec).ok()
    }

    fn forward_with(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor {
        let x = match self.spec.input.len() {
            1 => x.flatten(1, -1),
            _ => x.view([-1, self.input[0], self.input[1], self.input[2]]),
        };
        let mut vals: Vec<Option<Tensor>> = Vec::with_capacity(self.layers.len() + 1);
        vals.push(Some(x));
        for (layer, reads) in self.layers.iter().zip(&self.reads) {
            let a = vals[reads[0]].as_ref().expect("value computed before use");
            let y = match layer {
                Layer::Conv {
                    index,
                    bias,
                    stride,
                    padding,
                    dilation,
                    groups,
                } => a.conv2d(
                    &eff[*index],
                    bias.as_ref(),
                    *stride,
                    *padding,
                    *dilation,
                    *groups,
                ),
                Layer::Linear { index, bias } => {
                    let a2 = if a.dim() > 2 {
                        a.flatten(1, -1)
                    } else {
                        a.shallow_clone()
                    };
                    let y = a2.matmul(&eff[*index].tr());
                    match bias {
                        Some(b) => y + b,
                        None => y,
                    }
                }
                Layer::Bn(bn) => bn.forward(a, train),
                Layer::Relu => a.relu(),
                Layer::Relu6 => a.clamp(0.0, 6.0),
                Layer::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => a.max_pool2d(*kernel, *stride, *padding, [1, 1], false),
                Layer::AvgPool {
                    kernel,
                    stride,
                    padding,
                } => a.avg_pool2d(*kernel, *stride, *padding, false, true, None::<i64>),
                Layer::Gap => a.adaptive_avg_pool2d([1, 1]),
                Layer::Flatten => a.flatten(1, -1),
                Layer::Add => {
                    let b = vals[reads[1]].as_ref().expect("value computed before use");
                    a + b
                }
            };
            vals.push(Some(y));
        }
        let out = vals[self.out_slot].take().expect("output computed");
        if out.dim() > 2 {
            out.flatten(1, -1)
        } else {
            out
        }
    }

    fn export_layers(&self) -> Option<Vec<(LayerSpec, LayerTensors)>> {
        self.export_wiring().ok()
    }

    fn export_error(&self) -> Option<String> {
        self.export_wiring().err()
    }
}

impl GraphNet {
    /// The graph as layers of the pure-Rust runtime: each BatchNorm folded into the conv before
    /// it, each ReLU/ReLU6 fused into the conv, linear or add before it. Fails with a message
    /// naming the node when the graph has a shape the runtime cannot run (e.g. a BatchNorm
    /// that does not follow a conv).
    pub fn export_wiring(&self) -> Result<Vec<(LayerSpec, LayerTensors)>, String> {
        let nodes = &self.spec.nodes;
        let mut e = Exporter::new(&self.masked);
        // Graph value → exported tensor name.
        let mut alias: HashMap<String, String> = HashMap::from([(INPUT.into(), "input".into())]);
        let mut done = vec![false; nodes.len()];
        // The single reader of a value, if exactly one node reads it and it is not the output.
        let sole_reader = |value: &str| -> Option<usize> {
            if self.spec.readers(value) != 1 {
                return None;
            }
            nodes
                .iter()
                .position(|n| n.inputs.iter().any(|i| i == value))
        };
        let act_after = |value: &str, done: &mut Vec<bool>| -> (Activation, String) {
            if let Some(j) = sole_reader(value) {
                let act = match nodes[j].op {
                    Op::Relu => Some(Activation::Relu),
                    Op::Relu6 => Some(Activation::Relu6),
                    _ => None,
                };
                if let Some(a) = act {
                    done[j] = true;
                    return (a, nodes[j].name.clone());
                }
            }
            (Activation::None, value.to_string())
        };
        for (i, node) in nodes.iter().enumerate() {
            if done[i] {
                continue;
            }
            done[i] = true;
            let src = |k: usize| -> Result<String, String> {
                alias
                    .get(&node.inputs[k])
                    .cloned()
                    .ok_or_else(|| format!("node {}: input not exported", node.name))
            };
            let layer = match (&node.op, &self.layers[i]) {
                (
                    Op::Conv {
                        in_channels,
                        out_channels,
                        kernel,
                        stride,
                        padding,
                        dilation,
                        groups,
                        ..
                    },
                    Layer::Conv { index, bias, .. },
                ) => {
                    let mw = e.weight(*index)?;
                    let mut t = LayerTensors {
                        weight: to_vec_f32(&mw.effective()),
                        bias: bias.as_ref().map(to_vec_f32),
                        mask: to_vec_f32(&mw.m),
                    };
                    let mut last = node.name.clone();
                    if let Some(j) = sole_reader(&last) {
                        if let (Op::BatchNorm { .. }, Layer::Bn(bn)) = (&nodes[j].op, &self.layers[j]) {
                            if t.bias.is_none() {
                                t.bias = Some(vec![0.0; *out_channels]);
                            }
                            hf_sparse::fold_batch_norm(
                                &mut t,
                                &to_vec_f32(&bn.weight),
                                &to_vec_f32(&bn.bias),
                                &to_vec_f32(&bn.running_mean),
                                &to_vec_f32(&bn.running_var),
                                bn.eps as f32,
                            )
                            .map_err(|e| format!("{}: {e}", nodes[j].name))?;
                            done[j] = true;
                            last = nodes[j].name.clone();
                        }
                    }
                    let (activation, last) = act_after(&last, &mut done);
                    let input = src(0)?;
                    let spec = LayerSpec::Conv2d {
                        name: mw.name.clone(),
                        in_channels: *in_channels,
                        out_channels: *out_channels,
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                        dilation: *dilation,
                        groups: *groups,
                        bias: t.bias.is_some(),
                        activation,
                        input: e.input_field(&input),
                    };
                    (spec, t, last)
                }
                (
                    Op::Linear {
                        in_features,
                        out_features,
                        ..
                    },
                    Layer::Linear { index, bias },
                ) => {
                    let mw = e.weight(*index)?;
                    let t = LayerTensors {
                        weight: to_vec_f32(&mw.effective()),
                        bias: bias.as_ref().map(to_vec_f32),
                        mask: to_vec_f32(&mw.m),
                    };
                    let (activation, last) = act_after(&node.name, &mut done);
                    let input = src(0)?;
                    let spec = LayerSpec::Linear {
                        name: mw.name.clone(),
                        in_features: *in_features,
                        out_features: *out_features,
                        bias: t.bias.is_some(),
                        activation,
                        input: e.input_field(&input),
                    };
                    (spec, t, last)
                }
                (Op::Add, _) => {
                    let (a, b) = (src(0)?, src(1)?);
                    let (activation, last) = act_after(&node.name, &mut done);
                    let spec = LayerSpec::Add {
                        name: node.name.clone(),
                        inputs: [a, b],
                        activation,
                    };
                    (spec, LayerTensors::default(), last)
                }
                (Op::MaxPool { kernel, stride, padding }, _) => {
                    let input = src(0)?;
                    let spec = LayerSpec::MaxPool2d {
                        name: node.name.clone(),
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                        input: e.input_field(&input),
                    };
                    (spec, LayerTensors::default(), node.name.clone())
                }
                (Op::AvgPool { kernel, stride, padding }, _) => {
                    let input = src(0)?;
                    let spec = LayerSpec::AvgPool2d {
                        name: node.name.clone(),
                        kernel: *kernel,
                        stride: *stride,
                        padding: *padding,
                        input: e.input_field(&input),
                    };
                    (spec, LayerTensors::default(), node.name.clone())
                }
                (Op::GlobalAvgPool, _) => {
                    let input = src(0)?;
                    let spec = LayerSpec::GlobalAvgPool {
                        name: node.name.clone(),
                        input: e.input_field(&input),
                    };
                    (spec, LayerTensors::default(), node.name.clone())
                }
                (Op::Flatten, _) => {
                    let input = src(0)?;
                    let spec = LayerSpec::Flatten {
                        name: node.name.clone(),
                        input: e.input_field(&input),
                    };
                    (spec, LayerTensors::default(), node.name.clone())
                }
                (op, _) => {
                    return Err(format!(
                        "node {} ({}) cannot be exported to the sparse runtime on its own: a BatchNorm must directly follow a conv, and a ReLU must follow a conv, linear or add that nothing else reads",
                        node.name,
                        op.tag()
                    ))
                }
            };
            let (spec, t, last) = layer;
            let name = e.push(spec, t);
            alias.insert(node.name.clone(), name.clone());
            alias.insert(last, name);
        }
        let out = alias
            .get(&self.spec.output)
            .ok_or("the output was not exported")?;
        let layers = e.finish();
        if layers.last().map(|(s, _)| s.name()) != Some(out.as_str()) {
            return Err(format!(
                "the output {} is not the last layer of the export",
                self.spec.output
            ));
        }
        Ok(layers)
    }
}
