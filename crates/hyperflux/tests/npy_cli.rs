//! Bring your own data: `--dataset npy:DIR` end to end (train → eval → export → infer), the
//! `--normalize` setting, the input preprocessing recorded in exports and applied by
//! `infer --raw`, and the one-line errors of bad npy data.

use std::path::Path;
use std::process::{Command, Output};

use hf_data::synth::{npy_f32, npy_i64, npy_u8};
use hf_data::Preprocessing;

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

/// A failed run with exactly one `error:` line holding every needle, and no panic.
fn clean_error(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks {n:?}: {}", lines[0]);
    }
}

fn accuracy_of(out: &str) -> String {
    let i = out.find("accuracy ").expect("accuracy in output") + 9;
    out[i..].split('%').next().unwrap().to_string()
}

fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b })
}

fn predictions(out: &str) -> Vec<usize> {
    out.lines()
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
        .collect()
}

fn train(data: &str, out: &Path, extra: &[&str]) -> String {
    let mut a = vec![
        "train",
        "--model",
        "lenet300",
        "--dataset",
        data,
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    ok(&run(&a))
}

#[test]
fn npy_dataset_trains_evaluates_exports_and_infers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("npy");
    std::fs::create_dir_all(&dir).unwrap();
    hf_data::synth::write_npy_dataset(&dir, 512, 100, false, 11).unwrap();
    let spec = format!("npy:{}", dir.display());
    let run_dir = tmp.path().join("run");
    let out = train(&spec, &run_dir, &["--normalize", "0.5,0.25"]);
    // The summary line names the held-out validation accuracy first, then the test accuracy.
    assert!(
        out.contains("dense training: validation accuracy") && out.contains(", test accuracy "),
        "{out}"
    );
    let config = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    assert!(
        config.contains(&format!("dataset = \"{spec}\"")) && config.contains("[common.normalize]"),
        "{config}"
    );
    let ck = run_dir.join("checkpoint.safetensors");
    let ck_s = ck.to_str().unwrap();

    // eval: the checkpoint's dataset and normalisation.
    let logits_csv = tmp.path().join("engine.csv");
    let ev = ok(&run(&[
        "eval",
        ck_s,
        "--logits",
        logits_csv.to_str().unwrap(),
    ]));
    assert!(
        ev.contains(&format!("lenet300 on {spec}: test accuracy")),
        "{ev}"
    );
    let acc = accuracy_of(&ev);
    assert!(acc.parse::<f64>().unwrap() > 50.0, "{ev}");
    let engine: Vec<Vec<f32>> = std::fs::read_to_string(&logits_csv)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(engine.len(), 100);

    // export: both layouts record the preprocessing.
    let want = Preprocessing {
        scale: 1.0 / 255.0,
        mean: vec![0.5],
        std: vec![0.25],
    };
    let sparse = tmp.path().join("m.sparse.safetensors");
    for (format, file) in [
        ("sparse", sparse.clone()),
        ("dense", tmp.path().join("m.dense.safetensors")),
    ] {
        let o = ok(&run(&[
            "export",
            ck_s,
            "--format",
            format,
            "-o",
            file.to_str().unwrap(),
        ]));
        assert!(o.contains(&format!("test accuracy {acc}%")), "{o}");
        assert!(
            o.contains("input preprocessing: (x · 0.00392156862745098 − [0.5]) / [0.25]"),
            "{o}"
        );
        let m = hf_sparse::load(&file).unwrap();
        assert_eq!(m.meta().preprocessing.as_ref(), Some(&want));
        assert_eq!(m.meta().dataset, spec);
    }
    let sp = sparse.to_str().unwrap();

    // infer on the dataset (the model's by default): the engine's accuracy.
    let inf = ok(&run(&["infer", sp]));
    assert_eq!(accuracy_of(&inf), acc, "{inf}");
    assert!(
        inf.contains(&format!("lenet300 on {spec} test (100 images")),
        "{inf}"
    );

    // infer on single inputs: raw uint8 pixels, raw floats with --raw, normalised floats.
    let (images, _) =
        hf_data::synth::generate(hf_data::DatasetKind::Mnist, 3, 11 ^ 0x5EED_7E57_0000_0001);
    let test = hf_data::DatasetSpec::Npy(dir.clone())
        .load(hf_data::Split::Test, &hf_data::LoadOptions::default())
        .unwrap();
    let px = &test.images.as_u8().unwrap()[..3 * 784];
    assert_eq!(px, &images[..], "the test split's first images");
    let want_pred: Vec<usize> = engine[..3].iter().map(|r| argmax(r)).collect();
    let u8_file = tmp.path().join("px.npy");
    std::fs::write(&u8_file, npy_u8(&[3, 1, 28, 28], px)).unwrap();
    let raw_f: Vec<f32> = px.iter().map(|&v| f32::from(v)).collect();
    let raw_file = tmp.path().join("raw.npy");
    std::fs::write(&raw_file, npy_f32(&[3, 784], &raw_f)).unwrap();
    let norm: Vec<f32> = raw_f.iter().map(|v| (v / 255.0 - 0.5) / 0.25).collect();
    let norm_file = tmp.path().join("norm.npy");
    std::fs::write(&norm_file, npy_f32(&[3, 28, 28], &norm)).unwrap();
    for (file, raw) in [(&u8_file, false), (&raw_file, true), (&norm_file, false)] {
        let mut a = vec!["infer", sp, "--input", file.to_str().unwrap()];
        if raw {
            a.push("--raw");
        }
        let o = ok(&run(&a));
        assert_eq!(predictions(&o), want_pred, "{file:?} raw={raw}: {o}");
    }
    // A dataset whose labels exceed the model's 10 classes is refused by eval and infer.
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    hf_data::synth::write_npy_dataset(&bad, 4, 4, false, 1).unwrap();
    std::fs::write(bad.join("test_y.npy"), npy_i64(&[4], &[0, 1, 12, 3])).unwrap();
    let o = run(&["eval", ck_s, "--data-dir", bad.to_str().unwrap()]);
    clean_error(
        &o,
        &["test_y.npy", "label 12 of example 2", "model's 10 classes"],
    );
    let o = run(&["infer", sp, "--dataset", &format!("npy:{}", bad.display())]);
    clean_error(&o, &["test_y.npy", "label 12"]);
}

#[test]
fn float_npy_records_identity_preprocessing_and_builtin_records_its_constants() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("f");
    std::fs::create_dir_all(&dir).unwrap();
    hf_data::synth::write_npy_dataset(&dir, 256, 64, true, 2).unwrap();
    let r = tmp.path().join("r");
    train(&format!("npy:{}", dir.display()), &r, &[]);
    let f = tmp.path().join("f.safetensors");
    let ck = r.join("checkpoint.safetensors");
    ok(&run(&[
        "export",
        ck.to_str().unwrap(),
        "-o",
        f.to_str().unwrap(),
    ]));
    let m = hf_sparse::load(&f).unwrap();
    assert_eq!(m.meta().preprocessing, Some(Preprocessing::identity()));

    // Built-in MNIST: the published constants, scale 1/255.
    let mnist = tmp.path().join("mnist");
    hf_data::synth::write_idx_dataset(&mnist, 256, 64, false, 2).unwrap();
    let r = tmp.path().join("m");
    train("mnist", &r, &["--data-dir", mnist.to_str().unwrap()]);
    let f = tmp.path().join("m.safetensors");
    let ck = r.join("checkpoint.safetensors");
    ok(&run(&[
        "export",
        ck.to_str().unwrap(),
        "-o",
        f.to_str().unwrap(),
        "--data-dir",
        mnist.to_str().unwrap(),
    ]));
    let m = hf_sparse::load(&f).unwrap();
    assert_eq!(
        m.meta().preprocessing,
        Some(Preprocessing {
            scale: 1.0 / 255.0,
            mean: vec![0.1307],
            std: vec![0.3081]
        })
    );
}

#[test]
fn bad_npy_data_and_normalize_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir_all(&dir).unwrap();
    hf_data::synth::write_npy_dataset(&dir, 8, 4, true, 1).unwrap();
    let spec = format!("npy:{}", dir.display());
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    let base = ["train", "--epochs", "1", "--quiet", "--out", o, "--dataset"];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.push(&spec);
        a.extend_from_slice(extra);
        run(&a)
    };
    clean_error(
        &with(&["--normalize", "1,2,3"]),
        &["--normalize 1,2,3", "MEAN,STD"],
    );
    clean_error(
        &with(&["--normalize", "0,0,1,1"]),
        &["--normalize", "2 mean/std pairs", "1 channels"],
    );
    std::fs::write(dir.join("train_x.npy"), b"not numpy").unwrap();
    clean_error(&with(&[]), &["train_x.npy", "not a .npy file"]);
    std::fs::remove_file(dir.join("train_x.npy")).unwrap();
    clean_error(&with(&[]), &["train_x.npy", "not found", "npy:DIR"]);
    // A flat N×D dataset (6×1×1 per example) does not fit LeNet-300-100: named, with the shapes.
    let flat = tmp.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for split in ["train", "test"] {
        std::fs::write(
            flat.join(format!("{split}_x.npy")),
            npy_f32(&[4, 6], &[0.5; 24]),
        )
        .unwrap();
        std::fs::write(
            flat.join(format!("{split}_y.npy")),
            npy_i64(&[4], &[0, 1, 0, 1]),
        )
        .unwrap();
    }
    let mut b = base.to_vec();
    let f = format!("npy:{}", flat.display());
    b.push(&f);
    b.extend_from_slice(&["--model", "lenet300"]);
    clean_error(&run(&b), &["lenet300", "[1, 28, 28]", &f, "[6, 1, 1]"]);
}
