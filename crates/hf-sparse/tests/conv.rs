//! Convolutional networks end to end: the layer-spec JSON, export → load round trips on both
//! files and both paths, exact FLOP counts, BatchNorm folding, and refusal of bad conv files.

mod common;

use common::*;
use hf_sparse::{
    col_idx_dtype, fold_batch_norm, load, synthetic, write_export, Activation, Dtype, ExportMeta,
    ExportModel, Format, LayerSpec, LayerTensors, Model, SparseConv, SparseError,
};
use std::path::Path;

/// The documented JSON of a residual block with a projection shortcut; old linear specs
/// without `input` still parse, and an absent `input` is not written.
#[test]
fn layer_specs_serialize_as_documented() {
    let block = r#"[{"type":"conv2d","name":"b2_conv1","in_channels":16,"out_channels":32,"kernel":[3,3],"stride":[2,2],"padding":[1,1],"bias":true,"activation":"relu"},{"type":"conv2d","name":"b2_conv2","in_channels":32,"out_channels":32,"kernel":[3,3],"stride":[1,1],"padding":[1,1],"bias":true,"activation":"none"},{"type":"conv2d","name":"b2_proj","in_channels":16,"out_channels":32,"kernel":[1,1],"stride":[2,2],"padding":[0,0],"bias":true,"activation":"none","input":"b1_add"},{"type":"add","name":"b2_add","inputs":["b2_conv2","b2_proj"],"activation":"relu"},{"type":"max_pool2d","name":"pool","kernel":[3,3],"stride":[2,2],"padding":[1,1]},{"type":"avg_pool2d","name":"pool1","kernel":[2,2],"stride":[2,2],"padding":[0,0]},{"type":"global_avg_pool","name":"gap"},{"type":"flatten","name":"flat"},{"type":"linear","name":"fc","in_features":32,"out_features":10,"bias":true,"activation":"none"}]"#;
    let specs: Vec<LayerSpec> = serde_json::from_str(block).unwrap();
    assert_eq!(specs.len(), 9);
    assert_eq!(
        specs[2],
        LayerSpec::Conv2d {
            name: "b2_proj".into(),
            in_channels: 16,
            out_channels: 32,
            kernel: [1, 1],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
            activation: Activation::None,
            input: Some("b1_add".into()),
        }
    );
    assert_eq!(serde_json::to_string(&specs).unwrap(), block, "round trip");
    // pool padding defaults to 0; old linear specs have no input field
    let pool: LayerSpec =
        serde_json::from_str(r#"{"type":"max_pool2d","name":"p","kernel":[2,2],"stride":[2,2]}"#)
            .unwrap();
    assert!(matches!(
        pool,
        LayerSpec::MaxPool2d {
            padding: [0, 0],
            input: None,
            ..
        }
    ));
    let old = r#"{"type":"linear","name":"fc1","in_features":784,"out_features":300,"bias":true,"activation":"relu"}"#;
    let lin: LayerSpec = serde_json::from_str(old).unwrap();
    assert_eq!(lin.inputs(), vec![None]);
    assert_eq!(serde_json::to_string(&lin).unwrap(), old);
    assert_eq!(specs[3].inputs(), vec![Some("b2_conv2"), Some("b2_proj")]);
    assert_eq!(specs[0].weight_shape(), Some(vec![32, 16, 3, 3]));
    assert_eq!(specs[0].in_features(), 144);
    assert_eq!(specs[3].weight_shape(), None);
    for s in &specs {
        assert_eq!(serde_json::to_value(s).unwrap()["type"], s.type_tag());
    }
}

#[test]
fn conv_net_round_trip_both_files_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    for (i, sp) in [0.0, 90.0, 98.0].into_iter().enumerate() {
        let net = synthetic::conv_net(4, 9, sp, 10 + i as u64);
        let batch = 6;
        let n = 3 * 9 * 9;
        let x = input(batch * n, i as u64);
        let reference_model = Model::from_export(&net).unwrap();
        let want = reference_model.to_dense().forward(&x, batch).unwrap();
        let mut all = Vec::new();
        for format in [Format::Dense, Format::Sparse] {
            let path = dir.path().join(format!("conv{sp}.{format}.safetensors"));
            write_export(&path, &net, format).unwrap();
            let m = load(&path).unwrap();
            assert_eq!(m.path(), format);
            assert_eq!(m.meta(), reference_model.meta());
            assert_eq!(m.layer_specs(), reference_model.layer_specs());
            for model in [m.to_sparse(), m.to_dense()] {
                let what = format!("{sp}% {format} file on {} path", model.path());
                let got = model.forward(&x, batch).unwrap();
                for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{what} logit {k}: {g} vs {w}"
                    );
                }
                // batch 1 gives the same logits as the batch
                for e in [0, batch - 1] {
                    let one = model.forward(&x[e * n..(e + 1) * n], 1).unwrap();
                    for (g, w) in one.iter().zip(&got[e * 10..(e + 1) * 10]) {
                        assert!(
                            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "{what} batch 1 ex {e}"
                        );
                    }
                }
                let im2col = model.clone().with_sparse_conv(SparseConv::Im2col);
                assert_eq!(im2col.sparse_conv(), SparseConv::Im2col);
                let got2 = im2col.forward(&x, batch).unwrap();
                assert!(got2
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs())));
                all.push((what, model.predict(&x, batch).unwrap(), got));
            }
        }
        for (what, p, _) in &all[1..] {
            assert_eq!(p, &all[0].1, "{what}: predictions differ from {}", all[0].0);
        }
        // the logits are not all alike (the net really computes something)
        assert!(
            want.iter().any(|v| (v - want[0]).abs() > 1e-3),
            "{sp}%: constant logits"
        );
    }
}

#[test]
fn conv_files_hold_the_documented_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::conv_net(32, 8, 95.0, 1);
    let dense = dir.path().join("c.dense");
    let sparse = dir.path().join("c.sparse");
    write_export(&dense, &net, Format::Dense).unwrap();
    write_export(&sparse, &net, Format::Sparse).unwrap();
    let d = Raw::read(&dense);
    assert_eq!(d.tensors["b1_conv1.weight"].1, vec![32, 32, 3, 3]);
    assert_eq!(d.tensors["b1_conv1.mask"].1, vec![32, 32, 3, 3]);
    assert_eq!(
        d.tensors["b1_conv1.bias"].1,
        vec![32],
        "BN folded into a bias"
    );
    assert_eq!(d.tensors["b2_proj.weight"].1, vec![64, 32, 1, 1]);
    assert!(!d
        .tensors
        .keys()
        .any(|k| k.starts_with("pool") || k.starts_with("b1_add")));
    let s = Raw::read(&sparse);
    // 32·9 = 288 columns: U16; 3·9 = 27 columns and the 32-column projection: U8
    assert_eq!(s.dtype("b1_conv1.col_idx"), Dtype::U16);
    assert_eq!(col_idx_dtype(288), Dtype::U16);
    assert_eq!(s.dtype("conv1.col_idx"), Dtype::U8);
    assert_eq!(s.dtype("b2_proj.col_idx"), Dtype::U8);
    assert_eq!(s.tensors["b1_conv1.row_ptr"].1, vec![33]);
    // CSR over the flattened weight rows: values in [out, in, kh, kw] order of the dense file
    let w = d.f32s("b1_conv1.weight");
    let m = d.f32s("b1_conv1.mask");
    let kept: Vec<f32> = w
        .iter()
        .zip(&m)
        .filter(|(_, m)| **m >= 0.0)
        .map(|(w, _)| *w)
        .collect();
    assert_eq!(s.f32s("b1_conv1.values"), kept);
    assert_eq!(
        Model::from_export(&net)
            .unwrap()
            .meta()
            .density_per_layer
            .len(),
        7,
        "densities list the 6 convs and the linear layer only"
    );
}

#[test]
fn conv_flops_are_exact() {
    let net = synthetic::conv_net(4, 9, 90.0, 2);
    let m = Model::from_export(&net).unwrap();
    let shapes = m.layer_shapes();
    let shape = |n: &str| shapes.iter().find(|(m, _)| m == n).unwrap().1;
    assert_eq!(shape("conv1"), [4, 9, 9]);
    assert_eq!(shape("b2_add"), [8, 5, 5]);
    assert_eq!(shape("pool1"), [8, 2, 2]);
    assert_eq!(shape("pool2"), [8, 2, 2]);
    assert_eq!(shape("gap"), [8, 1, 1]);
    assert_eq!(shape("fc"), [10, 1, 1]);
    let f = m.flops();
    let names: Vec<&str> = f.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv1", "b1_conv1", "b1_conv2", "b2_conv1", "b2_conv2", "b2_proj", "fc"]
    );
    // conv1: 4 out x 3 in x 3 x 3 = 108 weights at 9x9 positions
    assert_eq!(f[0].total, 108);
    assert_eq!(f[0].dense_macs, 108 * 81);
    assert_eq!(f[0].nnz, 11, "round(108 · 0.1)");
    assert_eq!(f[0].sparse_macs, 11 * 81);
    // b2_conv1: 8 x 4 x 3 x 3 = 288 at 5x5; b2_proj 8 x 4 x 1 x 1 at 5x5
    assert_eq!(f[3].dense_macs, 288 * 25);
    assert_eq!(f[3].sparse_macs, 29 * 25);
    assert_eq!(f[5].dense_macs, 32 * 25);
    assert_eq!(f[6].dense_macs, 80);
    assert_eq!(f[6].sparse_macs, 8);
    assert_eq!(m.to_dense().flops(), f);
    for (l, (_, t)) in f
        .iter()
        .zip(net.layers.iter().filter(|(s, _)| s.has_weights()))
    {
        assert_eq!(l.nnz, t.kept(), "{}", l.name);
    }
}

#[test]
fn fold_batch_norm_equals_conv_then_batch_norm() {
    let (cin, cout, hw) = (2usize, 3usize, 5usize);
    let mut rng_vals = input(cout * cin * 9, 7).into_iter().map(|v| v - 0.5);
    let weight: Vec<f32> = (0..cout * cin * 9)
        .map(|_| rng_vals.next().unwrap())
        .collect();
    let mask: Vec<f32> = (0..weight.len())
        .map(|i| if i % 4 == 0 { -1.0 } else { 1.0 })
        .collect();
    let spec = LayerSpec::Conv2d {
        name: "c".into(),
        in_channels: cin,
        out_channels: cout,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        activation: Activation::None,
        input: None,
    };
    let net = |t: LayerTensors| {
        let mut m = ExportModel {
            meta: ExportMeta {
                architecture: "bn".into(),
                dataset: "hand".into(),
                input_shape: vec![cin, hw, hw],
                classes: cout * hw * hw,
                accuracy: None,
                density_per_layer: vec![],
                total_density: 1.0,
                preprocessing: None,
                extra: Default::default(),
            },
            layers: vec![(spec.clone(), t)],
        };
        m.recompute_densities();
        Model::from_export(&m).unwrap()
    };
    let raw = LayerTensors {
        weight: weight.clone(),
        bias: Some(vec![0.1, -0.2, 0.3]),
        mask: mask.clone(),
    };
    let (gamma, beta, mean, var) = (
        [1.5f32, 0.5, -0.7],
        [0.1f32, 0.0, -0.3],
        [0.2f32, -0.1, 0.05],
        [0.9f32, 2.0, 0.3],
    );
    let mut folded = raw.clone();
    fold_batch_norm(&mut folded, &gamma, &beta, &mean, &var, 1e-5).unwrap();
    assert_eq!(folded.mask, mask, "pruning pattern unchanged");
    let x = input(cin * hw * hw, 3);
    let y = net(raw).forward(&x, 1).unwrap();
    let yf = net(folded).forward(&x, 1).unwrap();
    for (i, (a, b)) in y.iter().zip(&yf).enumerate() {
        let o = i / (hw * hw);
        let bn = (*a as f64 - mean[o] as f64) / (var[o] as f64 + 1e-5).sqrt() * gamma[o] as f64
            + beta[o] as f64;
        assert!(
            (bn - *b as f64).abs() < 1e-5,
            "{i}: folded {b} vs conv+BN {bn}"
        );
    }
    let mut t = LayerTensors {
        weight,
        bias: None,
        mask,
    };
    let err = fold_batch_norm(&mut t, &gamma, &beta[..2], &mean, &var, 1e-5).unwrap_err();
    assert!(err.contains("lengths"), "{err}");
    assert!(t.bias.is_none(), "unchanged on error");
    fold_batch_norm(&mut t, &gamma, &beta, &mean, &var, 1e-5).unwrap();
    assert!(t.bias.is_some(), "a missing bias is created");
}

/// A copy of `src` with `edit` applied must fail to load with a one-line message naming the
/// file and every `want` fragment.
fn refuse(src: &Path, out: &Path, edit: impl FnOnce(&mut Raw), want: &[&str]) -> SparseError {
    let mut raw = Raw::read(src);
    edit(&mut raw);
    raw.write(out);
    let err = match load(out) {
        Ok(_) => panic!("a broken file loaded (expected {want:?})"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one-line message: {msg}");
    assert!(
        msg.contains(&out.display().to_string()),
        "names the file: {msg}"
    );
    for w in want {
        assert!(msg.contains(w), "message '{msg}' should mention '{w}'");
    }
    err
}

fn edit_layers(from: &'static str, to: &'static str) -> impl FnOnce(&mut Raw) {
    move |r: &mut Raw| {
        let text = &r.meta.as_ref().unwrap()["layers"];
        assert!(text.contains(from), "fixture lacks {from}");
        let layers = text.replacen(from, to, 1);
        r.set_meta("layers", &layers);
    }
}

#[test]
fn bad_conv_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::conv_net(4, 9, 90.0, 5);
    let dense = dir.path().join("conv.dense.safetensors");
    let sparse = dir.path().join("conv.sparse.safetensors");
    write_export(&dense, &net, Format::Dense).unwrap();
    write_export(&sparse, &net, Format::Sparse).unwrap();
    let out = dir.path().join("broken.safetensors");
    // the fixtures load
    load(&dense).unwrap();
    load(&sparse).unwrap();

    // conv weight of the wrong shape (same number of values)
    let err = refuse(
        &dense,
        &out,
        |r| r.tensors.get_mut("b1_conv1.weight").unwrap().1 = vec![4, 4, 9],
        &[
            "tensor 'b1_conv1.weight' has shape [4, 4, 9], expected [4, 4, 3, 3]",
            "corrupt",
        ],
    );
    assert!(matches!(err, SparseError::Corrupt { .. }));
    refuse(
        &dense,
        &out,
        |r| r.tensors.get_mut("conv1.mask").unwrap().1 = vec![4, 3, 1, 9],
        &["tensor 'conv1.mask' has shape [4, 3, 1, 9], expected [4, 3, 3, 3]"],
    );
    // a conv whose spec disagrees with its sparse tensors: a 1x3 kernel (padding [0, 1], so
    // the shapes still fit) makes the stored column indices (< 36) exceed in·kh·kw = 12
    refuse(
        &sparse,
        &out,
        edit_layers(
            r#""name":"b1_conv1","in_channels":4,"out_channels":4,"kernel":[3,3],"stride":[1,1],"padding":[1,1]"#,
            r#""name":"b1_conv1","in_channels":4,"out_channels":4,"kernel":[1,3],"stride":[1,1],"padding":[0,1]"#,
        ),
        &["layer b1_conv1 col_idx", "out of bounds (in_features 12)"],
    );
    // channel mismatch
    refuse(
        &sparse,
        &out,
        edit_layers(r#""name":"b1_conv1","in_channels":4"#, r#""name":"b1_conv1","in_channels":5"#),
        &["layer chain mismatch: layer b1_conv1 has in_channels 5 but its input conv1 has shape 4x9x9 (4 channels)"],
    );
    // Add of mismatched shapes
    refuse(
        &sparse,
        &out,
        edit_layers(
            r#""inputs":["b2_conv2","b2_proj"]"#,
            r#""inputs":["b2_conv2","conv1"]"#,
        ),
        &["layer b2_add adds b2_conv2 of shape 8x5x5 and conv1 of shape 4x9x9: the shapes differ"],
    );
    // input naming a later layer, a nonexistent layer, itself
    refuse(
        &sparse,
        &out,
        edit_layers(r#""input":"b1_add""#, r#""input":"b2_add""#),
        &["layer b2_proj reads 'b2_add', which comes later in the layer list"],
    );
    refuse(
        &dense,
        &out,
        edit_layers(
            r#""inputs":["b1_conv2","conv1"]"#,
            r#""inputs":["b1_conv2","conv0"]"#,
        ),
        &["layer b1_add reads 'conv0', which is neither \"input\" nor a layer of this network"],
    );
    refuse(
        &sparse,
        &out,
        edit_layers(r#""input":"b1_add""#, r#""input":"b2_proj""#),
        &["layer b2_proj reads its own output"],
    );
    // "input" is a valid source but has the wrong shape here
    refuse(
        &sparse,
        &out,
        edit_layers(r#""input":"b1_add""#, r#""input":"input""#),
        &["layer chain mismatch: layer b2_proj has in_channels 4 but its input input has shape 3x9x9"],
    );
    // stride 0, zero kernel
    refuse(
        &sparse,
        &out,
        edit_layers(
            r#""name":"conv1","in_channels":3,"out_channels":4,"kernel":[3,3],"stride":[1,1]"#,
            r#""name":"conv1","in_channels":3,"out_channels":4,"kernel":[3,3],"stride":[1,0]"#,
        ),
        &["layer conv1 stride [1, 0] has a zero step (must be >= 1)"],
    );
    refuse(
        &dense,
        &out,
        edit_layers(
            r#""name":"pool1","kernel":[2,2],"stride":[2,2]"#,
            r#""name":"pool1","kernel":[2,2],"stride":[0,2]"#,
        ),
        &["layer pool1 stride [0, 2] has a zero step"],
    );
    // spatial size collapsing to 0: a 7x7 window on block 2's 5x5 output, and a 1x1 image
    // that the stride-2 block and the 2x2 pool shrink to nothing
    refuse(
        &sparse,
        &out,
        edit_layers(r#""name":"pool1","kernel":[2,2],"stride":[2,2]"#, r#""name":"pool1","kernel":[7,7],"stride":[2,2]"#),
        &["layer pool1 on input b2_add of shape 8x5x5: output height collapses to 0: input height 5 + 2·padding 0 is smaller than the kernel 7"],
    );
    refuse(
        &sparse,
        &out,
        |r| r.set_meta("input_shape", "[3,1,1]"),
        &["output height collapses to 0"],
    );
    // pool padding more than half the window
    refuse(
        &sparse,
        &out,
        edit_layers(
            r#""name":"pool2","kernel":[3,3],"stride":[1,1],"padding":[1,1]"#,
            r#""name":"pool2","kernel":[3,3],"stride":[1,1],"padding":[2,1]"#,
        ),
        &["layer pool2 padding [2, 1] is more than half the kernel [3, 3]"],
    );
    // final output != classes
    refuse(
        &sparse,
        &out,
        |r| r.set_meta("classes", "8"),
        &["layer chain mismatch: classes is 8 but the last layer fc has out_features 10"],
    );
    // the linear layer after the pooling must see 8 values
    refuse(
        &sparse,
        &out,
        edit_layers(r#""name":"fc","in_features":8"#, r#""name":"fc","in_features":9"#),
        &["layer chain mismatch: layer fc has in_features 9 but its input flat has shape 8x1x1 = 8 values"],
    );
    // a layer may not be called "input"; unknown fields of a known type are corrupt
    refuse(
        &sparse,
        &out,
        edit_layers(r#""name":"gap""#, r#""name":"input""#),
        &["a layer is named 'input'"],
    );
    let err = refuse(
        &sparse,
        &out,
        edit_layers(
            r#""name":"pool2","kernel":[3,3]"#,
            r#""name":"pool2","kernel":[3]"#,
        ),
        &["metadata 'layers' entry 9 is not a valid layer"],
    );
    assert!(matches!(err, SparseError::Corrupt { .. }));
}

/// Conv files flipped at random never panic the loader, and what loads runs.
#[test]
fn fuzzed_conv_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::conv_net(3, 7, 80.0, 8);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x = input(3 * 49, 1);
    for format in [Format::Sparse, Format::Dense] {
        let path = dir.path().join(format!("f.{format}"));
        write_export(&path, &net, format).unwrap();
        let good = std::fs::read(&path).unwrap();
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
        for i in 0..300 {
            let mut b = good.clone();
            if i % 2 == 0 {
                let k = rng.gen_range(8..header_len);
                b[k] = rng.gen_range(b'0'..=b'9');
            } else {
                for _ in 0..rng.gen_range(1..6) {
                    let k = rng.gen_range(header_len..b.len());
                    b[k] = rng.gen();
                }
            }
            if let Ok(m) = hf_sparse::load_bytes(&b, "fuzz") {
                let _ = m.forward(&x, 1);
                let _ = m.to_dense().forward(&x, 2);
            }
        }
    }
}

/// `groups`, `dilation` and `"relu6"` in the layer JSON: written only when not the default (so
/// older conv files read and write back byte for byte), read with defaults when absent.
#[test]
fn grouped_dilated_specs_serialize_as_documented() {
    let old = r#"{"type":"conv2d","name":"c","in_channels":4,"out_channels":8,"kernel":[3,3],"stride":[1,1],"padding":[1,1],"bias":true,"activation":"relu"}"#;
    let spec: LayerSpec = serde_json::from_str(old).unwrap();
    assert!(matches!(
        spec,
        LayerSpec::Conv2d {
            dilation: [1, 1],
            groups: 1,
            ..
        }
    ));
    assert_eq!(serde_json::to_string(&spec).unwrap(), old);
    let dw = r#"{"type":"conv2d","name":"dw","in_channels":8,"out_channels":16,"kernel":[3,3],"stride":[2,2],"padding":[2,2],"dilation":[2,2],"groups":8,"bias":true,"activation":"relu6"}"#;
    let spec: LayerSpec = serde_json::from_str(dw).unwrap();
    assert_eq!(spec.activation(), Activation::Relu6);
    assert_eq!(spec.weight_shape(), Some(vec![16, 1, 3, 3]));
    assert_eq!(spec.in_features(), 9);
    assert_eq!(spec.weight_count(), Some(144));
    assert_eq!(serde_json::to_string(&spec).unwrap(), dw);
    assert_eq!(Activation::Relu6.apply(7.5), 6.0);
    assert_eq!(Activation::Relu6.apply(-1.0), 0.0);
    assert_eq!(Activation::Relu6.apply(2.5), 2.5);
}

/// The MobileNet-style synthetic net (depthwise, grouped, dilated, ReLU6) through both files
/// and both paths; its files hold `[out, in/groups, kh, kw]`
/// weights, and the FLOP counts use the per-group fan-in.
#[test]
fn mobile_net_round_trip_both_files_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    for (i, sp) in [0.0, 80.0, 98.0].into_iter().enumerate() {
        let net = synthetic::mobile_net(4, 12, sp, 20 + i as u64);
        let n = 3 * 12 * 12;
        let batch = 5;
        let x: Vec<f32> = input(batch * n, i as u64)
            .iter()
            .map(|v| 6.0 * v - 3.0)
            .collect();
        // the in-memory model (checked against an f64 reference in the unit tests)
        let want: Vec<f64> = Model::from_export(&net)
            .unwrap()
            .forward(&x, batch)
            .unwrap()
            .iter()
            .map(|v| *v as f64)
            .collect();
        for format in [Format::Dense, Format::Sparse] {
            let path = dir.path().join(format!("mobile{sp}.{format}.safetensors"));
            write_export(&path, &net, format).unwrap();
            let m = load(&path).unwrap();
            assert_eq!(
                m.layer_specs(),
                net.layers
                    .iter()
                    .map(|(s, _)| s.clone())
                    .collect::<Vec<_>>()
            );
            for model in [m.to_sparse(), m.to_dense()] {
                let what = format!("{sp}% {format} file on {} path", model.path());
                assert_logits_close(&model.forward(&x, batch).unwrap(), &want, &what);
                let one = model.forward(&x[..n], 1).unwrap();
                assert_logits_close(&one, &want[..10], &format!("{what} batch 1"));
            }
            if format == Format::Dense {
                let raw = Raw::read(&path);
                assert_eq!(raw.tensors["dw1.weight"].1, vec![4, 1, 3, 3]);
                assert_eq!(raw.tensors["dw3.weight"].1, vec![16, 1, 3, 3]);
                assert_eq!(raw.tensors["gconv.weight"].1, vec![8, 4, 3, 3]);
            }
        }
        let flops = Model::from_export(&net).unwrap().flops();
        let dw1 = flops.iter().find(|f| f.name == "dw1").unwrap();
        // 4 channels x 9 taps x 6x6 output positions
        assert_eq!(dw1.dense_macs, 4 * 9 * 36);
        assert_eq!(dw1.total, 36);
    }
}

/// Groups that do not divide the channels, a zero dilation, and a dilated kernel larger than
/// the padded input are refused with a message that says so.
#[test]
fn bad_grouped_convs_are_refused() {
    let net = synthetic::mobile_net(4, 12, 50.0, 1);
    let with = |name: &str, f: &dyn Fn(&mut LayerSpec)| {
        let mut m = net.clone();
        let (spec, _) = m.layers.iter_mut().find(|(s, _)| s.name() == name).unwrap();
        f(spec);
        Model::from_export(&m).map(|_| ()).unwrap_err().to_string()
    };
    let e = with("gconv", &|s| {
        if let LayerSpec::Conv2d { groups, .. } = s {
            *groups = 3;
        }
    });
    assert!(
        e.contains("layer gconv groups 3 must be >= 1 and divide"),
        "{e}"
    );
    let e = with("dw1", &|s| {
        if let LayerSpec::Conv2d { groups, .. } = s {
            *groups = 0;
        }
    });
    assert!(e.contains("groups 0"), "{e}");
    let e = with("dw2", &|s| {
        if let LayerSpec::Conv2d { dilation, .. } = s {
            *dilation = [0, 1];
        }
    });
    assert!(
        e.contains("layer dw2 dilation [0, 1] has a zero step"),
        "{e}"
    );
    let e = with("dw2", &|s| {
        if let LayerSpec::Conv2d {
            dilation, padding, ..
        } = s
        {
            *dilation = [9, 9];
            *padding = [0, 0];
        }
    });
    assert!(e.contains("smaller than the dilated kernel 19"), "{e}");
}
