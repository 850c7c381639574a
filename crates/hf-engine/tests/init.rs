//! Initialisation from a seeded Rust generator: the same seed gives bit-identical networks
//! whichever thread builds them (and however many threads draw), another seed gives other
//! values, one tensor's values do not depend on the other layers, and libtorch's global
//! generator is neither read nor advanced.

use hf_engine::checkpoint::named_tensors;
use hf_engine::init::Init;
use hf_engine::mlp::Mlp;
use hf_engine::models;
use hf_engine::network::Network;
use tch::{Device, Kind, Tensor};

const MODELS: &[(&str, [i64; 3])] = &[
    ("lenet300", [1, 28, 28]),
    ("lenet5", [1, 28, 28]),
    ("vgg-narrow", [1, 28, 28]),
    ("resnet20", [3, 32, 32]),
];

fn build(name: &str, shape: [i64; 3], seed: u64) -> Box<dyn Network> {
    models::build(name, shape, 10, Init::new(seed, (0.2, 0.5)), Device::Cpu).unwrap()
}

/// Every tensor of a network (weights, masks, biases, BatchNorm tensors) as CPU values.
fn values(net: &dyn Network) -> Vec<(String, Vec<f32>)> {
    named_tensors(net, None)
        .into_iter()
        .map(|(n, t)| (n, hf_engine::network::to_vec_f32(&t)))
        .collect()
}

#[test]
fn same_seed_in_parallel_threads_gives_bit_identical_networks() {
    for &(name, shape) in MODELS {
        let built: Vec<Vec<(String, Vec<f32>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(move || values(build(name, shape, 42).as_ref())))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for other in &built[1..] {
            assert_eq!(built[0].len(), other.len(), "{name}");
            for ((na, a), (nb, b)) in built[0].iter().zip(other) {
                assert_eq!(na, nb);
                // Bit-identical: compare the bits, not the float values.
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
                assert_eq!(bits(a), bits(b), "{name}: {na} differs between threads");
            }
        }
    }
}

#[test]
fn values_do_not_depend_on_the_number_of_drawing_threads() {
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let four = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    // vgg-narrow's larger tensors span several parallel chunks.
    let a = one.install(|| values(build("vgg-narrow", [1, 28, 28], 9).as_ref()));
    let b = four.install(|| values(build("vgg-narrow", [1, 28, 28], 9).as_ref()));
    assert_eq!(a, b);
}

#[test]
fn another_seed_gives_other_values_in_every_random_tensor() {
    for &(name, shape) in MODELS {
        let a = build(name, shape, 1);
        let b = build(name, shape, 2);
        for (ma, mb) in a.masked().iter().zip(b.masked()) {
            assert!(!ma.w.equal(&mb.w), "{name}: {} weight", ma.name);
            assert!(!ma.m.equal(&mb.m), "{name}: {} mask", ma.name);
        }
        for (pa, pb) in a.params().iter().zip(b.params()) {
            // BatchNorm scale and shift start at 1 and 0 whatever the seed.
            let random = pa.name.ends_with(".bias") && !pa.name.contains("bn");
            assert_eq!(!pa.t.equal(&pb.t), random, "{name}: {}", pa.name);
        }
    }
}

#[test]
fn a_layer_keeps_its_values_when_other_layers_change() {
    let init = Init::new(5, (0.2, 0.5));
    let small = Mlp::new("t", [1, 8, 8], &[20], 3, init, Device::Cpu);
    let large = Mlp::new("t", [1, 8, 8], &[20, 30, 40], 3, init, Device::Cpu);
    // fc1 (64 → 20) is the same layer in both: same weights, masks and bias.
    let (a, b) = (&small.masked()[0], &large.masked()[0]);
    assert_eq!(a.name, "fc1");
    assert!(a.w.equal(&b.w) && a.m.equal(&b.m));
    assert!(small.params()[0].t.equal(&large.params()[0].t));
    // Within a layer, weights and masks come from separate streams: the masks (rescaled to
    // [0, 1)) are uncorrelated with the weights (rescaled likewise).
    let u = (&a.m - 0.2) / 0.3;
    let w = (&a.w * (64f64).sqrt() + 1.0) / 2.0;
    let corr = (&u - u.mean(Kind::Float)) * (&w - w.mean(Kind::Float));
    assert!(corr.mean(Kind::Float).double_value(&[]).abs() < 0.01);
}

#[test]
fn building_a_network_leaves_the_torch_generator_alone() {
    tch::manual_seed(123);
    let before = Tensor::rand([16], (Kind::Float, Device::Cpu));
    tch::manual_seed(123);
    let net = build("lenet5", [1, 28, 28], 3);
    let after = Tensor::rand([16], (Kind::Float, Device::Cpu));
    assert!(
        before.equal(&after),
        "initialisation drew from libtorch's generator"
    );
    // And the seed, not the torch generator, decides the values.
    tch::manual_seed(456);
    let again = build("lenet5", [1, 28, 28], 3);
    assert_eq!(values(net.as_ref()), values(again.as_ref()));
}

#[test]
fn masks_start_in_the_configured_range() {
    let net = build("lenet5", [1, 28, 28], 4);
    for mw in net.masked() {
        let lo = mw.m.min().double_value(&[]);
        let hi = mw.m.max().double_value(&[]);
        assert!(
            (0.2..=0.5).contains(&lo) && (0.2..=0.5).contains(&hi),
            "{}",
            mw.name
        );
    }
    let neg = Mlp::new(
        "t",
        [1, 4, 4],
        &[50],
        2,
        Init::new(4, (-1.0, -0.5)),
        Device::Cpu,
    );
    assert!(neg.masked().iter().all(|m| m.present() == 0));
}
