//! Import of ONNX models: PyTorch-made fixtures (structure, tensors) and refusals of what is
//! not supported, each with a message naming the node and operator.

use hf_onnx::graph::{GraphSpec, Op};
use hf_onnx::pb;
use hf_onnx::read::{import_bytes, import_file};
use hf_onnx::OnnxError;
use prost::Message;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn ops(spec: &GraphSpec) -> Vec<&'static str> {
    spec.nodes.iter().map(|n| n.op.tag()).collect()
}

#[test]
fn mlp_from_pytorch_imports_as_two_linear_layers() {
    let imp = import_file(&fixture("mlp.onnx")).expect("import");
    let s = &imp.spec;
    assert_eq!(s.input, vec![1, 28, 28]);
    assert_eq!(s.classes, 10);
    assert_eq!(ops(s), ["flatten", "linear", "relu", "linear"]);
    assert_eq!(s.nodes[1].name, "fc1");
    assert_eq!(s.nodes[3].name, "fc2");
    assert_eq!(s.prunable(), 784 * 64 + 64 * 10);
    let names: Vec<&str> = imp.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]);
    assert_eq!(imp.tensors[0].shape, vec![64, 784]);
    assert_eq!(imp.tensors[0].data.len(), 64 * 784);
}

#[test]
fn dynamo_mlp_imports_to_the_same_layers_and_weights() {
    let a = import_file(&fixture("mlp.onnx")).expect("legacy export");
    for other in ["mlp_matmul.onnx", "mlp_dynamo.onnx"] {
        let b = import_file(&fixture(other)).expect(other);
        let linear = |s: &GraphSpec| {
            s.nodes
                .iter()
                .filter(|n| matches!(n.op, Op::Linear { .. }))
                .map(|n| n.op.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(linear(&a.spec), linear(&b.spec));
        // Same weights whatever the operator (Gemm with transB, or MatMul with a transposed weight).
        let w = |imp: &hf_onnx::graph::Imported, i: usize| {
            imp.tensors
                .iter()
                .filter(|t| t.name.ends_with(".weight"))
                .nth(i)
                .map(|t| t.data.clone())
                .unwrap()
        };
        assert_eq!(w(&a, 0), w(&b, 0));
        assert_eq!(w(&a, 1), w(&b, 1));
    }
}

#[test]
fn cnn_with_batchnorm_nodes_keeps_them_and_their_statistics() {
    let imp = import_file(&fixture("cnn_bn.onnx")).expect("import");
    let s = &imp.spec;
    let bns = s
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::BatchNorm { .. }))
        .count();
    assert_eq!(bns, 5, "{:?}", ops(s));
    assert!(ops(s).contains(&"add"));
    assert!(ops(s).contains(&"max_pool"));
    assert!(ops(s).contains(&"relu6"));
    assert!(ops(s).contains(&"global_avg_pool"));
    let dw = s
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Conv { groups, .. } if groups > 1))
        .expect("a depthwise conv");
    assert!(matches!(
        dw.op,
        Op::Conv {
            groups: 24,
            in_channels: 24,
            ..
        }
    ));
    let stride2 = s
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Conv { stride: [2, 2], .. }));
    assert!(stride2);
    // Running variances were moved away from 1 by the training passes before export.
    let var = imp
        .tensors
        .iter()
        .find(|t| t.name.ends_with(".running_var"))
        .expect("running_var");
    assert!(var.data.iter().any(|&v| (v - 1.0).abs() > 1e-3));
}

#[test]
fn cnn_with_folded_batchnorm_has_no_batchnorm_and_the_same_prunable_count() {
    let folded = import_file(&fixture("cnn_folded.onnx")).expect("import folded");
    let kept = import_file(&fixture("cnn_bn.onnx")).expect("import kept");
    assert!(!folded
        .spec
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::BatchNorm { .. })));
    assert_eq!(folded.spec.prunable(), kept.spec.prunable());
    assert_eq!(folded.spec.classes, 10);
    folded.spec.validate().expect("valid");
}

#[test]
fn graph_spec_round_trips_through_json() {
    let imp = import_file(&fixture("cnn_bn.onnx")).expect("import");
    let json = serde_json::to_string(&imp.spec).unwrap();
    let back: GraphSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, imp.spec);
}

// ---- refusals -------------------------------------------------------------------------------

fn float_tensor(name: &str, dims: &[i64], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: Some(match d {
                                Some(v) => Value::DimValue(*v),
                                None => Value::DimParam("batch".into()),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// input (N×4) → Gemm(W 3×4, transB) → [extra node] → output.
fn model(extra: Option<pb::NodeProto>, opset: i64, input_dims: &[Option<i64>]) -> Vec<u8> {
    let mut gemm = node("Gemm", "fc", &["x", "W", "b"], &["h"]);
    gemm.attribute.push(pb::AttributeProto {
        name: "transB".into(),
        i: 1,
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        ..Default::default()
    });
    let mut nodes = vec![gemm];
    let out = if let Some(e) = extra {
        let o = e.output[0].clone();
        nodes.push(e);
        o
    } else {
        "h".into()
    };
    let m = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: vec![
                float_tensor("W", &[3, 4], (0..12).map(|i| i as f32 * 0.1).collect()),
                float_tensor("b", &[3], vec![0.5, -0.5, 0.0]),
            ],
            input: vec![value_info("x", input_dims)],
            output: vec![value_info(&out, &[None, Some(3)])],
            ..Default::default()
        }),
        ..Default::default()
    };
    m.encode_to_vec()
}

#[test]
fn a_hand_made_gemm_model_imports() {
    let imp = import_bytes(&model(None, 13, &[None, Some(4)]), "tiny").expect("import");
    assert_eq!(imp.spec.input, vec![4]);
    assert_eq!(imp.spec.classes, 3);
    assert_eq!(imp.tensors[0].data[5], 0.5);
}

#[test]
fn unsupported_operator_names_node_operator_and_the_supported_set() {
    let bytes = model(
        Some(node("Sigmoid", "squash", &["h"], &["y"])),
        13,
        &[None, Some(4)],
    );
    let e = import_bytes(&bytes, "m").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, OnnxError::Unsupported { .. }), "{msg}");
    assert!(msg.contains("squash") && msg.contains("Sigmoid"), "{msg}");
    assert!(msg.contains("supported: Gemm"), "{msg}");
    assert!(!msg.contains('\n'));
}

#[test]
fn old_opset_is_refused_with_what_to_do() {
    let e = import_bytes(&model(None, 11, &[None, Some(4)]), "m").unwrap_err();
    assert!(e.to_string().contains("opset 11") && e.to_string().contains("opset_version=13"));
}

#[test]
fn dynamic_feature_dimension_is_refused() {
    let e = import_bytes(&model(None, 13, &[None, None]), "m").unwrap_err();
    assert!(e.to_string().contains("dynamic"), "{e}");
}

#[test]
fn unsupported_attribute_is_refused() {
    let mut clip = node("Clip", "clamp", &["h", "lo", "hi"], &["y"]);
    clip.input = vec!["h".into(), "".into(), "".into()];
    let e = import_bytes(&model(Some(clip), 13, &[None, Some(4)]), "m").unwrap_err();
    assert!(
        e.to_string().contains("clamp") && e.to_string().contains("Clip"),
        "{e}"
    );
}

#[test]
fn truncated_and_garbage_files_are_refused() {
    let bytes = model(None, 13, &[None, Some(4)]);
    for cut in [1, bytes.len() / 2, bytes.len() - 3] {
        assert!(import_bytes(&bytes[..cut], "m").is_err(), "cut at {cut}");
    }
    assert!(import_bytes(&[], "m")
        .unwrap_err()
        .to_string()
        .contains("empty"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("missing.onnx");
    assert!(import_file(&p)
        .unwrap_err()
        .to_string()
        .contains("missing.onnx"));
}

#[test]
fn non_finite_weights_are_refused() {
    let mut m = pb::ModelProto::decode(model(None, 13, &[None, Some(4)]).as_slice()).unwrap();
    m.graph.as_mut().unwrap().initializer[0].float_data[3] = f32::NAN;
    let e = import_bytes(&m.encode_to_vec(), "m").unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}

#[test]
fn shape_computation_subgraphs_are_refused_with_a_hint() {
    // Reshape whose target comes from a Shape node, as `x.view(x.size(0), -1)` exports.
    let shape = node("Shape", "shape", &["h"], &["s"]);
    let e = import_bytes(&model(Some(shape), 13, &[None, Some(4)]), "m").unwrap_err();
    assert!(e.to_string().contains("Shape"), "{e}");
}
