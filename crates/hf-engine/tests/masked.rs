//! Density accounting and the final snap to the target density.

use hf_engine::init::Init;
use hf_engine::masked::{snap_to_density, DensityReport, MaskedWeight};
use tch::{Device, Kind, Tensor};

#[test]
fn density_counts_masks_at_or_above_zero() {
    let a = MaskedWeight {
        name: "a".into(),
        w: Tensor::ones([2, 3], (Kind::Float, Device::Cpu)),
        m: Tensor::from_slice(&[0.0f32, -1e-7, 0.3, -2.0, 5.0, 1e-9]).view([2, 3]),
    };
    let b = MaskedWeight {
        name: "b".into(),
        w: Tensor::ones([4], (Kind::Float, Device::Cpu)),
        m: Tensor::from_slice(&[-0.1f32, -0.2, -0.3, 0.0]),
    };
    assert_eq!(a.present(), 4);
    let r = DensityReport::of(&[a, b]);
    assert_eq!(r.total(), 10);
    assert_eq!(r.present(), 5);
    assert!((r.density() - 50.0).abs() < 1e-12);
    let per = r.per_layer();
    assert_eq!(per[0].0, "a");
    assert!((per[0].1 - 400.0 / 6.0).abs() < 1e-9);
    assert!((per[1].1 - 25.0).abs() < 1e-12);
}

#[test]
fn effective_weight_is_zero_exactly_where_pruned() {
    let mw = MaskedWeight {
        name: "x".into(),
        w: Tensor::from_slice(&[1.5f32, -2.0, 3.0]),
        m: Tensor::from_slice(&[0.1f32, -0.1, 0.0]),
    };
    let e: Vec<f32> = Vec::try_from(mw.effective()).unwrap();
    assert_eq!(e, vec![1.5, 0.0, 3.0]);
    // Pruning keeps the weight value (so a regrown weight comes back with it).
    let w: Vec<f32> = Vec::try_from(&mw.w).unwrap();
    assert_eq!(w[1], -2.0);
}

#[test]
fn snap_lands_exactly_on_target_and_keeps_the_largest_masks() {
    let init = Init::new(11, (0.0, 0.0));
    let randn = |name: String, r: i64, c: i64| init.normal(&name, &[r, c], 0.0, 1.0, Device::Cpu);
    let layers: Vec<MaskedWeight> = [(30, 40), (20, 10), (7, 1)]
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| MaskedWeight {
            name: format!("l{i}"),
            w: randn(format!("l{i}.weight"), r, c),
            m: randn(format!("l{i}.mask"), r, c),
        })
        .collect();
    let n: usize = layers.iter().map(|l| l.numel()).sum();
    let before: Vec<Tensor> = layers.iter().map(|l| l.m.copy()).collect();
    for target in [2.0, 37.5, 90.0] {
        let present = snap_to_density(&layers, target);
        let want = (target / 100.0 * n as f64).round() as usize;
        assert_eq!(present, want, "target {target}");
        assert_eq!(DensityReport::of(&layers).present(), want);
    }
    // A uniform shift: differences between masks are unchanged.
    for (b, l) in before.iter().zip(&layers) {
        let d = (&l.m - b).view([-1]);
        let spread = (d.max() - d.min()).double_value(&[]);
        assert!(spread < 1e-5, "spread {spread}");
    }
}
