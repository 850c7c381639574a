//! The built-in models and the machinery of the convolutional ones. [`registry`] is the one
//! table of every built-in model (name, aliases, input shape, description, constructor) that
//! `hyperflux models`, name canonicalisation and [`build`] read: LeNet-300-100 ([`crate::mlp`]),
//! LeNet-5, VGG (VGG-19 in the CIFAR layout of spec §5 and a narrow CPU-sized VGG) and ResNet
//! (ResNet-50 in the CIFAR layout and the CPU-sized ResNet-20). [`graph`] is an imported ONNX
//! network.
//!
//! Every conv and linear weight is a [`MaskedWeight`] (first conv, projection shortcuts and the
//! classifier included); biases and BatchNorm scale/shift are free parameters; BatchNorm running
//! statistics are buffers. A convolutional model is a [`ConvNet`]: those tensors plus a [`Body`] that wires the
//! layers, so every model gets the Hyperflux gradients through
//! [`crate::network::autograd_grads`] with no model-specific backward code.

pub mod graph;
pub mod lenet5;
pub mod registry;
pub mod resnet;
pub mod vgg;

pub use registry::{build, canonical, find, ModelEntry, MODELS};

use crate::conv::{self, Conv2d, ConvSpec, Linear};
use crate::init::Init;
use crate::masked::MaskedWeight;
use crate::network::{to_vec_f32, Network, Param};
use crate::norm::BatchNorm2d;
use crate::EngineError;
use hf_sparse::{Activation, LayerSpec, LayerTensors};
use tch::{Device, Tensor};

/// The wiring of a model: a forward pass over effective weights, and its buffers.
pub trait Body: Send {
    /// Logits for `x` with effective weights `eff` (in the network's masked order).
    fn forward(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor;
    /// BatchNorm running statistics (shallow clones), if any.
    fn buffers(&self) -> Vec<(String, Tensor)>;
    /// Appends the wiring to `e` as layers of the pure-Rust runtime, computing exactly what
    /// [`Body::forward`] computes in evaluation mode (BatchNorm folded into its conv). The
    /// default refuses: a body that does not override this cannot be exported.
    fn export(&self, e: &mut Exporter<'_>) -> Result<(), String> {
        let _ = e;
        Err("this model has no export wiring".into())
    }
}

/// Builds the `hf-sparse` layer list of a conv net while its [`Body`] walks its layers.
///
/// It tracks the name of the tensor the last layer wrote (`"input"` at the start): a layer
/// that reads it is written without an `input` field, one that reads anything else names it.
pub struct Exporter<'a> {
    masked: &'a [MaskedWeight],
    layers: Vec<(LayerSpec, LayerTensors)>,
    current: String,
}

impl<'a> Exporter<'a> {
    /// An empty export over the network's masked weights.
    pub fn new(masked: &'a [MaskedWeight]) -> Self {
        Self {
            masked,
            layers: Vec::new(),
            current: "input".into(),
        }
    }

    /// The name of the tensor the last layer wrote (`"input"` before any layer).
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The finished layer list.
    pub fn finish(self) -> Vec<(LayerSpec, LayerTensors)> {
        self.layers
    }

    /// The `input` field of a layer reading `input`: absent when it reads the last output.
    pub fn input_field(&self, input: &str) -> Option<String> {
        (input != self.current).then(|| input.to_string())
    }

    /// Appends a layer; returns its name (now the last output).
    pub fn push(&mut self, spec: LayerSpec, t: LayerTensors) -> String {
        let name = spec.name().to_string();
        self.layers.push((spec, t));
        self.current = name.clone();
        name
    }

    /// The network's masked weight number `index`.
    pub fn weight(&self, index: usize) -> Result<&'a MaskedWeight, String> {
        self.masked
            .get(index)
            .ok_or_else(|| format!("masked weight {index} does not exist"))
    }

    /// A conv reading tensor `input`, with the BatchNorm `bn` that follows it folded in (eval
    /// mode: running statistics) and a ReLU after it when `relu`. Returns the layer's name
    /// (the weight's name).
    pub fn conv(
        &mut self,
        conv: &Conv2d,
        bn: Option<&BatchNorm2d>,
        relu: bool,
        input: &str,
    ) -> Result<String, String> {
        let mw = self.weight(conv.index)?;
        let s = conv.spec;
        let mut t = LayerTensors {
            weight: to_vec_f32(&mw.effective()),
            bias: conv.bias.as_ref().map(to_vec_f32),
            mask: to_vec_f32(&mw.m),
        };
        if let Some(bn) = bn {
            hf_sparse::fold_batch_norm(
                &mut t,
                &to_vec_f32(&bn.weight),
                &to_vec_f32(&bn.bias),
                &to_vec_f32(&bn.running_mean),
                &to_vec_f32(&bn.running_var),
                bn.eps as f32,
            )
            .map_err(|e| format!("{}: {e}", bn.name))?;
        }
        let u = |v: i64| v.max(0) as usize;
        let spec = LayerSpec::Conv2d {
            name: mw.name.clone(),
            in_channels: u(s.in_c),
            out_channels: u(s.out_c),
            kernel: [u(s.k); 2],
            stride: [u(s.stride); 2],
            padding: [u(s.pad); 2],
            dilation: [1, 1],
            groups: 1,
            bias: t.bias.is_some(),
            activation: act(relu),
            input: self.input_field(input),
        };
        Ok(self.push(spec, t))
    }

    /// A linear layer reading the last output (flat, in C, H, W order), ReLU after it when
    /// `relu`.
    pub fn linear(&mut self, lin: &Linear, relu: bool) -> Result<String, String> {
        let mw = self.weight(lin.index)?;
        let size = mw.w.size();
        if size.len() != 2 {
            return Err(format!("{}: linear weight of shape {size:?}", mw.name));
        }
        let t = LayerTensors {
            weight: to_vec_f32(&mw.effective()),
            bias: Some(to_vec_f32(&lin.bias)),
            mask: to_vec_f32(&mw.m),
        };
        let spec = LayerSpec::Linear {
            name: mw.name.clone(),
            in_features: size[1].max(0) as usize,
            out_features: size[0].max(0) as usize,
            bias: true,
            activation: act(relu),
            input: None,
        };
        Ok(self.push(spec, t))
    }

    fn fresh(&self, kind: &str) -> String {
        format!("{kind}{}", self.layers.len())
    }

    /// 2×2 max-pooling with stride 2 of the last output (as [`max_pool2`]).
    pub fn max_pool2(&mut self) -> String {
        let spec = LayerSpec::MaxPool2d {
            name: self.fresh("maxpool"),
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            input: None,
        };
        self.push(spec, LayerTensors::default())
    }

    /// Global average pooling of the last output (as [`global_avg_pool`]; the C×1×1 result is
    /// what a following linear layer reads flat).
    pub fn global_avg_pool(&mut self) -> String {
        let spec = LayerSpec::GlobalAvgPool {
            name: self.fresh("avgpool"),
            input: None,
        };
        self.push(spec, LayerTensors::default())
    }

    /// Flattens the last output in C, H, W order (as `Tensor::flatten(1, -1)`).
    pub fn flatten(&mut self) -> String {
        let spec = LayerSpec::Flatten {
            name: self.fresh("flatten"),
            input: None,
        };
        self.push(spec, LayerTensors::default())
    }

    /// `act(a + b)`: the end of a residual block named `name`.
    pub fn add(&mut self, name: &str, a: &str, b: &str, relu: bool) -> String {
        let spec = LayerSpec::Add {
            name: name.to_string(),
            inputs: [a.to_string(), b.to_string()],
            activation: act(relu),
        };
        self.push(spec, LayerTensors::default())
    }
}

fn act(relu: bool) -> Activation {
    if relu {
        Activation::Relu
    } else {
        Activation::None
    }
}

/// Collects the masked weights and free parameters while a model's layers are created.
pub struct Builder {
    device: Device,
    init: Init,
    masked: Vec<MaskedWeight>,
    params: Vec<Param>,
}

impl Builder {
    /// An empty builder: tensors go to `device`, initial values (masks uniform in `init.mask`)
    /// come from `init`, each tensor from the stream of its name.
    pub fn new(device: Device, init: Init) -> Self {
        Self {
            device,
            init,
            masked: Vec::new(),
            params: Vec::new(),
        }
    }

    /// A masked convolution named `name` (tensors `{name}.weight`, `{name}.mask`, and
    /// `{name}.bias` when `bias`).
    pub fn conv(&mut self, name: &str, spec: ConvSpec, bias: bool) -> Conv2d {
        let index = self.masked.len();
        self.masked
            .push(conv::conv_weight(name, &spec, self.init, self.device));
        let bias = bias.then(|| {
            let fan_in = spec.in_c * spec.k * spec.k;
            let t = conv::bias(name, spec.out_c, fan_in, self.init, self.device);
            let shared = t.shallow_clone();
            self.params.push(Param {
                name: format!("{name}.bias"),
                t,
            });
            shared
        });
        Conv2d { index, spec, bias }
    }

    /// A masked linear layer `in_f → out_f` with a bias.
    pub fn linear(&mut self, name: &str, in_f: i64, out_f: i64) -> Linear {
        let index = self.masked.len();
        self.masked.push(conv::linear_weight(
            name,
            in_f,
            out_f,
            self.init,
            self.device,
        ));
        let t = conv::bias(name, out_f, in_f, self.init, self.device);
        let bias = t.shallow_clone();
        self.params.push(Param {
            name: format!("{name}.bias"),
            t,
        });
        Linear { index, bias }
    }

    /// A BatchNorm layer over `channels` channels.
    pub fn bn(&mut self, name: &str, channels: i64) -> BatchNorm2d {
        let (layer, params) = BatchNorm2d::new(name, channels, self.device);
        self.params.extend(params);
        layer
    }

    /// The finished network.
    pub fn finish(self, arch: &str, input: [i64; 3], classes: i64, body: Box<dyn Body>) -> ConvNet {
        ConvNet {
            arch: arch.to_string(),
            input,
            classes,
            masked: self.masked,
            params: self.params,
            body,
        }
    }
}

/// A convolutional network: its masked weights, free parameters and wiring.
pub struct ConvNet {
    arch: String,
    input: [i64; 3],
    classes: i64,
    masked: Vec<MaskedWeight>,
    params: Vec<Param>,
    body: Box<dyn Body>,
}

impl Network for ConvNet {
    fn arch(&self) -> &str {
        &self.arch
    }

    fn input_shape(&self) -> [i64; 3] {
        self.input
    }

    fn classes(&self) -> i64 {
        self.classes
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
        self.body.buffers()
    }

    fn forward_with(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor {
        self.body.forward(x, eff, train)
    }

    /// The wiring of [`Body::export`] with effective weights, masks, and every BatchNorm folded
    /// into its conv; `None` when the body has no export wiring or a BatchNorm does not fold
    /// (a non-finite `γ / √(var + ε)`).
    fn export_layers(&self) -> Option<Vec<(LayerSpec, LayerTensors)>> {
        let mut e = Exporter::new(&self.masked);
        self.body.export(&mut e).ok()?;
        Some(e.finish())
    }
}

/// 2×2 max-pooling with stride 2 (floor).
pub(crate) fn max_pool2(x: &Tensor) -> Tensor {
    x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)
}

/// Global average pooling to B×C.
pub(crate) fn global_avg_pool(x: &Tensor) -> Tensor {
    x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

/// The one-line error of an input too small for a model.
pub(crate) fn too_small(arch: &str, input: [i64; 3], need: i64) -> EngineError {
    EngineError::Model(format!(
        "model {arch} needs images of at least {need}x{need} pixels, but the data is {}x{}: pick a model for this dataset (`hyperflux models`)",
        input[1], input[2]
    ))
}
