//! End-to-end tests of the `hyperflux` binary on tiny generated MNIST-format data: training,
//! pruning to a target, records/plots/config outputs, resume reproducing an uninterrupted run,
//! and the one-line errors of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hyperflux"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run hyperflux")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts a failed run with a single `error:` line containing every `needle`, and no panic.
fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "panic: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "want exactly one error line, got: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks {n:?}: {}", lines[0]);
    }
}

fn no_temp_files(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".hf-tmp-"), "temporary file left: {name}");
        }
    }
}

fn tiny_mnist(dir: &Path) -> PathBuf {
    let d = dir.join("mnist");
    hf_data::synth::write_idx_dataset(&d, 640, 200, false, 7).unwrap();
    d
}

fn common<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--data-dir",
        data,
        "--out",
        out,
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--quiet",
    ]
}

/// The rows of `records.csv` without the wall-time column (`seconds`), found by its header.
fn records(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("records.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let seconds = header
        .split(',')
        .position(|h| h == "seconds")
        .unwrap_or_else(|| panic!("no seconds column in {header}"));
    lines
        .map(|l| {
            let mut f: Vec<String> = l.split(',').map(String::from).collect();
            f.remove(seconds);
            f
        })
        .collect()
}

#[test]
fn schedule_prints_the_spec_vectors() {
    let o = run(&[
        "schedule",
        "--target-sparsity",
        "98",
        "--epochs",
        "100",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!((v["r0"].as_f64().unwrap() - 0.924170165).abs() < 1e-8);
    let e = v["expected_density"].as_array().unwrap();
    assert_eq!(e.len(), 101);
    assert!((e[50].as_f64().unwrap() - 4.6635).abs() < 5e-5);
    assert!((e[1].as_f64().unwrap() - 92.7927).abs() < 5e-5);
    let o = run(&["schedule", "--target-sparsity", "90", "--epochs", "80"]);
    assert!(stdout(&o).contains("r0 = 0.943942252"), "{}", stdout(&o));
}

#[test]
fn target_sparsity_outside_range_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(tmp.path());
    for s in ["0", "100", "150"] {
        let out = tmp.path().join(format!("p{s}"));
        let mut a = vec!["prune", "--target-sparsity", s];
        let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
        a.extend(common(d, o));
        assert_clean_error(&run(&a), &[s, "(0, 100)"]);
        assert!(!out.exists(), "output written for an invalid run");
    }
    assert_clean_error(&run(&["schedule", "--target-sparsity", "150"]), &["150"]);
}

#[test]
fn train_prune_and_resume_reproduce_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(tmp.path());
    let d = data.to_str().unwrap();
    let dense = tmp.path().join("dense");
    let mut a = vec!["train", "--epochs", "2", "--seed", "3"];
    a.extend(common(d, dense.to_str().unwrap()));
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    let ck = dense.join("checkpoint.safetensors");
    for f in [
        "checkpoint.safetensors",
        "records.csv",
        "records.jsonl",
        "config.toml",
        "density.png",
        "density.svg",
    ] {
        assert!(dense.join(f).exists(), "missing {f}");
    }
    let png = std::fs::read(dense.join("density.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    // Dense accuracy on the learnable synthetic classes is well above chance.
    let ev = run(&["eval", ck.to_str().unwrap(), "--data-dir", d, "--json"]);
    assert!(ev.status.success(), "{}", stderr(&ev));
    let v: serde_json::Value = serde_json::from_str(&stdout(&ev)).unwrap();
    assert!(v["test_accuracy"].as_f64().unwrap() > 50.0, "{v}");
    assert_eq!(v["total"].as_u64().unwrap(), 266_200);

    let prune_args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = [
            "prune",
            "--from",
            ck.to_str().unwrap(),
            "--target-sparsity",
            "90",
            "--pruning-epochs",
            "4",
            "--regrowth-epochs",
            "2",
            "--seed",
            "5",
            "--mask-lr",
            "0.02",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(
            common(d, out.to_str().unwrap())
                .iter()
                .map(|s| s.to_string()),
        );
        a
    };
    let full = tmp.path().join("full");
    let o = bin().args(prune_args(&full)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rec_full = records(&full);
    assert_eq!(rec_full.len(), 6);
    let first_density: f64 = rec_full[0][4].parse().unwrap();
    let last_density: f64 = rec_full[5][4].parse().unwrap();
    assert!(
        last_density < first_density && last_density < 60.0,
        "{first_density} -> {last_density}"
    );
    assert_eq!(rec_full[4][1], "regrowth");
    let cfg = std::fs::read_to_string(full.join("config.toml")).unwrap();
    assert!(cfg.contains("target_sparsity = 90.0"), "{cfg}");

    // Interrupted after epoch 3, then resumed: the same numbers.
    let part = tmp.path().join("part");
    let mut a = prune_args(&part);
    a.extend(["--stop-after".to_string(), "3".to_string()]);
    let o = bin().args(&a).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("--resume"), "{}", stdout(&o));
    assert_eq!(records(&part).len(), 3);
    let pck = part.join("checkpoint.safetensors");
    let o = run(&["prune", "--resume", pck.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        records(&part),
        rec_full,
        "resumed run differs from the uninterrupted one"
    );
    no_temp_files(&part);

    // The same seed gives the same numbers.
    let again = tmp.path().join("again");
    let o = bin().args(prune_args(&again)).output().unwrap();
    assert!(o.status.success());
    assert_eq!(records(&again), rec_full);
}

#[test]
fn missing_and_corrupt_data_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let empty = tmp.path().join("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    let mut a = vec!["train", "--epochs", "1"];
    a.extend(common(empty.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_error(&run(&a), &["train-images-idx3-ubyte", "not found"]);

    let data = tiny_mnist(tmp.path());
    let img = data.join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[..4].copy_from_slice(&[0, 0, 9, 9]);
    std::fs::write(&img, &bytes).unwrap();
    let mut a = vec!["train", "--epochs", "1"];
    a.extend(common(data.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_error(&run(&a), &["train-images-idx3-ubyte", "magic"]);
    assert!(!out.join("checkpoint.safetensors").exists());
}

#[test]
fn truncated_checkpoint_is_refused_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_mnist(tmp.path());
    let d = data.to_str().unwrap();
    let dense = tmp.path().join("dense");
    let mut a = vec!["train", "--epochs", "1", "--train-limit", "128"];
    a.extend(common(d, dense.to_str().unwrap()));
    assert!(run(&a).status.success());
    let ck = dense.join("checkpoint.safetensors");
    let bytes = std::fs::read(&ck).unwrap();
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let b = bad.to_str().unwrap();
    assert_clean_error(
        &run(&["eval", b, "--data-dir", d]),
        &["bad.safetensors", "truncated"],
    );
    let out = tmp.path().join("p");
    let mut a = vec!["prune", "--from", b, "--target-sparsity", "90"];
    a.extend(common(d, out.to_str().unwrap()));
    assert_clean_error(&run(&a), &["bad.safetensors", "truncated"]);
    assert_clean_error(&run(&["prune", "--resume", b]), &["bad.safetensors"]);
    assert_clean_error(
        &run(&["eval", "/nonexistent/ck.safetensors"]),
        &["/nonexistent/ck.safetensors"],
    );
}

#[test]
fn model_that_does_not_fit_the_data_and_a_damaged_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cifar = tmp.path().join("cifar");
    hf_data::synth::write_cifar_dataset(&cifar, hf_data::DatasetKind::Cifar10, 64, 32, 1).unwrap();
    let out = tmp.path().join("o");
    let mut a = vec!["train", "--epochs", "1", "--dataset", "cifar10"];
    a.extend(common(cifar.to_str().unwrap(), out.to_str().unwrap()));
    assert_clean_error(&run(&a), &["lenet300", "cifar10"]);

    // A dense checkpoint whose first weights were overwritten with NaN after it was written:
    // refused on load (its checksum no longer matches), before any training.
    let data = tiny_mnist(tmp.path());
    let d = data.to_str().unwrap();
    let dense = tmp.path().join("dense");
    let mut a = vec!["train", "--epochs", "1", "--train-limit", "128"];
    a.extend(common(d, dense.to_str().unwrap()));
    assert!(run(&a).status.success());
    let ck = dense.join("checkpoint.safetensors");
    let mut bytes = std::fs::read(&ck).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header["fc1.weight"]["data_offsets"][0].as_u64().unwrap() as usize + 8 + n;
    for i in 0..1000 {
        bytes[start + 4 * i..start + 4 * i + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    }
    let nan = tmp.path().join("nan.safetensors");
    std::fs::write(&nan, &bytes).unwrap();
    let out = tmp.path().join("p");
    let mut a = vec![
        "prune",
        "--from",
        nan.to_str().unwrap(),
        "--target-sparsity",
        "90",
    ];
    a.extend(common(d, out.to_str().unwrap()));
    assert_clean_error(&run(&a), &["nan.safetensors", "checksum mismatch"]);
    no_temp_files(&out);
}
