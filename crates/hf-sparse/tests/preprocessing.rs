//! The input preprocessing recorded in exports (`input_scale`, `input_mean`, `input_std`):
//! written, read back, validated, optional for older files.

mod common;

use common::*;
use hf_sparse::{load, synthetic, write_export, Format, Model, Preprocessing, SparseError};

fn mnist_pre() -> Preprocessing {
    Preprocessing::from_f32(Preprocessing::PIXEL_SCALE, &[0.1307], &[0.3081])
}

#[test]
fn preprocessing_round_trips_in_both_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = synthetic::lenet300(98.0, 3);
    net.meta.preprocessing = Some(mnist_pre());
    for format in [Format::Dense, Format::Sparse] {
        let p = dir.path().join(format!("{format:?}.safetensors"));
        write_export(&p, &net, format).unwrap();
        let raw = Raw::read(&p);
        let meta = raw.meta.as_ref().unwrap();
        assert_eq!(meta["input_scale"], "0.00392156862745098");
        assert_eq!(meta["input_mean"], "[0.1307]");
        assert_eq!(meta["input_std"], "[0.3081]");
        let m = load(&p).unwrap();
        assert_eq!(m.meta().preprocessing, Some(mnist_pre()));
        assert!(!m.meta().extra.contains_key("input_scale"));
    }
}

#[test]
fn older_files_without_the_keys_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::lenet300(98.0, 3);
    assert_eq!(net.meta.preprocessing, None);
    let p = dir.path().join("old.safetensors");
    write_export(&p, &net, Format::Sparse).unwrap();
    let raw = Raw::read(&p);
    assert!(!raw.meta.as_ref().unwrap().contains_key("input_scale"));
    assert_eq!(load(&p).unwrap().meta().preprocessing, None);
}

#[test]
fn per_channel_lists_are_checked_against_the_input_channels() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = synthetic::conv_net(8, 16, 98.0, 1);
    let p = dir.path().join("conv.safetensors");
    net.meta.preprocessing = Some(Preprocessing {
        scale: 1.0 / 255.0,
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.247, 0.243, 0.261],
    });
    write_export(&p, &net, Format::Sparse).unwrap();
    // Two values for three channels: refused by the writer …
    net.meta.preprocessing = Some(Preprocessing {
        scale: 1.0,
        mean: vec![0.0, 0.0],
        std: vec![1.0],
    });
    let e = write_export(&p, &net, Format::Sparse).unwrap_err();
    assert!(
        matches!(e, SparseError::InvalidModel { .. })
            && e.to_string()
                .contains("input_mean has 2 values; expected 1 or 3"),
        "{e}"
    );
}

/// Writes a valid MNIST-preprocessed file, applies `edit` to its metadata, and checks the
/// loader refuses it in one line naming the file and `want`.
fn refuse(edit: impl FnOnce(&mut Raw), want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut net = synthetic::lenet300(98.0, 5);
    net.meta.preprocessing = Some(mnist_pre());
    let good = dir.path().join("good.safetensors");
    write_export(&good, &net, Format::Sparse).unwrap();
    let mut raw = Raw::read(&good);
    edit(&mut raw);
    let bad = dir.path().join("bad.safetensors");
    raw.write(&bad);
    let msg = load(&bad).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.contains("bad.safetensors") && msg.contains(want),
        "{msg}"
    );
}

#[test]
fn bad_preprocessing_is_refused_on_load() {
    refuse(
        |r| r.set_meta("input_std", "[0.0]"),
        "every std must be > 0",
    );
    refuse(|r| r.set_meta("input_std", "[-2]"), "every std must be > 0");
    refuse(
        |r| r.set_meta("input_mean", "[0.1, 0.2]"),
        "expected 1 or 1",
    );
    refuse(|r| r.set_meta("input_scale", "0"), "input_scale 0");
    refuse(|r| r.set_meta("input_scale", "1e999"), "input_scale");
    refuse(|r| r.set_meta("input_mean", "[NaN]"), "input_mean");
    refuse(
        |r| r.set_meta("input_mean", "0.5"),
        "metadata 'input_mean' is not",
    );
    refuse(
        |r| {
            r.meta.as_mut().unwrap().remove("input_std");
        },
        "some but not all of input_scale, input_mean, input_std",
    );
}

#[test]
fn recorded_preprocessing_turns_raw_pixels_into_the_trained_inputs() {
    let mut net = synthetic::lenet300(90.0, 8);
    net.meta.preprocessing = Some(mnist_pre());
    let model = Model::from_export(&net).unwrap();
    let pixels: Vec<u8> = (0..784).map(|i| (i * 7 % 256) as u8).collect();
    let mut x: Vec<f32> = pixels.iter().map(|&p| f32::from(p)).collect();
    let pre = model.meta().preprocessing.clone().unwrap();
    pre.apply(&mut x, model.input_len(), model.meta().input_channels());
    for (v, &p) in x.iter().zip(&pixels) {
        let want = (f32::from(p) / 255.0 - 0.1307) / 0.3081;
        assert!((v - want).abs() < 1e-5, "{v} vs {want}");
    }
    let logits = model.forward(&x, 1).unwrap();
    assert_eq!(logits.len(), 10);
    let _ = reference(&net, &x, 1);
}
