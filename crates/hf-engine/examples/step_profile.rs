//! Where the time of one Hyperflux step on LeNet-300-100 (batch 128) goes, at a given density:
//! `cargo run --release -p hf-engine --example step_profile -- 2`.
use hf_core::masked_csr::MaskedCsr;
use hf_core::update::OptimKind;
use hf_engine::init::Init;
use hf_engine::mlp::Mlp;
use hf_engine::network::Network;
use hf_engine::optim;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn time<F: FnMut()>(name: &str, reps: usize, mut f: F) {
    for _ in 0..reps / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    println!(
        "{name:<28} {:>8.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / reps as f64
    );
}

fn main() {
    let density: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    hf_engine::device::set_threads(threads);
    let mut net = Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        10,
        Init::new(0, (0.2, 0.5)),
        Device::Cpu,
    );
    // The random densities and the batch below still come from libtorch's generator.
    tch::manual_seed(0);
    for mw in net.masked_mut() {
        let keep = Tensor::rand(mw.m.size(), (Kind::Float, Device::Cpu)).lt(density / 100.0);
        mw.m = mw.m.where_scalarother(&keep, -0.3);
    }
    let x = Tensor::randn([128, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [128], (Kind::Int64, Device::Cpu));
    let mut opt = HyperfluxOptim::new(&net, OptimKind::adam(), 0.0, 0.25);
    let s = StepSettings {
        weight_lr: 1e-3,
        mask_lr: 1e-3,
        pressure: 0.5,
        train_masks: true,
    };
    println!("density {density}%, {} threads", tch::get_num_threads());
    time("full step", 300, || {
        opt.step(&mut net, &x, &y, 0.1, &s, None);
    });
    time("data_grads (fwd+bwd)", 300, || {
        let _ = net.data_grads(&x, &y, 0.1);
    });
    let g = net.data_grads(&x, &y, 0.1);
    time("apply (both optimizers)", 300, || {
        opt.apply(&mut net, &g, &s, None)
    });
    let w = &net.masked()[0];
    let mut csr = MaskedCsr::default();
    let (ws, ms) = unsafe { (optim::slice_mut(&w.w), optim::slice_mut(&w.m)) };
    time("csr rebuild fc1", 300, || csr.rebuild(ws, ms, 300, 784));
    let xt = x.view([128, -1]).tr().contiguous();
    let dz = Tensor::randn([300, 128], (Kind::Float, Device::Cpu));
    time("wgrad fc1 (dense GEMM)", 300, || {
        let _ = dz.mm(&xt.tr());
    });
    let eff = w.effective();
    time("fwd fc1 dense GEMM", 300, || {
        let _ = eff.mm(&xt);
    });
    let mut out = vec![0f32; 300 * 128];
    let b = vec![0f32; 300];
    let xs = unsafe { optim::slice_mut(&xt) };
    time("fwd fc1 sparse", 300, || {
        csr.forward(xs, 128, &b, true, &mut out)
    });
    time("effective fc1 (w*gate)", 300, || {
        let _ = w.effective();
    });
    time("transpose input", 300, || {
        let _ = x.view([128, -1]).tr().contiguous();
    });
}
