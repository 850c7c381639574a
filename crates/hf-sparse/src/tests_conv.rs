//! Convolution, pooling and add kernels against naive f64 references, on every instruction set
//! this CPU has, single- and multi-threaded; whole conv networks on every path.
#![allow(clippy::needless_range_loop, clippy::too_many_arguments)] // loops mirror the math

use crate::conv::{self, SparseConv};
use crate::dispatch::{Exec, Isa};
use crate::formats::Csr;
use crate::graph::{Geom, Shape};
use crate::spec::LayerSpec;
use crate::{synthetic, Activation, ExportModel, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn execs() -> Vec<Exec> {
    let mut v = Vec::new();
    for isa in Isa::all_available() {
        for par_min_work in [usize::MAX, 0] {
            v.push(Exec { isa, par_min_work });
        }
    }
    v
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// Naive f64 convolution of one example, straight from the definition (zero padding, groups,
/// dilation), with the per-output scale `sum |w x| + |b|` for tolerances. `w` is
/// `out x c/groups x kh x kw`.
fn ref_conv(
    g: &Geom,
    out: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
) -> Vec<(f64, f64)> {
    let mut y = Vec::with_capacity(out * g.ho * g.wo);
    let cg = g.c / g.groups;
    let og = out / g.groups;
    for o in 0..out {
        for oy in 0..g.ho {
            for ox in 0..g.wo {
                let mut s = bias.map_or(0.0, |b| b[o] as f64);
                let mut scale = s.abs();
                for ci in 0..cg {
                    let c = (o / og) * cg + ci;
                    for dy in 0..g.kh {
                        for dx in 0..g.kw {
                            let iy = (oy * g.sh + dy * g.dh) as i64 - g.ph as i64;
                            let ix = (ox * g.sw + dx * g.dw) as i64 - g.pw as i64;
                            if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                continue;
                            }
                            let wv = w[((o * cg + ci) * g.kh + dy) * g.kw + dx] as f64;
                            let t = wv * x[(c * g.h + iy as usize) * g.w + ix as usize] as f64;
                            s += t;
                            scale += t.abs();
                        }
                    }
                }
                y.push((ref_act(act, s), scale));
            }
        }
    }
    y
}

/// The activation in f64.
fn ref_act(act: Activation, v: f64) -> f64 {
    match act {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Relu6 => v.clamp(0.0, 6.0),
    }
}

fn assert_close(got: &[f32], want: &[(f64, f64)], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, (w, scale))) in got.iter().zip(want).enumerate() {
        let tol = 1e-5 * (1.0 + scale);
        assert!(
            ((*g as f64) - w).abs() <= tol,
            "{what}: element {i} = {g}, expected {w} (tol {tol})"
        );
    }
}

/// Every conv kernel (sparse direct, sparse im2col, dense) on every ISA and threading mode
/// against the f64 reference: kernel 1 and 3, stride 1 and 2, padding 0 and 1, odd and even
/// spatial sizes, densities 0 (fully pruned: bias only), 10%, 50%, 100%, batch 1 and 3.
#[test]
fn conv_kernels_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut cases = 0;
    for &(cin, cout, h, w) in &[(3usize, 5usize, 7usize, 5usize), (4, 8, 9, 9), (2, 3, 1, 6)] {
        for k in [1usize, 3] {
            for s in [1usize, 2] {
                for p in [0usize, 1] {
                    let input = Shape { c: cin, h, w };
                    let Ok(g) = Geom::new(input, [k, k], [s, s], [p, p]) else {
                        continue; // kernel larger than the padded input
                    };
                    for density in [0.0, 0.1, 0.5, 1.0] {
                        let cols = cin * k * k;
                        let dense: Vec<f32> = random_vec(&mut rng, cout * cols);
                        let keep: Vec<bool> =
                            (0..dense.len()).map(|_| rng.gen_bool(density)).collect();
                        let a = Csr::from_dense_where(cout, cols, &dense, |i| keep[i]);
                        let wd = a.to_dense();
                        let bias = random_vec(&mut rng, cout);
                        for batch in [1usize, 2, 3, 9] {
                            let x = random_vec(&mut rng, batch * input.len());
                            for act in [Activation::None, Activation::Relu] {
                                let b = (act == Activation::Relu).then_some(&bias[..]);
                                let want: Vec<(f64, f64)> = x
                                    .chunks(input.len())
                                    .flat_map(|xe| ref_conv(&g, cout, &wd, b, act, xe))
                                    .collect();
                                if density == 0.0 {
                                    // fully pruned: every output is act(bias)
                                    assert!(want.iter().all(|(v, _)| {
                                        (0..cout).any(|o| {
                                            *v == act.apply(b.map_or(0.0, |b| b[o])) as f64
                                        })
                                    }));
                                }
                                let what = format!(
                                    "{cin}->{cout} {h}x{w} k{k} s{s} p{p} d{density} b{batch} {act:?}"
                                );
                                for exec in execs() {
                                    for algo in [
                                        SparseConv::Auto,
                                        SparseConv::Direct,
                                        SparseConv::Im2col,
                                        SparseConv::Shifted,
                                        SparseConv::Lowered,
                                    ] {
                                        let mut y = vec![f32::NAN; want.len()];
                                        let prep0 = conv::ConvPrep::new(algo, &g, &a, b);
                                        conv::conv_sparse(
                                            exec,
                                            algo,
                                            &g,
                                            &a,
                                            &prep0,
                                            &x,
                                            batch,
                                            b,
                                            conv::Epilogue { act, pool: false },
                                            &mut y,
                                        );
                                        assert_close(
                                            &y,
                                            &want,
                                            &format!("sparse {algo:?} {what} {exec:?}"),
                                        );
                                    }
                                    let mut y = vec![f32::NAN; want.len()];
                                    conv::conv_dense(
                                        exec, &g, &wd, cout, &x, batch, b, act, &mut y,
                                    );
                                    assert_close(&y, &want, &format!("dense {what} {exec:?}"));
                                    cases += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 500, "{cases} cases");
}

/// The valid output range along one axis agrees with brute force.
#[test]
fn valid_range_matches_brute_force() {
    for size in 1..8usize {
        for k in 1..5usize {
            for s in 1..4usize {
                for p in 0..3usize {
                    if size + 2 * p < k {
                        continue;
                    }
                    let out = (size + 2 * p - k) / s + 1;
                    for d in 0..k {
                        let want: Vec<usize> = (0..out)
                            .filter(|&o| {
                                let i = (o * s + d) as i64 - p as i64;
                                i >= 0 && i < size as i64
                            })
                            .collect();
                        let (lo, hi) = Geom::valid_range(out, size, s, p, d);
                        assert_eq!(
                            (lo..hi).collect::<Vec<_>>(),
                            want,
                            "size {size} k {k} s {s} p {p} d {d}"
                        );
                    }
                }
            }
        }
    }
}

/// f64 pooling reference of one plane (PyTorch semantics: padded positions are -inf for max,
/// 0 for average, divisor kh·kw).
fn ref_pool(g: &Geom, max: bool, x: &[f32]) -> Vec<f64> {
    let mut y = Vec::new();
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
            for dy in 0..g.kh {
                for dx in 0..g.kw {
                    let iy = (oy * g.sh + dy) as i64 - g.ph as i64;
                    let ix = (ox * g.sw + dx) as i64 - g.pw as i64;
                    let v = if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                        if max {
                            f64::NEG_INFINITY
                        } else {
                            0.0
                        }
                    } else {
                        x[iy as usize * g.w + ix as usize] as f64
                    };
                    acc = if max { acc.max(v) } else { acc + v };
                }
            }
            y.push(if max { acc } else { acc / (g.kh * g.kw) as f64 });
        }
    }
    y
}

#[test]
fn pools_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for &(c, h, w) in &[(1usize, 1usize, 1usize), (3, 7, 5), (2, 8, 9)] {
        for k in [1usize, 2, 3] {
            for s in [1usize, 2] {
                for p in 0..=k / 2 {
                    let Ok(g) = Geom::new(Shape { c, h, w }, [k, k], [s, s], [p, p]) else {
                        continue;
                    };
                    // all-negative inputs: a padded zero must never win the max
                    let x: Vec<f32> = (0..2 * c * h * w)
                        .map(|_| rng.gen_range(-2.0f32..-0.5))
                        .collect();
                    for (max, exec) in [true, false]
                        .into_iter()
                        .flat_map(|m| execs().into_iter().map(move |e| (m, e)))
                    {
                        let mut y = vec![f32::NAN; 2 * c * g.ho * g.wo];
                        conv::pool(exec, &g, max, &x, &mut y);
                        let want: Vec<f64> = x
                            .chunks(h * w)
                            .flat_map(|xp| ref_pool(&g, max, xp))
                            .collect();
                        for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                            assert!(
                                ((*a as f64) - b).abs() <= 1e-6 * (1.0 + b.abs()),
                                "max={max} {exec:?} {c}x{h}x{w} k{k} s{s} p{p} [{i}]: {a} vs {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn global_avg_pool_and_add_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let x = random_vec(&mut rng, 2 * 3 * 35);
    let mut y = vec![f32::NAN; 6];
    conv::global_avg_pool(35, &x, &mut y);
    for (i, v) in y.iter().enumerate() {
        let want: f64 = x[i * 35..(i + 1) * 35]
            .iter()
            .map(|v| *v as f64)
            .sum::<f64>()
            / 35.0;
        assert!(((*v as f64) - want).abs() < 1e-6, "gap {i}: {v} vs {want}");
    }
    let a = random_vec(&mut rng, 50);
    let b = random_vec(&mut rng, 50);
    for act in [Activation::None, Activation::Relu] {
        let mut y = vec![f32::NAN; 50];
        conv::add(&a, &b, act, &mut y);
        for i in 0..50 {
            assert_eq!(y[i], act.apply(a[i] + b[i]), "add {act:?} {i}");
        }
        assert!(act == Activation::None || y.iter().all(|v| *v >= 0.0));
    }
}

/// f64 forward of a whole network straight from its export tensors and specs (any layer kind).
pub(crate) fn reference_graph(net: &ExportModel, x: &[f32]) -> Vec<f64> {
    let dims = &net.meta.input_shape;
    let mut shapes: Vec<(usize, usize, usize)> = vec![match dims[..] {
        [c, h, w] => (c, h, w),
        _ => (dims.iter().product(), 1, 1),
    }];
    let mut vals: Vec<Vec<f64>> = vec![x.iter().map(|v| *v as f64).collect()];
    let mut names: Vec<String> = vec!["input".into()];
    for (i, (spec, t)) in net.layers.iter().enumerate() {
        let slot = |n: Option<&str>| match n {
            None => i,
            Some(n) => names.iter().position(|m| m == n).unwrap(),
        };
        let srcs: Vec<usize> = spec.inputs().into_iter().map(slot).collect();
        let (c, h, w) = shapes[srcs[0]];
        let xin = &vals[srcs[0]];
        let eff: Vec<f64> = t
            .weight
            .iter()
            .zip(&t.mask)
            .map(|(w, m)| if *m >= 0.0 { *w as f64 } else { 0.0 })
            .collect();
        let act = |v: f64| ref_act(spec.activation(), v);
        let (shape, out): ((usize, usize, usize), Vec<f64>) = match spec {
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => {
                let y = (0..*out_features)
                    .map(|r| {
                        let mut s = t.bias.as_ref().map_or(0.0, |b| b[r] as f64);
                        for k in 0..*in_features {
                            s += eff[r * in_features + k] * xin[k];
                        }
                        act(s)
                    })
                    .collect();
                ((*out_features, 1, 1), y)
            }
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let g = Geom::conv(
                    Shape { c, h, w },
                    *kernel,
                    *stride,
                    *padding,
                    *dilation,
                    *groups,
                )
                .unwrap();
                let (cg, og) = (c / groups, out_channels / groups);
                let mut y = Vec::new();
                for o in 0..*out_channels {
                    for oy in 0..g.ho {
                        for ox in 0..g.wo {
                            let mut s = t.bias.as_ref().map_or(0.0, |b| b[o] as f64);
                            for cl in 0..cg {
                                let ci = (o / og) * cg + cl;
                                for dy in 0..g.kh {
                                    for dx in 0..g.kw {
                                        let iy = (oy * g.sh + dy * g.dh) as i64 - g.ph as i64;
                                        let ix = (ox * g.sw + dx * g.dw) as i64 - g.pw as i64;
                                        if iy >= 0 && ix >= 0 && iy < h as i64 && ix < w as i64 {
                                            s += eff[((o * cg + cl) * g.kh + dy) * g.kw + dx]
                                                * xin[(ci * h + iy as usize) * w + ix as usize];
                                        }
                                    }
                                }
                            }
                            y.push(act(s));
                        }
                    }
                }
                ((*out_channels, g.ho, g.wo), y)
            }
            LayerSpec::MaxPool2d {
                kernel,
                stride,
                padding,
                ..
            }
            | LayerSpec::AvgPool2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let g = Geom::new(Shape { c, h, w }, *kernel, *stride, *padding).unwrap();
                let max = matches!(spec, LayerSpec::MaxPool2d { .. });
                let xf: Vec<f32> = xin.iter().map(|v| *v as f32).collect();
                let y = xf
                    .chunks(h * w)
                    .flat_map(|p| ref_pool(&g, max, p))
                    .collect();
                ((c, g.ho, g.wo), y)
            }
            LayerSpec::GlobalAvgPool { .. } => (
                (c, 1, 1),
                xin.chunks(h * w)
                    .map(|p| p.iter().sum::<f64>() / (h * w) as f64)
                    .collect(),
            ),
            LayerSpec::Flatten { .. } => ((c * h * w, 1, 1), xin.clone()),
            LayerSpec::Add { .. } => (
                (c, h, w),
                xin.iter()
                    .zip(&vals[srcs[1]])
                    .map(|(a, b)| act(a + b))
                    .collect(),
            ),
        };
        shapes.push(shape);
        vals.push(out);
        names.push(spec.name().to_string());
    }
    vals.pop().unwrap_or_default()
}

/// The synthetic residual conv net on every ISA / threading / path / sparse-conv kernel agrees
/// with the f64 reference, batch 1, 2, 5 and 8 (each batch path of each kernel), several
/// sparsities.
#[test]
fn conv_net_forward_all_paths_agree() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for (c, s, sp) in [
        (4usize, 9usize, 0.0),
        (4, 8, 50.0),
        (3, 7, 95.0),
        (2, 5, 100.0),
    ] {
        let net = synthetic::conv_net(c, s, sp, 4);
        let base = Model::from_export(&net).unwrap();
        let n = 3 * s * s;
        for batch in [1usize, 2, 5, 8] {
            let x: Vec<f32> = (0..batch * n).map(|_| rng.gen_range(0.0f32..1.0)).collect();
            let want: Vec<f64> = x
                .chunks(n)
                .flat_map(|xe| reference_graph(&net, xe))
                .collect();
            for exec in execs() {
                for algo in [
                    SparseConv::Auto,
                    SparseConv::Direct,
                    SparseConv::Im2col,
                    SparseConv::Shifted,
                    SparseConv::Lowered,
                ] {
                    for m in [base.to_sparse(), base.to_dense()] {
                        let path = m.path();
                        let y = m
                            .with_exec(exec)
                            .with_sparse_conv(algo)
                            .forward(&x, batch)
                            .unwrap();
                        assert_eq!(y.len(), want.len());
                        for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                            assert!(
                                ((*g as f64) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                "c{c} s{s} {sp}% {path} {algo:?} batch {batch} {exec:?} logit {i}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Grouped, depthwise (with and without a channel multiplier) and dilated convolutions, every
/// kernel on every ISA and threading mode, against the f64 reference, with all activations.
#[test]
fn grouped_dilated_conv_kernels_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut cases = 0;
    // (in, out, groups): depthwise, depthwise x2, grouped, plain
    for &(cin, cout, groups) in &[(4usize, 4usize, 4usize), (3, 6, 3), (4, 6, 2), (2, 3, 1)] {
        for &(h, w) in &[(7usize, 6usize), (9, 9)] {
            for k in [1usize, 3] {
                for s in [1usize, 2] {
                    for p in [0usize, 1, 2] {
                        for dil in [1usize, 2] {
                            let input = Shape { c: cin, h, w };
                            let Ok(g) =
                                Geom::conv(input, [k, k], [s, s], [p, p], [dil, dil], groups)
                            else {
                                continue;
                            };
                            for density in [0.1, 0.6, 1.0] {
                                let cols = cin / groups * k * k;
                                let dense = random_vec(&mut rng, cout * cols);
                                let keep: Vec<bool> =
                                    (0..dense.len()).map(|_| rng.gen_bool(density)).collect();
                                let a = Csr::from_dense_where(cout, cols, &dense, |i| keep[i]);
                                let wd = a.to_dense();
                                let bias: Vec<f32> =
                                    random_vec(&mut rng, cout).iter().map(|v| 4.0 * v).collect();
                                for batch in [1usize, 2, 3] {
                                    // inputs large enough that ReLU6 clips
                                    let x: Vec<f32> = random_vec(&mut rng, batch * input.len())
                                        .iter()
                                        .map(|v| 5.0 * v)
                                        .collect();
                                    for act in
                                        [Activation::None, Activation::Relu, Activation::Relu6]
                                    {
                                        let want: Vec<(f64, f64)> = x
                                            .chunks(input.len())
                                            .flat_map(|xe| {
                                                ref_conv(&g, cout, &wd, Some(&bias), act, xe)
                                            })
                                            .collect();
                                        let what = format!(
                                            "{cin}->{cout} g{groups} {h}x{w} k{k} s{s} p{p} dil{dil} d{density} b{batch} {act:?}"
                                        );
                                        for exec in execs() {
                                            for algo in [
                                                SparseConv::Auto,
                                                SparseConv::Direct,
                                                SparseConv::Im2col,
                                                SparseConv::Shifted,
                                                SparseConv::Lowered,
                                            ] {
                                                let mut y = vec![f32::NAN; want.len()];
                                                let prep0 =
                                                    conv::ConvPrep::new(algo, &g, &a, Some(&bias));
                                                conv::conv_sparse(
                                                    exec,
                                                    algo,
                                                    &g,
                                                    &a,
                                                    &prep0,
                                                    &x,
                                                    batch,
                                                    Some(&bias),
                                                    conv::Epilogue { act, pool: false },
                                                    &mut y,
                                                );
                                                assert_close(
                                                    &y,
                                                    &want,
                                                    &format!("sparse {algo:?} {what} {exec:?}"),
                                                );
                                            }
                                            let mut y = vec![f32::NAN; want.len()];
                                            conv::conv_dense(
                                                exec,
                                                &g,
                                                &wd,
                                                cout,
                                                &x,
                                                batch,
                                                Some(&bias),
                                                act,
                                                &mut y,
                                            );
                                            assert_close(
                                                &y,
                                                &want,
                                                &format!("dense {what} {exec:?}"),
                                            );
                                            cases += 1;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 1000, "{cases} cases");
}

/// The synthetic MobileNet-style net (depthwise, grouped, dilated convs, ReLU6, a residual
/// sum) on every ISA / threading / path / sparse-conv kernel agrees with the f64 reference.
#[test]
fn mobile_net_forward_all_paths_agree() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for (c, s, sp) in [(4usize, 9usize, 0.0), (3, 12, 50.0), (2, 7, 90.0)] {
        let net = synthetic::mobile_net(c, s, sp, 5);
        let base = Model::from_export(&net).unwrap();
        let n = 3 * s * s;
        for batch in [1usize, 4, 8] {
            let x: Vec<f32> = (0..batch * n)
                .map(|_| rng.gen_range(-3.0f32..3.0))
                .collect();
            let want: Vec<f64> = x
                .chunks(n)
                .flat_map(|xe| reference_graph(&net, xe))
                .collect();
            for exec in execs() {
                for algo in [
                    SparseConv::Auto,
                    SparseConv::Direct,
                    SparseConv::Im2col,
                    SparseConv::Shifted,
                    SparseConv::Lowered,
                ] {
                    for m in [base.to_sparse(), base.to_dense()] {
                        let path = m.path();
                        let y = m
                            .with_exec(exec)
                            .with_sparse_conv(algo)
                            .forward(&x, batch)
                            .unwrap();
                        assert_eq!(y.len(), want.len());
                        for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                            assert!(
                                ((*g as f64) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                "c{c} s{s} {sp}% {path} {algo:?} batch {batch} {exec:?} logit {i}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The shifted kernel across tile boundaries: planes large enough that one tile holds one or
/// two examples, so a batch of 5 runs several tiles (and the last one short), with dilation,
/// groups and asymmetric padding, on every ISA and threading mode, against the f64 reference.
#[test]
fn shifted_conv_spans_tiles() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &(h, w, k, p, d, groups) in &[
        (40usize, 38usize, 3usize, 1usize, 1usize, 1usize),
        (30, 31, 3, 2, 2, 2),
        (33, 29, 1, 0, 1, 1),
    ] {
        let (cin, cout) = (4usize, 6usize);
        let input = Shape { c: cin, h, w };
        let g = Geom::conv(input, [k, k], [1, 1], [p, p], [d, d], groups).unwrap();
        let pad_plane = (h + 2 * p) * (w + 2 * p);
        assert!(
            conv::SHIFTED_ROW / pad_plane <= 2,
            "the case must need several tiles"
        );
        let cols = cin / groups * k * k;
        let dense = random_vec(&mut rng, cout * cols);
        let keep: Vec<bool> = (0..dense.len()).map(|_| rng.gen_bool(0.3)).collect();
        let a = Csr::from_dense_where(cout, cols, &dense, |i| keep[i]);
        let wd = a.to_dense();
        let bias = random_vec(&mut rng, cout);
        let batch = 5;
        let x = random_vec(&mut rng, batch * input.len());
        let want: Vec<(f64, f64)> = x
            .chunks(input.len())
            .flat_map(|xe| ref_conv(&g, cout, &wd, Some(&bias), Activation::Relu, xe))
            .collect();
        for exec in execs() {
            let mut y = vec![f32::NAN; want.len()];
            conv::conv_sparse(
                exec,
                SparseConv::Shifted,
                &g,
                &a,
                &conv::ConvPrep::default(),
                &x,
                batch,
                Some(&bias),
                conv::Epilogue {
                    act: Activation::Relu,
                    pool: false,
                },
                &mut y,
            );
            assert_close(
                &y,
                &want,
                &format!("shifted {h}x{w} k{k} p{p} d{d} g{groups} {exec:?}"),
            );
        }
    }
}

/// `Auto` lowers by stride, output plane, density and batch size, only where the matrix was
/// built, and never builds it for layers it would not lower; `Lowered` falls back to the plane
/// kernels when the matrix is missing.
#[test]
fn auto_lowers_small_planes_by_batch() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    // (input side, stride, keep every k-th weight, lowered at batch 1, at batch 8)
    for (side, stride, every, low1, low8) in [
        (3usize, 1usize, 3usize, true, true),
        (7, 1, 3, false, true),
        (14, 1, 3, false, false),
        (14, 1, 20, false, true),
        (16, 1, 20, false, false),
        (16, 2, 20, true, true),
        (16, 2, 3, false, true),
    ] {
        let g = Geom::conv(
            Shape {
                c: 8,
                h: side,
                w: side,
            },
            [3, 3],
            [stride, stride],
            [1, 1],
            [1, 1],
            1,
        )
        .unwrap();
        let w = random_vec(&mut rng, 8 * 8 * 9);
        let a = Csr::from_dense_where(8, 8 * 9, &w, |i| i % every == 0);
        let prep = conv::ConvPrep::new(SparseConv::Auto, &g, &a, None);
        let what = format!("side {side} stride {stride} every {every}");
        let lowered = |batch| SparseConv::Auto.choose(&g, &a, &prep, batch) == SparseConv::Lowered;
        assert_eq!(lowered(1), low1, "{what}, batch 1");
        assert_eq!(lowered(8), low8, "{what}, batch 8");
        assert_eq!(lowered(64), low8, "{what}, batch 64");
        // the matrix exists exactly where some batch size lowers
        let built = SparseConv::Lowered.choose(&g, &a, &prep, 8) == SparseConv::Lowered;
        assert_eq!(built, low1 || low8, "{what}: lowered matrix built");
        let none = conv::ConvPrep::default();
        let plane = SparseConv::Auto.resolve(&g, &a);
        assert_eq!(
            SparseConv::Lowered.choose(&g, &a, &none, 8),
            plane,
            "{what}"
        );
        if stride == 1 {
            assert_eq!(
                SparseConv::Shifted.choose(&g, &a, &prep, 8),
                SparseConv::Shifted
            );
        }
    }
}

/// A conv and the 2x2 max pool after it, run in one pass where the shifted kernel is chosen,
/// give exactly (bit for bit) the logits of the two layers run one after the other: vgg-narrow
/// (three conv + pool pairs, a 7x7 plane pooled to 3x3) at batch 1 to 32, every kernel setting,
/// inputs with NaN and infinities included.
#[test]
fn conv_with_its_max_pool_in_one_pass_matches_the_two_layers() {
    let net = synthetic::vgg_narrow(&synthetic::VGG_NARROW_95_DENSITIES, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let base = Model::from_export(&net).unwrap();
    assert_eq!(
        base.pooled_convs(1).len(),
        3,
        "vgg-narrow's three pools fuse at batch 1"
    );
    assert!(
        base.to_dense().pooled_convs(1).is_empty(),
        "the dense path runs its layers one by one"
    );
    assert!(
        base.clone()
            .with_sparse_conv(SparseConv::Direct)
            .pooled_convs(1)
            .is_empty(),
        "only the shifted kernel pools on the way out"
    );
    let n_in = base.input_len();
    for batch in [1usize, 2, 5, 8, 32] {
        let mut x = random_vec(&mut rng, batch * n_in);
        x[3] = f32::NAN;
        x[n_in / 2] = f32::INFINITY;
        x[n_in - 1] = f32::NEG_INFINITY;
        for exec in execs() {
            // the same kernels and threading on both sides: the whole batch at once
            let m = base.clone().with_exec(exec);
            let fused = m.forward_whole_batch(&x, batch);
            let apart = m.forward_unfused(&x, batch);
            assert_eq!(fused.len(), apart.len());
            for (i, (f, a)) in fused.iter().zip(&apart).enumerate() {
                assert!(
                    f.to_bits() == a.to_bits(),
                    "batch {batch} {exec:?} logit {i}: {f} fused, {a} apart"
                );
            }
        }
    }
}
