//! Masked multi-layer perceptrons (LeNet-300-100): linear layers with ReLU, with a hand-written
//! backward pass that skips autograd's bookkeeping. Verified against autograd in the tests.

use crate::conv;
use crate::init::Init;
use crate::loss;
use crate::masked::MaskedWeight;
use crate::network::{Grads, Network, Param};
use crate::optim;
use hf_core::masked_csr::{self, MaskedCsr};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// Layers sparser than this (fraction of weights present) use the CSR kernels for the forward
/// and input-gradient products on CPU; denser ones use libtorch's dense GEMM.
pub const SPARSE_BELOW: f64 = 0.2;

/// A masked MLP: `in → hidden… → classes`, ReLU between layers, biases everywhere.
pub struct Mlp {
    arch: String,
    input: [i64; 3],
    classes: i64,
    masked: Vec<MaskedWeight>,
    params: Vec<Param>,
    sparse_below: f64,
    /// Per layer: the CSR of the effective weight (rebuilt every sparse step, buffers reused)
    /// and the density seen at the last step (decides sparse or dense for the next).
    cache: Mutex<Vec<(MaskedCsr, f64)>>,
}

impl Mlp {
    /// A fresh MLP with PyTorch's default `nn.Linear` initialisation (U(±1/√fan_in) for weight
    /// and bias) and masks uniform in `init.mask`, all drawn from `init`'s seed (layers `fc1`,
    /// `fc2`, …: see [`crate::init`]), so the same `init` gives the same network.
    pub fn new(
        arch: &str,
        input: [i64; 3],
        hidden: &[i64],
        classes: i64,
        init: Init,
        device: Device,
    ) -> Self {
        let mut sizes = vec![input.iter().product::<i64>()];
        sizes.extend_from_slice(hidden);
        sizes.push(classes);
        let mut masked = Vec::new();
        let mut params = Vec::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let name = format!("fc{}", i + 1);
            masked.push(conv::linear_weight(&name, fan_in, fan_out, init, device));
            let b = conv::bias(&name, fan_out, fan_in, init, device);
            params.push(Param {
                name: format!("{name}.bias"),
                t: b,
            });
        }
        let cache = Mutex::new(masked.iter().map(|_| (MaskedCsr::default(), 1.0)).collect());
        Self {
            arch: arch.to_string(),
            input,
            classes,
            masked,
            params,
            sparse_below: SPARSE_BELOW,
            cache,
        }
    }

    /// Sets the density below which a layer uses the sparse kernels (0: never; > 1: always).
    pub fn set_sparse_below(&mut self, fraction: f64) {
        self.sparse_below = fraction;
    }

    /// The hand-written forward and backward in feature-major layout (`features × batch`):
    /// sparse layers use [`MaskedCsr`], dense ones libtorch GEMMs; weight gradients are dense.
    fn grads_feature_major(&self, x: &Tensor, y: &Tensor, smoothing: f64) -> Grads {
        let b = x.size()[0];
        let n = self.masked.len();
        let cpu = x.device() == Device::Cpu;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Per layer: Some(dense effective weight) or None (CSR in the cache).
        let mut eff: Vec<Option<Tensor>> = Vec::with_capacity(n);
        for (i, mw) in self.masked.iter().enumerate() {
            let rows = mw.w.size()[0] as usize;
            let cols = mw.w.size()[1] as usize;
            let (csr, dens) = &mut cache[i];
            if cpu && *dens < self.sparse_below && optim::cpu_f32(&[&mw.w, &mw.m]) {
                // SAFETY: read-only views of contiguous CPU f32 tensors not written meanwhile.
                let (w, m) = unsafe { (optim::slice_mut(&mw.w), optim::slice_mut(&mw.m)) };
                csr.rebuild(w, m, rows, cols);
                *dens = csr.nnz() as f64 / (rows * cols) as f64;
                eff.push(None);
            } else if cpu && optim::cpu_f32(&[&mw.w, &mw.m]) {
                let e = Tensor::empty([rows as i64, cols as i64], (Kind::Float, Device::Cpu));
                // SAFETY: w and m only read; e is a fresh contiguous tensor.
                let present = unsafe {
                    masked_csr::gate_into(
                        optim::slice_mut(&mw.w),
                        optim::slice_mut(&mw.m),
                        optim::slice_mut(&e),
                    )
                };
                *dens = present as f64 / (rows * cols) as f64;
                eff.push(Some(e));
            } else {
                let gate = mw.m.ge(0.0);
                *dens = gate.sum(Kind::Int64).int64_value(&[]) as f64 / (rows * cols) as f64;
                eff.push(Some(&mw.w * gate.to_kind(Kind::Float)));
            }
        }
        // Forward: hs[l] is the (features × batch) input of layer l.
        let mut hs = vec![x.view([b, -1]).tr().contiguous()];
        for (i, p) in self.params.iter().enumerate() {
            let relu = i + 1 != n;
            let h = hs.last().expect("input");
            let z = match &eff[i] {
                Some(w) => {
                    let mut z = p.t.unsqueeze(1).addmm(w, h);
                    if relu {
                        let _ = z.relu_();
                    }
                    z
                }
                None => {
                    let csr = &cache[i].0;
                    let z = Tensor::empty([csr.rows as i64, b], (Kind::Float, Device::Cpu));
                    let bias = p.t.contiguous();
                    // SAFETY: fresh contiguous tensors; `h` and `bias` only read.
                    unsafe {
                        csr.forward(
                            optim::slice_mut(h),
                            b as usize,
                            optim::slice_mut(&bias),
                            relu,
                            optim::slice_mut(&z),
                        )
                    };
                    z
                }
            };
            hs.push(z);
        }
        let logits = hs.pop().expect("logits").tr();
        let (loss, dz) = loss::cross_entropy_with_grad(&logits, y, smoothing);
        let correct = loss::correct(&logits, y);
        let mut dzt = dz.tr().contiguous();
        let mut gw: Vec<Tensor> = (0..n).map(|_| Tensor::new()).collect();
        let mut gb: Vec<Tensor> = (0..n).map(|_| Tensor::new()).collect();
        for i in (0..n).rev() {
            gw[i] = dzt.mm(&hs[i].tr());
            gb[i] = dzt.sum_dim_intlist(1, false, Kind::Float);
            if i > 0 {
                let dh = match &eff[i] {
                    Some(w) => w.tr().mm(&dzt),
                    None => {
                        let csr = &cache[i].0;
                        let dh = Tensor::empty([csr.cols as i64, b], (Kind::Float, Device::Cpu));
                        // SAFETY: fresh contiguous tensors; `dzt` only read.
                        unsafe {
                            csr.backward_input(
                                optim::slice_mut(&dzt),
                                b as usize,
                                optim::slice_mut(&dh),
                            )
                        };
                        dh
                    }
                };
                dzt = hs[i].threshold_backward(&dh, 0.0);
            }
        }
        Grads {
            loss: loss.double_value(&[]),
            correct,
            masked: gw,
            params: gb,
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

    /// The density each layer saw at the last step: it decides sparse or dense kernels for the
    /// next step, and the two sum in different orders.
    fn kernel_state(&self) -> Vec<f64> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.iter().map(|(_, d)| *d).collect()
    }

    fn set_kernel_state(&self, state: &[f64]) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if state.len() == cache.len() {
            for ((_, d), s) in cache.iter_mut().zip(state) {
                *d = *s;
            }
        }
    }

    fn data_grads(&self, x: &Tensor, y: &Tensor, smoothing: f64) -> Grads {
        tch::no_grad(|| self.grads_feature_major(x, y, smoothing))
    }

    fn export_layers(&self) -> Option<Vec<(hf_sparse::LayerSpec, hf_sparse::LayerTensors)>> {
        let n = self.masked.len();
        Some(
            self.masked
                .iter()
                .zip(&self.params)
                .enumerate()
                .map(|(i, (mw, b))| {
                    let size = mw.w.size();
                    let spec = hf_sparse::LayerSpec::Linear {
                        name: mw.name.clone(),
                        in_features: size[1] as usize,
                        out_features: size[0] as usize,
                        bias: true,
                        activation: if i + 1 == n {
                            hf_sparse::Activation::None
                        } else {
                            hf_sparse::Activation::Relu
                        },
                        input: None,
                    };
                    let t = hf_sparse::LayerTensors {
                        weight: crate::network::to_vec_f32(&mw.effective()),
                        bias: Some(crate::network::to_vec_f32(&b.t)),
                        mask: crate::network::to_vec_f32(&mw.m),
                    };
                    (spec, t)
                })
                .collect(),
        )
    }
}
