//! Export → load round trips: logits, predictions, metadata, index types, file sizes.

mod common;

use common::*;
use hf_sparse::{
    col_idx_dtype, load, row_ptr_dtype, synthetic, write_export, Dtype, Format, Model,
};

#[test]
fn lenet_round_trip_both_formats_matches_original_tensors() {
    let dir = tempfile::tempdir().unwrap();
    for (i, sp) in [0.0, 50.0, 95.0, 98.0, 99.0, 100.0].into_iter().enumerate() {
        let net = synthetic::lenet300(sp, 100 + i as u64);
        let batch = 64;
        let x = input(batch * 784, i as u64);
        let want = reference(&net, &x, batch);
        let want_pred = reference_predictions(&want, 10);
        let mut preds = Vec::new();
        for format in [Format::Dense, Format::Sparse] {
            let path = dir.path().join(format!("lenet{sp}.{format}.safetensors"));
            let bytes = write_export(&path, &net, format).unwrap();
            assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
            let m = load(&path).unwrap();
            assert_eq!(
                m.path(),
                format,
                "a {format} file loads onto the {format} path"
            );
            for model in [m.to_sparse(), m.to_dense()] {
                let what = format!("{sp}% {format} file on {} path", model.path());
                // batch 1 (vector kernels) for a few examples, then the batched kernels
                for e in 0..3 {
                    let got = model.forward(&x[e * 784..(e + 1) * 784], 1).unwrap();
                    assert_logits_close(&got, &want[e * 10..(e + 1) * 10], &what);
                }
                for b in [5usize, batch] {
                    let got = model.forward(&x[..b * 784], b).unwrap();
                    assert_logits_close(&got, &want[..b * 10], &what);
                }
                let p = model.predict(&x, batch).unwrap();
                for (e, (got, want)) in p.iter().zip(&want_pred).enumerate() {
                    if let Some(w) = want {
                        assert_eq!(got, w, "{what}: prediction {e}");
                    }
                }
                preds.push(p);
            }
        }
        assert!(
            preds.windows(2).all(|w| w[0] == w[1]),
            "{sp}%: predictions differ between files/paths"
        );
    }
}

#[test]
fn metadata_survives_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = synthetic::lenet300(98.0, 3);
    net.meta.accuracy = Some(0.9812);
    net.meta.dataset = "mnist".into();
    net.meta.extra.insert("git".into(), "abc123".into());
    for format in [Format::Dense, Format::Sparse] {
        let path = dir.path().join(format!("m.{format}"));
        write_export(&path, &net, format).unwrap();
        let m = load(&path).unwrap();
        assert_eq!(m.meta(), &net.meta, "{format}");
        assert_eq!(
            m.layer_specs(),
            net.layers
                .iter()
                .map(|(s, _)| s.clone())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn densities_are_filled_in_when_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = tiny();
    let (per, total) = (net.meta.density_per_layer.clone(), net.meta.total_density);
    assert_eq!(
        per,
        vec![("fc1".to_string(), 5.0 / 12.0), ("fc2".to_string(), 0.5)]
    );
    assert_eq!(total, 8.0 / 18.0);
    net.meta.density_per_layer.clear();
    net.meta.total_density = 0.0;
    let path = dir.path().join("t.sparse");
    write_export(&path, &net, Format::Sparse).unwrap();
    let m = load(&path).unwrap();
    assert_eq!(m.meta().density_per_layer, per);
    assert_eq!(m.meta().total_density, total);
}

#[test]
fn tiny_net_round_trip_exact_weights_and_logits() {
    let dir = tempfile::tempdir().unwrap();
    let net = tiny();
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let want = reference(&net, &x, 1);
    // by hand: fc1 = relu([0.5-2+8+0.1, 0-0.2, 0.25-2.25+0.3]) = [6.6, 0, 0]
    //          fc2 = [1*6.6 + (-2)*0, 0*6.6] = [6.6, 0]
    assert!((want[0] - 6.6).abs() < 1e-6 && want[1] == 0.0);
    for format in [Format::Dense, Format::Sparse] {
        let path = dir.path().join(format!("t.{format}"));
        write_export(&path, &net, format).unwrap();
        let m = load(&path).unwrap();
        assert_logits_close(&m.forward(&x, 1).unwrap(), &want, "tiny");
        let w = m.dense_weights();
        assert_eq!(w[0].0, "fc1");
        // pruned raw weights (the 9s) are zeroed; kept ones are exact
        assert_eq!(
            w[0].1,
            vec![0.5, -1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.0, -0.75, 0.0]
        );
        assert_eq!(w[0].2, Some(vec![0.1, -0.2, 0.3]));
        assert_eq!(w[1].1, vec![1.0, 0.0, -2.0, 0.0, 0.0, 0.0]);
        assert_eq!(w[1].2, None);
        // the kept weight whose value is 0 still counts: nnz follows the mask
        let f = m.flops();
        assert_eq!((f[0].nnz, f[1].nnz), (5, 3), "{format}");
    }
}

#[test]
fn index_types_are_the_narrowest() {
    assert_eq!(col_idx_dtype(1), Dtype::U8);
    assert_eq!(col_idx_dtype(100), Dtype::U8);
    assert_eq!(col_idx_dtype(256), Dtype::U8);
    assert_eq!(col_idx_dtype(257), Dtype::U16);
    assert_eq!(col_idx_dtype(784), Dtype::U16);
    assert_eq!(col_idx_dtype(65536), Dtype::U16);
    assert_eq!(col_idx_dtype(65537), Dtype::U32);
    assert_eq!(row_ptr_dtype(0), Dtype::U16);
    assert_eq!(row_ptr_dtype(65535), Dtype::U16);
    assert_eq!(row_ptr_dtype(65536), Dtype::U32);
    assert_eq!(row_ptr_dtype(1 << 32), Dtype::U64);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet.sparse");
    write_export(&path, &synthetic::lenet300(98.0, 1), Format::Sparse).unwrap();
    let raw = Raw::read(&path);
    assert_eq!(raw.dtype("fc1.col_idx"), Dtype::U16, "784-wide layer");
    assert_eq!(raw.dtype("fc2.col_idx"), Dtype::U16, "300-wide layer");
    assert_eq!(raw.dtype("fc3.col_idx"), Dtype::U8, "100-wide layer");
    for l in ["fc1", "fc2", "fc3"] {
        assert_eq!(
            raw.dtype(&format!("{l}.row_ptr")),
            Dtype::U16,
            "{l}: few nonzeros"
        );
        assert_eq!(raw.dtype(&format!("{l}.values")), Dtype::F32);
    }
    assert!(
        !raw.tensors.keys().any(|k| k.ends_with(".mask")),
        "no masks in a sparse file"
    );

    // 50% of 784x300 = 117,600 nonzeros: row_ptr needs U32
    let path = dir.path().join("half.sparse");
    write_export(&path, &synthetic::lenet300(50.0, 1), Format::Sparse).unwrap();
    assert_eq!(Raw::read(&path).dtype("fc1.row_ptr"), Dtype::U32);

    // a 70,000-wide layer needs U32 column indices
    let path = dir.path().join("wide.sparse");
    let wide = synthetic::mlp("wide", &[70_000, 1], vec![70_000], 99.99, 1);
    write_export(&path, &wide, Format::Sparse).unwrap();
    assert_eq!(Raw::read(&path).dtype("fc1.col_idx"), Dtype::U32);
    let x = input(70_000, 1);
    assert_logits_close(
        &load(&path).unwrap().forward(&x, 1).unwrap(),
        &reference(&wide, &x, 1),
        "wide",
    );
}

#[test]
fn dense_file_holds_conventional_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.dense");
    let net = tiny();
    write_export(&path, &net, Format::Dense).unwrap();
    let raw = Raw::read(&path);
    let names: Vec<&str> = raw.tensors.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "fc1.bias",
            "fc1.mask",
            "fc1.weight",
            "fc2.mask",
            "fc2.weight"
        ]
    );
    assert_eq!(raw.tensors["fc1.weight"].1, vec![3, 4]);
    assert_eq!(raw.f32s("fc1.mask"), net.layers[0].1.mask);
    assert_eq!(raw.meta.as_ref().unwrap()["format"], "hyperflux-dense-v1");
}

#[test]
fn sparse_file_at_98_percent_is_under_6_percent_of_dense_weights() {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::lenet300(98.0, 5);
    let sparse = write_export(&dir.path().join("s"), &net, Format::Sparse).unwrap();
    let dense = write_export(&dir.path().join("d"), &net, Format::Dense).unwrap();
    let weights_bytes = 266_200u64 * 4;
    assert!(
        sparse * 100 <= weights_bytes * 6,
        "sparse file {sparse} B vs fp32 weights {weights_bytes} B"
    );
    assert!(
        dense > 2 * weights_bytes,
        "dense file holds weights and masks: {dense} B"
    );
}

#[test]
fn export_is_atomic_and_creates_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/model.sparse.safetensors");
    write_export(&path, &tiny(), Format::Sparse).unwrap();
    assert!(load(&path).is_ok());
    // a failed export leaves neither a file nor a temporary behind
    let mut bad = tiny();
    bad.layers[0].1.weight.pop();
    let bad_path = dir.path().join("bad.safetensors");
    assert!(write_export(&bad_path, &bad, Format::Dense).is_err());
    assert!(!bad_path.exists());
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the 'a' directory: {entries:?}");
}

#[test]
fn from_export_equals_loaded_model() {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::lenet300(95.0, 9);
    let path = dir.path().join("s");
    write_export(&path, &net, Format::Sparse).unwrap();
    let a = Model::from_export(&net).unwrap();
    let b = load(&path).unwrap();
    let x = input(784 * 3, 4);
    assert_eq!(a.forward(&x, 3).unwrap(), b.forward(&x, 3).unwrap());
    assert_eq!(a.flops(), b.flops());
    assert_eq!(a.dense_weights(), b.dense_weights());
}

#[test]
fn export_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = synthetic::lenet300(98.0, 8);
    net.meta.extra.insert("zeta".into(), "1".into());
    net.meta.extra.insert("alpha".into(), "2".into());
    for format in [Format::Dense, Format::Sparse] {
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_export(&a, &net, format).unwrap();
        write_export(&b, &net, format).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{format}"
        );
        // and every tensor's data is aligned to its element size
        let bytes = std::fs::read(&a).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        for (name, info) in header.as_object().unwrap() {
            if name == "__metadata__" {
                continue;
            }
            let start = info["data_offsets"][0].as_u64().unwrap();
            let size = match info["dtype"].as_str().unwrap() {
                "F32" | "U32" => 4,
                "U16" => 2,
                "U8" => 1,
                other => panic!("unexpected dtype {other}"),
            };
            assert_eq!(start % size, 0, "{name} misaligned");
        }
    }
}
