//! Bad input and damaged state, through the built binary: each case of the reliability issue
//! gets a generated bad file (or run folder) and must end in one `error:` line with exit code 1,
//! or be handled (cleaned up, noted) — never a wrong number with exit code 0.

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}\n{}", stderr(o), stdout(o));
    stdout(o)
}

/// A failed run: exit code 1, exactly one `error:` line containing every needle, no panic.
fn assert_clean_error(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1; stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "panic: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "want exactly one error line, got: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "error line lacks {n:?}: {}", lines[0]);
    }
    lines[0].to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Tiny MNIST-format data, a dense LeNet-300-100 trained on it for one epoch, and its sparse
/// export: made once, shared by the tests (read-only).
struct Fixture {
    data: PathBuf,
    dense: PathBuf,
    sparse: PathBuf,
    root: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("reliability-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("mnist");
        hf_data::synth::write_idx_dataset(&data, 640, 200, false, 7).unwrap();
        let out = root.join("dense");
        ok(&run(&[
            "train",
            "--epochs",
            "1",
            "--seed",
            "3",
            "--data-dir",
            s(&data),
            "--out",
            s(&out),
            "--batch-size",
            "64",
            "--threads",
            "1",
            "--quiet",
        ]));
        let sparse = root.join("dense.sparse.safetensors");
        let dense = out.join("checkpoint.safetensors");
        ok(&run(&[
            "export",
            s(&dense),
            "--format",
            "sparse",
            "-o",
            s(&sparse),
            "--data-dir",
            s(&data),
        ]));
        Fixture {
            data,
            dense,
            sparse,
            root,
        }
    })
}

/// Common run flags on the fixture's data.
fn common(data: &Path, out: &Path) -> Vec<String> {
    [
        "--data-dir",
        s(data),
        "--out",
        s(out),
        "--batch-size",
        "64",
        "--threads",
        "1",
        "--quiet",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect()
}

fn run_s(args: &[String]) -> Output {
    bin().args(args).output().expect("run hyperflux")
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

/// An editable safetensors file (header JSON + data), so tests can write bad files.
struct St {
    header: Map<String, Value>,
    data: Vec<u8>,
}

impl St {
    fn read(p: &Path) -> St {
        let b = std::fs::read(p).unwrap();
        let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        St {
            header: serde_json::from_slice(&b[8..8 + n]).unwrap(),
            data: b[8 + n..].to_vec(),
        }
    }

    fn range(&self, name: &str) -> std::ops::Range<usize> {
        let o = &self.header[name]["data_offsets"];
        o[0].as_u64().unwrap() as usize..o[1].as_u64().unwrap() as usize
    }

    fn bytes_mut(&mut self, name: &str) -> &mut [u8] {
        let r = self.range(name);
        &mut self.data[r]
    }

    fn set_f32(&mut self, name: &str, i: usize, v: f32) {
        self.bytes_mut(name)[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn meta(&mut self) -> &mut Map<String, Value> {
        self.header["__metadata__"].as_object_mut().unwrap()
    }

    fn meta_str(&self, key: &str) -> Option<String> {
        self.header["__metadata__"][key].as_str().map(String::from)
    }

    fn set_meta(&mut self, key: &str, v: &str) {
        self.meta().insert(key.into(), Value::String(v.into()));
    }

    /// Recomputes the tensor-data checksum: a bad file that still passes the checksum.
    fn rehash(&mut self) {
        let names: Vec<String> = self
            .header
            .keys()
            .filter(|k| *k != "__metadata__")
            .cloned()
            .collect();
        let parts: Vec<(String, Vec<u8>)> = names
            .iter()
            .map(|n| (n.clone(), self.data[self.range(n)].to_vec()))
            .collect();
        let d =
            hf_core::checksum::tensor_digest(parts.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        self.set_meta(hf_core::checksum::KEY, &d);
    }

    fn write(&self, p: &Path) {
        let mut h = serde_json::to_vec(&self.header).unwrap();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        out.extend(&self.data);
        std::fs::write(p, out).unwrap();
    }
}

/// A float32 .npy file of shape (n, len).
fn write_npy_f32(p: &Path, x: &[f32], n: usize) {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, {}), }}",
        x.len() / n
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    b.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(p, b).unwrap();
}

/// records.csv as one map per row, by column name.
fn records(dir: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("records.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn num(r: &HashMap<String, String>, k: &str) -> f64 {
    r[k].parse()
        .unwrap_or_else(|_| panic!("{k} = {:?} is not a number", r[k]))
}

/// Rows without the wall time, for comparing two runs.
fn comparable(rows: &[HashMap<String, String>]) -> Vec<Vec<(String, String)>> {
    rows.iter()
        .map(|r| {
            let mut v: Vec<(String, String)> = r
                .iter()
                .filter(|(k, _)| *k != "seconds")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            v.sort();
            v
        })
        .collect()
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".hf-tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// A pid that is not running (a child that has exited and been reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

// ---------------------------------------------------------------------------------------------
// 1. NaN/Inf weights or masks in a checkpoint.

#[test]
fn non_finite_checkpoint_values_are_refused_by_eval_export_prune_and_resume() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    for (tensor, value) in [("fc1.weight", f32::NAN), ("fc2.mask", f32::INFINITY)] {
        let mut st = St::read(&f.dense);
        st.set_f32(tensor, 5, value);
        st.rehash(); // a checksum that matches: the finiteness check itself must refuse it
        let bad = tmp.path().join("nonfinite.safetensors");
        st.write(&bad);
        let needles = ["nonfinite.safetensors", tensor, "not finite"];
        assert_clean_error(&run(&["eval", s(&bad), "--data-dir", s(&f.data)]), &needles);
        let o = tmp.path().join("x.sparse.safetensors");
        assert_clean_error(
            &run(&["export", s(&bad), "-o", s(&o), "--data-dir", s(&f.data)]),
            &needles,
        );
        assert!(!o.exists());
        let mut a = strings(&["prune", "--from", s(&bad), "--target-sparsity", "90"]);
        a.extend(common(&f.data, &tmp.path().join("p")));
        assert_clean_error(&run_s(&a), &needles);
        assert_clean_error(&run(&["train", "--resume", s(&bad)]), &needles);
    }
}

// 2. A test set with zero images.

#[test]
fn empty_data_sets_are_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty-test");
    hf_data::synth::write_idx_dataset(&empty, 64, 0, false, 1).unwrap();
    assert_clean_error(
        &run(&["eval", s(&f.dense), "--data-dir", s(&empty)]),
        &["MNIST test set", "no examples"],
    );
    let mut a = strings(&["train", "--epochs", "1"]);
    a.extend(common(&empty, &tmp.path().join("t")));
    assert_clean_error(&run_s(&a), &["no examples"]);
    assert_clean_error(
        &run(&["infer", s(&f.sparse), "--data-dir", s(&empty)]),
        &["no examples"],
    );
    let no_train = tmp.path().join("empty-train");
    hf_data::synth::write_idx_dataset(&no_train, 0, 10, false, 1).unwrap();
    let mut a = strings(&["train", "--epochs", "1"]);
    a.extend(common(&no_train, &tmp.path().join("t2")));
    assert_clean_error(&run_s(&a), &["MNIST train set", "no examples"]);
}

// 3. and 4. `infer --input`: non-finite values, truncated IDX files.

#[test]
fn infer_refuses_non_finite_inputs() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let x = vec![0.1f32; 3 * 784];
    let good = tmp.path().join("good.npy");
    write_npy_f32(&good, &x, 3);
    let out = ok(&run(&["infer", s(&f.sparse), "--input", s(&good)]));
    assert_eq!(out.lines().filter(|l| l.contains("class")).count(), 3);
    for (at, v) in [(784 + 10, f32::NAN), (2 * 784, f32::INFINITY)] {
        let mut x = x.clone();
        x[at] = v;
        let bad = tmp.path().join("bad.npy");
        write_npy_f32(&bad, &x, 3);
        let e = assert_clean_error(
            &run(&["infer", s(&f.sparse), "--input", s(&bad)]),
            &["bad.npy", "finite"],
        );
        // The error names the example holding the value (the npy reader says "example N").
        let n = at / 784;
        assert!(
            e.contains(&format!("example {n}")) || e.contains(&format!("input {n}")),
            "{e}"
        );
    }
}

#[test]
fn truncated_idx_input_reports_expected_and_actual_bytes() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (images, _) = hf_data::synth::generate(hf_data::DatasetKind::Mnist, 3, 1);
    let p = tmp.path().join("three.idx");
    hf_data::synth::write_idx_images(&p, &images, 3, 28, 28, false).unwrap();
    let out = ok(&run(&["infer", s(&f.sparse), "--input", s(&p)]));
    assert_eq!(out.lines().filter(|l| l.contains("class")).count(), 3);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let e = assert_clean_error(
        &run(&["infer", s(&f.sparse), "--input", s(&p)]),
        &["three.idx", "truncated", "2368", "2268"],
    );
    assert!(!e.contains("784 values per image"), "{e}");
    // A gzipped truncated copy says the same after decompression.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes[..bytes.len() - 100]).unwrap();
    std::fs::write(&p, gz.finish().unwrap()).unwrap();
    assert_clean_error(
        &run(&["infer", s(&f.sparse), "--input", s(&p)]),
        &["truncated", "2368", "2268"],
    );
}

// 5. A finite but exploding loss.

#[test]
fn finite_exploding_loss_is_divergence_naming_the_setting() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lr");
    let mut a = strings(&[
        "train",
        "--epochs",
        "4",
        "--optimizer",
        "adam",
        "--lr",
        "1e6",
    ]);
    a.extend(common(&f.data, &out));
    let e = assert_clean_error(
        &run_s(&a),
        &["diverged", "lower the learning rate --lr", "weight LR was"],
    );
    assert!(
        e.contains("e6") || e.contains("e5"),
        "names the LR used: {e}"
    );
    assert!(temp_files(&out).is_empty());
}

// 6. `bench-infer --runs 0` (and `bench` with nothing to time).

#[test]
fn zero_timed_samples_are_refused() {
    assert_clean_error(
        &run(&["bench-infer", "--synthetic", "lenet300", "--runs", "0"]),
        &["--runs 0"],
    );
    assert_clean_error(&run(&["bench", "--runs", "0"]), &["--runs 0"]);
    assert_clean_error(&run(&["bench", "--steps", "0"]), &["--steps 0"]);
    assert_clean_error(&run(&["bench", "--batch-size", "0"]), &["--batch-size 0"]);
}

/// `--device cuda` either runs (a CUDA libtorch and a GPU) or says in one line why not and
/// what to do; `auto` always runs.
#[test]
fn device_cuda_runs_or_says_why_not() {
    let args = [
        "bench",
        "--steps",
        "1",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--densities",
        "100",
    ];
    let o = run(&[&args[..], &["--device", "cuda"]].concat());
    if o.status.success() {
        assert!(stdout(&o).contains("device cuda:0"), "{}", stdout(&o));
    } else {
        assert_clean_error(&o, &["--device cuda", "--device cpu"]);
    }
    let auto = ok(&run(&[&args[..], &["--device", "auto"]].concat()));
    assert!(
        auto.contains("device cpu") || auto.contains("device cuda:0"),
        "{auto}"
    );
    assert_clean_error(
        &run(&[&args[..], &["--device", "tpu"]].concat()),
        &["unknown device", "cpu, cuda or auto"],
    );
}

// 7. Metadata out of its documented range, or contradicting itself.

#[test]
fn out_of_range_or_contradictory_metadata_is_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // A sparse export whose accuracy is a percentage (2.5 = 250%).
    let mut st = St::read(&f.sparse);
    st.set_meta("accuracy", "2.5");
    let bad = tmp.path().join("acc.sparse.safetensors");
    st.write(&bad);
    assert_clean_error(
        &run(&["infer", s(&bad), "--data-dir", s(&f.data)]),
        &["acc.sparse.safetensors", "accuracy 2.5 is outside [0, 1]"],
    );
    // A checkpoint labelled cifar10 with a 1×28×28 input: export must not write the
    // contradiction into a file, eval must not run it.
    let mut st = St::read(&f.dense);
    st.set_meta("dataset", "cifar10");
    let bad = tmp.path().join("cifar-label.safetensors");
    st.write(&bad);
    let o = tmp.path().join("c.sparse.safetensors");
    assert_clean_error(
        &run(&["export", s(&bad), "-o", s(&o), "--data-dir", s(&f.data)]),
        &[
            "cifar-label.safetensors",
            "contradicts",
            "cifar10",
            "[1, 28, 28]",
        ],
    );
    assert!(!o.exists());
    assert_clean_error(
        &run(&["eval", s(&bad), "--data-dir", s(&f.data)]),
        &["contradicts"],
    );
    // The export hyperflux writes is in range.
    let st = St::read(&f.sparse);
    let acc: f64 = st.meta_str("accuracy").unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{acc}");
}

// 8. Corruption that still parses.

#[test]
fn flipped_bytes_are_refused_and_checksumless_files_load_with_a_note() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // Checkpoint: one bit of one weight.
    let mut st = St::read(&f.dense);
    assert_eq!(st.meta_str(hf_core::checksum::KEY).unwrap().len(), 64);
    st.bytes_mut("fc2.weight")[1001] ^= 0x04;
    let bad = tmp.path().join("flip.safetensors");
    st.write(&bad);
    assert_clean_error(
        &run(&["eval", s(&bad), "--data-dir", s(&f.data)]),
        &["flip.safetensors", "checksum mismatch"],
    );
    let mut a = strings(&["prune", "--from", s(&bad), "--target-sparsity", "90"]);
    a.extend(common(&f.data, &tmp.path().join("p")));
    assert_clean_error(&run_s(&a), &["checksum mismatch"]);
    // Sparse export: one bit of one kept value.
    let mut st = St::read(&f.sparse);
    st.bytes_mut("fc1.values")[401] ^= 0x01;
    let bad = tmp.path().join("flip.sparse.safetensors");
    st.write(&bad);
    assert_clean_error(
        &run(&["infer", s(&bad), "--data-dir", s(&f.data)]),
        &["flip.sparse.safetensors", "checksum mismatch"],
    );
    assert_clean_error(
        &run(&["bench-infer", s(&bad), "--runs", "3", "--no-libtorch"]),
        &["checksum mismatch"],
    );
    // Files without a checksum (other tools' files) still load, with a note.
    for (src, name) in [
        (&f.dense, "nosum.safetensors"),
        (&f.sparse, "nosum.sparse.safetensors"),
    ] {
        let mut st = St::read(src);
        st.meta().remove(hf_core::checksum::KEY);
        let p = tmp.path().join(name);
        st.write(&p);
        let o = if name.contains("sparse") {
            run(&["infer", s(&p), "--data-dir", s(&f.data)])
        } else {
            run(&["eval", s(&p), "--data-dir", s(&f.data)])
        };
        ok(&o);
        assert!(
            stderr(&o).contains(&format!("note: {} has no tensor_sha256", p.display())),
            "{}",
            stderr(&o)
        );
    }
    // Every file hyperflux writes carries the checksum and passes it.
    let o = run(&["eval", s(&f.dense), "--data-dir", s(&f.data)]);
    ok(&o);
    assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
}

// 9. Run folders after `kill -9`.

#[test]
fn killed_run_leftovers_are_removed_and_records_follow_the_checkpoint() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let train = |out: &Path, extra: &[&str]| {
        let mut a = strings(&["train", "--epochs", "3", "--seed", "4"]);
        a.extend(strings(extra));
        a.extend(common(&f.data, out));
        run_s(&a)
    };
    let full = tmp.path().join("full");
    ok(&train(&full, &[]));
    let reference = records(&full);
    assert_eq!(reference.len(), 3);
    // What `kill -9` leaves: a partial checkpoint of a dead process, and records of an epoch
    // the checkpoint does not have.
    let stale = full.join(format!(".hf-tmp-{}-AbCdEf", dead_pid()));
    std::fs::write(&stale, vec![0u8; 6_400_000]).unwrap();
    for file in ["records.csv", "records.jsonl"] {
        let p = full.join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        let last = text.lines().last().unwrap().to_string();
        let ahead = if file.ends_with("csv") {
            last.replacen("3,", "4,", 1)
        } else {
            last.replace("\"epoch\":3,", "\"epoch\":4,")
        };
        assert_ne!(ahead, last);
        std::fs::write(&p, format!("{text}{ahead}\n")).unwrap();
    }
    assert_eq!(records(&full).len(), 4, "records ahead of the checkpoint");
    // Resuming (here: a finished run, so nothing is left to train) removes the dead run's
    // temporary file and rewrites the records from the checkpoint.
    let ck = full.join("checkpoint.safetensors");
    let o = run(&["train", "--resume", s(&ck), "--quiet"]);
    ok(&o);
    assert!(!stale.exists(), "stale temporary file left");
    assert!(
        stderr(&o).contains("removed 1 temporary file(s) a killed run left"),
        "{}",
        stderr(&o)
    );
    assert_eq!(comparable(&records(&full)), comparable(&reference));
    let jsonl = std::fs::read_to_string(full.join("records.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 3);
    // Dense training stopped after epoch 1 and resumed gives the uninterrupted run.
    let part = tmp.path().join("part");
    ok(&train(&part, &["--stop-after", "1"]));
    assert_eq!(records(&part).len(), 1);
    let pck = part.join("checkpoint.safetensors");
    ok(&run(&["train", "--resume", s(&pck), "--quiet"]));
    assert_eq!(comparable(&records(&part)), comparable(&reference));
    assert!(temp_files(&part).is_empty());

    // A real kill -9 in the middle of a run: the records are never ahead of the checkpoint,
    // and the next start cleans up and continues.
    let killed = tmp.path().join("killed");
    let mut a = strings(&["train", "--epochs", "60", "--seed", "4"]);
    a.extend(common(&f.data, &killed));
    let mut child = bin()
        .args(&a)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ck = killed.join("checkpoint.safetensors");
    let t0 = Instant::now();
    while !ck.exists() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    let st = St::read(&ck);
    let state: Value = serde_json::from_str(&st.meta_str("state").unwrap()).unwrap();
    let ck_epoch = state["epoch"].as_u64().unwrap() as usize;
    let rec = records(&killed);
    assert!(
        rec.len() <= ck_epoch,
        "records {} ahead of checkpoint {ck_epoch}",
        rec.len()
    );
    assert!(
        killed.join(".hyperflux.lock").exists(),
        "kill -9 leaves the lock"
    );
    let o = run(&[
        "train",
        "--resume",
        s(&ck),
        "--quiet",
        "--stop-after",
        &(ck_epoch + 1).to_string(),
    ]);
    ok(&o);
    assert!(stderr(&o).contains("taken over"), "{}", stderr(&o));
    assert_eq!(records(&killed).len(), ck_epoch + 1);
    assert!(temp_files(&killed).is_empty());
    assert!(!killed.join(".hyperflux.lock").exists(), "lock released");
}

// 10. Two runs into one `--out`.

#[test]
fn a_second_run_into_a_busy_output_folder_is_refused() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shared");
    let mut a = strings(&["train", "--epochs", "200"]);
    a.extend(common(&f.data, &out));
    let mut first = bin()
        .args(&a)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.join(".hyperflux.lock");
    let t0 = Instant::now();
    while !lock.exists() && t0.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut b = strings(&["train", "--epochs", "1"]);
    b.extend(common(&f.data, &out));
    let second = run_s(&b);
    let alive = first.try_wait().unwrap().is_none();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(alive, "the first run ended before the second started");
    assert_clean_error(
        &second,
        &[
            s(&out),
            &format!("in use by another hyperflux run (pid {},", first.id()),
        ],
    );
    // The holder is gone (killed): its lock is stale and the next run takes it over.
    let o = run_s(&b);
    ok(&o);
    assert!(stderr(&o).contains("taken over"), "{}", stderr(&o));
    assert!(!lock.exists());
    // A lock naming a live process that is not a run here is still respected.
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    assert_clean_error(&run_s(&b), &["in use by another hyperflux run"]);
    std::fs::remove_file(&lock).unwrap();
}

// 11. `fit` writes files only where an option says.

#[test]
fn fit_writes_files_only_where_told() {
    let csv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/reference-law/R50C10_IMP.csv");
    assert!(csv.is_file(), "reference data missing: {}", csv.display());
    let cwd = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["fit", s(&csv), "--json"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(v["plots"].as_array().unwrap().len(), 0);
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "fit wrote into the current directory: {left:?}"
    );
    assert!(stderr(&o).contains("no plot drawn"), "{}", stderr(&o));
    // With --plot the plot goes there, and the run says where.
    let stem = cwd.path().join("sub/imp");
    let o = bin()
        .args(["fit", s(&csv), "--json", "--plot", s(&stem)])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    ok(&o);
    assert!(stem.with_extension("png").is_file() && stem.with_extension("svg").is_file());
    assert!(
        stderr(&o).contains(&format!("plot: {}", stem.with_extension("png").display())),
        "{}",
        stderr(&o)
    );
}

// 12. Short schedules.

#[test]
fn unreachable_schedules_are_refused_with_the_fewest_epochs_that_reach_them() {
    let e = assert_clean_error(
        &run(&["schedule", "--target-sparsity", "98", "--epochs", "4"]),
        &["98% cannot be reached in 4 pruning epochs", "at least"],
    );
    // The epochs it names do reach the target.
    let p: String = e
        .split("at least ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let o = ok(&run(&[
        "schedule",
        "--target-sparsity",
        "98",
        "--epochs",
        &p,
        "--json",
    ]));
    let v: Value = serde_json::from_str(&o).unwrap();
    let last = v["expected_density"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_f64()
        .unwrap();
    assert!((last - 2.0).abs() < 1e-5, "{last}");
    let prev = (p.parse::<usize>().unwrap() - 1).to_string();
    assert_clean_error(
        &run(&["schedule", "--target-sparsity", "98", "--epochs", &prev]),
        &["cannot be reached"],
    );
    assert_clean_error(
        &run(&["schedule", "--target-sparsity", "90", "--epochs", "2"]),
        &["90% cannot be reached in 2 pruning epochs"],
    );
    // prune refuses the plan before writing anything.
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p");
    let mut a = strings(&[
        "prune",
        "--target-sparsity",
        "90",
        "--pruning-epochs",
        "2",
        "--regrowth-epochs",
        "1",
    ]);
    a.extend(common(&f.data, &out));
    assert_clean_error(&run_s(&a), &["cannot be reached in 2 pruning epochs"]);
    assert!(!out.exists());
}

/// `prune --from` the fixture to 90% with P pruning and R regrowth epochs, plus `extra` flags.
fn prune_run(out: &Path, p: usize, r: usize, extra: &[&str]) -> Output {
    let f = fixture();
    let mut a = strings(&[
        "prune",
        "--from",
        s(&f.dense),
        "--pruning-epochs",
        &p.to_string(),
        "--regrowth-epochs",
        &r.to_string(),
        "--seed",
        "5",
    ]);
    if !extra.contains(&"--mask-lr") {
        a.extend(strings(&["--mask-lr", "0.02"]));
    }
    if !extra.contains(&"--pressure") {
        a.extend(strings(&["--target-sparsity", "90"]));
    }
    a.extend(strings(extra));
    a.extend(common(&f.data, out));
    run_s(&a)
}

/// Exactly the target: round(10% of the 266,200 prunable weights) present.
const TARGET_10: f64 = 100.0 * 26_620.0 / 266_200.0;

#[test]
fn short_regrowth_still_snaps_and_a_far_snap_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    // R = 1 < final_freeze_epochs = 2: the snap happens in the only regrowth epoch.
    let out = tmp.path().join("r1");
    let o = prune_run(&out, 4, 1, &[]);
    let text = ok(&o);
    let rec = records(&out);
    assert_eq!(rec.len(), 5);
    assert_eq!(num(&rec[4], "density"), TARGET_10);
    assert!(
        rec[4]["snapped_from"].parse::<f64>().is_ok(),
        "{:?}",
        rec[4]
    );
    assert!(rec[..4].iter().all(|r| r["snapped_from"].is_empty()));
    assert!(
        text.contains("final snap at the start of epoch 5"),
        "{text}"
    );
    // Masks that cannot move (mask LR 0): the controller prunes nothing, the snap takes the
    // density from 100% to 10% at once, and the run says so (output and records).
    let out = tmp.path().join("frozen");
    let text = ok(&prune_run(&out, 4, 1, &["--mask-lr", "0"]));
    let rec = records(&out);
    assert_eq!(num(&rec[3], "density"), 100.0);
    assert_eq!(num(&rec[4], "snapped_from"), 100.0);
    assert_eq!(num(&rec[4], "density"), TARGET_10);
    assert!(
        text.contains("density 100.000% -> 10.000%")
            && text.contains("the pressure controller did not do this pruning"),
        "{text}"
    );
}

/// Replays the pressure scheduler on a run's measured densities and checks every epoch's λ and
/// planned density against its records.
fn assert_follows_scheduler(rec: &[HashMap<String, String>], p: usize, hold: bool) {
    use hf_core::pressure::{Controller, Trajectory};
    let t = Trajectory::new(90.0, p).unwrap();
    let mut c = Controller::new(0.3);
    let mut next = 0.0;
    for (i, r) in rec.iter().enumerate() {
        let e = i + 1;
        assert_eq!(num(r, "lambda"), next, "λ of epoch {e}");
        let d = num(r, "density");
        if e <= p {
            assert_eq!(r["stage"], "pruning");
            assert!(
                (num(r, "expected_density") - t.expected(e)).abs() < 1e-9,
                "E({e})"
            );
            if e < p {
                c.update(d, t.expected(e));
            }
            // Regrowth starts with the controller's λ (hold) or with λ = 0 (zero).
            next = if e < p || hold { c.pressure() } else { 0.0 };
        } else {
            assert_eq!(r["stage"], "regrowth");
            assert!((num(r, "expected_density") - 10.0).abs() < 1e-9);
            if hold {
                c.update(d, 10.0);
                next = c.pressure();
            } else {
                next = 0.0;
            }
        }
    }
}

#[test]
fn prune_stage_combinations_land_on_the_target_and_follow_the_scheduler() {
    let tmp = tempfile::tempdir().unwrap();
    // Regrowth longer than the final freeze, so masks train during regrowth: the hold
    // controller, and the authors' λ = 0.
    for (name, extra, hold) in [
        ("hold", vec![], true),
        ("zero", vec!["--regrowth-pressure", "zero"], false),
    ] {
        let out = tmp.path().join(name);
        let text = ok(&prune_run(&out, 4, 3, &extra));
        let rec = records(&out);
        assert_eq!(rec.len(), 7);
        assert_follows_scheduler(&rec, 4, hold);
        // Epoch 5 trains masks (mask LR > 0), the snap opens epoch 6, 6–7 are frozen.
        assert!(num(&rec[4], "mask_lr") > 0.0 && num(&rec[5], "mask_lr") == 0.0);
        assert!(rec[5]["snapped_from"].parse::<f64>().is_ok(), "{name}");
        assert_eq!(num(&rec[5], "density"), TARGET_10, "{name}");
        assert_eq!(num(&rec[6], "density"), TARGET_10, "{name}");
        assert!(text.contains("within ±5%"), "{text}");
        if hold {
            assert!(
                num(&rec[4], "lambda") > 0.0,
                "hold keeps pressure in regrowth"
            );
        } else {
            assert!(rec[4..].iter().all(|r| num(r, "lambda") == 0.0));
        }
    }
    // Fixed pressure: λ as given while pruning, 0 in regrowth, no plan, no snap.
    let out = tmp.path().join("fixed");
    ok(&prune_run(&out, 3, 2, &["--pressure", "2"]));
    let rec = records(&out);
    assert_eq!(rec.len(), 5);
    for (i, r) in rec.iter().enumerate() {
        let want = if i < 3 { 2.0 } else { 0.0 };
        assert_eq!(num(r, "lambda"), want, "epoch {}", i + 1);
        assert!(r["expected_density"].is_empty() && r["snapped_from"].is_empty());
    }
    assert!(num(&rec[2], "density") < num(&rec[0], "density"));
}

#[test]
fn resume_in_regrowth_reproduces_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    ok(&prune_run(&full, 4, 3, &[]));
    // Stopped in regrowth (epoch 5: the hold controller has state, masks still train), then
    // resumed; and stopped after the snap (epoch 6), then resumed.
    for stop in ["5", "6"] {
        let part = tmp.path().join(format!("part{stop}"));
        ok(&prune_run(&part, 4, 3, &["--stop-after", stop]));
        let ck = part.join("checkpoint.safetensors");
        ok(&run(&["prune", "--resume", s(&ck), "--quiet"]));
        assert_eq!(
            comparable(&records(&part)),
            comparable(&records(&full)),
            "stopped after {stop}"
        );
    }
}

#[test]
fn density_tolerance_setting_is_the_one_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tol.toml");
    std::fs::write(&cfg, "density_tolerance = 0.5\nfinal_freeze_epochs = 0\n").unwrap();
    let out = tmp.path().join("tol");
    let text = ok(&prune_run(&out, 4, 1, &["--config", s(&cfg)]));
    assert!(text.contains("±50%"), "{text}");
    assert!(!text.contains("±5%"), "{text}");
    let stored = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(stored.contains("density_tolerance = 0.5"), "{stored}");
}

/// Nothing of the shared fixture is modified by the tests (they write bad copies elsewhere).
#[test]
fn fixture_is_intact() {
    let f = fixture();
    assert!(f.root.is_dir());
    ok(&run(&["infer", s(&f.sparse), "--data-dir", s(&f.data)]));
}
