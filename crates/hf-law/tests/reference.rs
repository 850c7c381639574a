//! Acceptance test: fitting the authors' published measurements reproduces the reference table
//! in `shared/data/reference-law/README.md` (computed independently with numpy).
//!
//! The shared folder sits beside the repository (`../shared` from the repo root). If it is
//! missing this test fails: an acceptance test that silently passes proves nothing.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use hf_law::{run_fit, FitOptions, LawError, DEFAULT_REGION2};

const REF_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/reference-law"
);

fn ref_dir() -> PathBuf {
    let p = PathBuf::from(REF_DIR);
    assert!(
        p.join("README.md").is_file(),
        "reference data not found at {} (expected the shared folder at ../shared next to the \
         repository root, containing data/reference-law/README.md and its CSVs); this acceptance \
         test cannot run without it",
        p.display()
    );
    p
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

/// `v` rounded to `d` significant digits, as (signed mantissa digits, decimal exponent of the
/// first digit): 0.51846 at 3 digits is (518, -1). Exact decimal, via Rust's correctly
/// rounded formatting.
fn sig_digits(v: f64, d: usize) -> (i64, i32) {
    let s = format!("{:.*e}", d - 1, v);
    let (m, e) = s.split_once('e').unwrap();
    (m.replace('.', "").parse().unwrap(), e.parse().unwrap())
}

/// `v` rounded to 4 significant digits and then, half up in decimal, to 3 (0.51846 -> 0.5185
/// -> 0.519), the way a value printed at 4 digits reads when shortened by hand.
fn double_rounded_3(v: f64) -> (i64, i32) {
    let (m4, e) = sig_digits(v, 4);
    let m3 = (m4.abs() + 5) / 10 * m4.signum();
    if m3.abs() >= 1000 {
        (m3 / 10, e + 1)
    } else {
        (m3, e)
    }
}

/// Does `ours` print as the README's value? At the README's own precision, and never looser
/// than 3 significant digits. Plain rounding, except that a 3-digit README value also matches
/// when ours, double-rounded (4 digits, then 3), equals it — see [`how_it_agrees`] and the test
/// `double_rounding_is_needed_exactly_where_the_readme_shortened_from_4_digits`, which pins
/// the only two README values this applies to.
fn agrees(ours: f64, r: Printed) -> bool {
    how_it_agrees(ours, r).is_some()
}

/// How `ours` matches a README value: `Some(false)` by plain rounding at the README's precision,
/// `Some(true)` only through double rounding, `None` not at all.
///
/// Why double rounding is allowed: of the 24 fitted values in the README (18 in the power-law
/// table, 6 variable-exponent), 22 are the plain rounding of our fits, and the other two are alpha = 0.518455 printed 0.519 and R² = 0.990456 printed
/// 0.991. Both have ...45x at the 4th-5th digits, exactly the pattern where rounding first to
/// 4 digits (0.5185, 0.9905) and then to 3 (half up) differs from rounding once, and no other
/// kind of disagreement occurs; the README's 4-digit values (c = 1.503e-3, a0 = 3.271, …) all
/// round plainly. So the README's 3-digit values were shortened by hand from 4-digit ones, and
/// a fitter that matches them to 4 digits is right.
fn how_it_agrees(ours: f64, r: Printed) -> Option<bool> {
    let d = r.digits.max(3);
    let want = sig_digits(r.value, d);
    if sig_digits(ours, d) == want {
        Some(false)
    } else if d == 3 && double_rounded_3(ours) == want {
        Some(true)
    } else {
        None
    }
}

#[test]
fn significant_digit_comparison() {
    let p = |s: &str| printed(s);
    assert!(agrees(1.5032839596e-3, p("1.503e-3")));
    assert!(!agrees(1.5036e-3, p("1.503e-3")));
    assert!(agrees(0.5184550529, p("0.519")));
    assert!(agrees(0.9904559689, p("0.991")));
    assert!(agrees(0.98587, p("0.986")));
    assert!(!agrees(0.5184, p("0.519")));
    assert!(!agrees(0.5196, p("0.519")));
    assert!(agrees(0.01938, p("0.0194")));
    assert!(agrees(2.186e-5, p("2.19e-5")));
    assert!(!agrees(2.176e-5, p("2.19e-5")));
    assert_eq!(double_rounded_3(9.9951), (100, 1));
    assert_eq!(p("0.0194").digits, 3);
    assert_eq!(p("1.503e-3").digits, 4);
}

struct PowerRow {
    n: usize,
    c: Printed,
    alpha: Printed,
    r2: Printed,
}

/// Parses the README's markdown table rows `| file.csv | n | c | alpha | R^2 |`.
fn readme_power_table(readme: &str) -> BTreeMap<String, PowerRow> {
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
                    PowerRow {
                        n,
                        c: printed(cells[2]),
                        alpha: printed(cells[3]),
                        r2: printed(cells[4]),
                    },
                );
            }
        }
    }
    rows
}

/// Parses "X.csv c = .., a0 = .., a1 = ..; Y.csv c = .." after "Variable-exponent fit".
fn readme_varexp(readme: &str) -> BTreeMap<String, [Printed; 3]> {
    let start = readme
        .find("Variable-exponent fit")
        .expect("README has no 'Variable-exponent fit' paragraph");
    let text = &readme[start..];
    let text = &text[text
        .find(':')
        .expect("no ':' after 'Variable-exponent fit'")
        + 1..];
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

#[test]
fn reference_fits_reproduce_the_readme_table() {
    let dir = ref_dir();
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    let table = readme_power_table(&readme);
    let varexp = readme_varexp(&readme);
    assert_eq!(
        table.len(),
        6,
        "expected 6 power-law rows in the README table"
    );
    assert_eq!(
        varexp.len(),
        2,
        "expected 2 variable-exponent entries in the README"
    );

    let out = tempfile::tempdir().unwrap();
    let stem = out.path().join("reference-law");
    let report = run_fit(&FitOptions {
        files: vec![dir.clone()],
        region2: DEFAULT_REGION2,
        plot_stem: Some(stem.clone()),
        skip_nonpositive: true,
        bootstrap: 200,
    })
    .unwrap_or_else(|e| panic!("run_fit on {}: {e}", dir.display()));
    println!("{}", report.to_table());

    // Every CSV in the folder was fitted.
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
    assert_eq!(report.fits.len(), n_csv);
    assert!(n_csv >= 7);

    let by_file = |name: &str| {
        report
            .fits
            .iter()
            .find(|f| f.file.file_name().unwrap() == name)
            .unwrap_or_else(|| panic!("{name} was not fitted"))
    };
    let mut failures = Vec::new();
    for (file, want) in &table {
        let f = by_file(file);
        let p = f
            .power
            .unwrap_or_else(|| panic!("{file}: no power fit: {:?}", f.notes));
        println!(
            "{file}: n {} / {}, c {:.6e} / {}, alpha {:.6} / {}, R² {:.6} / {}",
            p.n, want.n, p.c, want.c.value, p.alpha, want.alpha.value, p.r2, want.r2.value
        );
        if p.n != want.n {
            failures.push(format!("{file}: n = {} but README says {}", p.n, want.n));
        }
        for (name, ours, r) in [
            ("c", p.c, want.c),
            ("alpha", p.alpha, want.alpha),
            ("R²", p.r2, want.r2),
        ] {
            if !agrees(ours, r) {
                failures.push(format!(
                    "{file}: {name} = {ours} but README says {}",
                    r.value
                ));
            }
        }
    }
    for (file, [c, a0, a1]) in &varexp {
        let f = by_file(file);
        let v = f
            .varexp
            .unwrap_or_else(|| panic!("{file}: no variable-exponent fit"));
        println!(
            "{file}: var-exp c {:.6e} / {}, a0 {:.6} / {}, a1 {:.6} / {}",
            v.c, c.value, v.a0, a0.value, v.a1, a1.value
        );
        for (name, ours, r) in [("c", v.c, *c), ("a0", v.a0, *a0), ("a1", v.a1, *a1)] {
            if !agrees(ours, r) {
                failures.push(format!(
                    "{file}: var-exp {name} = {ours} but README says {}",
                    r.value
                ));
            }
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));

    // The continuous-scheduler file: its Saliency-0 row (the scheduler before any pressure) is
    // dropped and noted; the rest fits. The README gives no fit for this file, so the expected
    // values are computed here, independently of hf-law, from the raw CSV with the README's
    // definition (least squares of ln Remaining on ln Saliency over 0.5 < Remaining <= 50).
    let cont = by_file("L0r50c10ContinuousSched.csv");
    assert_eq!(cont.points.len(), 25);
    assert!(
        cont.notes
            .iter()
            .any(|n| n.contains("data row 1 (line 2)") && n.contains("Saliency = 0")),
        "notes: {:?}",
        cont.notes
    );
    let (n, c, alpha, r2) = plain_least_squares(&dir.join("L0r50c10ContinuousSched.csv"));
    let p = cont.power.unwrap();
    assert_eq!(p.n, n);
    for (name, ours, want) in [("c", p.c, c), ("alpha", p.alpha, alpha), ("R²", p.r2, r2)] {
        assert!(
            (ours - want).abs() <= 1e-9 * want.abs().max(1.0),
            "continuous scheduler {name}: {ours} vs independent {want}"
        );
    }
    assert_eq!(cont.varexp.unwrap().n, 25);

    // Files without Epoch/Accuracy columns and with the "Epochs" spelling were read right.
    let pressure = by_file("R50C10_Pressure.csv");
    assert!(pressure
        .points
        .iter()
        .all(|p| p.epoch.is_none() && p.accuracy.is_none()));
    let l0 = by_file("L0r50c10.csv");
    assert_eq!(l0.points[0].epoch, Some(50.0));
    assert_eq!(l0.points[0].accuracy, Some(92.53));

    // The plot and its residual plot exist; the plot names the fits.
    assert_eq!(report.plots.len(), 4);
    assert!(
        report.plots.iter().all(|p| p.exists()),
        "{:?}",
        report.plots
    );
    let residuals = fs::read_to_string(
        report
            .plots
            .iter()
            .find(|p| p.to_string_lossy().ends_with("_residuals.svg"))
            .unwrap(),
    )
    .unwrap();
    assert!(residuals.contains("R50C10_IMP"));
    let svg = fs::read_to_string(stem.with_extension("svg")).unwrap();
    // The legend's c (3 digits) and alpha (4 digits) are the README's 1.503e-3 and 1.533; its R²
    // is our own fit's, printed at 3 digits.
    let imp = by_file("R50C10_IMP.csv").power.unwrap();
    let c3 = format!("{:.2e}", table["R50C10_IMP.csv"].c.value);
    assert_eq!(c3, "1.50e-3");
    let legend = format!(
        "R50C10_IMP power: s = {c3}·γ^-{}, R²={}",
        table["R50C10_IMP.csv"].alpha.value,
        hf_plot_sig3(imp.r2)
    );
    assert!(svg.contains(&legend), "legend {legend:?} missing");
    assert!(fs::metadata(stem.with_extension("png")).unwrap().len() > 10_000);
}

/// `v` at 3 significant digits as the plot legend prints it (0.990456 -> "0.990").
fn hf_plot_sig3(v: f64) -> String {
    let (m, e) = sig_digits(v, 3);
    let digits = m.abs().to_string();
    assert_eq!(e, -1, "R² in [0.1, 1)");
    format!("0.{digits}")
}

/// Ordinary least squares of ln(Remaining) on ln(Saliency) over region 2 (0.5 < Remaining <= 50,
/// Saliency > 0), straight from a CSV with `Saliency` and `Remaining` columns: (n, c, alpha, R²)
/// with ln s = ln c − alpha·ln g.
fn plain_least_squares(path: &std::path::Path) -> (usize, f64, f64, f64) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').map(str::trim).collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (gi, si) = (col("Saliency"), col("Remaining"));
    let pts: Vec<(f64, f64)> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.trim().parse().unwrap()).collect();
            (f[gi], f[si])
        })
        .filter(|&(g, s)| g > 0.0 && s > 0.5 && s <= 50.0)
        .map(|(g, s)| (g.ln(), s.ln()))
        .collect();
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = sxy / sxx;
    let icpt = my - slope * mx;
    let ss_res: f64 = pts.iter().map(|p| (p.1 - icpt - slope * p.0).powi(2)).sum();
    let ss_tot: f64 = pts.iter().map(|p| (p.1 - my).powi(2)).sum();
    (pts.len(), icpt.exp(), -slope, 1.0 - ss_res / ss_tot)
}

#[test]
fn double_rounding_is_needed_exactly_where_the_readme_shortened_from_4_digits() {
    let dir = ref_dir();
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    let table = readme_power_table(&readme);
    let report = run_fit(&FitOptions {
        files: vec![dir.clone()],
        region2: DEFAULT_REGION2,
        plot_stem: None,
        skip_nonpositive: true,
        bootstrap: 200,
    })
    .unwrap();
    let mut plain = 0;
    let mut double = Vec::new();
    for (file, want) in &table {
        let f = report
            .fits
            .iter()
            .find(|f| f.file.file_name().unwrap() == file.as_str())
            .unwrap();
        let p = f.power.unwrap();
        for (name, ours, r) in [
            ("c", p.c, want.c),
            ("alpha", p.alpha, want.alpha),
            ("R²", p.r2, want.r2),
        ] {
            match how_it_agrees(ours, r) {
                Some(false) => plain += 1,
                Some(true) => double.push(format!("{file} {name}")),
                None => panic!("{file} {name}: {ours} does not print as {}", r.value),
            }
        }
    }
    assert_eq!(plain, 16);
    assert_eq!(
        double,
        vec!["L0r50c10.csv alpha", "R50C10_IMP.csv R²"],
        "double rounding must stay the exception it is documented to be"
    );
}

#[test]
fn saliency_zero_row_is_an_error_by_default() {
    let file = ref_dir().join("L0r50c10ContinuousSched.csv");
    let e = run_fit(&FitOptions {
        files: vec![file],
        ..FitOptions::default()
    })
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            LawError::NonPositive {
                row: 1,
                line: 2,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("L0r50c10ContinuousSched.csv"), "{msg}");
    assert!(
        msg.contains("data row 1 (line 2)") && msg.contains("Saliency = 0"),
        "{msg}"
    );
    assert!(msg.contains("skip_nonpositive"), "{msg}");
}
