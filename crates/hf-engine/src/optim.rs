//! Optimizer state held as tensors (so checkpoints can save it), and the update kernels: the fused
//! pure-Rust pass of `hf_core::update` on CPU, and an equivalent chain of tensor ops elsewhere
//! (CUDA). Both follow PyTorch's Adam and SGD semantics.

use hf_core::update::{self, MaskStep, OptimKind, StateMut, StepHyper};
use tch::{Device, Kind, Tensor};

/// Optimizer state of a group of parameters.
#[derive(Debug)]
pub struct OptGroup {
    /// Optimizer kind and hyper-parameters.
    pub kind: OptimKind,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Steps taken so far.
    pub step: u64,
    /// Per parameter: `[s0, s1]` (Adam: exp_avg, exp_avg_sq; SGD: momentum buffer, unused).
    pub states: Vec<[Tensor; 2]>,
}

impl OptGroup {
    /// Zero state for parameters shaped like `like`.
    pub fn new(kind: OptimKind, weight_decay: f64, like: &[&Tensor]) -> Self {
        let states = like
            .iter()
            .map(|t| {
                let s1 = if kind.state_len() == 2 {
                    t.zeros_like()
                } else {
                    Tensor::zeros([0], (Kind::Float, t.device()))
                };
                [t.zeros_like(), s1]
            })
            .collect();
        Self {
            kind,
            weight_decay,
            step: 0,
            states,
        }
    }

    /// Hyper-parameters of the current step at learning rate `lr`.
    pub fn hyper(&self, lr: f64) -> StepHyper {
        StepHyper {
            kind: self.kind,
            lr,
            weight_decay: self.weight_decay,
            step: self.step,
        }
    }
}

/// Whether the fused CPU kernel can run on these tensors.
pub fn cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| {
        !t.defined() || (t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous())
    })
}

/// A mutable view of a contiguous CPU f32 tensor's data.
///
/// # Safety
/// The caller must not create two live views of the same tensor, and the tensor must be a
/// contiguous CPU f32 tensor (checked by [`cpu_f32`]).
#[allow(clippy::mut_from_ref)] // the tensor's storage is shared by design; see Safety
pub unsafe fn slice_mut(t: &Tensor) -> &mut [f32] {
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, n)
}

/// Plain optimizer step on one parameter tensor (tensor ops; any device).
pub fn step_tensor(p: &Tensor, g: &Tensor, st: &[Tensor; 2], h: &StepHyper) {
    tch::no_grad(|| {
        let mut p = p.shallow_clone();
        let g = if h.weight_decay != 0.0 {
            g + &p * h.weight_decay
        } else {
            g.shallow_clone()
        };
        match h.kind {
            OptimKind::Adam { beta1, beta2, eps } => {
                let t = h.step.max(1) as i32;
                let bc1 = 1.0 - beta1.powi(t);
                let bc2 = 1.0 - beta2.powi(t);
                let mut s0 = st[0].shallow_clone();
                let mut s1 = st[1].shallow_clone();
                let _ = s0.lerp_(&g, 1.0 - beta1);
                let _ = s1.g_mul_scalar_(beta2);
                let _ = s1.addcmul_(&(&g * (1.0 - beta2)), &g);
                let denom = s1.sqrt() / bc2.sqrt() + eps;
                let _ = p.g_sub_(&(&s0 / denom * (h.lr / bc1)));
            }
            OptimKind::Sgd { momentum } => {
                if momentum != 0.0 {
                    let mut b = st[0].shallow_clone();
                    if h.step <= 1 {
                        b.copy_(&g);
                    } else {
                        let _ = b.g_mul_scalar_(momentum);
                        let _ = b.g_add_(&g);
                    }
                    let _ = p.g_sub_(&(&b * h.lr));
                } else {
                    let _ = p.g_sub_(&(&g * h.lr));
                }
            }
        }
    })
}

/// Plain optimizer step, choosing the fused CPU kernel when possible.
pub fn step_param(p: &Tensor, g: &Tensor, st: &[Tensor; 2], h: &StepHyper) {
    let g = g.contiguous();
    if cpu_f32(&[p, &g, &st[0], &st[1]]) {
        // SAFETY: distinct tensors, checked contiguous CPU f32.
        unsafe {
            update::optim_step(
                slice_mut(p),
                slice_mut(&g),
                StateMut {
                    s0: slice_mut(&st[0]),
                    s1: slice_mut(&st[1]),
                },
                h,
            )
        }
    } else {
        step_tensor(p, &g, st, h)
    }
}

/// The Hyperflux update of one masked tensor with tensor ops (any device): identical maths to
/// `hf_core::update::masked_step`.
#[allow(clippy::too_many_arguments)]
pub fn masked_step_tensor(
    w: &Tensor,
    m: &Tensor,
    g: &Tensor,
    wst: &[Tensor; 2],
    mst: &[Tensor; 2],
    wh: &StepHyper,
    mh: &StepHyper,
    ms: &MaskStep,
    flux: Option<&Tensor>,
) {
    tch::no_grad(|| {
        let gate = m.ge(0.0).to_kind(Kind::Float);
        if let Some(f) = flux {
            let mut f = f.shallow_clone();
            let _ = f.g_sub_(&(w * g));
        }
        if ms.train_masks {
            let gm = w * g * ms.ste_scale + ms.pressure_grad;
            step_tensor(m, &gm, mst, mh);
        }
        step_tensor(w, &(g * gate), wst, wh);
    })
}

/// The Hyperflux update of one masked tensor, choosing the fused CPU kernel when possible.
#[allow(clippy::too_many_arguments)]
pub fn masked_step(
    w: &Tensor,
    m: &Tensor,
    g: &Tensor,
    wst: &[Tensor; 2],
    mst: &[Tensor; 2],
    wh: &StepHyper,
    mh: &StepHyper,
    ms: &MaskStep,
    flux: Option<&Tensor>,
) {
    let g = g.contiguous();
    let fl = flux.map(|f| f.shallow_clone()).unwrap_or_default();
    if cpu_f32(&[w, m, &g, &wst[0], &wst[1], &mst[0], &mst[1], &fl]) {
        // SAFETY: all distinct tensors, checked contiguous CPU f32.
        unsafe {
            update::masked_step(
                slice_mut(w),
                slice_mut(m),
                slice_mut(&g),
                StateMut {
                    s0: slice_mut(&wst[0]),
                    s1: slice_mut(&wst[1]),
                },
                StateMut {
                    s0: slice_mut(&mst[0]),
                    s1: slice_mut(&mst[1]),
                },
                wh,
                mh,
                ms,
                flux.map(|f| slice_mut(f)),
            )
        }
    } else {
        masked_step_tensor(w, m, &g, wst, mst, wh, mh, ms, flux)
    }
}
