//! Refusal of bad files: every check has a test whose error message must name the file and
//! the problem. Loading never panics, whatever the bytes.

mod common;

use common::*;
use hf_sparse::{load, load_bytes, synthetic, write_export, Dtype, Format, SparseError};
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    sparse: PathBuf,
    dense: PathBuf,
    out: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let net = synthetic::lenet300(98.0, 21);
    let sparse = dir.path().join("model.sparse.safetensors");
    let dense = dir.path().join("model.dense.safetensors");
    write_export(&sparse, &net, Format::Sparse).unwrap();
    write_export(&dense, &net, Format::Dense).unwrap();
    let out = dir.path().join("broken.safetensors");
    Fixture {
        _dir: dir,
        sparse,
        dense,
        out,
    }
}

/// Applies `edit` to a copy of `src`, loads it, and checks the one-line error names the file
/// and contains every `want` fragment.
fn refuse(src: &Path, out: &Path, edit: impl FnOnce(&mut Raw), want: &[&str]) -> SparseError {
    let mut raw = Raw::read(src);
    edit(&mut raw);
    raw.write(out);
    let err = match load(out) {
        Ok(_) => panic!("a broken file loaded (expected {want:?})"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one-line message: {msg}");
    assert!(
        msg.contains(&out.display().to_string()),
        "names the file: {msg}"
    );
    for w in want {
        assert!(msg.contains(w), "message '{msg}' should mention '{w}'");
    }
    err
}

#[test]
fn truncated_and_garbage_files() {
    let f = fixture();
    let bytes = std::fs::read(&f.sparse).unwrap();
    for cut in [0, 4, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&f.out, &bytes[..cut]).unwrap();
        let err = load(&f.out).expect_err("truncated file loaded");
        let msg = err.to_string();
        assert!(matches!(err, SparseError::Unreadable { .. }), "{msg}");
        assert!(
            msg.contains("truncated") && msg.contains("broken.safetensors"),
            "{msg}"
        );
    }
    std::fs::write(&f.out, b"this is not a safetensors file at all").unwrap();
    assert!(matches!(load(&f.out), Err(SparseError::Unreadable { .. })));
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let f = fixture();
    let path = f.out.with_file_name("nope.safetensors");
    let msg = load(&path).unwrap_err().to_string();
    assert!(
        msg.contains("nope.safetensors") && msg.contains("cannot read"),
        "{msg}"
    );
}

#[test]
fn column_index_out_of_bounds() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let mut c = r.uints("fc1.col_idx");
            c[17] = 900;
            r.set_uints("fc1.col_idx", &c);
        },
        &[
            "layer fc1 col_idx[17] = 900 out of bounds (in_features 784)",
            "corrupt",
        ],
    );
    // a u8 index of 100+ in the 100-wide last layer
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let mut c = r.uints("fc3.col_idx");
            c[0] = 100;
            r.set_uints("fc3.col_idx", &c);
        },
        &["layer fc3 col_idx[0] = 100 out of bounds (in_features 100)"],
    );
}

#[test]
fn bad_row_pointers() {
    let f = fixture();
    let edit_ptr = |layer: &'static str, g: fn(&mut Vec<u64>)| {
        move |r: &mut Raw| {
            let name = format!("{layer}.row_ptr");
            let mut p = r.uints(&name);
            g(&mut p);
            r.set_uints(&name, &p);
        }
    };
    refuse(
        &f.sparse,
        &f.out,
        edit_ptr("fc2", |p| p.swap(3, 40)),
        &["layer fc2", "row_ptr is not monotone"],
    );
    refuse(
        &f.sparse,
        &f.out,
        edit_ptr("fc1", |p| p[0] = 1),
        &["layer fc1", "must start at 0"],
    );
    refuse(
        &f.sparse,
        &f.out,
        edit_ptr("fc1", |p| *p.last_mut().unwrap() -= 1),
        &["layer fc1", "must end at nnz"],
    );
    refuse(
        &f.sparse,
        &f.out,
        edit_ptr("fc1", |p| p[5] = 60_000),
        &["layer fc1 row_ptr[5] = 60000 exceeds nnz 4704"],
    );
    refuse(
        &f.sparse,
        &f.out,
        edit_ptr("fc1", |p| {
            p.pop();
        }),
        &["fc1.row_ptr", "shape [300]", "expected [301]"],
    );
}

#[test]
fn unsorted_or_duplicate_columns() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let p = r.uints("fc1.row_ptr");
            let row = (0..300).find(|&i| p[i + 1] - p[i] >= 2).unwrap();
            let mut c = r.uints("fc1.col_idx");
            c.swap(p[row] as usize, p[row] as usize + 1);
            r.set_uints("fc1.col_idx", &c);
        },
        &["layer fc1", "unsorted or duplicate"],
    );
}

#[test]
fn wrong_dtypes() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let v: Vec<u8> = r
                .f32s("fc1.values")
                .iter()
                .flat_map(|x| (*x as f64).to_le_bytes())
                .collect();
            let t = r.tensors.get_mut("fc1.values").unwrap();
            t.0 = Dtype::F64;
            t.2 = v;
        },
        &["tensor 'fc1.values' has dtype F64, expected F32"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let t = r.tensors.get_mut("fc2.col_idx").unwrap();
            assert_eq!(t.0, Dtype::U16);
            t.0 = Dtype::I16;
        },
        &["tensor 'fc2.col_idx' has dtype I16, expected an unsigned integer type"],
    );
    refuse(
        &f.dense,
        &f.out,
        |r| {
            let t = r.tensors.get_mut("fc1.weight").unwrap();
            t.0 = Dtype::I32;
        },
        &["tensor 'fc1.weight' has dtype I32, expected F32"],
    );
}

#[test]
fn wider_index_types_than_needed_are_accepted() {
    // readers accept any unsigned width (writers must use the narrowest)
    let f = fixture();
    let mut raw = Raw::read(&f.sparse);
    let c = raw.uints("fc1.col_idx");
    let t = raw.tensors.get_mut("fc1.col_idx").unwrap();
    t.0 = Dtype::U64;
    t.2 = c.iter().flat_map(|x| x.to_le_bytes()).collect();
    raw.write(&f.out);
    let a = load(&f.sparse).unwrap();
    let b = load(&f.out).unwrap();
    let x = input(784, 1);
    assert_eq!(a.forward(&x, 1).unwrap(), b.forward(&x, 1).unwrap());
}

#[test]
fn missing_and_unexpected_tensors() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            r.tensors.remove("fc2.row_ptr");
        },
        &["missing tensor 'fc2.row_ptr'"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            r.tensors.remove("fc3.bias");
        },
        &["missing tensor 'fc3.bias'"],
    );
    refuse(
        &f.dense,
        &f.out,
        |r| {
            r.tensors.remove("fc1.mask");
        },
        &["missing tensor 'fc1.mask'"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let b = r.tensors["fc1.bias"].clone();
            r.tensors.insert("fc9.bias".into(), b);
        },
        &["unexpected tensor 'fc9.bias'"],
    );
}

#[test]
fn wrong_shapes() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let t = r.tensors.get_mut("fc1.bias").unwrap();
            t.1 = vec![299];
            t.2.truncate(299 * 4);
        },
        &["tensor 'fc1.bias' has shape [299], expected [300]"],
    );
    refuse(
        &f.dense,
        &f.out,
        |r| {
            let t = r.tensors.get_mut("fc2.weight").unwrap();
            t.1 = vec![300, 100];
        },
        &["tensor 'fc2.weight' has shape [300, 100], expected [100, 300]"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let c = r.uints("fc1.col_idx");
            r.set_uints("fc1.col_idx", &c[1..]);
        },
        &["tensor 'fc1.col_idx' has shape"],
    );
}

#[test]
fn non_finite_values() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            let mut v = r.f32s("fc2.values");
            v[3] = f32::NAN;
            r.set_f32s("fc2.values", &v);
        },
        &["tensor 'fc2.values'[3] = NaN is not finite"],
    );
    refuse(
        &f.dense,
        &f.out,
        |r| {
            let mut v = r.f32s("fc3.bias");
            v[0] = f32::INFINITY;
            r.set_f32s("fc3.bias", &v);
        },
        &["tensor 'fc3.bias'[0] = inf is not finite"],
    );
}

#[test]
fn dense_weight_where_mask_prunes() {
    let f = fixture();
    refuse(
        &f.dense,
        &f.out,
        |r| {
            let m = r.f32s("fc2.mask");
            let i = m.iter().position(|v| *v < 0.0).unwrap();
            let mut w = r.f32s("fc2.weight");
            w[i] = 0.5;
            r.set_f32s("fc2.weight", &w);
        },
        &["layer fc2 weight[", "where the mask prunes it"],
    );
}

#[test]
fn missing_or_bad_metadata() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| r.meta = None,
        &["missing metadata", "not a hyperflux export"],
    );
    for key in ["format", "layers", "input_shape", "classes", "architecture"] {
        refuse(
            &f.sparse,
            &f.out,
            |r| {
                r.meta.as_mut().unwrap().remove(key);
            },
            &[&format!("missing metadata key '{key}'")],
        );
    }
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("layers", "[{"),
        &["metadata 'layers' is not a JSON list of layers"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("input_shape", "28x28"),
        &["metadata 'input_shape' is not"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("classes", "-1"),
        &["metadata 'classes' is not"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("accuracy", "high"),
        &["metadata 'accuracy' is not"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("layers", r#"[{"type":"linear","name":"fc1"}]"#),
        &["metadata 'layers' entry 0 is not a valid layer"],
    );
    // FORMAT.md: accuracy is a fraction in [0, 1] (a percentage is refused), or null.
    for bad in ["2.5", "98.1", "-0.1"] {
        refuse(
            &f.sparse,
            &f.out,
            |r| r.set_meta("accuracy", bad),
            &[&format!("accuracy {bad} is outside [0, 1]")],
        );
    }
    for good in ["0", "1", "0.98", "null"] {
        let mut r = Raw::read(&f.sparse);
        r.set_meta("accuracy", good);
        r.write(&f.out);
        load(&f.out).unwrap_or_else(|e| panic!("accuracy {good}: {e}"));
    }
}

/// A flipped byte in the tensor data that still parses (here: a weight value) is refused by the
/// checksum; a file without a checksum (another tool's) loads and says it is unverified.
#[test]
fn checksum_catches_flipped_data_and_absent_checksums_load_unverified() {
    let f = fixture();
    for src in [&f.sparse, &f.dense] {
        let good = Raw::read(src);
        let stated = good.meta.as_ref().unwrap()[hf_interchange::checksum::KEY].clone();
        assert_eq!(stated, good.digest(), "written checksum matches the data");
        let (_, integrity) = hf_sparse::load_checked(src).unwrap();
        assert_eq!(integrity, hf_sparse::Integrity::Verified);
        let name = if src == &f.sparse {
            "fc2.values"
        } else {
            "fc2.weight"
        };
        let mut r = Raw::read(src);
        let mut v = r.f32s(name);
        let k = v.iter().position(|x| *x != 0.0).unwrap();
        v[k] = f32::from_bits(v[k].to_bits() ^ 0x0040_0000);
        r.set_f32s(name, &v);
        // Still a perfectly valid file apart from the checksum: with it recomputed it loads.
        r.write(&f.out);
        load(&f.out).unwrap();
        r.write_keeping_checksum(&f.out);
        let e = load(&f.out).unwrap_err().to_string();
        assert!(
            e.contains("broken.safetensors")
                && e.contains("checksum mismatch")
                && !e.contains('\n'),
            "{e}"
        );
        // Without a checksum: loads, unverified.
        let mut r = Raw::read(src);
        r.meta
            .as_mut()
            .unwrap()
            .remove(hf_interchange::checksum::KEY);
        r.write(&f.out);
        let (m, integrity) = hf_sparse::load_checked(&f.out).unwrap();
        assert_eq!(integrity, hf_sparse::Integrity::Unverified);
        assert!(!m.meta().extra.contains_key(hf_interchange::checksum::KEY));
    }
}

#[test]
fn stated_densities_must_match() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            r.set_meta(
                "density_per_layer",
                r#"[["fc1",0.5],["fc2",0.02],["fc3",0.02]]"#,
            )
        },
        &["density_per_layer says layer fc1 keeps 0.5 but it keeps 4704/235200"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("total_density", "0.3"),
        &["total_density says 0.3"],
    );
}

#[test]
fn unsupported_format_or_layer_type() {
    let f = fixture();
    let err = refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("format", "hyperflux-sparse-v9"),
        &["format 'hyperflux-sparse-v9' is not supported"],
    );
    assert!(matches!(err, SparseError::Unsupported { .. }));
    let err = refuse(
        &f.sparse,
        &f.out,
        |r| {
            let layers = r.meta.as_ref().unwrap()["layers"].replacen("\"linear\"", "\"lstm\"", 1);
            r.set_meta("layers", &layers);
        },
        &["layer 0 has type 'lstm', which this runtime does not support"],
    );
    assert!(matches!(err, SparseError::Unsupported { .. }));
}

#[test]
fn layer_chain_mismatch() {
    let f = fixture();
    let swap_layers = |from: &'static str, to: &'static str| {
        move |r: &mut Raw| {
            let layers = r.meta.as_ref().unwrap()["layers"].replacen(from, to, 1);
            r.set_meta("layers", &layers);
        }
    };
    // fc2 claims 301 inputs: its tensors are still valid (indices < 301), the chain is not
    refuse(
        &f.sparse,
        &f.out,
        swap_layers("\"in_features\":300", "\"in_features\":301"),
        &["layer chain mismatch: layer fc1 has out_features 300 but the next layer fc2 has in_features 301"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("classes", "11"),
        &["layer chain mismatch: classes is 11"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("input_shape", "[1,28,27]"),
        &["layer chain mismatch: input_shape [1, 28, 27] has 756 values"],
    );
    refuse(
        &f.sparse,
        &f.out,
        |r| r.set_meta("layers", "[]"),
        &["the network has no layers"],
    );
    // a zero-width layer would let a tiny file ask for a huge row_ptr
    refuse(
        &f.dense,
        &f.out,
        |r| {
            r.set_meta("input_shape", "[0]");
            let layers = r.meta.as_ref().unwrap()["layers"].replacen(
                "\"in_features\":784",
                "\"in_features\":0",
                1,
            );
            r.set_meta("layers", &layers);
        },
        &["layer fc1 has shape 300 x 0 (zero-width layers are not allowed)"],
    );
    refuse(
        &f.sparse,
        &f.out,
        swap_layers("\"name\":\"fc2\"", "\"name\":\"fc1\""),
        &["layer name 'fc1' is used twice"],
    );
}

#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let f = fixture();
    refuse(
        &f.sparse,
        &f.out,
        |r| {
            r.set_meta("input_shape", "[4000000000000]");
            let layers = r.meta.as_ref().unwrap()["layers"].replacen(
                "\"in_features\":784",
                "\"in_features\":4000000000000",
                1,
            );
            r.set_meta("layers", &layers);
        },
        &["larger than the runtime's limit"],
    );
}

/// Random byte flips and truncations of valid files: load returns Ok or Err, never panics,
/// and whatever loads runs. Data flips are tried twice: as they are (the checksum must refuse
/// every one that changed a byte) and with the checksum recomputed (so the structural checks
/// behind it are fuzzed too).
#[test]
fn fuzzed_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let f = fixture();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let x = input(784, 3);
    for src in [&f.sparse, &f.dense] {
        let good = std::fs::read(src).unwrap();
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize + 8;
        for i in 0..400 {
            let mut b = good.clone();
            match i % 4 {
                // header bytes (JSON): mostly parse errors, sometimes valid-but-wrong metadata
                0 => {
                    let k = rng.gen_range(8..header_len);
                    b[k] = rng.gen();
                }
                // data bytes: indices, pointers, values
                1 | 2 => {
                    for _ in 0..rng.gen_range(1..8) {
                        let k = rng.gen_range(header_len..b.len());
                        b[k] = rng.gen();
                    }
                }
                _ => {
                    let k = rng.gen_range(0..b.len());
                    b.truncate(k);
                }
            }
            let data_flip = matches!(i % 4, 1 | 2) && b != good;
            if let Ok(m) = load_bytes(&b, "fuzz.safetensors") {
                assert!(!data_flip, "a flipped data byte passed the checksum");
                let _ = m.forward(&x, 1);
                let _ = m.to_dense().forward(&x, 1);
            }
            if data_flip {
                let tmp = tempfile::tempdir().unwrap();
                let p = tmp.path().join("f.safetensors");
                std::fs::write(&p, &b).unwrap();
                let raw = Raw::read(&p);
                raw.write(&p);
                if let Ok(m) = load(&p) {
                    let _ = m.forward(&x, 1);
                    let _ = m.to_dense().forward(&x, 1);
                }
            }
        }
    }
}
