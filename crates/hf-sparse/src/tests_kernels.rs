//! Kernel tests: every kernel, on every instruction set this CPU has, single- and
//! multi-threaded, against an f64 dense reference on random matrices of several shapes and
//! densities (including empty rows and fully pruned matrices).
#![allow(clippy::needless_range_loop)] // index loops mirror the math in the references

use crate::dispatch::{Exec, Isa};
use crate::formats::{Csr, Sell8};
use crate::kernels;
use crate::{synthetic, Activation, Model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DENSITIES: [f64; 5] = [0.0, 0.01, 0.1, 0.5, 1.0];
const SHAPES: [(usize, usize); 10] = [
    (1, 1),
    (3, 7),
    (8, 8),
    (9, 5),
    (17, 33),
    (64, 784),
    (300, 100),
    (10, 300),
    (0, 5),
    (5, 0),
];

/// Every way a kernel can run here: each ISA, single-threaded and forced multi-threaded.
fn execs() -> Vec<Exec> {
    let mut v = Vec::new();
    for isa in Isa::all_available() {
        v.push(Exec {
            isa,
            par_min_work: usize::MAX,
        });
        v.push(Exec {
            isa,
            par_min_work: 0,
        });
    }
    v
}

/// A random `rows x cols` matrix with each entry kept with probability `density`; every third
/// row is forced empty when `empty_rows`.
fn random_csr(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    density: f64,
    empty_rows: bool,
) -> Csr {
    let dense: Vec<f32> = (0..rows * cols)
        .map(|_| rng.gen_range(-1.0f32..1.0))
        .collect();
    let keep: Vec<bool> = (0..rows * cols)
        .map(|i| rng.gen_bool(density) && !(empty_rows && (i / cols.max(1)) % 3 == 1))
        .collect();
    Csr::from_dense_where(rows, cols, &dense, |i| keep[i])
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// f64 reference `act(A x + b)` and the per-output scale `sum |a x| + |b|` for tolerances.
fn reference(a: &Csr, x: &[f32], bias: Option<&[f32]>, act: Activation) -> Vec<(f64, f64)> {
    let d = a.to_dense();
    (0..a.rows)
        .map(|r| {
            let mut s = bias.map_or(0.0, |b| b[r] as f64);
            let mut scale = s.abs();
            for c in 0..a.cols {
                let t = d[r * a.cols + c] as f64 * x[c] as f64;
                s += t;
                scale += t.abs();
            }
            let s = match act {
                Activation::None => s,
                Activation::Relu => s.max(0.0),
                Activation::Relu6 => s.clamp(0.0, 6.0),
            };
            (s, scale)
        })
        .collect()
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

#[test]
fn csr_from_dense_and_back() {
    // Checked against the original dense matrix and keep-set, not against another conversion:
    // the CSR lists exactly the kept positions in row-major order with their original values
    // (a kept 0.0 included), and densifying gives the original where kept and 0 elsewhere.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(r, c) in &SHAPES {
        for &d in &DENSITIES {
            let orig: Vec<f32> = (0..r * c)
                .map(|i| {
                    if i % 7 == 3 {
                        0.0 // zeros that may be kept: structure comes from the keep-set
                    } else {
                        rng.gen_range(-1.0f32..1.0)
                    }
                })
                .collect();
            let keep: Vec<bool> = (0..r * c).map(|_| rng.gen_bool(d)).collect();
            let a = Csr::from_dense_where(r, c, &orig, |i| keep[i]);
            assert_eq!((a.rows, a.cols), (r, c));
            let mut want_ptr = vec![0usize];
            let (mut want_cols, mut want_vals) = (Vec::new(), Vec::new());
            for row in 0..r {
                for col in 0..c {
                    if keep[row * c + col] {
                        want_cols.push(col as u32);
                        want_vals.push(orig[row * c + col]);
                    }
                }
                want_ptr.push(want_vals.len());
            }
            assert_eq!(a.row_ptr, want_ptr, "{r}x{c} at {d}");
            assert_eq!(a.col_idx, want_cols, "{r}x{c} at {d}");
            assert_eq!(a.values, want_vals, "{r}x{c} at {d}");
            assert_eq!(a.nnz(), keep.iter().filter(|&&k| k).count());
            let dense = a.to_dense();
            assert_eq!(dense.len(), r * c);
            for i in 0..r * c {
                let want = if keep[i] { orig[i] } else { 0.0 };
                assert_eq!(dense[i].to_bits(), want.to_bits(), "{r}x{c} at {d}: [{i}]");
            }
            let back =
                Csr::from_parts(r, c, a.row_ptr.clone(), a.col_idx.clone(), a.values.clone())
                    .expect("valid parts");
            assert_eq!(back, a);
        }
    }
}

#[test]
fn csr_from_parts_rejects_each_broken_invariant() {
    let ok = || {
        (
            vec![0usize, 2, 2, 3],
            vec![0u32, 2, 1],
            vec![1.0f32, 2.0, 3.0],
        )
    };
    type Breaker = Box<dyn Fn(&mut Vec<usize>, &mut Vec<u32>, &mut Vec<f32>)>;
    let cases: Vec<(Breaker, &str)> = vec![
        (
            Box::new(|_, c, _| c[1] = 3),
            "col_idx[1] = 3 out of bounds (in_features 3)",
        ),
        (Box::new(|p, _, _| p[1] = 4), "row_ptr[1] = 4"),
        (
            Box::new(|p, _, _| {
                p[1] = 3;
                p[2] = 1;
            }),
            "not monotone",
        ),
        (Box::new(|p, _, _| p[0] = 1), "must start at 0"),
        (Box::new(|p, _, _| p[3] = 2), "must end at nnz"),
        (
            Box::new(|_, c, _| {
                c[0] = 2;
                c[1] = 0;
            }),
            "unsorted or duplicate",
        ),
        (
            Box::new(|_, c, _| {
                c[0] = 1;
                c[1] = 1;
            }),
            "unsorted or duplicate",
        ),
        (Box::new(|_, _, v| v[2] = f32::NAN), "not finite"),
        (
            Box::new(|_, c, _| {
                c.pop();
            }),
            "col_idx has 2 entries",
        ),
        (
            Box::new(|p, _, _| {
                p.pop();
            }),
            "row_ptr has 3 entries",
        ),
    ];
    let (p, c, v) = ok();
    assert!(Csr::from_parts(3, 3, p, c, v).is_ok());
    for (break_it, want) in cases {
        let (mut p, mut c, mut v) = ok();
        break_it(&mut p, &mut c, &mut v);
        let err = Csr::from_parts(3, 3, p, c, v).expect_err(want);
        assert!(
            err.contains(want),
            "got '{err}', expected it to mention '{want}'"
        );
    }
}

#[test]
fn spmv_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &(r, c) in &SHAPES {
        for &d in &DENSITIES {
            for act in [Activation::None, Activation::Relu] {
                let a = random_csr(&mut rng, r, c, d, d > 0.2);
                let x = random_vec(&mut rng, c);
                let b = random_vec(&mut rng, r);
                for bias in [None, Some(&b[..])] {
                    let want = reference(&a, &x, bias, act);
                    for exec in execs() {
                        let mut y = vec![f32::NAN; r];
                        kernels::spmv(exec, &a, &x, bias, act, &mut y);
                        assert_close(&y, &want, &format!("spmv {r}x{c} d={d} {act:?} {exec:?}"));
                    }
                }
            }
        }
    }
}

#[test]
fn sell8_matches_reference_and_ignores_padding() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for &(r, c) in &SHAPES {
        for &d in &DENSITIES {
            for act in [Activation::None, Activation::Relu] {
                let a = random_csr(&mut rng, r, c, d, true);
                let x = random_vec(&mut rng, c);
                let b = random_vec(&mut rng, r);
                for bias in [None, Some(&b[..])] {
                    let s = Sell8::from_csr(&a, bias);
                    assert!(s.lanes() >= a.nnz() && s.lanes().is_multiple_of(8));
                    let mut xp = x.clone();
                    xp.push(0.0);
                    let want = reference(&a, &x, bias, act);
                    for exec in execs() {
                        let mut y = vec![f32::NAN; r];
                        kernels::sell8_mv(exec, &s, &xp, act, &mut y);
                        assert_close(&y, &want, &format!("sell8 {r}x{c} d={d} {act:?} {exec:?}"));
                    }
                }
            }
        }
    }
}

/// ReLU6 in every linear kernel (CSR x vector, SELL-8, CSR x batch, dense x vector, dense x
/// batch), with inputs large enough that outputs are clipped at both ends.
#[test]
fn relu6_in_every_linear_kernel() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let act = Activation::Relu6;
    for &(r, c) in &[(17usize, 33usize), (64, 300)] {
        let a = random_csr(&mut rng, r, c, 0.3, true);
        let w = a.to_dense();
        let b = random_vec(&mut rng, r);
        let x: Vec<f32> = random_vec(&mut rng, c).iter().map(|v| 8.0 * v).collect();
        let want = reference(&a, &x, Some(&b), act);
        assert!(want.iter().any(|(v, _)| *v == 6.0) && want.iter().any(|(v, _)| *v == 0.0));
        let s = Sell8::from_csr(&a, Some(&b));
        let mut xp = x.clone();
        xp.push(0.0);
        for exec in execs() {
            let mut y = vec![f32::NAN; r];
            kernels::spmv(exec, &a, &x, Some(&b), act, &mut y);
            assert_close(&y, &want, &format!("spmv {exec:?}"));
            kernels::sell8_mv(exec, &s, &xp, act, &mut y);
            assert_close(&y, &want, &format!("sell8 {exec:?}"));
            kernels::matvec(exec, &w, r, c, &x, Some(&b), act, &mut y);
            assert_close(&y, &want, &format!("matvec {exec:?}"));
            for batch in [3usize, 8, 70] {
                let xb: Vec<f32> = x.iter().cycle().take(batch * c).copied().collect();
                let mut yb = vec![f32::NAN; batch * r];
                kernels::matmul(exec, &w, r, c, &xb, batch, Some(&b), act, &mut yb);
                for e in 0..batch {
                    assert_close(&yb[e * r..(e + 1) * r], &want, &format!("matmul {exec:?}"));
                }
                let mut xt = vec![0.0; xb.len()];
                kernels::transpose(Isa::Generic, &xb, batch, c, &mut xt);
                let mut yt = vec![f32::NAN; r * batch];
                kernels::spmm_t(exec, &a, &xt, batch, Some(&b), act, &mut yt);
                for e in 0..batch {
                    let col: Vec<f32> = (0..r).map(|i| yt[i * batch + e]).collect();
                    assert_close(&col, &want, &format!("spmm_t batch {batch} {exec:?}"));
                }
            }
        }
    }
}

#[test]
fn sell8_sorting_avoids_padding_for_equal_rows() {
    // 16 rows of exactly 5 nonzeros each: two full chunks, no padding at all
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let dense = random_vec(&mut rng, 16 * 20);
    let a = Csr::from_dense_where(16, 20, &dense, |i| (i % 20) % 4 == 0);
    assert_eq!(a.nnz(), 80);
    assert_eq!(Sell8::from_csr(&a, None).lanes(), 80);
}

#[test]
fn spmm_t_matches_reference_for_tile_edges() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let batches = [
        1usize, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65, 100, 128, 130,
    ];
    for &(r, c) in &[
        (3usize, 7usize),
        (17, 33),
        (64, 784),
        (10, 300),
        (0, 5),
        (5, 0),
    ] {
        for &d in &DENSITIES {
            let a = random_csr(&mut rng, r, c, d, true);
            let b = random_vec(&mut rng, r);
            for &batch in &batches {
                let x = random_vec(&mut rng, batch * c); // row-major batch x c
                let mut xt = vec![0.0; x.len()];
                kernels::transpose(Isa::Generic, &x, batch, c, &mut xt);
                let act = if batch % 2 == 0 {
                    Activation::Relu
                } else {
                    Activation::None
                };
                let want: Vec<Vec<(f64, f64)>> = (0..batch)
                    .map(|e| reference(&a, &x[e * c..(e + 1) * c], Some(&b), act))
                    .collect();
                for exec in execs() {
                    let mut yt = vec![f32::NAN; r * batch];
                    kernels::spmm_t(exec, &a, &xt, batch, Some(&b), act, &mut yt);
                    for (e, w) in want.iter().enumerate() {
                        let col: Vec<f32> = (0..r).map(|i| yt[i * batch + e]).collect();
                        assert_close(
                            &col,
                            w,
                            &format!("spmm_t {r}x{c} d={d} batch {batch} ex {e} {exec:?}"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn dense_kernels_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for &(r, c) in &SHAPES {
        for &d in &DENSITIES {
            let a = random_csr(&mut rng, r, c, d, true);
            let w = a.to_dense();
            let b = random_vec(&mut rng, r);
            for act in [Activation::None, Activation::Relu] {
                for bias in [None, Some(&b[..])] {
                    for exec in execs() {
                        let x = random_vec(&mut rng, c);
                        let want = reference(&a, &x, bias, act);
                        let mut y = vec![f32::NAN; r];
                        kernels::matvec(exec, &w, r, c, &x, bias, act, &mut y);
                        assert_close(&y, &want, &format!("matvec {r}x{c} d={d} {exec:?}"));
                        for batch in [1usize, 2, 5, 64] {
                            let xb = random_vec(&mut rng, batch * c);
                            let mut yb = vec![f32::NAN; batch * r];
                            kernels::matmul(exec, &w, r, c, &xb, batch, bias, act, &mut yb);
                            for e in 0..batch {
                                let want = reference(&a, &xb[e * c..(e + 1) * c], bias, act);
                                assert_close(
                                    &yb[e * r..(e + 1) * r],
                                    &want,
                                    &format!("matmul {r}x{c} d={d} batch {batch} {exec:?}"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn transpose_is_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &(r, c) in &[
        (0usize, 3usize),
        (1, 1),
        (3, 5),
        (8, 8),
        (9, 17),
        (64, 784),
        (100, 10),
    ] {
        let src = random_vec(&mut rng, r * c);
        for isa in Isa::all_available() {
            let mut dst = vec![f32::NAN; r * c];
            kernels::transpose(isa, &src, r, c, &mut dst);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(dst[j * r + i], src[i * c + j], "{r}x{c} ({i},{j}) {isa:?}");
                }
            }
        }
    }
}

/// Whole-network forward on every ISA / threading / path combination agrees with the f64
/// reference, for batch 1 and batches that exercise every tile width.
#[test]
fn model_forward_all_kernel_paths_agree() {
    let net = synthetic::mlp("t", &[37, 20, 9, 4], vec![37], 80.0, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let base = Model::from_export(&net).unwrap();
    for batch in [1usize, 3, 8, 40, 64, 70] {
        let x = random_vec(&mut rng, batch * 37);
        let want: Vec<f64> = (0..batch)
            .flat_map(|e| reference_net(&net, &x[e * 37..(e + 1) * 37]))
            .collect();
        for exec in execs() {
            for m in [base.to_sparse(), base.to_dense()] {
                let path = m.path();
                let y = m.with_exec(exec).forward(&x, batch).unwrap();
                for (i, (g, w)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        ((*g as f64) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{path} batch {batch} {exec:?} logit {i}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// The SELL kernel's padding lanes read a private zero, never the user's data: a non-finite
/// input value only affects rows that really use it.
#[test]
fn padding_never_reads_user_values() {
    // 2 layers; row 0 of fc1 uses only column 1, the others column 0
    let mut net = synthetic::mlp("t", &[3, 9, 2], vec![3], 0.0, 1);
    let (_, t) = &mut net.layers[0];
    for r in 0..9 {
        for c in 0..3 {
            let keep = if r == 0 { c == 1 } else { c == 0 };
            t.mask[r * 3 + c] = if keep { 1.0 } else { -1.0 };
        }
    }
    net.recompute_densities();
    let x = [1.0f32, 2.0, f32::INFINITY];
    for exec in execs() {
        let m = Model::from_export(&net).unwrap().with_exec(exec);
        let layers = m.rt_layers();
        let mut h = vec![0.0f32; 9];
        let mut xp = x.to_vec();
        xp.push(0.0);
        if let Some(s) = &layers[0].sell {
            kernels::sell8_mv(exec, s, &xp, Activation::None, &mut h);
            assert!(h.iter().all(|v| v.is_finite()), "{exec:?}: {h:?}");
        }
        assert!(m.forward(&x, 1).unwrap().iter().all(|v| v.is_finite()));
    }
}

/// f64 forward straight from the export tensors (effective weights w·H(m)).
pub(crate) fn reference_net(net: &crate::ExportModel, x: &[f32]) -> Vec<f64> {
    let mut cur: Vec<f64> = x.iter().map(|v| *v as f64).collect();
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
    cur
}

/// The first layer's background skip: images mostly at the preprocessed background (raw 0)
/// give the same logits on the sparse path (which skips background inputs at batch 1) as on
/// the dense path (which reads every input), with and without recorded
/// preprocessing, and so do inputs with no background at all (where the skip is not taken).
#[test]
fn background_skip_matches_the_dense_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for pre in [
        None,
        Some(crate::Preprocessing::from_f32(
            1.0 / 255.0,
            &[0.1307],
            &[0.3081],
        )),
    ] {
        let mut net = synthetic::lenet300(98.0, 5);
        net.meta.preprocessing = pre.clone();
        let sparse = Model::from_export(&net).unwrap();
        let dense = sparse.to_dense();
        let skip = sparse.layers[0]
            .skip
            .as_ref()
            .expect("an MLP's first layer skips");
        for background_share in [0.8, 0.0, 0.45, 0.55] {
            for batch in [1usize, 5] {
                let mut x: Vec<f32> = (0..batch * 784)
                    .map(|_| {
                        if rng.gen_bool(background_share) {
                            0.0
                        } else {
                            rng.gen_range(1.0f32..255.0)
                        }
                    })
                    .collect();
                if let Some(p) = &pre {
                    p.apply(&mut x, 784, 1);
                }
                // a uniformly pruned layer: the share of weights read follows the active inputs
                let share = skip.active_share(&x[..784]);
                assert!(
                    (share - (1.0 - background_share)).abs() < 0.1,
                    "{share} of the weights for {background_share} background"
                );
                // the early-stopping test agrees with the full count
                assert_eq!(
                    skip.pays(&x[..784]),
                    share <= crate::input_skip::MAX_SHARE,
                    "share {share}"
                );
                let got = sparse.forward(&x, batch).unwrap();
                let want = dense.forward(&x, batch).unwrap();
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{pre:?} share {background_share} batch {batch}: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// A batch split into sub-batches across threads gives every example the logits it gets on
/// its own, in order: an MLP and a conv net, both paths, batches that split into whole
/// register tiles and batches that do not.
#[test]
fn batch_split_across_threads_keeps_every_example_in_place() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let nets = [
        synthetic::mlp("t", &[37, 20, 9, 4], vec![37], 80.0, 11),
        synthetic::conv_net(4, 8, 70.0, 3),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for net in nets {
        let base = Model::from_export(&net).unwrap();
        let n_in = base.input_len();
        let k = base.classes();
        for m in [base.to_sparse(), base.to_dense()] {
            let split = m.clone().with_par_min_work(0);
            let serial = m.with_par_min_work(usize::MAX);
            for batch in [2usize, 3, 5, 9, 17, 40] {
                pool.install(|| {
                    assert!(split.exec.batch_pieces(1, batch) > 1);
                    assert_eq!(serial.exec.batch_pieces(usize::MAX / 4, batch), 1);
                });
                let x = random_vec(&mut rng, batch * n_in);
                let got = pool.install(|| split.forward(&x, batch)).unwrap();
                let whole = serial.forward(&x, batch).unwrap();
                assert_eq!(got.len(), batch * k);
                for e in 0..batch {
                    let one = serial.forward(&x[e * n_in..(e + 1) * n_in], 1).unwrap();
                    for j in 0..k {
                        let (g, w, o) = (got[e * k + j], whole[e * k + j], one[j]);
                        assert!(
                            (g - w).abs() <= 1e-5 * (1.0 + w.abs())
                                && (g - o).abs() <= 1e-5 * (1.0 + o.abs()),
                            "{} batch {batch} example {e} logit {j}: split {g}, whole {w}, alone {o}",
                            split.path()
                        );
                    }
                }
            }
        }
    }
}

/// Sub-batches are even shares, whole register tiles of 8 once a share reaches 8, and cover
/// the batch.
#[test]
fn sub_batches_cover_the_batch() {
    for batch in 1..=100usize {
        for pieces in 1..=4usize {
            let per = crate::model::sub_batch(batch, pieces);
            assert!(
                per >= 1 && per <= batch,
                "batch {batch} pieces {pieces}: {per}"
            );
            assert!(
                batch.div_ceil(per) <= pieces,
                "batch {batch} pieces {pieces}: {per}"
            );
            if per >= 8 && per < batch {
                assert_eq!(per % 8, 0, "batch {batch} pieces {pieces}: {per}");
            }
        }
    }
}
