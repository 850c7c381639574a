//! Checkpoint round trip: every tensor (weights, masks, biases, optimizer states) and the
//! metadata come back exactly; a truncated file is refused with a clear error.

use hf_core::update::OptimKind;
use hf_engine::checkpoint::{self, Checkpoint};
use hf_engine::mlp::Mlp;
use hf_engine::network::Network;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// libtorch's random generator and thread pool are process-wide: tests that seed it run one at
/// a time, so a parallel test cannot draw numbers between another test's seed and its use.
fn torch_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn trained() -> (Mlp, HyperfluxOptim) {
    tch::manual_seed(21);
    let mut net = Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        10,
        (-0.1, 0.5),
        Device::Cpu,
    );
    let mut opt = HyperfluxOptim::new(&net, OptimKind::adam(), 0.0, 0.25);
    let x = Tensor::randn([16, 1, 28, 28], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [16], (Kind::Int64, Device::Cpu));
    let s = StepSettings {
        weight_lr: 1e-3,
        mask_lr: 1e-2,
        pressure: 1.0,
        train_masks: true,
    };
    for _ in 0..3 {
        opt.step(&mut net, &x, &y, 0.1, &s, None);
    }
    (net, opt)
}

#[test]
fn round_trip_restores_every_tensor_and_the_metadata() {
    let _serial = torch_lock();
    let (net, opt) = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("arch".to_string(), "lenet300".to_string());
    meta.insert("input_shape".to_string(), "[1,28,28]".to_string());
    meta.insert("classes".to_string(), "10".to_string());
    meta.insert("state".to_string(), "{\"epoch\":3}".to_string());
    checkpoint::save(&path, &net, Some(&opt), meta).unwrap();

    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.meta_str("state").unwrap(), "{\"epoch\":3}");
    tch::manual_seed(99);
    let fresh = Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        10,
        (0.2, 0.5),
        Device::Cpu,
    );
    let fresh_opt = HyperfluxOptim::new(&fresh, OptimKind::adam(), 0.0, 0.25);
    ck.restore_net(&fresh, true).unwrap();
    ck.restore_optim(&fresh_opt).unwrap();
    let a = checkpoint::named_tensors(&net, Some(&opt));
    let b = checkpoint::named_tensors(&fresh, Some(&fresh_opt));
    assert_eq!(a.len(), b.len());
    assert!(
        a.len() > 20,
        "weights, masks, biases and optimizer states: {}",
        a.len()
    );
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after the round trip");
    }
    // Masks restored: same density.
    assert_eq!(
        hf_engine::masked::DensityReport::of(net.masked()),
        hf_engine::masked::DensityReport::of(fresh.masked())
    );

    // A truncated copy is refused with a message naming the file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = Checkpoint::load(&cut).unwrap_err().to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("truncated"),
        "{e}"
    );
}
