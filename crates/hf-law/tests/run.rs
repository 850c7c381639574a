//! `run_fit` end to end on small generated files: report, table, JSON, plot, failures.

use std::fs;
use std::path::{Path, PathBuf};

use hf_law::{run_fit, write_law_csv, FitOptions, LawError, LawPoint};

fn law_file(dir: &Path, name: &str, c: f64, alpha: f64) -> PathBuf {
    let pts: Vec<LawPoint> = (0..30)
        .map(|i| {
            let g = 1e-3 * 1.5f64.powi(i);
            LawPoint {
                epoch: Some(i as f64),
                saliency: g,
                remaining: (c * g.powf(-alpha)).min(100.0),
                accuracy: Some(90.0),
                extras: vec![],
            }
        })
        .collect();
    let p = dir.join(name);
    write_law_csv(&p, &pts).unwrap();
    p
}

#[test]
fn fits_files_and_directories_and_reports_them() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    let a = law_file(&data, "a.csv", 0.5, 0.8);
    law_file(&data, "b.csv", 2.0, 0.5);
    fs::write(data.join("readme.txt"), "not a csv").unwrap();
    let stem = d.path().join("plots/law");
    let report = run_fit(&FitOptions {
        files: vec![data.clone(), a.clone()],
        plot_stem: Some(stem.clone()),
        ..FitOptions::default()
    })
    .unwrap();
    let labels: Vec<&str> = report.fits.iter().map(|f| f.label.as_str()).collect();
    // a.csv twice (from the directory and by name): colliding stems get their directory.
    assert_eq!(labels, vec!["data/a", "b", "data/a"]);
    // Same stem and same directory name: as many directories as it takes to tell them apart.
    let x = law_file(&d.path().join("law/magnitude"), "magnitude.csv", 0.5, 0.8);
    let y = law_file(&d.path().join("seed1/magnitude"), "magnitude.csv", 0.5, 0.9);
    let r = run_fit(&FitOptions {
        files: vec![x, y],
        ..FitOptions::default()
    })
    .unwrap();
    let labels: Vec<&str> = r.fits.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(
        labels,
        vec!["law/magnitude/magnitude", "seed1/magnitude/magnitude"]
    );
    let fa = &report.fits[0];
    let p = fa.power.unwrap();
    assert!(
        (p.alpha - 0.8).abs() < 1e-9 && (p.c - 0.5).abs() < 1e-9,
        "{p:?}"
    );
    let v = fa.varexp.unwrap();
    // All 30 points, including the one capped at 100% that bends the curve off a line.
    assert_eq!(v.n, 30);
    assert!(v.r2 < 1.0 - 1e-6 && v.r2 > 0.99, "{v:?}");
    let residuals = d.path().join("plots/law_residuals");
    assert_eq!(
        report.plots,
        vec![
            stem.with_extension("png"),
            stem.with_extension("svg"),
            residuals.with_extension("png"),
            residuals.with_extension("svg"),
        ]
    );
    assert!(report
        .plots
        .iter()
        .all(|p| fs::metadata(p).unwrap().len() > 1000));

    let table = report.to_table();
    assert!(table.contains("0.5 < s <= 50"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("b ") && l.contains(" 0.5 ")),
        "{table}"
    );
    assert!(table.contains("plot: "));

    let j = report.to_json();
    assert_eq!(j["fits"].as_array().unwrap().len(), 3);
    assert_eq!(j["region2"][1], 50.0);
    assert!((j["fits"][1]["power"]["alpha"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert_eq!(j["fits"][1]["n_points"], 30);
    assert_eq!(j["plots"].as_array().unwrap().len(), 4);
}

#[test]
fn a_file_without_region2_points_gets_a_note_not_an_error() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("dense.csv");
    fs::write(&f, "Saliency,Remaining\n1,90\n2,80\n4,70\n8,60\n").unwrap();
    let r = run_fit(&FitOptions {
        files: vec![f],
        ..FitOptions::default()
    })
    .unwrap();
    let fit = &r.fits[0];
    assert!(fit.power.is_none() && fit.varexp.is_some());
    assert!(fit
        .notes
        .iter()
        .any(|n| n.starts_with("no power-law fit:") && n.contains("only 0")));
    assert!(r.to_table().contains("note: dense: no power-law fit"));
    assert!(r.to_json()["fits"][0]["power"].is_null());
    assert!(r.plots.is_empty());
}

#[test]
fn single_file_plot_is_one_chart() {
    let d = tempfile::tempdir().unwrap();
    let a = law_file(d.path(), "only.csv", 1.0, 1.0);
    let stem = d.path().join("one");
    let r = run_fit(&FitOptions {
        files: vec![a],
        plot_stem: Some(stem.clone()),
        ..FitOptions::default()
    })
    .unwrap();
    let png = fs::read(&r.plots[0]).unwrap();
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(h, hf_plot::CHART_SIZE.1);
    let svg = fs::read_to_string(&r.plots[1]).unwrap();
    assert!(
        svg.contains("only power: s = 1.00·γ^-1.000, R²=1.000"),
        "legend missing"
    );
    assert!(svg.contains("only var-exp: s = "));
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    assert!(matches!(
        run_fit(&FitOptions::default()),
        Err(LawError::NoFiles)
    ));

    let empty = d.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let e = run_fit(&FitOptions {
        files: vec![empty],
        ..FitOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, LawError::EmptyDir { .. }) && e.to_string().contains("empty"),
        "{e}"
    );

    let a = law_file(d.path(), "a.csv", 1.0, 1.0);
    let e = run_fit(&FitOptions {
        files: vec![a.clone()],
        region2: (50.0, 0.5),
        ..FitOptions::default()
    })
    .unwrap_err();
    assert!(matches!(e, LawError::BadRegion { .. }), "{e}");

    // The plot cannot be written: the error names the file, and nothing partial is left.
    let blocker = d.path().join("blocker");
    fs::write(&blocker, "x").unwrap();
    let e = run_fit(&FitOptions {
        files: vec![a],
        plot_stem: Some(blocker.join("law")),
        ..FitOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, LawError::Plot(_)) && e.to_string().contains("law.png"),
        "{e}"
    );
    assert_eq!(fs::read(&blocker).unwrap(), b"x");
}
