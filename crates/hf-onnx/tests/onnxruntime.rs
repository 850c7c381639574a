//! ONNX files written by hf-onnx, run by ONNX Runtime (the PyPI `onnxruntime` that
//! `scripts/setup.sh` installs into the project venv, driven through `.venv/bin/python`): the
//! logits equal the hf-sparse runtime's within 1e-4 and ONNX Runtime reads the metadata.
//!
//! Without ONNX Runtime in `.venv` the test fails and says to run `scripts/setup.sh`.

use hf_onnx::write::{to_onnx_bytes, Preprocessing};
use hf_sparse::{synthetic, ExportModel, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the model at `argv[1]` on the `[batch, ...shape]` inputs in `argv[2]` (raw f32),
/// first on example 0 alone, then on the whole batch (one session: the batch dimension is
/// symbolic), all graph optimisations on; writes both logits to `argv[3]` and prints the
/// model's custom metadata as JSON.
const SCRIPT: &str = r#"
import json, sys
import numpy as np
import onnxruntime as ort
model, xin, out = sys.argv[1:4]
shape = [int(v) for v in sys.argv[4:]]
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
x = np.fromfile(xin, dtype="<f4").reshape(shape)
(one,) = s.run(["logits"], {"input": x[:1]})
(all_,) = s.run(["logits"], {"input": x})
assert one.dtype == np.float32 and all_.dtype == np.float32
np.concatenate([one.ravel(), all_.ravel()]).astype("<f4").tofile(out)
print(json.dumps(s.get_modelmeta().custom_metadata_map))
"#;

fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// The venv's Python if it can import onnxruntime and numpy; else a failure that says how to
/// get them.
fn python_with_onnxruntime() -> PathBuf {
    let py = venv_python();
    let probe = Command::new(&py)
        .args([
            "-c",
            "import numpy, onnxruntime; print(onnxruntime.__version__)",
        ])
        .output();
    match probe {
        Ok(o) if o.status.success() => py,
        Ok(o) => panic!(
            "ONNX Runtime is not installed in the project venv ({}: {}): run scripts/setup.sh",
            py.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!(
            "no project venv Python at {} ({e}): run scripts/setup.sh",
            py.display()
        ),
    }
}

/// `|a − b| <= 1e-4·(1 + |b|)` everywhere.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of logits");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: logit {i} is {g} in ONNX Runtime, {w} in hf-sparse"
        );
    }
}

fn check(net: &ExportModel, batch: usize, what: &str) {
    let py = python_with_onnxruntime();
    let dir = tempfile::tempdir().unwrap();
    let pre = Preprocessing {
        scale: 1.0 / 255.0,
        mean: vec![0.5],
        std: vec![0.25],
    };
    let onnx = dir.path().join("model.onnx");
    std::fs::write(&onnx, to_onnx_bytes(net, Some(&pre)).unwrap()).unwrap();
    let rt = Model::from_export(net).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(batch as u64);
    let x: Vec<f32> = (0..batch * rt.input_len())
        .map(|_| rng.gen_range(-2.0f32..2.0))
        .collect();
    let xin = dir.path().join("x.f32");
    std::fs::write(
        &xin,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    let out = dir.path().join("y.f32");
    let mut args = vec![
        "-c".to_string(),
        SCRIPT.to_string(),
        onnx.display().to_string(),
        xin.display().to_string(),
        out.display().to_string(),
        batch.to_string(),
    ];
    args.extend(net.meta.input_shape.iter().map(|d| d.to_string()));
    let o = Command::new(&py).args(&args).output().unwrap();
    assert!(
        o.status.success(),
        "{what}: onnxruntime failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let y: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let k = rt.classes();
    let want = rt.forward(&x, batch).unwrap();
    assert!(
        want.iter().any(|v| (v - want[0]).abs() > 1e-3),
        "{what}: constant logits"
    );
    assert_close(&y[..k], &want[..k], &format!("{what}, batch 1"));
    assert_close(&y[k..], &want, &format!("{what}, batch {batch}"));
    // the metadata as ONNX Runtime reads it
    let meta: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let per: Vec<(String, f64)> =
        serde_json::from_str(meta["density_per_layer"].as_str().unwrap()).unwrap();
    assert_eq!(per, net.meta.density_per_layer, "{what}");
    let total: f64 = meta["total_density"].as_str().unwrap().parse().unwrap();
    assert_eq!(total, net.meta.total_density, "{what}");
    let p: Preprocessing = serde_json::from_str(meta["preprocessing"].as_str().unwrap()).unwrap();
    assert_eq!(p, pre);
}

#[test]
fn lenet300_in_onnxruntime_matches_runtime() {
    check(&synthetic::lenet300(98.0, 2), 64, "lenet300 at 98%");
}

#[test]
fn conv_nets_in_onnxruntime_match_runtime() {
    check(&synthetic::conv_net(4, 9, 90.0, 3), 5, "conv_net at 90%");
    check(
        &synthetic::mobile_net(4, 12, 50.0, 4),
        5,
        "mobile_net (depthwise, grouped, dilated, ReLU6) at 50%",
    );
}
