//! End-to-end tests: real PNG and SVG files written through the public API.

use std::fs;
use std::path::Path;

use hf_plot::{draw, draw_panels, Chart, PlotError, Series, Style};

fn sample_chart() -> Chart {
    let line: Vec<(f64, f64)> = (1..=50).map(|i| (i as f64, 100.0 / i as f64)).collect();
    Chart {
        title: "Pruning law check".into(),
        x_label: "saliency γ".into(),
        y_label: "density s (%)".into(),
        log_x: true,
        log_y: true,
        series: vec![
            Series::new("measured <R50> & co", line.clone(), Style::Points),
            Series::new(
                "power: s = 1.00e2·γ^-1.000, R²=1.000",
                line.iter().map(|&(x, y)| (x, 1.2 * y)).collect(),
                Style::Line,
            ),
            Series::new(
                "dashed fit",
                line.iter().map(|&(x, y)| (x, 0.8 * y)).collect(),
                Style::Dashed,
            ),
            Series::new(
                "line+points",
                line.iter().step_by(5).map(|&(x, y)| (x, 0.5 * y)).collect(),
                Style::LinePoints,
            ),
        ],
        shaded_x: vec![(20.0, f64::INFINITY)],
        shaded_y: vec![(50.0, f64::INFINITY), (0.0, 0.5)],
    }
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

fn assert_png(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    assert!(
        bytes.len() > 1000,
        "{} is suspiciously small",
        path.display()
    );
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    bytes
}

/// Decodes a PNG into (width, height, RGB rows).
fn decode(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut dec = png::Decoder::new(bytes);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let mut rgb = Vec::with_capacity(info.width as usize * info.height as usize * 3);
    for px in buf[..info.buffer_size()].chunks(ch) {
        rgb.extend_from_slice(&px[..3]);
    }
    (info.width as usize, info.height as usize, rgb)
}

fn no_temp_files(dir: &Path) {
    for e in fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".hf-tmp-"),
            "temporary file {name} left behind"
        );
    }
}

#[test]
fn writes_png_and_svg_with_text() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("sub/law");
    let [png, svg] = draw(&sample_chart(), &stem).unwrap();
    assert_eq!(png, dir.path().join("sub/law.png"));
    assert_eq!(svg, dir.path().join("sub/law.svg"));
    let bytes = assert_png(&png);
    assert_eq!(png_size(&bytes), hf_plot::CHART_SIZE);

    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "not an SVG");
    assert!(text.contains("Pruning law check"), "title missing from SVG");
    assert!(text.contains("saliency γ"), "axis label missing");
    assert!(
        text.contains("power: s = 1.00e2·γ^-1.000, R²=1.000"),
        "legend entry missing"
    );
    assert!(text.contains("dashed fit") && text.contains("line+points"));
    // Markup in names is escaped, so the SVG stays well-formed.
    assert!(text.contains("measured &lt;R50&gt; &amp; co"));
    assert!(!text.contains("<R50>"));
    no_temp_files(&dir.path().join("sub"));
}

#[test]
fn png_text_is_rendered_with_the_embedded_font() {
    let dir = tempfile::tempdir().unwrap();
    let mut titled = Chart {
        title: "A TITLE DRAWN IN BLACK".into(),
        ..Chart::default()
    };
    titled
        .series
        .push(Series::new("", vec![(0.0, 0.0), (1.0, 1.0)], Style::Line));
    let untitled = Chart {
        title: String::new(),
        ..titled.clone()
    };
    let [a, _] = draw(&titled, &dir.path().join("a")).unwrap();
    let [b, _] = draw(&untitled, &dir.path().join("b")).unwrap();
    let (w, _, pa) = decode(&fs::read(a).unwrap());
    let (_, _, pb) = decode(&fs::read(b).unwrap());
    // The caption sits in the top band of the image, centred.
    let dark = |img: &[u8]| {
        let mut n = 0;
        for y in 10..45 {
            for x in 300..700 {
                let i = (y * w + x) * 3;
                if img[i] < 100 && img[i + 1] < 100 && img[i + 2] < 100 {
                    n += 1;
                }
            }
        }
        n
    };
    assert!(
        dark(&pa) > 200,
        "title glyphs not drawn: {} dark pixels",
        dark(&pa)
    );
    assert_eq!(
        dark(&pb),
        0,
        "untitled chart has dark pixels where the title would be"
    );
}

#[test]
fn edge_cases_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases = vec![
        ("empty", Chart::default()),
        (
            "empty_series",
            Chart {
                series: vec![Series::new("nothing", vec![], Style::Line)],
                log_x: true,
                log_y: true,
                ..Chart::default()
            },
        ),
        (
            "single",
            Chart {
                series: vec![Series::new("one", vec![(3.0, 7.0)], Style::LinePoints)],
                ..Chart::default()
            },
        ),
        (
            "flat",
            Chart {
                series: vec![Series::new(
                    "flat",
                    vec![(1.0, 5.0), (2.0, 5.0)],
                    Style::Dashed,
                )],
                log_y: true,
                ..Chart::default()
            },
        ),
        (
            "log_zeros",
            Chart {
                series: vec![Series::new(
                    "zeros",
                    vec![
                        (0.0, 1.0),
                        (1.0, 0.0),
                        (-1.0, -2.0),
                        (2.0, 3.0),
                        (f64::NAN, 1.0),
                    ],
                    Style::Points,
                )],
                log_x: true,
                log_y: true,
                shaded_y: vec![(0.0, 0.0), (f64::NEG_INFINITY, 1.0)],
                ..Chart::default()
            },
        ),
        (
            "all_invalid_on_log",
            Chart {
                series: vec![Series::new(
                    "bad",
                    vec![(0.0, 0.0), (-1.0, 5.0)],
                    Style::Line,
                )],
                log_x: true,
                ..Chart::default()
            },
        ),
        (
            "extreme",
            Chart {
                series: vec![Series::new(
                    "huge",
                    vec![
                        (-1e308, 1e308),
                        (1e308, -1e308),
                        (f64::INFINITY, 1.0),
                        (1.0, 2.0),
                    ],
                    Style::Line,
                )],
                ..Chart::default()
            },
        ),
        (
            "many_series",
            Chart {
                series: (0..25)
                    .map(|i| {
                        Series::new(
                            format!("s{i}"),
                            vec![(0.0, i as f64), (1.0, i as f64 + 1.0)],
                            Style::Line,
                        )
                    })
                    .collect(),
                ..Chart::default()
            },
        ),
    ];
    for (name, chart) in cases {
        let r = draw(&chart, &dir.path().join(name));
        let [png, svg] = r.unwrap_or_else(|e| panic!("case {name}: {e}"));
        assert_png(&png);
        assert!(
            fs::metadata(&svg).unwrap().len() > 100,
            "case {name}: empty SVG"
        );
    }
}

#[test]
fn panels_are_stacked() {
    let dir = tempfile::tempdir().unwrap();
    let mut second = sample_chart();
    second.title = "Second panel".into();
    second.log_x = false;
    let third = Chart {
        title: "Third panel".into(),
        ..Chart::default()
    };
    let [png, svg] = draw_panels(&[sample_chart(), second, third], &dir.path().join("p")).unwrap();
    let bytes = assert_png(&png);
    assert_eq!(
        png_size(&bytes),
        (hf_plot::CHART_SIZE.0, 3 * hf_plot::PANEL_HEIGHT)
    );
    let text = fs::read_to_string(svg).unwrap();
    for t in ["Pruning law check", "Second panel", "Third panel"] {
        assert!(text.contains(t), "{t} missing");
    }
}

#[test]
fn no_charts_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = draw_panels(&[], &dir.path().join("x")).unwrap_err();
    assert!(matches!(e, PlotError::NoCharts { .. }));
    assert!(e.to_string().contains("x"));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn output_dir_that_is_a_file_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    fs::write(&blocker, b"i am a file").unwrap();
    let e = draw(&sample_chart(), &blocker.join("chart")).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PlotError::Io { .. }), "{msg}");
    assert!(
        msg.contains("chart.png"),
        "message does not name the file: {msg}"
    );
    assert!(!msg.contains('\n'));
    // Nothing but the blocker exists, and it is untouched.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("blocker")]);
    assert_eq!(fs::read(&blocker).unwrap(), b"i am a file");
}

#[test]
fn failing_second_file_removes_the_first() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the SVG should go: the PNG is written, the SVG rename fails.
    fs::create_dir(dir.path().join("c.svg")).unwrap();
    fs::write(dir.path().join("c.svg/keep"), b"x").unwrap();
    let e = draw(&sample_chart(), &dir.path().join("c")).unwrap_err();
    assert!(e.to_string().contains("c.svg"), "{e}");
    assert!(
        !dir.path().join("c.png").exists(),
        "PNG left without its SVG"
    );
    no_temp_files(dir.path());
}

#[test]
fn redraw_replaces_files() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("r");
    draw(&sample_chart(), &stem).unwrap();
    let mut c = sample_chart();
    c.title = "Replaced title".into();
    let [_, svg] = draw(&c, &stem).unwrap();
    let text = fs::read_to_string(svg).unwrap();
    assert!(text.contains("Replaced title") && !text.contains("Pruning law check"));
    no_temp_files(dir.path());
}
