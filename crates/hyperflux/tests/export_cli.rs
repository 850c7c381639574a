//! Export → load → infer with the pure-Rust runtime gives the engine's predictions: same top-1
//! for every test image, logits within 1e-4, the same accuracy; bad files are refused cleanly.

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

/// `bench-infer` on the synthetic LeNet-300-100, 3 samples per cell, 1 thread, the runtime's
/// own columns only, at `batch`, with `extra` arguments.
fn quick_bench(batch: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bench-infer",
        "--synthetic",
        "lenet300",
        "--runs",
        "3",
        "--batch",
        batch,
        "--threads",
        "1",
        "--no-libtorch",
        "--no-onnxruntime",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// The table rows of `bench-infer` output (batch, 4 times, 3 ratios, examples per second)
/// whose batch is one of `batches`.
fn bench_rows<'a>(out: &'a str, batches: &[&str]) -> Vec<&'a str> {
    out.lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|b| batches.contains(&b))
                && l.split_whitespace().count() == 9
        })
        .collect()
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

#[test]
fn exported_model_reproduces_engine_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    hf_data::synth::write_idx_dataset(&data, 640, 300, true, 3).unwrap();
    let d = data.to_str().unwrap();
    let out = tmp.path().join("p");
    let o = out.to_str().unwrap();
    ok(&run(&[
        "prune",
        "--target-sparsity",
        "95",
        "--pruning-epochs",
        "5",
        "--regrowth-epochs",
        "2",
        "--mask-lr",
        "0.05",
        "--data-dir",
        d,
        "--out",
        o,
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--quiet",
    ]));
    let ck = out.join("checkpoint.safetensors");
    let engine_logits = tmp.path().join("engine.csv");
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
    assert_eq!(engine.len(), 300);

    let mut sizes = vec![];
    for format in ["sparse", "dense"] {
        let file = tmp.path().join(format!("m.{format}.safetensors"));
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
        sizes.push(std::fs::metadata(&file).unwrap().len());
        for dense_path in [false, true] {
            let lf = tmp.path().join(format!("rt-{format}-{dense_path}.csv"));
            let mut args = vec![
                "infer",
                f,
                "--dataset",
                "mnist",
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
                "{format} dense_path={dense_path}: {line}"
            );
            let rt = read_logits(&lf);
            assert_eq!(rt.len(), engine.len());
            for (a, b) in rt.iter().zip(&engine) {
                let argmax = |r: &[f32]| {
                    r.iter()
                        .enumerate()
                        .fold(0, |m, (i, v)| if *v > r[m] { i } else { m })
                };
                assert_eq!(argmax(a), argmax(b), "top-1 differs");
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() < 1e-4, "logit {x} vs {y}");
                }
            }
        }
    }
    // Single predictions from an IDX image file (the test images) and from a uint8 .npy file
    // agree with the engine's top-1.
    let sparse = tmp.path().join("m.sparse.safetensors");
    let idx = data.join("t10k-images-idx3-ubyte.gz");
    let out = ok(&run(&[
        "infer",
        sparse.to_str().unwrap(),
        "--input",
        idx.to_str().unwrap(),
    ]));
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold(0, |m, (i, v)| if *v > r[m] { i } else { m })
    };
    let preds: Vec<usize> = out
        .lines()
        .map(|l| {
            l.split("class ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(preds.len(), engine.len());
    for (p, e) in preds.iter().zip(&engine) {
        assert_eq!(*p, argmax(e));
    }
    let ds = hf_data::load(hf_data::DatasetKind::Mnist, &data, hf_data::Split::Test).unwrap();
    let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 28, 28), }";
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let pad = 64 - (10 + header.len() + 1) % 64;
    let hlen = (header.len() + pad + 1) as u16;
    npy.extend_from_slice(&hlen.to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend(std::iter::repeat_n(b' ', pad));
    npy.push(b'\n');
    npy.extend_from_slice(ds.image(0).as_u8().unwrap());
    let npy_path = tmp.path().join("one.npy");
    std::fs::write(&npy_path, &npy).unwrap();
    let out = ok(&run(&[
        "infer",
        sparse.to_str().unwrap(),
        "--input",
        npy_path.to_str().unwrap(),
    ]));
    assert!(
        out.starts_with(&format!("0: class {} ", argmax(&engine[0]))),
        "{out}"
    );

    // At ~5% density the sparse file is far smaller than the dense one.
    assert!(
        sizes[0] * 5 < sizes[1],
        "sparse {} vs dense {}",
        sizes[0],
        sizes[1]
    );

    // ONNX: from the checkpoint and converted from the sparse file, the same bytes; ONNX
    // Runtime on the raw test images, normalised with the file's own preprocessing metadata,
    // gives the sparse runtime's logits.
    let onnx = tmp.path().join("m.onnx");
    ok(&run(&[
        "export",
        ck.to_str().unwrap(),
        "--format",
        "onnx",
        "-o",
        onnx.to_str().unwrap(),
        "--data-dir",
        d,
    ]));
    let converted = tmp.path().join("m2.onnx");
    ok(&run(&[
        "export",
        sparse.to_str().unwrap(),
        "--format",
        "onnx",
        "-o",
        converted.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(&onnx).unwrap(),
        std::fs::read(&converted).unwrap()
    );
    let ort_csv = tmp.path().join("ort.csv");
    onnxruntime_on_idx(&onnx, &idx, &ort_csv);
    let ort = read_logits(&ort_csv);
    let rt = read_logits(&tmp.path().join("rt-sparse-false.csv"));
    assert_eq!(ort.len(), rt.len());
    for (a, b) in ort.iter().zip(&rt) {
        assert_eq!(a.len(), 10);
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-4,
                "ONNX Runtime logit {x} vs runtime {y}"
            );
        }
    }
    let o = run(&[
        "export",
        sparse.to_str().unwrap(),
        "--format",
        "tflite",
        "-o",
        "x",
    ]);
    assert!(!o.status.success());
}

/// Runs `model` with ONNX Runtime (the venv's, via Python) on the gzipped IDX images `idx`,
/// normalised with the model's `preprocessing` metadata; writes the logits as CSV. Fails,
/// saying to run scripts/setup.sh, when the venv lacks onnxruntime.
fn onnxruntime_on_idx(model: &Path, idx: &Path, out: &Path) {
    const SCRIPT: &str = r#"
import gzip, json, sys
import numpy as np
import onnxruntime as ort
model, idx, out = sys.argv[1:4]
s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
pre = json.loads(s.get_modelmeta().custom_metadata_map["preprocessing"])
raw = gzip.open(idx).read()
n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
px = np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, 1, h, w).astype(np.float32)
mean = np.array(pre["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
std = np.array(pre["std"], dtype=np.float32).reshape(1, -1, 1, 1)
x = (px * np.float32(pre["scale"]) - mean) / std
(y,) = s.run(["logits"], {"input": x.astype(np.float32)})
with open(out, "w") as f:
    for row in y:
        f.write(",".join(repr(float(v)) for v in row) + "\n")
"#;
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let probe = Command::new(&py)
        .args(["-c", "import numpy, onnxruntime"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "ONNX Runtime is not installed in the project venv ({}): run scripts/setup.sh",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "no venv Python at {} ({e}): run scripts/setup.sh",
            py.display()
        ),
    }
    let o = Command::new(&py)
        .args(["-c", SCRIPT])
        .args([model, idx, out])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "onnxruntime failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn corrupt_export_and_unsupported_inputs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let o = run(&["infer", bad.to_str().unwrap(), "--dataset", "mnist"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error:") && err.contains("bad.safetensors"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let o = run(&[
        "bench-infer",
        "--synthetic",
        "lenet300",
        "--sparsity",
        "100",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside (0, 100)"));
}

#[test]
fn synthetic_bench_ends_with_the_batch1_speedup() {
    let o = run(&[
        "bench-infer",
        "--synthetic",
        "lenet300",
        "--sparsity",
        "98",
        "--runs",
        "5",
        "--batch",
        "1",
        "--no-libtorch",
    ]);
    let out = ok(&o);
    let last = out.lines().last().unwrap();
    let v: f64 = last.trim().parse().expect("last line is a number");
    assert!(v > 0.0);
    assert!(out.contains("dense 266200, sparse 5324"), "{out}");
}

/// `--stat`: the header says which statistic the cells are (median by default, the best
/// sample with `min`), and another word is refused by the argument parser.
#[test]
fn bench_stat_names_the_statistic() {
    let args = |stat: &str| quick_bench("1,2", &["--stat", stat]);
    let out = ok(&args("min"));
    assert!(
        out.contains("best of 3 interleaved samples per cell"),
        "{out}"
    );
    assert_eq!(bench_rows(&out, &["1", "2"]).len(), 2, "{out}");
    let out = ok(&args("median"));
    assert!(
        out.contains("median of 3 interleaved samples per cell"),
        "{out}"
    );
    assert_eq!(args("mean").status.code(), Some(2));
}

/// The ONNX Runtime column: measured per batch and thread count when the venv has ONNX
/// Runtime (scripts/setup.sh installs it), "not installed" without failing when it cannot be
/// found.
#[test]
fn bench_has_an_onnxruntime_column() {
    let args = [
        "bench-infer",
        "--synthetic",
        "lenet300",
        "--sparsity",
        "98",
        "--runs",
        "3",
        "--batch",
        "1,4",
        "--threads",
        "1,2",
        "--no-libtorch",
    ];
    let out = ok(&run(&args));
    assert!(
        out.contains("onnxruntime: ") && out.contains("max |logit difference| vs sparse"),
        "no ONNX Runtime in the venv? run scripts/setup.sh\n{out}"
    );
    assert!(
        out.contains("\n1 thread:") && out.contains("\n2 threads:"),
        "{out}"
    );
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|c| c.ends_with("µs"))
        })
        .collect();
    assert_eq!(rows.len(), 4, "{out}");
    for r in rows {
        let cells: Vec<&str> = r.split_whitespace().collect();
        // batch, sparse, dense, libtorch (skipped), onnxrt, dense/sp, torch/sp, ort/sp, ex/s
        assert_eq!(cells.len(), 9, "{r}");
        assert!(cells[4].ends_with("µs") && cells[7].ends_with('x'), "{r}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_hyperflux"))
        .args(args)
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let out = ok(&o);
    assert!(
        out.contains("onnxruntime: not installed (run scripts/setup.sh)"),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().trim().parse::<f64>().is_ok(),
        "{out}"
    );
}

/// The conv benchmark without a trained model: a synthetic vgg-narrow with the layer profile of
/// the 95% run, every column (libtorch from the export's own graph), the per-layer breakdown,
/// and each conv kernel by name giving the same multiply-add count.
#[test]
fn synthetic_vgg_narrow_bench_has_every_column_and_a_layer_breakdown() {
    for conv in ["auto", "shifted", "direct", "lowered"] {
        let out = ok(&run(&[
            "bench-infer",
            "--synthetic",
            "vgg-narrow",
            "--runs",
            "2",
            "--batch",
            "1,3",
            "--threads",
            "1",
            "--layers",
            "--conv",
            conv,
        ]));
        assert!(out.contains("5.00% dense"), "{out}");
        assert!(out.contains("dense 5717504"), "{out}");
        assert!(
            out.contains("export's layer graph as dense libtorch ops"),
            "{out}"
        );
        let rows = bench_rows(&out, &["1", "3"]);
        assert_eq!(rows.len(), 2, "{out}");
        for r in rows {
            let cells: Vec<&str> = r.split_whitespace().collect();
            assert!(cells[1..4].iter().all(|c| c.ends_with("µs")), "{r}");
        }
        // one breakdown line per layer (6 convs, 3 pools, gap, flat, classifier) per batch
        let layer_lines = out
            .lines()
            .filter(|l| l.starts_with("      ") && l.contains("dense(rs)"))
            .count();
        assert_eq!(layer_lines, 2 * 12, "{out}");
    }
    let o = run(&["bench-infer", "--synthetic", "vgg-narrow", "--conv", "fast"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Real images as the benchmark's inputs: --data times the first test images of a dataset
/// (here generated MNIST-format files), preprocessed as the export records; a dataset whose
/// images do not fit the model is refused in one line.
#[test]
fn bench_times_dataset_images() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    hf_data::synth::write_idx_dataset(&data, 64, 40, false, 9).unwrap();
    let args = |dir: &str| quick_bench("1,8", &["--data", "mnist", "--data-dir", dir]);
    let out = ok(&args(data.to_str().unwrap()));
    assert!(
        out.contains("inputs: the first 8 of the 40 test images"),
        "{out}"
    );
    assert_eq!(bench_rows(&out, &["1", "8"]).len(), 2, "{out}");
    let o = args(tmp.path().join("missing").to_str().unwrap());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error:") && !err.contains("panicked"),
        "{err}"
    );
}
