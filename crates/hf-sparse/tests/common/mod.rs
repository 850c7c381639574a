//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::needless_range_loop)]

use hf_sparse::{Activation, ExportMeta, ExportModel, LayerSpec, LayerTensors};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// f64 forward straight from the export tensors (effective weights w·H(m)).
pub fn reference(net: &ExportModel, x: &[f32], batch: usize) -> Vec<f64> {
    let n_in = net.layers[0].0.in_features();
    let mut all = Vec::new();
    for e in 0..batch {
        let mut cur: Vec<f64> = x[e * n_in..(e + 1) * n_in]
            .iter()
            .map(|v| *v as f64)
            .collect();
        for (spec, t) in &net.layers {
            let (o, i) = (spec.out_features(), spec.in_features());
            let mut out = vec![0.0f64; o];
            for (r, y) in out.iter_mut().enumerate() {
                let mut s = t.bias.as_ref().map_or(0.0, |b| b[r] as f64);
                for c in 0..i {
                    if t.mask[r * i + c] >= 0.0 {
                        s += t.weight[r * i + c] as f64 * cur[c];
                    }
                }
                *y = match spec.activation() {
                    Activation::None => s,
                    Activation::Relu => s.max(0.0),
                    Activation::Relu6 => s.clamp(0.0, 6.0),
                };
            }
            cur = out;
        }
        all.extend(cur);
    }
    all
}

/// Asserts every logit is within 1e-5 (relative to max(1, |reference|)) of the reference.
pub fn assert_logits_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: number of logits");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            ((*g as f64) - w).abs() <= 1e-5 * w.abs().max(1.0),
            "{what}: logit {i} = {g}, reference {w}"
        );
    }
}

/// Argmax per row of the reference, or None where the top two are too close to call.
pub fn reference_predictions(want: &[f64], classes: usize) -> Vec<Option<usize>> {
    want.chunks(classes)
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            if row.len() > 1 && row[idx[0]] - row[idx[1]] < 1e-4 {
                None
            } else {
                Some(idx[0])
            }
        })
        .collect()
}

pub fn input(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(0.0f32..1.0)).collect()
}

/// A tiny hand-built network: 4 inputs → 3 (ReLU) → 2, masks chosen by hand.
/// fc1 keeps 5 of 12 weights (row 1 empty); fc2 keeps 3 of 6, one of them with value 0.
pub fn tiny() -> ExportModel {
    let fc1_w = vec![
        0.5, -1.0, 0.0, 2.0, //
        9.0, 9.0, 9.0, 9.0, // all pruned: raw weights must not leak through
        0.25, 0.0, -0.75, 0.0,
    ];
    let fc1_m = vec![
        1.0, 0.5, -1.0, 0.0, //
        -0.1, -0.2, -0.3, -0.4, //
        0.1, -1.0, 0.2, -1.0,
    ];
    let fc2_w = vec![1.0, 0.0, -2.0, 0.0, 0.5, 0.0];
    let fc2_m = vec![1.0, -1.0, 1.0, 1.0, -1.0, -1.0];
    let mut m = ExportModel {
        meta: ExportMeta {
            architecture: "tiny".into(),
            dataset: "hand".into(),
            input_shape: vec![2, 2],
            classes: 2,
            accuracy: Some(0.5),
            density_per_layer: vec![],
            total_density: 0.0,
            preprocessing: None,
            extra: BTreeMap::from([("note".to_string(), "hand-built".to_string())]),
        },
        layers: vec![
            (
                LayerSpec::Linear {
                    name: "fc1".into(),
                    in_features: 4,
                    out_features: 3,
                    bias: true,
                    activation: Activation::Relu,
                    input: None,
                },
                LayerTensors {
                    weight: fc1_w,
                    bias: Some(vec![0.1, -0.2, 0.3]),
                    mask: fc1_m,
                },
            ),
            (
                LayerSpec::Linear {
                    name: "fc2".into(),
                    in_features: 3,
                    out_features: 2,
                    bias: false,
                    activation: Activation::None,
                    input: None,
                },
                LayerTensors {
                    weight: fc2_w,
                    bias: None,
                    mask: fc2_m,
                },
            ),
        ],
    };
    m.recompute_densities();
    m
}

/// An editable copy of a safetensors file: tensors by name, and the metadata map.
pub struct Raw {
    pub tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
    pub meta: Option<HashMap<String, String>>,
}

impl Raw {
    pub fn read(path: &Path) -> Raw {
        let bytes = std::fs::read(path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, (t.dtype(), t.shape().to_vec(), t.data().to_vec())))
            .collect();
        Raw {
            tensors,
            meta: header.metadata().clone(),
        }
    }

    /// Writes the file back; a checksum it had is recomputed for the edited data, so the
    /// structural checks behind it are what a test exercises (see [`Raw::write_keeping_checksum`]).
    pub fn write(&self, path: &Path) {
        let mut me = Raw {
            tensors: self.tensors.clone(),
            meta: self.meta.clone(),
        };
        if let Some(m) = me.meta.as_mut() {
            if m.contains_key(hf_interchange::checksum::KEY) {
                m.insert(hf_interchange::checksum::KEY.to_string(), self.digest());
            }
        }
        me.write_keeping_checksum(path);
    }

    /// The tensor-data checksum of the tensors as they are now.
    pub fn digest(&self) -> String {
        hf_interchange::checksum::tensor_digest(
            self.tensors
                .iter()
                .map(|(n, (_, _, b))| (n.as_str(), b.as_slice())),
        )
    }

    /// Writes the file back with its metadata exactly as it is (a stale checksum stays stale).
    pub fn write_keeping_checksum(&self, path: &Path) {
        let views: Vec<(String, TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let bytes = safetensors::tensor::serialize(views, &self.meta).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn dtype(&self, name: &str) -> Dtype {
        self.tensors[name].0
    }

    pub fn set_meta(&mut self, key: &str, value: &str) {
        self.meta
            .as_mut()
            .unwrap()
            .insert(key.to_string(), value.to_string());
    }

    /// Reads an unsigned index tensor as u64s.
    pub fn uints(&self, name: &str) -> Vec<u64> {
        let (d, _, b) = &self.tensors[name];
        let w = d.size();
        b.chunks_exact(w)
            .map(|c| {
                let mut a = [0u8; 8];
                a[..w].copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect()
    }

    /// Overwrites an unsigned index tensor (same dtype) from u64s.
    pub fn set_uints(&mut self, name: &str, v: &[u64]) {
        let t = self.tensors.get_mut(name).unwrap();
        let w = t.0.size();
        t.2 = v
            .iter()
            .flat_map(|x| x.to_le_bytes()[..w].to_vec())
            .collect();
        t.1 = vec![v.len()];
    }

    pub fn f32s(&self, name: &str) -> Vec<f32> {
        self.tensors[name]
            .2
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    pub fn set_f32s(&mut self, name: &str, v: &[f32]) {
        let t = self.tensors.get_mut(name).unwrap();
        t.2 = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    }
}
