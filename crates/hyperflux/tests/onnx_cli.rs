//! Bring your own network: ONNX models made by PyTorch's exporter go into `eval`, `train` and
//! `prune` on tiny generated MNIST-format data, and bad ONNX files get one-line errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyperflux"))
        .args(args)
        .output()
        .expect("run hyperflux")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../hf-onnx/tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn tiny_mnist(dir: &Path) -> String {
    let d = dir.join("mnist");
    hf_data::synth::write_idx_dataset(&d, 640, 200, false, 7).unwrap();
    d.display().to_string()
}

fn assert_one_line_error(o: &Output, needles: &[&str]) {
    let (_, err) = text(o);
    assert!(!o.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing from {}", lines[0]);
    }
}

fn eval_json(path: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["eval", path, "--json"];
    args.extend_from_slice(extra);
    let o = run(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "eval {path}: {err}");
    serde_json::from_str(&out).expect("eval --json")
}

#[test]
fn eval_of_an_onnx_model_needs_a_dataset_and_then_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_mnist(dir.path());
    let o = run(&["eval", &fixture("mlp.onnx")]);
    assert_one_line_error(&o, &["mlp.onnx", "--dataset"]);
    let v = eval_json(
        &fixture("cnn_bn.onnx"),
        &["--dataset", "mnist", "--data-dir", &data],
    );
    assert_eq!(v["arch"], "onnx:cnn_bn");
    assert!(v["density"].as_f64().unwrap() > 99.9);
    let acc = v["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&acc));
}

#[test]
fn prune_from_an_onnx_model_lands_on_the_target_and_evaluates_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_mnist(dir.path());
    let out = dir.path().join("pruned");
    let o = run(&[
        "prune",
        "--from",
        &fixture("mlp.onnx"),
        "--dataset",
        "mnist",
        "--data-dir",
        &data,
        "--target-sparsity",
        "80",
        "--pruning-epochs",
        "8",
        "--regrowth-epochs",
        "3",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (stdout, err) = text(&o);
    assert!(o.status.success(), "prune: {err}");
    assert!(stdout.contains("hyperflux pruning"), "{stdout}");
    let ck = out.join("checkpoint.safetensors");
    let v = eval_json(ck.to_str().unwrap(), &["--data-dir", &data]);
    assert_eq!(v["arch"], "onnx:mlp");
    let density = v["density"].as_f64().unwrap();
    assert!((density - 20.0).abs() < 0.01, "density {density}");
    let layers = v["layers"].as_array().unwrap();
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fc1", "fc2"]);
}

#[test]
fn train_from_an_onnx_model_starts_from_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_mnist(dir.path());
    let out = dir.path().join("ft");
    let o = run(&[
        "train",
        "--from",
        &fixture("cnn_folded.onnx"),
        "--dataset",
        "mnist",
        "--data-dir",
        &data,
        "--epochs",
        "1",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(o.status.success(), "train: {err}");
    let v = eval_json(
        out.join("checkpoint.safetensors").to_str().unwrap(),
        &["--data-dir", &data],
    );
    assert_eq!(v["arch"], "onnx:cnn_folded");
    // Every Conv and Gemm weight became a masked layer.
    assert_eq!(v["layers"].as_array().unwrap().len(), 7);
}

#[test]
fn bad_onnx_files_get_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_mnist(dir.path());
    let bytes = std::fs::read(fixture("mlp.onnx")).unwrap();
    let cut = dir.path().join("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let o = run(&[
        "eval",
        cut.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--data-dir",
        &data,
    ]);
    assert_one_line_error(&o, &["cut.onnx"]);
    let missing = dir.path().join("nope.onnx");
    let o = run(&[
        "prune",
        "--from",
        missing.to_str().unwrap(),
        "--dataset",
        "mnist",
        "--data-dir",
        &data,
        "--target-sparsity",
        "90",
    ]);
    assert_one_line_error(&o, &["nope.onnx"]);
    // A model whose input does not fit the dataset: a flat 784 MLP on 3x32x32 CIFAR-shaped data
    // is refused by name rather than reshaped.
    let cifar = dir.path().join("cifar");
    hf_data::synth::write_cifar_dataset(&cifar, hf_data::DatasetKind::Cifar10, 64, 32, 5).unwrap();
    let o = run(&[
        "eval",
        &fixture("mlp.onnx"),
        "--dataset",
        "cifar10",
        "--data-dir",
        cifar.to_str().unwrap(),
    ]);
    assert_one_line_error(&o, &["onnx:mlp"]);
}

#[test]
fn built_in_models_round_trip_through_onnx_with_the_same_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_mnist(dir.path());
    for model in ["lenet300", "lenet5"] {
        let out = dir.path().join(model);
        let o = run(&[
            "prune",
            "--model",
            model,
            "--dataset",
            "mnist",
            "--data-dir",
            &data,
            "--target-sparsity",
            "80",
            "--pruning-epochs",
            "8",
            "--regrowth-epochs",
            "2",
            "--threads",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{model}: {}", text(&o).1);
        let ck = out.join("checkpoint.safetensors");
        let onnx = out.join("pruned.onnx");
        let o = run(&[
            "export",
            ck.to_str().unwrap(),
            "--format",
            "onnx",
            "-o",
            onnx.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{model} export: {}", text(&o).1);
        let a = eval_json(ck.to_str().unwrap(), &["--data-dir", &data]);
        // The ONNX file names its dataset: no --dataset needed.
        let b = eval_json(onnx.to_str().unwrap(), &["--data-dir", &data]);
        assert_eq!(a["test_accuracy"], b["test_accuracy"], "{model}");
        let (da, db) = (
            a["density"].as_f64().unwrap(),
            b["density"].as_f64().unwrap(),
        );
        assert!((da - db).abs() < 1e-9, "{model}: density {da} vs {db}");
        assert!((da - 20.0).abs() < 0.01, "{model}: density {da}");
    }
}
