//! ONNX written from synthetic pruned networks, run by tract in-process: the logits equal the
//! hf-sparse runtime's, and the file says what it should (opset, shapes, metadata, zeros).

use hf_onnx::pb;
use hf_onnx::write::{
    convert_file, load_export, onnx_model, to_onnx_bytes, write_onnx, Preprocessing, IR_VERSION,
    OPSET,
};
use hf_sparse::{
    synthetic, write_export, Activation, ExportModel, Format, LayerSpec, LayerTensors, Model,
};
use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::prelude::*;

/// Runs ONNX `bytes` with tract on `batch` inputs; `fixed`: optimise for this batch size,
/// else keep the file's symbolic batch dimension.
fn tract_logits(
    bytes: &[u8],
    input_shape: &[usize],
    x: &[f32],
    batch: usize,
    fixed: bool,
) -> Vec<f32> {
    let mut dims = vec![batch];
    dims.extend_from_slice(input_shape);
    let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    if fixed {
        model = model
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), &dims))
            .unwrap();
    }
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let input = Tensor::from_shape::<f32>(&dims, x).unwrap();
    let out = plan.run(tvec!(input.into_tvalue())).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape()[0], batch, "batch dimension of the logits");
    assert_eq!(out[0].shape().len(), 2, "logits are [batch, classes]");
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

fn inputs(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// |a − b| <= 1e-4·(1 + |b|) everywhere.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of logits");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: logit {i} is {g} in ONNX, {w} in hf-sparse"
        );
    }
}

/// Writes `net` as ONNX and checks tract against the sparse runtime at several batch sizes.
fn check_against_runtime(net: &ExportModel, what: &str) {
    let bytes = to_onnx_bytes(net, None).unwrap();
    let rt = Model::from_export(net).unwrap();
    let per = rt.input_len();
    for (k, batch) in [1usize, 3, 8].into_iter().enumerate() {
        let x = inputs(batch * per, k as u64, -2.0, 2.0);
        let want = rt.forward(&x, batch).unwrap();
        // logits that vary (the comparison is not vacuous)
        assert!(
            want.iter().any(|v| (v - want[0]).abs() > 1e-3),
            "{what}: constant logits"
        );
        let got = tract_logits(&bytes, &net.meta.input_shape, &x, batch, true);
        assert_close(&got, &want, &format!("{what} batch {batch}"));
        if batch == 3 {
            let got = tract_logits(&bytes, &net.meta.input_shape, &x, batch, false);
            assert_close(
                &got,
                &want,
                &format!("{what} batch {batch}, symbolic batch"),
            );
        }
    }
}

#[test]
fn lenet300_matches_runtime() {
    for sp in [0.0, 90.0, 98.0] {
        check_against_runtime(&synthetic::lenet300(sp, 3), &format!("lenet300 {sp}%"));
    }
}

#[test]
fn flat_input_mlp_matches_runtime() {
    let net = synthetic::mlp("mlp", &[20, 16, 5], vec![20], 50.0, 4);
    check_against_runtime(&net, "mlp with flat input");
}

#[test]
fn residual_conv_net_matches_runtime() {
    for sp in [0.0, 90.0] {
        // residual adds with ReLU, a projection shortcut, avg and padded max pooling
        check_against_runtime(
            &synthetic::conv_net(4, 9, sp, 5),
            &format!("conv_net {sp}%"),
        );
    }
}

#[test]
fn depthwise_grouped_dilated_relu6_net_matches_runtime() {
    for sp in [0.0, 50.0, 95.0] {
        check_against_runtime(
            &synthetic::mobile_net(4, 12, sp, 6),
            &format!("mobile_net {sp}%"),
        );
    }
}

fn layer(spec: LayerSpec, rng: &mut ChaCha8Rng) -> (LayerSpec, LayerTensors) {
    let Some(shape) = spec.weight_shape() else {
        return (spec, LayerTensors::default());
    };
    let n: usize = shape.iter().product();
    let weight: Vec<f32> = (0..n).map(|_| rng.gen_range(-0.5f32..0.5)).collect();
    let mask: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let bias = spec.has_bias().then(|| {
        (0..spec.out_features())
            .map(|_| rng.gen_range(-0.5f32..0.5))
            .collect()
    });
    (spec, LayerTensors { weight, bias, mask })
}

fn conv(
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    act: Activation,
    input: Option<&str>,
) -> LayerSpec {
    LayerSpec::Conv2d {
        name: name.into(),
        in_channels: cin,
        out_channels: cout,
        kernel: [k, k],
        stride: [1, 1],
        padding: [k / 2, k / 2],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        activation: act,
        input: input.map(str::to_string),
    }
}

/// Layout conversions: a conv reading a flat tensor (Reshape), an add of a flat and a 4-D
/// tensor, a linear without bias reading a pooled tensor, and a network whose last layer is
/// 4-D (a final Flatten gives the logits).
#[test]
fn layout_conversions_match_runtime() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let specs = vec![
        conv("c1", 3, 10, 3, Activation::Relu6, None),
        LayerSpec::GlobalAvgPool {
            name: "gap".into(),
            input: None,
        },
        LayerSpec::Linear {
            name: "fc".into(),
            in_features: 10,
            out_features: 10,
            bias: false,
            activation: Activation::Relu,
            input: None,
        },
        conv("pw", 10, 10, 1, Activation::None, None),
        LayerSpec::Add {
            name: "sum".into(),
            inputs: ["fc".into(), "gap".into()],
            activation: Activation::Relu6,
        },
        LayerSpec::Add {
            name: "out".into(),
            inputs: ["sum".into(), "pw".into()],
            activation: Activation::None,
        },
    ];
    let mut net = synthetic::conv_net(1, 6, 0.0, 1);
    net.meta.architecture = "layouts".into();
    net.meta.input_shape = vec![3, 6, 6];
    net.layers = specs.into_iter().map(|s| layer(s, &mut rng)).collect();
    net.recompute_densities();
    check_against_runtime(&net, "layout conversions");

    // an input shape that is neither [F] nor [C, H, W]: a conv reads it as F x 1 x 1
    let mut flat = net.clone();
    flat.meta.input_shape = vec![2, 2, 3, 3];
    flat.layers = vec![
        layer(conv("c", 36, 12, 1, Activation::Relu, None), &mut rng),
        layer(
            LayerSpec::Linear {
                name: "fc".into(),
                in_features: 12,
                out_features: 4,
                bias: true,
                activation: Activation::None,
                input: None,
            },
            &mut rng,
        ),
        layer(
            LayerSpec::Linear {
                name: "skip".into(),
                in_features: 36,
                out_features: 4,
                bias: true,
                activation: Activation::None,
                input: Some("input".into()),
            },
            &mut rng,
        ),
        layer(
            LayerSpec::Add {
                name: "logits".into(),
                inputs: ["fc".into(), "skip".into()],
                activation: Activation::None,
            },
            &mut rng,
        ),
    ];
    flat.meta.classes = 4;
    flat.recompute_densities();
    check_against_runtime(&flat, "4-D input shape");
}

fn meta_value<'a>(m: &'a pb::ModelProto, key: &str) -> Option<&'a str> {
    m.metadata_props
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.as_str())
}

/// Opset, IR version, the input and output, dense initializers with exact zeros where pruned,
/// and the metadata (densities, preprocessing, extras).
#[test]
fn file_says_what_it_should() {
    let net = synthetic::mobile_net(4, 12, 90.0, 8);
    let pre = Preprocessing {
        scale: 1.0 / 255.0,
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.247, 0.243, 0.261],
    };
    let bytes = to_onnx_bytes(&net, Some(&pre)).unwrap();
    let m = pb::ModelProto::decode(&bytes[..]).unwrap();
    assert_eq!(m, onnx_model(&net, Some(&pre)).unwrap());
    assert_eq!(m.ir_version, IR_VERSION);
    assert_eq!(OPSET, 13);
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(
        (m.opset_import[0].domain.as_str(), m.opset_import[0].version),
        ("", 13)
    );
    let g = m.graph.as_ref().unwrap();
    let dims = |v: &pb::ValueInfoProto| -> Vec<String> {
        let Some(pb::type_proto::Value::TensorType(t)) = v.r#type.as_ref().unwrap().value.as_ref()
        else {
            panic!("not a tensor type")
        };
        assert_eq!(t.elem_type, pb::tensor_proto::DataType::Float as i32);
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                pb::tensor_shape_proto::dimension::Value::DimValue(v) => v.to_string(),
                pb::tensor_shape_proto::dimension::Value::DimParam(p) => p.clone(),
            })
            .collect()
    };
    assert_eq!(g.input.len(), 1);
    assert_eq!(g.input[0].name, "input");
    assert_eq!(dims(&g.input[0]), ["batch", "3", "12", "12"]);
    assert_eq!(g.output.len(), 1);
    assert_eq!(g.output[0].name, "logits");
    assert_eq!(dims(&g.output[0]), ["batch", "10"]);
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    for op in [
        "Conv",
        "Clip",
        "Relu",
        "Add",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
    ] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    let dw = g.node.iter().find(|n| n.name == "dw2").unwrap();
    let attr =
        |n: &pb::NodeProto, k: &str| n.attribute.iter().find(|a| a.name == k).cloned().unwrap();
    assert_eq!(attr(dw, "group").i, 8);
    assert_eq!(attr(dw, "dilations").ints, [2, 2]);
    assert_eq!(attr(dw, "pads").ints, [2, 2, 2, 2]);
    // weights: dense, [out, in/groups, kh, kw], exact zeros where the mask prunes
    for (spec, t) in net.layers.iter().filter(|(s, _)| s.has_weights()) {
        let init = g
            .initializer
            .iter()
            .find(|i| i.name == format!("{}.weight", spec.name()))
            .unwrap();
        let shape: Vec<i64> = spec
            .weight_shape()
            .unwrap()
            .iter()
            .map(|&d| d as i64)
            .collect();
        assert_eq!(init.dims, shape);
        let vals: Vec<f32> = init
            .raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(vals.len(), t.mask.len());
        for ((v, w), m) in vals.iter().zip(&t.weight).zip(&t.mask) {
            if *m < 0.0 {
                assert_eq!(
                    v.to_bits(),
                    0,
                    "{}: pruned weight not an exact 0",
                    spec.name()
                );
            } else {
                assert_eq!(v, w);
            }
        }
    }
    // metadata: densities as in the safetensors formats, preprocessing, extras
    let per: Vec<(String, f64)> =
        serde_json::from_str(meta_value(&m, "density_per_layer").unwrap()).unwrap();
    assert_eq!(per, net.meta.density_per_layer);
    let total: f64 = meta_value(&m, "total_density").unwrap().parse().unwrap();
    assert_eq!(total, net.meta.total_density);
    assert!(total > 0.05 && total < 0.15, "{total}");
    let p: Preprocessing = serde_json::from_str(meta_value(&m, "preprocessing").unwrap()).unwrap();
    assert_eq!(p, pre);
    assert_eq!(
        meta_value(&m, "architecture"),
        Some(net.meta.architecture.as_str())
    );
    assert_eq!(meta_value(&m, "dataset"), Some("synthetic"));
    assert_eq!(meta_value(&m, "classes"), Some("10"));
    assert_eq!(meta_value(&m, "input_shape"), Some("[3,12,12]"));
    assert_eq!(meta_value(&m, "accuracy"), Some("null"));
    assert_eq!(meta_value(&m, "seed"), Some("8"));
    // deterministic bytes
    assert_eq!(to_onnx_bytes(&net, Some(&pre)).unwrap(), bytes);
    // without preprocessing there is no such entry
    let m2 = onnx_model(&net, None).unwrap();
    assert_eq!(meta_value(&m2, "preprocessing"), None);
}

/// A sparse (and a dense) export file converts to ONNX that tract runs to the file's logits;
/// the file is written atomically (no temporary left behind).
#[test]
fn export_files_convert() {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::conv_net(3, 8, 95.0, 9);
    for format in [Format::Sparse, Format::Dense] {
        let src = dir.path().join(format!("net.{format}.safetensors"));
        write_export(&src, &net, format).unwrap();
        let back = load_export(&src).unwrap();
        assert_eq!(back.meta.density_per_layer, net.meta.density_per_layer);
        let onnx = dir.path().join(format!("net.{format}.onnx"));
        let n = convert_file(&src, &onnx, None).unwrap();
        let bytes = std::fs::read(&onnx).unwrap();
        assert_eq!(bytes.len() as u64, n);
        assert_eq!(
            bytes,
            to_onnx_bytes(&net, None).unwrap(),
            "{format}: same ONNX as in memory"
        );
        let rt = hf_sparse::load(&src).unwrap();
        let x = inputs(4 * rt.input_len(), 1, 0.0, 1.0);
        let got = tract_logits(&bytes, &net.meta.input_shape, &x, 4, true);
        assert_close(&got, &rt.forward(&x, 4).unwrap(), &format!("{format} file"));
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "only the written files: {names:?}");
    // errors name the file
    let missing = dir.path().join("missing.safetensors");
    let e = convert_file(&missing, &dir.path().join("x.onnx"), None).unwrap_err();
    assert!(e.to_string().contains("missing.safetensors"), "{e}");
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let e = write_onnx(&blocker.join("x.onnx"), &net, None).unwrap_err();
    assert!(e.to_string().contains("x.onnx"), "{e}");
}

/// Bad preprocessing and a layer named like the output are refused.
#[test]
fn bad_inputs_are_refused() {
    let net = synthetic::lenet300(90.0, 1);
    let bad = Preprocessing {
        scale: 1.0,
        mean: vec![0.1, 0.2],
        std: vec![0.3, 0.3],
    };
    let e = to_onnx_bytes(&net, Some(&bad)).unwrap_err();
    assert!(e.to_string().contains("preprocessing"), "{e}");
    let zero = Preprocessing {
        scale: 1.0,
        mean: vec![0.1],
        std: vec![0.0],
    };
    assert!(to_onnx_bytes(&net, Some(&zero)).is_err());
    let mut named = net.clone();
    if let LayerSpec::Linear { name, .. } = &mut named.layers[0].0 {
        *name = "logits".into();
    }
    named.recompute_densities();
    let e = to_onnx_bytes(&named, None).unwrap_err();
    assert!(e.to_string().contains("'logits'"), "{e}");
}
