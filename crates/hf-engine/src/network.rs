//! The network abstraction: a model is a set of masked weights plus free parameters (biases,
//! normalisation) with a forward pass that takes the effective weights explicitly. That one
//! signature gives every model the Hyperflux gradients through autograd; a model may override
//! [`Network::data_grads`] with a faster hand-written backward (the MLP does).

use crate::init::Init;
use crate::loss;
use crate::masked::MaskedWeight;
use crate::EngineError;
use tch::{Device, Kind, Tensor};

/// A trainable parameter that is never pruned (bias, normalisation scale or shift).
#[derive(Debug)]
pub struct Param {
    /// Conventional name, e.g. `fc1.bias`.
    pub name: String,
    /// The tensor (requires grad).
    pub t: Tensor,
}

/// Gradients of the data loss for one batch.
pub struct Grads {
    /// Mean data loss of the batch.
    pub loss: f64,
    /// Correctly classified examples of the batch.
    pub correct: i64,
    /// `∂L/∂ŵ` per masked tensor, in [`Network::masked`] order.
    pub masked: Vec<Tensor>,
    /// Gradients of the free parameters, in [`Network::params`] order.
    pub params: Vec<Tensor>,
}

/// A prunable network.
pub trait Network: Send {
    /// Architecture name (e.g. `lenet300`).
    fn arch(&self) -> &str;
    /// Input shape of one example (C, H, W).
    fn input_shape(&self) -> [i64; 3];
    /// Number of classes.
    fn classes(&self) -> i64;
    /// The masked weights, in a fixed order.
    fn masked(&self) -> &[MaskedWeight];
    /// Mutable masked weights.
    fn masked_mut(&mut self) -> &mut [MaskedWeight];
    /// Free parameters, in a fixed order.
    fn params(&self) -> &[Param];
    /// Non-trainable state saved in checkpoints (e.g. BatchNorm running statistics).
    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
    /// Logits for a batch `x` (B×C×H×W) computed with the given effective weights.
    fn forward_with(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor;

    /// Logits with the current masks, without gradients (evaluation).
    fn forward(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let eff: Vec<Tensor> = self.masked().iter().map(|m| m.effective()).collect();
            self.forward_with(x, &eff, false)
        })
    }

    /// Data-loss gradients w.r.t. the effective weights and the free parameters.
    fn data_grads(&self, x: &Tensor, y: &Tensor, smoothing: f64) -> Grads {
        autograd_grads(self, x, y, smoothing)
    }

    /// The network as layers of the pure-Rust runtime (`hf-sparse`): effective weights, biases
    /// and masks. `None` where the runtime cannot run this architecture.
    fn export_layers(&self) -> Option<Vec<(hf_sparse::LayerSpec, hf_sparse::LayerTensors)>> {
        None
    }

    /// Whether the network takes examples of shape `shape` (C, H, W) from a dataset. An
    /// imported network with a flat input takes any shape of the same size.
    fn accepts_input(&self, shape: [i64; 3]) -> bool {
        self.input_shape() == shape
    }

    /// The layer graph as JSON for imported networks (stored in checkpoints so they can be
    /// rebuilt without the ONNX file); `None` for the built-in architectures.
    fn graph_json(&self) -> Option<String> {
        None
    }

    /// Why [`Network::export_layers`] gives `None`, when the network can say.
    fn export_error(&self) -> Option<String> {
        None
    }

    /// Total number of prunable weights N.
    fn prunable(&self) -> usize {
        self.masked().iter().map(|m| m.numel()).sum()
    }

    /// State outside the tensors that decides how the next step computes (e.g. which layers
    /// take the sparse kernels), so a resumed run computes exactly as an uninterrupted one:
    /// saved in checkpoints with the run state. Empty for models without such state.
    fn kernel_state(&self) -> Vec<f64> {
        Vec::new()
    }

    /// Restores what [`Network::kernel_state`] returned (ignored when the lengths differ).
    fn set_kernel_state(&self, _state: &[f64]) {}
}

/// Computes [`Grads`] through autograd: effective weights become fresh leaves, so their
/// gradient is exactly `∂L/∂ŵ`; the straight-through step is applied by the caller.
pub fn autograd_grads<N: Network + ?Sized>(
    net: &N,
    x: &Tensor,
    y: &Tensor,
    smoothing: f64,
) -> Grads {
    let eff: Vec<Tensor> = net
        .masked()
        .iter()
        .map(|m| m.effective().detach().set_requires_grad(true))
        .collect();
    for p in net.params() {
        let mut g = p.t.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let logits = net.forward_with(x, &eff, true);
    let loss = loss::cross_entropy(&logits, y, smoothing);
    loss.backward();
    let correct = loss::correct(&logits.detach(), y);
    let params = net
        .params()
        .iter()
        .map(|p| {
            let g = p.t.grad();
            if g.defined() {
                g
            } else {
                p.t.zeros_like()
            }
        })
        .collect();
    Grads {
        loss: loss.double_value(&[]),
        correct,
        masked: eff.iter().map(|e| e.grad()).collect(),
        params,
    }
}

/// Test accuracy (percent) and mean loss of `net` over `(x, y)` chunks.
pub fn evaluate<N: Network + ?Sized>(
    net: &N,
    batches: impl Iterator<Item = (Tensor, Tensor)>,
    smoothing: f64,
) -> (f64, f64) {
    let mut correct = 0i64;
    let mut total = 0i64;
    let mut loss_sum = 0.0;
    for (x, y) in batches {
        let logits = net.forward(&x);
        correct += loss::correct(&logits, &y);
        loss_sum += tch::no_grad(|| loss::cross_entropy(&logits, &y, smoothing)).double_value(&[])
            * y.size()[0] as f64;
        total += y.size()[0];
    }
    if total == 0 {
        return (0.0, 0.0);
    }
    (
        100.0 * correct as f64 / total as f64,
        loss_sum / total as f64,
    )
}

/// Builds the network a run starts from.
///
/// - `source` is a checkpoint (resume, or `--from`) holding an imported graph (metadata key
///   `graph`): that graph is rebuilt (its tensors are restored by the caller).
/// - `model` is `onnx:PATH`: the ONNX file is imported and the network starts from its weights.
/// - otherwise `model` names a built-in architecture ([`crate::models::build`]).
///
/// Whatever is not restored or imported starts from `init` (the run's seed and mask range).
pub fn build_for(
    model: &str,
    source: Option<&crate::checkpoint::Checkpoint>,
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    if let Some(ck) = source {
        if let Some(net) = from_checkpoint_graph(ck, init, device)? {
            return Ok(net);
        }
    }
    if let Some(path) = model.strip_prefix(crate::models::graph::ARCH_PREFIX) {
        let imported = hf_onnx::read::import_file(std::path::Path::new(path))
            .map_err(|e| EngineError::Model(format!("cannot import ONNX: {e}")))?;
        return Ok(Box::new(crate::models::graph::GraphNet::new(
            imported.spec,
            Some(&imported.tensors),
            init,
            device,
        )?));
    }
    crate::models::build(model, input, classes, init, device)
}

/// The imported network a checkpoint describes (without its tensors), or `None` when the
/// checkpoint holds a built-in architecture.
pub fn from_checkpoint_graph(
    ck: &crate::checkpoint::Checkpoint,
    init: Init,
    device: Device,
) -> Result<Option<Box<dyn Network>>, EngineError> {
    if !ck.meta.contains_key("graph") {
        return Ok(None);
    }
    let spec: hf_onnx::graph::GraphSpec = ck.meta_json("graph")?;
    Ok(Some(Box::new(crate::models::graph::GraphNet::new(
        spec, None, init, device,
    )?)))
}

/// Copies a tensor's values into a Vec (CPU float).
pub fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let mut out = vec![0f32; t.numel()];
    t.copy_data(&mut out, t.numel());
    out
}
