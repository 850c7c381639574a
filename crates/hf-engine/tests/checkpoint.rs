//! Checkpoint round trip: every tensor (weights, masks, biases, optimizer states) and the
//! metadata come back exactly; a truncated file is refused with a clear error.

mod common;

use hf_core::update::OptimKind;
use hf_engine::checkpoint::{self, Checkpoint};
use hf_engine::init::Init;
use hf_engine::mlp::Mlp;
use hf_engine::network::Network;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use std::collections::BTreeMap;
use tch::Device;

/// Rewrites a safetensors file after `edit` changed its tensors' bytes or metadata; with
/// `rehash` the tensor-data checksum is recomputed (a bad file with a valid checksum, so the
/// checks behind the checksum are what gets tested).
fn rewrite(
    src: &std::path::Path,
    dst: &std::path::Path,
    rehash: bool,
    edit: impl FnOnce(&mut BTreeMap<String, Vec<u8>>, &mut BTreeMap<String, String>),
) {
    use safetensors::tensor::{SafeTensors, TensorView};
    let bytes = std::fs::read(src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: BTreeMap<String, String> = md.metadata().clone().unwrap().into_iter().collect();
    let mut shapes = BTreeMap::new();
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (n, t) in st.tensors() {
        shapes.insert(n.clone(), (t.dtype(), t.shape().to_vec()));
        data.insert(n, t.data().to_vec());
    }
    edit(&mut data, &mut meta);
    if rehash {
        meta.insert(
            hf_core::checksum::KEY.into(),
            hf_core::checksum::tensor_digest(data.iter().map(|(n, b)| (n.as_str(), b.as_slice()))),
        );
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, b)| {
            let (d, s) = &shapes[n];
            (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())
        })
        .collect();
    let meta: std::collections::HashMap<String, String> = meta.into_iter().collect();
    std::fs::write(dst, safetensors::serialize(views, &Some(meta)).unwrap()).unwrap();
}

fn trained() -> (Mlp, HyperfluxOptim) {
    let mut net = Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        10,
        Init::new(21, (-0.1, 0.5)),
        Device::Cpu,
    );
    let mut opt = HyperfluxOptim::new(&net, OptimKind::adam(), 0.0, 0.25);
    let x = common::randn(21, &[16, 1, 28, 28]);
    let y = common::randint(21, 10, 16);
    let s = StepSettings {
        weight_lr: 1e-3,
        mask_lr: 1e-2,
        pressure: 1.0,
        train_masks: true,
    };
    for _ in 0..3 {
        opt.step(&mut net, &x, &y, 0.1, &s, None);
    }
    (net, opt)
}

#[test]
fn round_trip_restores_every_tensor_and_the_metadata() {
    let (net, opt) = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("arch".to_string(), "lenet300".to_string());
    meta.insert("input_shape".to_string(), "[1,28,28]".to_string());
    meta.insert("classes".to_string(), "10".to_string());
    meta.insert("state".to_string(), "{\"epoch\":3}".to_string());
    checkpoint::save(&path, &net, Some(&opt), meta).unwrap();

    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.meta_str("state").unwrap(), "{\"epoch\":3}");
    let fresh = Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        10,
        Init::new(99, (0.2, 0.5)),
        Device::Cpu,
    );
    let fresh_opt = HyperfluxOptim::new(&fresh, OptimKind::adam(), 0.0, 0.25);
    ck.restore_net(&fresh, true).unwrap();
    ck.restore_optim(&fresh_opt).unwrap();
    let a = checkpoint::named_tensors(&net, Some(&opt));
    let b = checkpoint::named_tensors(&fresh, Some(&fresh_opt));
    assert_eq!(a.len(), b.len());
    // Exactly these tensors: weights and masks of the three layers, their biases, Adam's two
    // moments for the six weight tensors and for the three masks.
    let mut want: Vec<String> = Vec::new();
    for l in ["fc1", "fc2", "fc3"] {
        want.extend([
            format!("{l}.weight"),
            format!("{l}.mask"),
            format!("{l}.bias"),
        ]);
    }
    for i in 0..6 {
        want.extend([
            format!("optim.weights.{i}.s0"),
            format!("optim.weights.{i}.s1"),
        ]);
    }
    for i in 0..3 {
        want.extend([format!("optim.masks.{i}.s0"), format!("optim.masks.{i}.s1")]);
    }
    want.sort();
    assert_eq!(ck.tensor_names(), want);
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after the round trip");
    }
    // Masks restored: same density.
    assert_eq!(
        hf_engine::masked::DensityReport::of(net.masked()),
        hf_engine::masked::DensityReport::of(fresh.masked())
    );

    // A truncated copy is refused with a message naming the file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = Checkpoint::load(&cut).unwrap_err().to_string();
    assert!(
        e.contains("cut.safetensors") && e.contains("truncated"),
        "{e}"
    );
}

/// A checkpoint carries the checksum of its tensor data: a flipped byte is refused; non-finite
/// values are refused even under a valid checksum; a file without a checksum loads, unverified.
#[test]
fn damaged_or_non_finite_checkpoints_are_refused() {
    let (net, opt) = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    checkpoint::save(&path, &net, Some(&opt), BTreeMap::new()).unwrap();
    let ck = Checkpoint::load(&path).unwrap();
    assert_eq!(ck.integrity, hf_core::checksum::Integrity::Verified);
    assert!(ck.meta.contains_key(hf_core::checksum::KEY));

    let bad = dir.path().join("bad.safetensors");
    // One flipped bit in a weight: still parses, still finite, different numbers.
    rewrite(&path, &bad, false, |d, _| {
        d.get_mut("fc2.weight").unwrap()[41] ^= 0x10
    });
    let e = Checkpoint::load(&bad).unwrap_err().to_string();
    assert!(
        e.contains("bad.safetensors") && e.contains("checksum mismatch") && !e.contains('\n'),
        "{e}"
    );
    // NaN in weights, +inf in a mask, NaN in an optimizer state: refused, naming the tensor.
    for (name, at, v) in [
        ("fc1.weight", 7usize, f32::NAN),
        ("fc3.mask", 0, f32::INFINITY),
        ("optim.weights.1.s1", 3, f32::NAN),
    ] {
        rewrite(&path, &bad, true, |d, _| {
            d.get_mut(name).unwrap()[4 * at..4 * at + 4].copy_from_slice(&v.to_le_bytes())
        });
        let e = Checkpoint::load(&bad).unwrap_err().to_string();
        assert!(
            e.contains(&format!("tensor {name}[{at}] = {v} is not finite")),
            "{e}"
        );
    }
    // Another tool's file: no checksum. It loads and says it could not be verified.
    rewrite(&path, &bad, false, |_, m| {
        m.remove(hf_core::checksum::KEY);
    });
    let mut notes = Vec::new();
    let ck = Checkpoint::load_noted(&bad, |n| notes.push(n.to_string())).unwrap();
    assert_eq!(ck.integrity, hf_core::checksum::Integrity::Unverified);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("bad.safetensors has no tensor_sha256"),
        "{notes:?}"
    );
}

/// BatchNorm running statistics are part of the checkpoint and come back exactly, with every
/// other tensor of the run: the exact set of names, and equal values.
#[test]
fn batchnorm_running_statistics_round_trip() {
    let init = Init::new(5, (-0.1, 0.5));
    let mut net =
        hf_engine::models::build("vgg-narrow", [1, 28, 28], 10, init, Device::Cpu).unwrap();
    let mut opt = HyperfluxOptim::new(net.as_ref(), OptimKind::Sgd { momentum: 0.9 }, 5e-4, 0.25);
    let x = common::randn(5, &[8, 1, 28, 28]) * 2.0 + 0.5;
    let y = common::randint(5, 10, 8);
    let s = StepSettings {
        weight_lr: 1e-2,
        mask_lr: 1e-2,
        pressure: 0.5,
        train_masks: true,
    };
    for _ in 0..2 {
        opt.step(net.as_mut(), &x, &y, 0.1, &s, None);
    }
    let buffers = net.buffers();
    assert_eq!(
        buffers.len(),
        12,
        "6 BatchNorms × (running_mean, running_var)"
    );
    for (n, t) in &buffers {
        let init = if n.ends_with("running_var") { 1.0 } else { 0.0 };
        assert!(
            f64::try_from((t - init).abs().max()).unwrap() > 1e-4,
            "{n} was not updated by training"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bn.safetensors");
    checkpoint::save(&path, net.as_ref(), Some(&opt), BTreeMap::new()).unwrap();
    let ck = Checkpoint::load(&path).unwrap();

    // The exact tensor list: per masked layer weight and mask; every BN's scale, shift and
    // running statistics; biases; SGD momentum for every weight tensor; Adam's two moments per
    // mask.
    let mut want: Vec<String> = Vec::new();
    for mw in net.masked() {
        want.extend([format!("{}.weight", mw.name), format!("{}.mask", mw.name)]);
    }
    for p in net.params() {
        want.push(p.name.clone());
    }
    let bns: Vec<String> = buffers
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".running_mean").map(String::from))
        .collect();
    assert_eq!(bns.len(), 6);
    for bn in &bns {
        for part in ["weight", "bias", "running_mean", "running_var"] {
            let n = format!("{bn}.{part}");
            assert!(ck.has(&n), "{n} missing");
            if part.starts_with("running") {
                want.push(n);
            }
        }
    }
    let n_weights = net.masked().len() + net.params().len();
    for i in 0..n_weights {
        want.push(format!("optim.weights.{i}.s0"));
    }
    for i in 0..net.masked().len() {
        want.extend([format!("optim.masks.{i}.s0"), format!("optim.masks.{i}.s1")]);
    }
    want.sort();
    assert_eq!(ck.tensor_names(), want);

    let init = Init::new(77, (0.2, 0.5));
    let fresh = hf_engine::models::build("vgg-narrow", [1, 28, 28], 10, init, Device::Cpu).unwrap();
    let fresh_opt =
        HyperfluxOptim::new(fresh.as_ref(), OptimKind::Sgd { momentum: 0.9 }, 5e-4, 0.25);
    ck.restore_net(fresh.as_ref(), true).unwrap();
    ck.restore_optim(&fresh_opt).unwrap();
    let a = checkpoint::named_tensors(net.as_ref(), Some(&opt));
    let b = checkpoint::named_tensors(fresh.as_ref(), Some(&fresh_opt));
    assert_eq!(a.len(), want.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after the round trip");
    }
    // Same statistics, same eval-mode outputs.
    let diff = f64::try_from((net.forward(&x) - fresh.forward(&x)).abs().max()).unwrap();
    assert_eq!(diff, 0.0);
}

/// Bounded fuzzing of the checkpoint reader: random byte flips in the header and in the tensor
/// data, and truncations, of a real checkpoint. Loading never panics; a changed data byte is
/// always refused (checksum); whatever loads restores into the network.
#[test]
fn fuzzed_checkpoints_never_panic() {
    // xorshift64*: a fixed pseudo-random sequence without another dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: usize| -> usize {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as usize % n.max(1)
    };
    let (net, opt) = trained();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut meta = BTreeMap::new();
    meta.insert("arch".to_string(), "lenet300".to_string());
    checkpoint::save(&path, &net, Some(&opt), meta).unwrap();
    let good = std::fs::read(&path).unwrap();
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let fresh = Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        10,
        Init::new(0, (0.2, 0.5)),
        Device::Cpu,
    );
    let fresh_opt = HyperfluxOptim::new(&fresh, OptimKind::adam(), 0.0, 0.25);
    let bad = dir.path().join("fuzz.safetensors");
    let (mut loaded, mut refused) = (0, 0);
    for i in 0..150 {
        let mut b = good.clone();
        let data_flip = match i % 3 {
            0 => {
                let k = next(header_end);
                b[k] = next(256) as u8;
                false
            }
            1 => {
                for _ in 0..1 + next(5) {
                    let k = header_end + next(b.len() - header_end);
                    b[k] = next(256) as u8;
                }
                b != good
            }
            _ => {
                b.truncate(next(b.len()));
                false
            }
        };
        std::fs::write(&bad, &b).unwrap();
        match Checkpoint::load(&bad) {
            Ok(ck) => {
                assert!(!data_flip, "case {i}: a changed data byte was accepted");
                loaded += 1;
                // Header flips that still parse (e.g. inside a metadata string) may load; the
                // tensors must then still fit or be refused cleanly.
                let _ = ck.restore_net(&fresh, true);
                let _ = ck.restore_optim(&fresh_opt);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    !msg.contains('\n') && msg.contains("fuzz.safetensors"),
                    "{msg}"
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 100, "{refused} refused, {loaded} loaded");
}
