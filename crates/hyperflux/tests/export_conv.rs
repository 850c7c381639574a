//! Conv nets through export → infer: the pure-Rust runtime (BatchNorm folded into the convs,
//! pooling, flatten, residual adds, projection shortcuts) gives the engine's eval-mode
//! predictions: same top-1 for every test image, logits within a tight tolerance, the same
//! accuracy, for both file formats and both runtime paths; `bench-infer` runs on the export.

use hf_data::DatasetKind;
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyperflux"))
        .args(args)
        .output()
        .expect("run hyperflux")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_logits(p: &Path) -> Vec<Vec<f32>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

fn accuracy_of(line: &str) -> String {
    let i = line.find("accuracy ").expect("accuracy in output") + 9;
    line[i..].split('%').next().unwrap().to_string()
}

fn argmax(r: &[f32]) -> usize {
    r.iter()
        .enumerate()
        .fold(0, |m, (i, v)| if *v > r[m] { i } else { m })
}

/// Prunes `model` briefly on the data in `data`, then checks eval (engine) against infer
/// (runtime) for both formats and paths. Returns the checkpoint and the sparse export.
fn prune_export_compare(
    tmp: &Path,
    model: &str,
    dataset: &str,
    data: &Path,
    n_test: usize,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let d = data.to_str().unwrap();
    let out = tmp.join(format!("run-{model}"));
    ok(&run(&[
        "prune",
        "--model",
        model,
        "--dataset",
        dataset,
        "--target-sparsity",
        "80",
        "--pruning-epochs",
        "3",
        "--regrowth-epochs",
        "1",
        "--mask-lr",
        "0.05",
        "--train-limit",
        "256",
        "--batch-size",
        "64",
        "--data-dir",
        d,
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
        "--quiet",
    ]));
    let ck = out.join("checkpoint.safetensors");
    let engine_logits = tmp.join(format!("{model}-engine.csv"));
    let ev = ok(&run(&[
        "eval",
        ck.to_str().unwrap(),
        "--data-dir",
        d,
        "--logits",
        engine_logits.to_str().unwrap(),
    ]));
    let engine_acc = accuracy_of(ev.lines().next().unwrap());
    let engine = read_logits(&engine_logits);
    assert_eq!(engine.len(), n_test);
    let mut sparse_file = None;
    let mut worst = 0f32;
    for format in ["sparse", "dense"] {
        let file = tmp.join(format!("{model}.{format}.safetensors"));
        let f = file.to_str().unwrap();
        ok(&run(&[
            "export",
            ck.to_str().unwrap(),
            "--format",
            format,
            "-o",
            f,
            "--data-dir",
            d,
        ]));
        for dense_path in [false, true] {
            let lf = tmp.join(format!("{model}-rt-{format}-{dense_path}.csv"));
            let mut args = vec![
                "infer",
                f,
                "--dataset",
                dataset,
                "--data-dir",
                d,
                "--logits",
                lf.to_str().unwrap(),
            ];
            if dense_path {
                args.push("--dense");
            }
            let line = ok(&run(&args));
            assert_eq!(
                accuracy_of(&line),
                engine_acc,
                "{model} {format} dense_path={dense_path}: {line}"
            );
            let rt = read_logits(&lf);
            assert_eq!(rt.len(), engine.len());
            for (i, (a, b)) in rt.iter().zip(&engine).enumerate() {
                assert_eq!(a.len(), b.len());
                assert_eq!(argmax(a), argmax(b), "{model} image {i}: top-1 differs");
                for (x, y) in a.iter().zip(b) {
                    let tol = 1e-4 * (1.0 + y.abs());
                    worst = worst.max((x - y).abs());
                    assert!(
                        (x - y).abs() < tol,
                        "{model} {format} dense_path={dense_path} image {i}: logit {x} vs {y}"
                    );
                }
            }
        }
        if format == "sparse" {
            sparse_file = Some(file);
        }
    }
    eprintln!("{model}: largest logit difference engine vs runtime {worst:e}");
    (ck, sparse_file.unwrap())
}

fn bench(file: &Path) -> String {
    ok(&run(&[
        "bench-infer",
        file.to_str().unwrap(),
        "--runs",
        "3",
        "--batch",
        "1,2",
        "--threads",
        "1",
    ]))
}

#[test]
fn vgg_narrow_export_reproduces_engine_and_benches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("fmnist");
    hf_data::synth::write_idx_dataset(&data, 256, 120, false, 5).unwrap();
    let (ck, sparse) = prune_export_compare(tmp.path(), "vgg-narrow", "fashion-mnist", &data, 120);
    // The libtorch column runs the export's own graph: it needs no source checkpoint.
    std::fs::remove_file(&ck).unwrap();
    let out = bench(&sparse);
    assert!(
        out.contains("export's layer graph as dense libtorch ops"),
        "{out}"
    );
    assert!(!out.contains("no libtorch column"), "{out}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("1 ") && l.split_whitespace().count() == 9)
        .unwrap_or_else(|| panic!("{out}"));
    // batch, sparse, dense(rs), libtorch: a time in every column
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert!(cells[1..4].iter().all(|c| c.ends_with("µs")), "{row}");
    let last = out.lines().last().unwrap();
    assert!(last.trim().parse::<f64>().unwrap() > 0.0, "{out}");
}

#[test]
fn resnet20_export_reproduces_engine_on_cifar() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar");
    hf_data::synth::write_cifar_dataset(&data, DatasetKind::Cifar10, 256, 100, 7).unwrap();
    let (_, sparse) = prune_export_compare(tmp.path(), "resnet20", "cifar10", &data, 100);
    let out = bench(&sparse);
    assert!(
        out.contains("export's layer graph as dense libtorch ops"),
        "{out}"
    );
    assert!(!out.contains("logits differ"), "{out}");
}
