//! The Hyperflux gradients: straight-through mask gradient, hand-written MLP backward vs
//! autograd, fused CPU update vs the tensor-op update.

mod common;

use hf_core::update::{MaskStep, OptimKind, StepHyper};
use hf_engine::init::Init;
use hf_engine::mlp::Mlp;
use hf_engine::network::{autograd_grads, Network};
use hf_engine::optim;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use tch::{Device, Kind, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Builds ŵ = w ⊙ H(m) with the straight-through trick through autograd and checks that the
/// mask gradient the engine applies equals s · w ⊙ upstream, with no data gradient on pruned
/// weights.
#[test]
fn ste_mask_gradient_is_scaled_w_times_upstream() {
    let w = Tensor::from_slice(&[0.5f32, -2.0, 1.5, 3.0]).view([2, 2]);
    let m = Tensor::from_slice(&[0.3f32, -0.1, 0.2, -0.4]).view([2, 2]);
    let upstream = Tensor::from_slice(&[1.0f32, 2.0, -3.0, 0.5]).view([2, 2]);
    // SGD, lr 1, no momentum: the parameter change equals minus the gradient.
    let h = StepHyper {
        kind: OptimKind::Sgd { momentum: 0.0 },
        lr: 1.0,
        weight_decay: 0.0,
        step: 1,
    };
    let ms = MaskStep {
        ste_scale: 0.25,
        pressure_grad: 0.0,
        train_masks: true,
    };
    for fused in [true, false] {
        let (w2, m2) = (w.copy(), m.copy());
        let wst = [
            w.zeros_like(),
            Tensor::zeros([0], (Kind::Float, Device::Cpu)),
        ];
        let mst = [
            w.zeros_like(),
            Tensor::zeros([0], (Kind::Float, Device::Cpu)),
        ];
        let flux = w.zeros_like();
        if fused {
            optim::masked_step(&w2, &m2, &upstream, &wst, &mst, &h, &h, &ms, Some(&flux));
        } else {
            optim::masked_step_tensor(&w2, &m2, &upstream, &wst, &mst, &h, &h, &ms, Some(&flux));
        }
        let mask_grad = &m - &m2;
        let want = &w * &upstream * 0.25;
        assert!(max_abs_diff(&mask_grad, &want) < 1e-6, "fused={fused}");
        let weight_grad = &w - &w2;
        let gate = m.ge(0.0).to_kind(Kind::Float);
        assert!(max_abs_diff(&weight_grad, &(&upstream * &gate)) < 1e-6);
        assert!(max_abs_diff(&flux, &(-(&w * &upstream))) < 1e-6);
    }
}

#[test]
fn hand_written_mlp_backward_matches_autograd() {
    let init = Init::new(3, (-0.3, 0.5));
    let net = Mlp::new("t", [1, 6, 6], &[20, 12], 5, init, Device::Cpu);
    let x = common::randn(3, &[16, 1, 6, 6]);
    let y = common::randint(3, 5, 16);
    let fast = net.data_grads(&x, &y, 0.1);
    let slow = autograd_grads(&net, &x, &y, 0.1);
    assert!(
        (fast.loss - slow.loss).abs() < 1e-5,
        "{} vs {}",
        fast.loss,
        slow.loss
    );
    assert_eq!(fast.correct, slow.correct);
    for (a, b) in fast.masked.iter().zip(&slow.masked) {
        assert!(max_abs_diff(a, b) < 1e-5);
        assert!(b.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
    for (a, b) in fast.params.iter().zip(&slow.params) {
        assert!(max_abs_diff(a, b) < 1e-5);
    }
    // Some masks start negative: those weights are absent from the forward pass.
    assert!(net.masked()[0].density() < 100.0);
}

#[test]
fn sparse_and_dense_mlp_paths_match_autograd_at_low_density() {
    // Masks in [-0.9, 0.1]: about 10% of the weights present.
    let init = Init::new(4, (-0.9, 0.1));
    let mut net = Mlp::new("t", [1, 8, 8], &[40, 30], 7, init, Device::Cpu);
    let x = common::randn(4, &[24, 1, 8, 8]);
    let y = common::randint(4, 7, 24);
    let slow = autograd_grads(&net, &x, &y, 0.1);
    for threshold in [0.0, 2.0] {
        net.set_sparse_below(threshold);
        // Twice: the first call measures density, the second uses the chosen path.
        for _ in 0..2 {
            let fast = net.data_grads(&x, &y, 0.1);
            assert!(
                (fast.loss - slow.loss).abs() < 1e-5,
                "threshold {threshold}"
            );
            for (a, b) in fast.masked.iter().zip(&slow.masked) {
                assert!(max_abs_diff(a, b) < 1e-5, "threshold {threshold}");
            }
            for (a, b) in fast.params.iter().zip(&slow.params) {
                assert!(max_abs_diff(a, b) < 1e-5, "threshold {threshold}");
            }
        }
    }
    let d = net.masked()[0].density();
    assert!(d > 2.0 && d < 25.0, "density {d}");
}

#[test]
fn fused_and_tensor_adam_agree_over_steps() {
    let make = || {
        Mlp::new(
            "t",
            [1, 4, 4],
            &[200],
            3,
            Init::new(5, (-0.2, 0.5)),
            Device::Cpu,
        )
    };
    let x = common::randn(5, &[8, 1, 4, 4]);
    let y = common::randint(5, 3, 8);
    let mut a = make();
    let mut b = make();
    let mut oa = HyperfluxOptim::new(&a, OptimKind::adam(), 1e-4, 0.25);
    let ob = HyperfluxOptim::new(&b, OptimKind::adam(), 1e-4, 0.25);
    let s = StepSettings {
        weight_lr: 1e-2,
        mask_lr: 1e-2,
        pressure: 2.0,
        train_masks: true,
    };
    let mut ob = ob;
    for _ in 0..5 {
        oa.step(&mut a, &x, &y, 0.1, &s, None);
        // b: the tensor-op path, driven by hand.
        let g = b.data_grads(&x, &y, 0.1);
        ob.weights.step += 1;
        ob.masks.step += 1;
        let wh = ob.weights.hyper(s.weight_lr);
        let mh = ob.masks.hyper(s.mask_lr);
        let ms = MaskStep {
            ste_scale: 0.25,
            pressure_grad: s.pressure / b.prunable() as f64,
            train_masks: true,
        };
        let n = b.masked().len();
        for (i, mw) in b.masked().iter().enumerate() {
            optim::masked_step_tensor(
                &mw.w,
                &mw.m,
                &g.masked[i],
                &ob.weights.states[i],
                &ob.masks.states[i],
                &wh,
                &mh,
                &ms,
                None,
            );
        }
        for (j, p) in b.params().iter().enumerate() {
            optim::step_tensor(&p.t, &g.params[j], &ob.weights.states[n + j], &wh);
        }
    }
    for (ma, mb) in a.masked().iter().zip(b.masked()) {
        assert!(max_abs_diff(&ma.w, &mb.w) < 1e-5);
        assert!(max_abs_diff(&ma.m, &mb.m) < 1e-5);
    }
    let _ = &mut b;
}

#[test]
fn pressure_alone_lowers_every_mask_equally() {
    let mut net = Mlp::new(
        "t",
        [1, 2, 2],
        &[3],
        2,
        Init::new(9, (0.2, 0.5)),
        Device::Cpu,
    );
    // Zero all weights: the data gradient of every mask (s·w·G) vanishes.
    for mw in net.masked() {
        let mut w = mw.w.shallow_clone();
        let _ = w.zero_();
    }
    let before: Vec<Tensor> = net.masked().iter().map(|m| m.m.copy()).collect();
    let sgd = OptimKind::Sgd { momentum: 0.0 };
    let mut opt = HyperfluxOptim::new(&net, sgd, 0.0, 0.25);
    opt.masks.kind = sgd;
    let x = common::randn(9, &[4, 1, 2, 2]);
    let y = Tensor::from_slice(&[0i64, 1, 0, 1]);
    let n = net.prunable() as f64;
    let s = StepSettings {
        weight_lr: 0.0,
        mask_lr: 1.0,
        pressure: 3.0,
        train_masks: true,
    };
    opt.step(&mut net, &x, &y, 0.0, &s, None);
    for (b, mw) in before.iter().zip(net.masked()) {
        let d = b - &mw.m;
        assert!(max_abs_diff(&d, &d.full_like(3.0 / n)) < 1e-6);
    }
}
