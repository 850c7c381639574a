//! The fitters recover known laws from generated data.

use hf_law::{
    fit_loglog, fit_power_law, fit_variable_exponent, LawError, LawPoint, DEFAULT_REGION2,
};

fn pt(g: f64, s: f64) -> LawPoint {
    LawPoint {
        epoch: None,
        saliency: g,
        remaining: s,
        accuracy: None,
        extras: vec![],
    }
}

/// Deterministic noise in [-1, 1) (xorshift), so the tests never flake.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn saliencies(n: usize, from: f64, to: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (from.ln() + (to.ln() - from.ln()) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    ((a - b) / b).abs()
}

#[test]
fn power_law_is_recovered_exactly_from_noiseless_points() {
    let (c, alpha) = (1.5e-3, 1.53);
    let pts: Vec<LawPoint> = saliencies(80, 1e-4, 1.0)
        .into_iter()
        .map(|g| pt(g, c * g.powf(-alpha)))
        .collect();
    let in_region = pts
        .iter()
        .filter(|p| p.remaining > 0.5 && p.remaining <= 50.0)
        .count();
    assert!(
        in_region > 10 && in_region < pts.len(),
        "test data must straddle the region"
    );
    let f = fit_power_law(&pts, DEFAULT_REGION2).unwrap();
    assert_eq!(f.n, in_region);
    assert!(rel(f.c, c) < 1e-9, "{f:?}");
    assert!(rel(f.alpha, alpha) < 1e-9, "{f:?}");
    assert!((f.r2 - 1.0).abs() < 1e-12);
    assert!(rel(f.eval(0.01), c * 0.01f64.powf(-alpha)) < 1e-9);
}

#[test]
fn region_bounds_are_exclusive_below_and_inclusive_above() {
    // Densities exactly at 0.5 and 50: 50 is in region 2, 0.5 is not.
    let pts = vec![
        pt(1.0, 50.0),
        pt(2.0, 10.0),
        pt(3.0, 2.0),
        pt(4.0, 0.5),
        pt(0.5, 50.0001),
    ];
    assert_eq!(fit_power_law(&pts, (0.5, 50.0)).unwrap().n, 3);
    assert_eq!(fit_power_law(&pts, (0.4, 60.0)).unwrap().n, 5);
}

#[test]
fn power_law_is_recovered_from_noisy_points() {
    let (c, alpha) = (3.07, 0.52);
    let mut noise = Noise(0x9e3779b97f4a7c15);
    let pts: Vec<LawPoint> = saliencies(200, 1e-3, 100.0)
        .into_iter()
        .map(|g| pt(g, c * g.powf(-alpha) * (0.03 * noise.next()).exp()))
        .collect();
    let f = fit_power_law(&pts, (0.0, f64::INFINITY)).unwrap();
    assert_eq!(f.n, 200);
    assert!((f.alpha - alpha).abs() < 0.01, "{f:?}");
    assert!(rel(f.c, c) < 0.02, "{f:?}");
    assert!(f.r2 > 0.99 && f.r2 < 1.0, "{f:?}");
}

#[test]
fn variable_exponent_is_recovered_from_noiseless_and_noisy_points() {
    let (c, a0, a1) = (2.19e-5f64, 3.271, 0.1717);
    let law = |g: f64| {
        let x = g.ln();
        (c.ln() - a0 * x - a1 * x * x).exp()
    };
    let gs = saliencies(79, 1.6e-4, 8e-2);
    let clean: Vec<LawPoint> = gs.iter().map(|&g| pt(g, law(g))).collect();
    let f = fit_variable_exponent(&clean).unwrap();
    assert_eq!(f.n, 79);
    assert!(rel(f.c, c) < 1e-7, "{f:?}");
    assert!(rel(f.a0, a0) < 1e-8 && rel(f.a1, a1) < 1e-8, "{f:?}");
    assert!((f.r2 - 1.0).abs() < 1e-12);
    assert!(rel(f.eval(0.01), law(0.01)) < 1e-9);

    let mut noise = Noise(12345);
    let noisy: Vec<LawPoint> = gs
        .iter()
        .map(|&g| pt(g, law(g) * (0.02 * noise.next()).exp()))
        .collect();
    let f = fit_variable_exponent(&noisy).unwrap();
    assert!((f.a1 - a1).abs() < 0.02, "{f:?}");
    assert!((f.a0 - a0).abs() < 0.2, "{f:?}");
    // Far-from-centre parameters are sensitive; the curve itself must match closely.
    for g in [2e-4, 1e-3, 1e-2, 5e-2] {
        assert!(
            rel(f.eval(g), law(g)) < 0.02,
            "at γ={g}: {} vs {}",
            f.eval(g),
            law(g)
        );
    }
    assert!(f.r2 > 0.99 && f.r2 < 1.0);
}

#[test]
fn variable_exponent_with_zero_curvature_matches_the_power_law() {
    let pts: Vec<LawPoint> = saliencies(20, 1e-3, 10.0)
        .into_iter()
        .map(|g| pt(g, 2.0 * g.powf(-0.6)))
        .collect();
    let v = fit_variable_exponent(&pts).unwrap();
    assert!(
        v.a1.abs() < 1e-10 && rel(v.a0, 0.6) < 1e-9 && rel(v.c, 2.0) < 1e-9,
        "{v:?}"
    );
}

#[test]
fn loglog_fits_density_against_pressure_and_skips_invalid_pairs() {
    let mut xy: Vec<(f64, f64)> = [0.25, 1.0, 4.0, 16.0]
        .iter()
        .map(|&p| (p, 0.8 * f64::powf(p, -0.75)))
        .collect();
    xy.push((0.0, 1.0));
    xy.push((1.0, -1.0));
    xy.push((f64::NAN, 1.0));
    let f = fit_loglog(&xy).unwrap();
    assert_eq!(f.n, 4);
    assert!(rel(f.c, 0.8) < 1e-12 && rel(f.alpha, 0.75) < 1e-12);
    // A rising law gives a negative exponent.
    let up = fit_loglog(&[(1.0, 1.0), (2.0, 4.0), (3.0, 9.0)]).unwrap();
    assert!((up.alpha + 2.0).abs() < 1e-12);
}

#[test]
fn fits_refuse_too_few_or_degenerate_points() {
    let e = fit_loglog(&[(1.0, 1.0), (2.0, 0.5), (0.0, 3.0)]).unwrap_err();
    assert!(
        matches!(e, LawError::FitTooFew { n: 2, need: 3, .. }),
        "{e}"
    );
    let e = fit_loglog(&[(2.0, 1.0), (2.0, 0.5), (2.0, 3.0)]).unwrap_err();
    assert!(matches!(e, LawError::Degenerate { .. }), "{e}");
    assert!(e.to_string().contains("same saliency"));

    let pts = vec![pt(1.0, 80.0), pt(2.0, 60.0), pt(3.0, 10.0), pt(4.0, 0.1)];
    let e = fit_power_law(&pts, DEFAULT_REGION2).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, LawError::FitTooFew { n: 1, .. }), "{msg}");
    assert!(
        msg.contains("region 2 (0.5 < s <= 50)") && msg.contains("widen"),
        "{msg}"
    );

    let two = vec![pt(1.0, 10.0), pt(1.0, 5.0), pt(2.0, 3.0), pt(2.0, 2.0)];
    let e = fit_variable_exponent(&two).unwrap_err();
    assert!(matches!(e, LawError::Degenerate { .. }), "{e}");
    assert!(fit_power_law(&pts, (5.0, 1.0)).is_err());
}
