//! The law commands through the built binary: `fit` reproduces the reference fits of the authors'
//! published measurements (README of `shared/data/reference-law`), prints parseable JSON, draws
//! its plot, and refuses bad CSVs with one line naming file and row; `law` and `converge` run end
//! to end on tiny synthetic data and write the documented files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_hyperflux");
const REF_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/reference-law"
);

fn ref_dir() -> PathBuf {
    let p = PathBuf::from(REF_DIR);
    assert!(
        p.join("README.md").is_file(),
        "reference data not found at {} (expected the shared folder at ../shared next to the \
         repository root, with data/reference-law/README.md and its CSVs); this acceptance test \
         cannot run without it",
        p.display()
    );
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "hyperflux {args:?} failed: {}\n{}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// Runs a command that must fail cleanly: exit code 1, one `error:` line on stderr, no panic.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

/// A value as printed in the README, with its number of significant digits.
#[derive(Debug, Clone, Copy)]
struct Printed {
    value: f64,
    digits: usize,
}

fn printed(s: &str) -> Printed {
    let s = s.trim();
    let mantissa = s.split(['e', 'E']).next().unwrap_or(s);
    let digits = mantissa
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .trim_start_matches('0')
        .len();
    Printed {
        value: s
            .parse()
            .unwrap_or_else(|_| panic!("README value {s:?} is not a number")),
        digits,
    }
}

/// `v` rounded to `d` significant digits as (mantissa digits, exponent).
fn sig_digits(v: f64, d: usize) -> (i64, i32) {
    let s = format!("{:.*e}", d - 1, v);
    let (m, e) = s.split_once('e').unwrap();
    (m.replace('.', "").parse().unwrap(), e.parse().unwrap())
}

/// `v` rounded to 4 significant digits, then half up to 3 (how the README shortened values:
/// alpha 0.51846 is printed 0.519, R² 0.99046 as 0.991).
fn double_rounded_3(v: f64) -> (i64, i32) {
    let (m4, e) = sig_digits(v, 4);
    let m3 = (m4.abs() + 5) / 10 * m4.signum();
    if m3.abs() >= 1000 {
        (m3 / 10, e + 1)
    } else {
        (m3, e)
    }
}

/// Does `ours` print as the README's value, to the README's precision and at least 3 digits?
fn agrees(ours: f64, r: Printed) -> bool {
    let d = r.digits.max(3);
    let want = sig_digits(r.value, d);
    sig_digits(ours, d) == want || (d == 3 && double_rounded_3(ours) == want)
}

/// The README's power-law table: file → (n, c, alpha, R²).
fn readme_power_table(readme: &str) -> BTreeMap<String, (usize, Printed, Printed, Printed)> {
    let mut rows = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() == 5 && cells[0].ends_with(".csv") {
            if let Ok(n) = cells[1].parse::<usize>() {
                rows.insert(
                    cells[0].to_string(),
                    (n, printed(cells[2]), printed(cells[3]), printed(cells[4])),
                );
            }
        }
    }
    rows
}

/// The README's variable-exponent values: file → [c, a0, a1].
fn readme_varexp(readme: &str) -> BTreeMap<String, [Printed; 3]> {
    let start = readme
        .find("Variable-exponent fit")
        .expect("README has no 'Variable-exponent fit' paragraph");
    let text = &readme[start..];
    let text = &text[text.find(':').expect("no ':' after the heading") + 1..];
    let mut out = BTreeMap::new();
    for part in text.split(';') {
        let part = part.trim().trim_end_matches('.').trim();
        let Some(pos) = part.find(".csv") else {
            continue;
        };
        let file = part[..pos + 4]
            .rsplit(' ')
            .next()
            .unwrap()
            .trim()
            .to_string();
        let mut vals = BTreeMap::new();
        for kv in part[pos + 4..].split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                vals.insert(
                    k.trim().to_string(),
                    printed(v.trim().trim_end_matches('.')),
                );
            }
        }
        out.insert(file, [vals["c"], vals["a0"], vals["a1"]]);
    }
    out
}

fn fit_json(args: &[&str]) -> serde_json::Value {
    let out = ok(args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("fit --json output is not JSON ({e}): {out}"))
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn fit_reproduces_the_reference_table_file_by_file() {
    let dir = ref_dir();
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    let table = readme_power_table(&readme);
    let varexp = readme_varexp(&readme);
    assert_eq!(table.len(), 6, "expected 6 power-law rows in the README");
    assert_eq!(
        varexp.len(),
        2,
        "expected 2 variable-exponent entries in the README"
    );
    let mut failures = Vec::new();
    for (file, (n, c, alpha, r2)) in &table {
        let path = dir.join(file);
        let v = fit_json(&["fit", path.to_str().unwrap(), "--json", "--no-plot"]);
        let fits = v["fits"].as_array().unwrap();
        assert_eq!(fits.len(), 1);
        let f = &fits[0];
        assert_eq!(f["power"]["n"].as_u64(), Some(*n as u64), "{file}: n");
        for (name, key, want) in [("c", "c", c), ("alpha", "alpha", alpha), ("R²", "r2", r2)] {
            let ours = num(f, &["power", key]);
            if !agrees(ours, *want) {
                failures.push(format!("{file}: {name} = {ours}, README {}", want.value));
            }
        }
        if let Some([c, a0, a1]) = varexp.get(file) {
            for (name, want) in [("c", c), ("a0", a0), ("a1", a1)] {
                let ours = num(f, &["varexp", name]);
                if !agrees(ours, *want) {
                    failures.push(format!(
                        "{file}: var-exp {name} = {ours}, README {}",
                        want.value
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// `fit --json` carries the law's tests: a bootstrap interval around α, the held-out errors of
/// both laws, α over moved region bounds; `--bootstrap 0` turns the interval off.
#[test]
fn fit_json_carries_the_interval_and_the_held_out_test() {
    let dir = ref_dir();
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .find(|p| {
            let v = fit_json(&[
                "fit",
                p.to_str().unwrap(),
                "--json",
                "--no-plot",
                "--skip-nonpositive",
            ]);
            v["fits"][0]["power"]["n"].as_u64().unwrap_or(0) >= 10
        })
        .expect("a reference file with 10+ region-2 points");
    let f = file.to_str().unwrap();
    let v = fit_json(&[
        "fit",
        f,
        "--json",
        "--no-plot",
        "--skip-nonpositive",
        "--bootstrap",
        "300",
    ]);
    let fit = &v["fits"][0];
    let alpha = num(fit, &["power", "alpha"]);
    let ci = fit["alpha_ci95"].as_array().expect("alpha_ci95");
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo < alpha && alpha < hi, "{lo} < {alpha} < {hi}");
    assert_eq!(fit["bootstrap"].as_u64(), Some(300));
    let h = &fit["holdout_rmse"];
    assert!(
        num(h, &["power"]) >= 0.0 && h["power_law_holds"].is_boolean(),
        "{h}"
    );
    assert_eq!(fit["alpha_by_region"].as_array().unwrap().len(), 9);
    // same seed, same interval
    let again = fit_json(&[
        "fit",
        f,
        "--json",
        "--no-plot",
        "--skip-nonpositive",
        "--bootstrap",
        "300",
    ]);
    assert_eq!(again["fits"][0]["alpha_ci95"], fit["alpha_ci95"]);
    let off = fit_json(&[
        "fit",
        f,
        "--json",
        "--no-plot",
        "--skip-nonpositive",
        "--bootstrap",
        "0",
    ]);
    assert!(off["fits"][0]["alpha_ci95"].is_null());
}

#[test]
fn fit_of_the_whole_folder_writes_table_json_and_plot() {
    let dir = ref_dir();
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let table = ok(&[
        "fit",
        dir.to_str().unwrap(),
        "--skip-nonpositive",
        "--out",
        o,
    ]);
    let n_csv = fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "csv")
        })
        .count();
    assert!(n_csv >= 7);
    // The table lists every file once, with both fits.
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv") {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                table.lines().any(|l| l.starts_with(&format!("{stem} "))),
                "{stem} missing from:\n{table}"
            );
        }
    }
    assert!(table.contains("dropped data row 1 (line 2)"), "{table}");
    let txt = fs::read_to_string(out.path().join("fit.txt")).unwrap();
    assert_eq!(txt, table);
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.path().join("fit.json")).unwrap()).unwrap();
    assert_eq!(v["fits"].as_array().unwrap().len(), n_csv);
    assert_eq!(v["region2"][0].as_f64(), Some(0.5));
    let svg = fs::read_to_string(out.path().join("law_fit.svg")).unwrap();
    assert!(
        svg.contains("R50C10_IMP power: s = 1.50e-3·γ^-1.533"),
        "legend equation missing"
    );
    assert!(svg.contains("var-exp"));
    assert!(fs::metadata(out.path().join("law_fit.png")).unwrap().len() > 10_000);
}

#[test]
fn fit_json_and_region_option() {
    let dir = ref_dir();
    let imp = dir.join("R50C10_IMP.csv");
    let plot = tempfile::tempdir().unwrap();
    let stem = plot.path().join("imp");
    let v = fit_json(&[
        "fit",
        imp.to_str().unwrap(),
        "--json",
        "--region2",
        "1:50",
        "--plot",
        stem.to_str().unwrap(),
    ]);
    assert_eq!(v["region2"][0].as_f64(), Some(1.0));
    let f = &v["fits"][0];
    assert_eq!(f["label"].as_str(), Some("R50C10_IMP"));
    assert!(
        f["power"]["n"].as_u64().unwrap() < 44,
        "a narrower region has fewer points"
    );
    // The law plot and the residuals of its power-law fit.
    assert_eq!(v["plots"].as_array().unwrap().len(), 4);
    assert!(stem.with_extension("png").is_file() && stem.with_extension("svg").is_file());
    assert!(stem.with_file_name("imp_residuals.png").is_file());
    // Malformed regions are usage errors (exit 2) with the expected form in the message.
    let o = run(&["fit", imp.to_str().unwrap(), "--region2", "50:1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("LO:HI"), "{}", stderr(&o));
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    p
}

#[test]
fn bad_csvs_get_one_line_errors_naming_file_and_row() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            write(
                dir,
                "nosal.csv",
                "Epoch,Remaining,Accuracy\n1,90,91\n2,80,90\n3,70,89\n",
            ),
            vec!["missing column \"Saliency\"", "Epoch,Remaining,Accuracy"],
        ),
        (
            write(
                dir,
                "norem.csv",
                "Saliency,Accuracy\n0.1,91\n0.2,90\n0.3,89\n",
            ),
            vec!["missing column \"Remaining\""],
        ),
        (
            write(
                dir,
                "text.csv",
                "Saliency,Remaining\n0.1,90\n0.2,abc\n0.3,70\n",
            ),
            vec!["data row 2 (line 3)", "Remaining", "\"abc\""],
        ),
        (
            write(dir, "few.csv", "Saliency,Remaining\n0.1,90\n0.2,80\n"),
            vec!["only 2 usable data points", "at least 3"],
        ),
        (
            write(
                dir,
                "zero.csv",
                "Saliency,Remaining\n0.1,90\n0.2,80\n0,70\n0.4,60\n",
            ),
            vec!["data row 3 (line 4)", "Saliency = 0", "not positive"],
        ),
        (
            write(
                dir,
                "neg.csv",
                "Saliency,Remaining\n-0.1,90\n0.2,80\n0.3,70\n",
            ),
            vec!["data row 1 (line 2)", "Saliency = -0.1"],
        ),
        (
            write(
                dir,
                "ragged.csv",
                "Saliency,Remaining\n0.1,90\n0.2\n0.3,70\n",
            ),
            vec!["line 3", "malformed CSV"],
        ),
        (dir.join("absent.csv"), vec!["cannot read"]),
    ];
    for (file, wants) in &cases {
        let line = fails(&["fit", file.to_str().unwrap(), "--no-plot"]);
        assert!(
            line.contains(&file.display().to_string()),
            "{line} does not name {}",
            file.display()
        );
        for w in wants {
            assert!(line.contains(w), "{line:?} lacks {w:?}");
        }
    }
    // The first bad file of several is the one named.
    let good = write(
        dir,
        "good.csv",
        "Saliency,Remaining\n0.1,40\n0.2,20\n0.4,10\n",
    );
    let line = fails(&[
        "fit",
        good.to_str().unwrap(),
        cases[4].0.to_str().unwrap(),
        "--no-plot",
    ]);
    assert!(
        line.contains("zero.csv") && line.contains("data row 3"),
        "{line}"
    );
    // Saliency 0 rows are dropped with a note when asked to.
    let out = ok(&[
        "fit",
        cases[4].0.to_str().unwrap(),
        "--no-plot",
        "--skip-nonpositive",
    ]);
    assert!(out.contains("dropped data row 3 (line 4)"), "{out}");
    // The authors' continuous-scheduler file starts with a Saliency-0 row.
    let cont = ref_dir().join("L0r50c10ContinuousSched.csv");
    let line = fails(&["fit", cont.to_str().unwrap(), "--no-plot"]);
    assert!(line.contains("L0r50c10ContinuousSched.csv") && line.contains("data row 1 (line 2)"));
}

/// Synthetic data and a one-epoch dense checkpoint made with the binary, once per test binary.
struct Synth {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    dense: PathBuf,
}

fn synth() -> &'static Synth {
    static S: OnceLock<Synth> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        fs::create_dir_all(&data).unwrap();
        hf_data::synth::write_idx_dataset(&data, 512, 256, false, 5).unwrap();
        let dense = root.join("dense");
        ok(&[
            "train",
            "--epochs",
            "1",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            dense.to_str().unwrap(),
            "--threads",
            "1",
            "--quiet",
        ]);
        Synth {
            dense: dense.join("checkpoint.safetensors"),
            data,
            root,
            _dir: dir,
        }
    })
}

fn law_args<'a>(s: &'a Synth, out: &'a str) -> Vec<&'a str> {
    vec![
        "law",
        "--from",
        s.dense.to_str().unwrap(),
        "--data-dir",
        s.data.to_str().unwrap(),
        "--out",
        out,
        "--threads",
        "1",
        "--quiet",
    ]
}

fn header_and_rows(p: &Path) -> (String, usize) {
    let text = fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut lines = text.lines();
    (lines.next().unwrap().to_string(), lines.count())
}

#[test]
fn law_magnitude_writes_csv_config_fit_and_plot() {
    let s = synth();
    let out = s.root.join("imp");
    let o = out.to_str().unwrap();
    let mut args = law_args(s, o);
    args.extend(["--family", "magnitude", "--steps", "4", "--rate", "0.3"]);
    let text = ok(&args);
    assert!(text.contains("magnitude law: 4 points"), "{text}");
    let (header, rows) = header_and_rows(&out.join("magnitude.csv"));
    assert_eq!(
        header,
        "Epoch,Saliency,Remaining,Accuracy,Step,Removed,AccuracyPruned,AccuracyFinetuned"
    );
    assert_eq!(rows, 4);
    for f in [
        "config.toml",
        "config.json",
        "summary.json",
        "fit.json",
        "fit.txt",
        "records.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(out.join("magnitude_law.png").is_file() && out.join("magnitude_law.svg").is_file());
    let settings = fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(settings.contains("family = \"magnitude\"") && settings.contains("rate = 0.3"));
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["points"].as_u64(), Some(4));
    assert_eq!(summary["prunable"].as_u64(), Some(266_200));
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);
    // The CSV is a law file `fit` reads.
    let v = fit_json(&[
        "fit",
        out.join("magnitude.csv").to_str().unwrap(),
        "--json",
        "--no-plot",
    ]);
    assert!(v["fits"][0]["varexp"]["n"].as_u64() == Some(4));
    // The saved config reproduces the run exactly.
    let again = s.root.join("imp-again");
    ok(&[
        "law",
        "--config",
        out.join("config.toml").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(
        fs::read_to_string(out.join("magnitude.csv")).unwrap(),
        fs::read_to_string(again.join("magnitude.csv")).unwrap()
    );
}

#[test]
fn law_l0_and_oneshot_columns() {
    let s = synth();
    let out = s.root.join("l0");
    let mut args = law_args(s, out.to_str().unwrap());
    args.extend([
        "--family",
        "l0",
        "--start-exponent",
        "-1",
        "--blocks",
        "3",
        "--block-epochs",
        "1",
        "--mask-lr",
        "0.05",
    ]);
    ok(&args);
    let (header, rows) = header_and_rows(&out.join("l0.csv"));
    assert!(
        header.starts_with(
            "Epoch,Saliency,Remaining,Accuracy,Pressure,Exponent,EquilibriumFlux,BlockEpochs,LastChange,MinFlux,QuantileFlux,MedianFlux"
        ),
        "{header}"
    );
    assert_eq!(rows, 3);
    assert!(header.ends_with("MinRmsFlux,QuantileRmsFlux,MedianRmsFlux,TrainLoss,TrainAccuracy"));
    // RMS flux is positive, so its law file always exists; the fit covers it.
    let (header, rows) = header_and_rows(&out.join("l0_rms_flux.csv"));
    assert!(
        header.starts_with("Epoch,Saliency,Remaining,Accuracy,Pressure,"),
        "{header}"
    );
    assert_eq!(rows, 3);
    let fit = fs::read_to_string(out.join("fit.txt")).unwrap();
    assert!(fit.contains("l0_rms_flux"), "{fit}");
    let out1 = s.root.join("oneshot");
    let mut args = law_args(s, out1.to_str().unwrap());
    args.extend(["--family", "oneshot", "--steps", "5", "--rate", "0.5"]);
    ok(&args);
    let (header, rows) = header_and_rows(&out1.join("oneshot.csv"));
    assert_eq!(header, "Epoch,Saliency,Remaining,Accuracy,Step,Removed");
    assert_eq!(rows, 5);
}

#[test]
fn converge_writes_traces_finals_and_plot() {
    let s = synth();
    let out = s.root.join("conv");
    let text = ok(&[
        "converge",
        "--pressures",
        "0.01,1,64",
        "--epochs",
        "1",
        "--record-every",
        "2",
        "--mask-lr",
        "0.05",
        "--data-dir",
        s.data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
        "--quiet",
    ]);
    assert!(text.contains("final density vs λ"), "{text}");
    let (header, rows) = header_and_rows(&out.join("density_trace.csv"));
    assert_eq!(header, "pressure,lr,epoch,step,density");
    assert_eq!(rows, 3 * 3, "steps 0, 2 and 4 for each of 3 pressures");
    let (header, rows) = header_and_rows(&out.join("finals.csv"));
    assert_eq!(header, "Epoch,Saliency,Remaining,Accuracy,LR,Seconds");
    assert_eq!(rows, 3);
    assert!(out.join("converge.png").is_file() && out.join("converge.svg").is_file());
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runs"].as_array().unwrap().len(), 3);
    assert!(summary["fit_final_density_vs_pressure"]["alpha"].is_number());
}

/// Figure 5: one pressure, several weight learning rates; the trace carries the rate, no fit
/// mixes rates, and a bad rate is one clean line.
#[test]
fn converge_runs_every_pressure_for_every_learning_rate() {
    let s = synth();
    let out = s.root.join("conv-lrs");
    let base = [
        "converge",
        "--pressures",
        "1",
        "--epochs",
        "1",
        "--record-every",
        "2",
        "--mask-lr",
        "0.05",
        "--threads",
        "1",
        "--quiet",
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        "--lrs",
        "0.001,0.01",
        "--data-dir",
        s.data.to_str().unwrap(),
    ]);
    args.extend(["--out", out.to_str().unwrap()]);
    let text = ok(&args);
    assert!(text.contains("several learning rates"), "{text}");
    let trace = fs::read_to_string(out.join("density_trace.csv")).unwrap();
    let lrs: std::collections::BTreeSet<&str> = trace
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(lrs.into_iter().collect::<Vec<_>>(), vec!["0.001", "0.01"]);
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["lr"].as_f64(), runs[1]["lr"].as_f64()),
        (Some(0.001), Some(0.01))
    );
    assert!(summary["fit_final_density_vs_pressure"].is_null());
    let mut bad: Vec<&str> = base.to_vec();
    bad.extend(["--lrs", "0.01,-1", "--data-dir", s.data.to_str().unwrap()]);
    let bad_out = s.root.join("conv-bad");
    bad.extend(["--out", bad_out.to_str().unwrap()]);
    let line = fails(&bad);
    assert!(line.contains("lrs") && line.contains("positive"), "{line}");
}

#[test]
fn law_usage_errors_are_clean() {
    let s = synth();
    let line = fails(&["law", "--family", "magnitude", "--quiet"]);
    assert!(line.contains("--from"), "{line}");
    let o = run(&[
        "law",
        "--family",
        "bogus",
        "--from",
        s.dense.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("use l0, magnitude, taylor or oneshot"));
    let out = s.root.join("bad");
    let mut args = law_args(s, out.to_str().unwrap());
    args.extend(["--family", "magnitude", "--rate", "1.5"]);
    let line = fails(&args);
    assert!(line.contains("rate"), "{line}");
    let missing = s.root.join("nope.safetensors");
    let line = fails(&["law", "--family", "l0", "--from", missing.to_str().unwrap()]);
    assert!(line.contains("nope.safetensors"), "{line}");
}
