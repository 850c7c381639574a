//! Reading and writing law CSVs, and every bad-file error.

use std::fs;
use std::path::{Path, PathBuf};

use hf_law::{
    parse_region, read_law_csv, read_law_csv_with, write_law_csv, LawError, LawPoint, ReadOptions,
};

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn one_line(e: &LawError) -> String {
    let m = e.to_string();
    assert!(!m.contains('\n'), "multi-line error: {m}");
    m
}

#[test]
fn reads_the_authors_column_conventions() {
    let d = tempfile::tempdir().unwrap();
    let imp = file(
        d.path(),
        "imp.csv",
        "Epoch,Saliency,Remaining,Accuracy\n1,0.0001,90.0,91.1\n7,0.0002,81.0,92.5\n14,0.0004,72.9,92.4\n",
    );
    let pts = read_law_csv(&imp).unwrap();
    assert_eq!(pts.len(), 3);
    assert_eq!(pts[1].epoch, Some(7.0));
    assert_eq!(pts[1].saliency, 0.0002);
    assert_eq!(pts[1].remaining, 81.0);
    assert_eq!(pts[1].accuracy, Some(92.5));
    assert!(pts[1].extras.is_empty());

    // L0 files say "Epochs" and put it last; spaces and case do not matter.
    let l0 = file(
        d.path(),
        "l0.csv",
        " saliency , REMAINING ,Accuracy, Epochs\n0.5, 5.3, 94.29, 500\n1,3.4,93.5,550\n2,2.1,93.7,600\n",
    );
    let pts = read_law_csv(&l0).unwrap();
    assert_eq!(pts[0].epoch, Some(500.0));
    assert_eq!(pts[2].saliency, 2.0);

    // Pressure files have neither epoch nor accuracy.
    let pr = file(d.path(), "p.csv", "Saliency,Remaining\n1,3\n2,2\n4,1\n");
    let pts = read_law_csv(&pr).unwrap();
    assert!(pts
        .iter()
        .all(|p| p.epoch.is_none() && p.accuracy.is_none()));

    // Other numeric columns become extras; a non-numeric one is ignored and reported; empty
    // optional cells are None.
    let ex = file(
        d.path(),
        "ex.csv",
        "Saliency,Remaining,Accuracy,MinFlux,Note,Lambda\n1,30,,0.1,a,1\n2,20,90,0.2,b,\n4,10,91,0.3,c,4\n",
    );
    let got = read_law_csv_with(&ex, &ReadOptions::default()).unwrap();
    assert_eq!(got.ignored_columns, vec!["Note".to_string()]);
    assert_eq!(got.points[0].accuracy, None);
    assert_eq!(
        got.points[0].extras,
        vec![("MinFlux".to_string(), 0.1), ("Lambda".to_string(), 1.0)]
    );
    assert_eq!(got.points[1].extras, vec![("MinFlux".to_string(), 0.2)]);
}

#[test]
fn missing_column_is_named() {
    let d = tempfile::tempdir().unwrap();
    let f = file(
        d.path(),
        "nocol.csv",
        "Epoch,Saliency,Accuracy\n1,0.1,90\n2,0.2,91\n3,0.3,92\n",
    );
    let e = read_law_csv(&f).unwrap_err();
    let m = one_line(&e);
    assert!(
        matches!(&e, LawError::MissingColumn { column, .. } if column == "Remaining"),
        "{m}"
    );
    assert!(
        m.contains("nocol.csv") && m.contains("Epoch,Saliency,Accuracy"),
        "{m}"
    );

    let empty = file(d.path(), "empty.csv", "");
    let e = read_law_csv(&empty).unwrap_err();
    assert!(
        matches!(&e, LawError::MissingColumn { column, .. } if column == "Saliency"),
        "{e}"
    );

    let dup = file(d.path(), "dup.csv", "Saliency,Remaining,saliency\n1,2,3\n");
    assert!(matches!(
        read_law_csv(&dup).unwrap_err(),
        LawError::DuplicateColumn { .. }
    ));
}

#[test]
fn non_numeric_value_names_row_and_line() {
    let d = tempfile::tempdir().unwrap();
    let f = file(
        d.path(),
        "bad.csv",
        "Saliency,Remaining,Accuracy\n1,50,90\n2,abc,91\n3,10,92\n",
    );
    let e = read_law_csv(&f).unwrap_err();
    let m = one_line(&e);
    assert!(
        matches!(&e, LawError::NotNumeric { row: 2, line: 3, column, value, .. }
            if column == "Remaining" && value == "abc"),
        "{m}"
    );
    assert!(m.contains("bad.csv: data row 2 (line 3)"), "{m}");

    // Optional columns are checked too, and so are empty or non-finite required cells.
    for (text, col) in [
        (
            "Saliency,Remaining,Accuracy\n1,50,90\n2,40,9x1\n3,10,92\n",
            "Accuracy",
        ),
        ("Saliency,Remaining\n1,50\n,40\n3,10\n", "Saliency"),
        ("Saliency,Remaining\n1,50\n2,inf\n3,10\n", "Remaining"),
        ("Saliency,Remaining\n1,50\nNaN,40\n3,10\n", "Saliency"),
    ] {
        let f = file(d.path(), "b2.csv", text);
        let e = read_law_csv(&f).unwrap_err();
        assert!(
            matches!(&e, LawError::NotNumeric { row: 2, column, .. } if column == col),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn malformed_csv_names_the_line() {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("ragged.csv", "Saliency,Remaining\n1,50\n2,40,7\n3,10\n"),
        (
            "ragged_crlf.csv",
            "Saliency,Remaining\r\n1,50\r\n2,40,7\r\n3,10\r\n",
        ),
    ] {
        let f = file(d.path(), name, text);
        let e = read_law_csv(&f).unwrap_err();
        let m = one_line(&e);
        assert!(matches!(e, LawError::Csv { line: 3, .. }), "{m}");
        assert!(m.contains(&format!("{name}: line 3")), "{m}");
    }

    let missing = d.path().join("nope.csv");
    let e = read_law_csv(&missing).unwrap_err();
    assert!(matches!(e, LawError::Read { .. }) && e.to_string().contains("nope.csv"));
}

#[test]
fn fewer_than_three_points_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let f = file(d.path(), "short.csv", "Saliency,Remaining\n1,50\n2,40\n");
    let e = read_law_csv(&f).unwrap_err();
    let m = one_line(&e);
    assert!(
        matches!(e, LawError::TooFewPoints { n: 2, need: 3, .. }),
        "{m}"
    );
    assert!(m.contains("short.csv"));

    // Three rows, but one is skipped as non-positive: still too few, and the message says why.
    let f = file(
        d.path(),
        "short2.csv",
        "Saliency,Remaining\n0,100\n1,50\n2,40\n",
    );
    let e = read_law_csv_with(
        &f,
        &ReadOptions {
            skip_nonpositive: true,
        },
    )
    .unwrap_err();
    assert!(matches!(e, LawError::TooFewPoints { n: 2, .. }), "{e}");
    assert!(e.to_string().contains("1 non-positive rows skipped"), "{e}");
}

#[test]
fn non_positive_saliency_or_density_fails_unless_skipped() {
    let d = tempfile::tempdir().unwrap();
    let f = file(
        d.path(),
        "zero.csv",
        "Saliency,Remaining,Accuracy,Epochs\n0,100.0,91.66,1\n0.2,100.0,92.65,2\n0.45,86.5,92.2,3\n0.75,14.9,92.5,27\n-1,5,90,28\n1.2,0,90,29\n",
    );
    let e = read_law_csv(&f).unwrap_err();
    let m = one_line(&e);
    assert!(
        matches!(&e, LawError::NonPositive { row: 1, line: 2, column, value, .. }
            if column == "Saliency" && *value == 0.0),
        "{m}"
    );
    assert!(
        m.contains("zero.csv: data row 1 (line 2): Saliency = 0"),
        "{m}"
    );

    let got = read_law_csv_with(
        &f,
        &ReadOptions {
            skip_nonpositive: true,
        },
    )
    .unwrap();
    assert_eq!(got.points.len(), 3);
    let rows: Vec<(usize, u64)> = got.dropped.iter().map(|r| (r.row, r.line)).collect();
    assert_eq!(rows, vec![(1, 2), (5, 6), (6, 7)]);
    assert_eq!(
        got.dropped[2].to_string(),
        "dropped data row 6 (line 7): Remaining = 0 is not positive"
    );
    assert_eq!(got.points[0].saliency, 0.2);

    // Windows line endings (as in the authors' files) and a blank line keep line numbers right.
    let crlf = file(
        d.path(),
        "crlf.csv",
        "Saliency,Remaining\r\n1,50\r\n\r\n2,40\r\n0,30\r\n3,20\r\n",
    );
    let e = read_law_csv(&crlf).unwrap_err();
    assert!(
        matches!(
            e,
            LawError::NonPositive {
                row: 3,
                line: 5,
                ..
            }
        ),
        "{e}"
    );
    let lf = file(d.path(), "lf.csv", "Saliency,Remaining\n0,50\n2,40\n3,30\n");
    assert!(matches!(
        read_law_csv(&lf).unwrap_err(),
        LawError::NonPositive {
            row: 1,
            line: 2,
            ..
        }
    ));
}

#[test]
fn write_then_read_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let pts = vec![
        LawPoint {
            epoch: Some(1.0),
            saliency: 2.478973406758178e-12,
            remaining: 90.0,
            accuracy: Some(92.12),
            extras: vec![("MinFlux".into(), 1e-5), ("Lambda".into(), 0.25)],
        },
        LawPoint {
            epoch: None,
            saliency: 0.1 + 0.2,
            remaining: 81.0015,
            accuracy: None,
            extras: vec![("Lambda".into(), 0.5), ("Other".into(), 7.0)],
        },
        LawPoint {
            epoch: Some(3.0),
            saliency: 64.0,
            remaining: 0.1021,
            accuracy: Some(10.0),
            extras: vec![],
        },
    ];
    let path = d.path().join("out/law.csv");
    write_law_csv(&path, &pts).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "Epoch,Saliency,Remaining,Accuracy,MinFlux,Lambda,Other"
    );
    let back = read_law_csv(&path).unwrap();
    // Extras come back in column order, which may differ from the input's per-point order.
    let norm = |v: &[LawPoint]| -> Vec<LawPoint> {
        v.iter()
            .cloned()
            .map(|mut p| {
                p.extras.sort_by(|a, b| a.0.cmp(&b.0));
                p
            })
            .collect()
    };
    assert_eq!(norm(&back), norm(&pts));
    assert_eq!(
        back[1].saliency,
        0.1 + 0.2,
        "floats must round-trip exactly"
    );
}

#[test]
fn failed_write_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let blocker = file(d.path(), "blocker", "x");
    let e = write_law_csv(&blocker.join("law.csv"), &[]).unwrap_err();
    let m = one_line(&e);
    assert!(
        matches!(e, LawError::Write { .. }) && m.contains("law.csv"),
        "{m}"
    );
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
}

#[test]
fn region_parsing() {
    assert_eq!(parse_region("0.5:50").unwrap(), (0.5, 50.0));
    assert_eq!(parse_region(" 0 : 1e2 ").unwrap(), (0.0, 100.0));
    assert_eq!(parse_region("1:inf").unwrap(), (1.0, f64::INFINITY));
    for (bad, why) in [
        ("0.5-50", "no ':'"),
        ("abc:50", "LO \"abc\" is not a number"),
        ("0.5:", "HI is empty"),
        (":50", "LO is empty"),
        ("50:0.5", "greater than LO"),
        ("5:5", "greater than LO"),
        ("-1:50", ">= 0"),
        ("nan:50", "not a number"),
        ("0.5:50:7", "not a number"),
    ] {
        let e = parse_region(bad).unwrap_err();
        let m = one_line(&e);
        assert!(matches!(e, LawError::BadRegion { .. }), "{bad}: {m}");
        assert!(
            m.contains(why) && m.contains(bad) && m.contains("e.g. 0.5:50"),
            "{bad}: {m}"
        );
    }
}
