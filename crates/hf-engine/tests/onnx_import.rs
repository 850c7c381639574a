//! Networks imported from ONNX files made by PyTorch's exporter: the engine's forward pass
//! against PyTorch's own logits, checkpoint round trips of the imported graph, the Hyperflux
//! step on an imported CNN, and the export to the pure-Rust runtime.

mod common;

use hf_engine::checkpoint::{self, Checkpoint};
use hf_engine::network::{self, Network};
use hf_engine::step::{HyperfluxOptim, StepSettings};
use hf_engine::trainer;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hf-onnx/tests/fixtures")
        .join(name)
}

/// PyTorch's inputs and logits for a fixture.
fn reference(name: &str) -> (Tensor, Tensor) {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let shape = |k: &str| -> Vec<i64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_i64().unwrap())
            .collect()
    };
    let vals = |k: &str| -> Vec<f32> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_f64().unwrap() as f32)
            .collect()
    };
    let x = Tensor::from_slice(&vals("input")).view(shape("input_shape").as_slice());
    let y = Tensor::from_slice(&vals("logits")).view(shape("logits_shape").as_slice());
    (x, y)
}

fn imported(name: &str) -> Box<dyn Network> {
    let ck = Checkpoint::load(&fixture(&format!("{name}.onnx"))).expect("import");
    trainer::load_network(&ck, Device::Cpu).expect("build")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn imported_networks_reproduce_pytorch_logits() {
    for name in ["mlp", "mlp_dynamo", "mlp_matmul", "cnn_folded", "cnn_bn"] {
        let net = imported(name);
        let (x, want) = reference(name);
        let got = net.forward(&x);
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-4, "{name}: max |logit difference| {d}");
        assert_eq!(net.classes(), 10);
        // Every weight of a dense PyTorch model is present.
        let dens = hf_engine::masked::DensityReport::of(net.masked()).density();
        assert!(dens > 99.9, "{name}: density {dens}");
    }
}

#[test]
fn imported_graph_survives_a_checkpoint_round_trip() {
    let net = imported("cnn_bn");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("arch".to_string(), net.arch().to_string());
    meta.insert("dataset".to_string(), "mnist".to_string());
    meta.insert("input_shape".to_string(), "[1,28,28]".to_string());
    meta.insert("classes".to_string(), "10".to_string());
    meta.insert("graph".to_string(), net.graph_json().expect("graph"));
    checkpoint::save(&path, net.as_ref(), None, meta).unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    let back = trainer::load_network(&ck, Device::Cpu).unwrap();
    let (x, _) = reference("cnn_bn");
    assert_eq!(max_abs_diff(&net.forward(&x), &back.forward(&x)), 0.0);
    // Exactly the tensors of the graph: weights, masks, biases, BN scale/shift/statistics.
    let names: Vec<String> = checkpoint::named_tensors(back.as_ref(), None)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let bn_stats = names
        .iter()
        .filter(|n| n.ends_with(".running_var") || n.ends_with(".running_mean"))
        .count();
    assert_eq!(bn_stats, 10);
    assert_eq!(back.masked().len(), 7);
}

#[test]
fn hyperflux_steps_on_an_imported_cnn_change_weights_and_masks() {
    let mut net = imported("cnn_bn");
    let mut opt = HyperfluxOptim::new(
        net.as_ref(),
        hf_core::update::OptimKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
        0.0,
        0.25,
    );
    let x = common::randn(3, &[16, 1, 28, 28]);
    let y = common::randint(3, 10, 16);
    let m0 = net.masked()[0].m.copy();
    let w0 = net.masked()[0].w.copy();
    let s = StepSettings {
        weight_lr: 1e-3,
        mask_lr: 1e-2,
        pressure: 50.0,
        train_masks: true,
    };
    for _ in 0..3 {
        let st = opt.step(net.as_mut(), &x, &y, 0.0, &s, None);
        assert!(st.loss.is_finite());
    }
    assert!(max_abs_diff(&net.masked()[0].m, &m0) > 0.0);
    assert!(max_abs_diff(&net.masked()[0].w, &w0) > 0.0);
    // Pressure pushes the masks down on average.
    let mean_after = net.masked()[0].m.mean(Kind::Float).double_value(&[]);
    assert!(mean_after < m0.mean(Kind::Float).double_value(&[]));
}

#[test]
fn imported_networks_export_to_the_sparse_runtime_with_the_same_logits() {
    for name in ["mlp", "mlp_dynamo", "mlp_matmul", "cnn_folded", "cnn_bn"] {
        let net = imported(name);
        let layers = net
            .export_layers()
            .unwrap_or_else(|| panic!("{name}: {:?}", net.export_error()));
        let (x, want) = reference(name);
        let shape: Vec<usize> = x.size()[1..].iter().map(|&d| d as usize).collect();
        let mut em = hf_sparse::ExportModel {
            meta: hf_sparse::ExportMeta {
                architecture: net.arch().to_string(),
                dataset: "test".into(),
                input_shape: shape,
                classes: 10,
                accuracy: None,
                density_per_layer: vec![],
                total_density: 0.0,
                extra: BTreeMap::new(),
                preprocessing: None,
            },
            layers,
        };
        em.recompute_densities();
        let model = hf_sparse::Model::from_export(&em).expect("runtime model");
        let xs = network::to_vec_f32(&x);
        let got = model.forward(&xs, x.size()[0] as usize).expect("run");
        let want = network::to_vec_f32(&want);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "{name}: runtime vs PyTorch max |difference| {d}");
    }
}
