//! Masked multi-layer perceptrons (LeNet-300-100): linear layers with ReLU, with a hand-written
//! backward pass that skips autograd's bookkeeping. Verified against autograd in the tests.

use crate::loss;
use crate::masked::MaskedWeight;
use crate::network::{Grads, Network, Param};
use tch::{Device, Kind, Tensor};

/// A masked MLP: `in → hidden… → classes`, ReLU between layers, biases everywhere.
pub struct Mlp {
    arch: String,
    input: [i64; 3],
    classes: i64,
    masked: Vec<MaskedWeight>,
    params: Vec<Param>,
}

impl Mlp {
    /// A fresh MLP with PyTorch's default `nn.Linear` initialisation (U(±1/√fan_in) for weight
    /// and bias) and masks uniform in `mask_init`. Call `tch::manual_seed` first for determinism.
    pub fn new(
        arch: &str,
        input: [i64; 3],
        hidden: &[i64],
        classes: i64,
        mask_init: (f64, f64),
        device: Device,
    ) -> Self {
        let mut sizes = vec![input.iter().product::<i64>()];
        sizes.extend_from_slice(hidden);
        sizes.push(classes);
        let mut masked = Vec::new();
        let mut params = Vec::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let name = format!("fc{}", i + 1);
            let w = Tensor::empty([fan_out, fan_in], (Kind::Float, device)).uniform_(-bound, bound);
            let b = Tensor::empty([fan_out], (Kind::Float, device))
                .uniform_(-bound, bound)
                .set_requires_grad(true);
            masked.push(MaskedWeight::new(&name, w, mask_init.0, mask_init.1));
            params.push(Param {
                name: format!("{name}.bias"),
                t: b,
            });
        }
        Self {
            arch: arch.to_string(),
            input,
            classes,
            masked,
            params,
        }
    }
}

impl Network for Mlp {
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

    fn forward_with(&self, x: &Tensor, eff: &[Tensor], _train: bool) -> Tensor {
        let b = x.size()[0];
        let mut h = x.view([b, -1]);
        let last = eff.len() - 1;
        for (i, (w, p)) in eff.iter().zip(&self.params).enumerate() {
            h = p.t.addmm(&h, &w.tr());
            if i != last {
                h = h.relu();
            }
        }
        h
    }

    fn data_grads(&self, x: &Tensor, y: &Tensor, smoothing: f64) -> Grads {
        tch::no_grad(|| {
            let b = x.size()[0];
            let eff: Vec<Tensor> = self.masked.iter().map(|m| m.effective()).collect();
            let last = eff.len() - 1;
            // Forward, keeping each layer's input (post-ReLU activations).
            let mut inputs = vec![x.view([b, -1])];
            for (i, (w, p)) in eff.iter().zip(&self.params).enumerate() {
                let h = inputs.last().expect("input");
                let mut z = p.t.addmm(h, &w.tr());
                if i != last {
                    let _ = z.relu_();
                }
                inputs.push(z);
            }
            let logits = inputs.pop().expect("logits");
            let (loss, mut dz) = loss::cross_entropy_with_grad(&logits, y, smoothing);
            let correct = loss::correct(&logits, y);
            // Backward.
            let mut gw: Vec<Tensor> = (0..eff.len()).map(|_| Tensor::new()).collect();
            let mut gb: Vec<Tensor> = (0..eff.len()).map(|_| Tensor::new()).collect();
            for i in (0..eff.len()).rev() {
                gw[i] = dz.tr().mm(&inputs[i]);
                gb[i] = dz.sum_dim_intlist(0, false, Kind::Float);
                if i > 0 {
                    let da = dz.mm(&eff[i]);
                    dz = inputs[i].threshold_backward(&da, 0.0);
                }
            }
            Grads {
                loss: loss.double_value(&[]),
                correct,
                masked: gw,
                params: gb,
            }
        })
    }
}
