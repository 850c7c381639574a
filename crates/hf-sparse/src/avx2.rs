//! Hand-vectorised AVX2 + FMA versions of the hot kernels (x86-64 only): the matrix kernels of
//! `kernels` and the sparse convolutions of `conv`.
//!
//! LLVM does not reliably vectorise the portable kernels' fixed-size accumulator arrays (it
//! picked 128-bit lanes or spilled), so the inner loops are written with intrinsics here. Each
//! function computes exactly what its portable twin in `kernels` computes (up to float
//! rounding order) and is tested against the same dense references. The convolutions run
//! `conv`'s portable bodies compiled for AVX2 + FMA, the direct one with a masked AVX2 axpy.
//!
//! Safety contract of every function: the CPU supports AVX2 and FMA (callers only reach these
//! through `Isa::Avx2Fma`, constructed after run-time detection), and the slices have the
//! lengths the portable twins `debug_assert`; CSR indices satisfy the `Csr` invariants (column
//! indices `< cols`, `row_ptr` monotone and ending at nnz), which is what makes the unchecked
//! reads in bounds.

use crate::conv::{direct_body, im2col_sparse_body};
use crate::formats::{Csr, Sell8};
use crate::graph::Geom;
use crate::Activation;
use std::arch::x86_64::*;

/// The activation on eight lanes.
#[inline(always)]
unsafe fn act8(act: Activation, r: __m256) -> __m256 {
    match act {
        Activation::None => r,
        Activation::Relu => _mm256_max_ps(r, _mm256_setzero_ps()),
        Activation::Relu6 => {
            _mm256_min_ps(_mm256_max_ps(r, _mm256_setzero_ps()), _mm256_set1_ps(6.0))
        }
    }
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    _mm_cvtss_f32(s)
}

/// Eight floats at `p`, or (`MASKED`) the lanes `mask` enables and zeros.
#[inline(always)]
unsafe fn load8<const MASKED: bool>(p: *const f32, mask: __m256i) -> __m256 {
    if MASKED {
        _mm256_maskload_ps(p, mask)
    } else {
        _mm256_loadu_ps(p)
    }
}

/// One register tile of `8 * N` batch columns of one output row; `MASKED` (with `N = 1`): only
/// the lanes `mask` enables, for the last `batch mod 8` columns — as fast per weight as a full
/// tile (a scalar loop there made batches 2–7 slower than batch 8).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn spmm_tile<const N: usize, const MASKED: bool>(
    cols: &[u32],
    vals: &[f32],
    xt: *const f32,
    batch: usize,
    j: usize,
    b: f32,
    act: Activation,
    out: *mut f32,
    mask: __m256i,
) {
    let mut acc = [_mm256_setzero_ps(); N];
    let mut k = 0;
    if N <= 2 {
        // N chains of FMAs, one step per weight, would wait on the FMA latency: a second set
        // of accumulators for every other weight (LeNet-300-100 at 98%, batch 8: 5.5 µs →
        // 4.5 µs; no change at N = 4)
        let mut acc1 = [_mm256_setzero_ps(); N];
        while k + 2 <= cols.len() {
            let v0 = _mm256_set1_ps(*vals.get_unchecked(k));
            let v1 = _mm256_set1_ps(*vals.get_unchecked(k + 1));
            let p0 = xt.add(*cols.get_unchecked(k) as usize * batch + j);
            let p1 = xt.add(*cols.get_unchecked(k + 1) as usize * batch + j);
            for t in 0..N {
                acc[t] = _mm256_fmadd_ps(v0, load8::<MASKED>(p0.add(8 * t), mask), acc[t]);
                acc1[t] = _mm256_fmadd_ps(v1, load8::<MASKED>(p1.add(8 * t), mask), acc1[t]);
            }
            k += 2;
        }
        for t in 0..N {
            acc[t] = _mm256_add_ps(acc[t], acc1[t]);
        }
    }
    while k < cols.len() {
        let v = _mm256_set1_ps(*vals.get_unchecked(k));
        let p = xt.add(*cols.get_unchecked(k) as usize * batch + j);
        for (t, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(v, load8::<MASKED>(p.add(8 * t), mask), *a);
        }
        k += 1;
    }
    let bv = _mm256_set1_ps(b);
    for (t, a) in acc.iter().enumerate() {
        let r = act8(act, _mm256_add_ps(*a, bv));
        if MASKED {
            _mm256_maskstore_ps(out.add(8 * t), mask, r);
        } else {
            _mm256_storeu_ps(out.add(8 * t), r);
        }
    }
}

/// `Y^T[r, :] = act(b[r] + sum_k A[r, c_k] X^T[c_k, :])` for the rows of `yt` (feature-major
/// activations, `batch` columns).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn spmm_t_rows(
    a: &Csr,
    r0: usize,
    xt: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    yt: &mut [f32],
) {
    let xp = xt.as_ptr();
    let all = _mm256_set1_epi32(-1); // the full tiles' (unused) mask
    for (i, yrow) in yt.chunks_exact_mut(batch).enumerate() {
        let r = r0 + i;
        let s = *a.row_ptr.get_unchecked(r);
        let e = *a.row_ptr.get_unchecked(r + 1);
        let cols = a.col_idx.get_unchecked(s..e);
        let vals = a.values.get_unchecked(s..e);
        let b = bias.map_or(0.0, |b| *b.get_unchecked(r));
        let op = yrow.as_mut_ptr();
        let mut j = 0;
        while j + 64 <= batch {
            spmm_tile::<8, false>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 64;
        }
        while j + 32 <= batch {
            spmm_tile::<4, false>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 32;
        }
        while j + 8 <= batch {
            spmm_tile::<1, false>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 8;
        }
        if j < batch {
            let m = _mm256_loadu_si256(MASKS.as_ptr().add(8 - (batch - j)) as *const __m256i);
            spmm_tile::<1, true>(cols, vals, xp, batch, j, b, act, op.add(j), m);
        }
    }
}

/// Dense `y[i] = act(b[r0+i] + W[r0+i, :] · x)`, four rows at a time so each load of `x`
/// feeds four FMAs.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matvec_rows(
    w: &[f32],
    cols: usize,
    r0: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let xp = x.as_ptr();
    let n8 = cols / 8 * 8;
    let n16 = cols / 16 * 16;
    let rows = y.len();
    let finish =
        |r: usize, v: f32| -> f32 { act.apply(v + bias.map_or(0.0, |b| *b.get_unchecked(r))) };
    let mut i = 0;
    while i + 4 <= rows {
        let r = r0 + i;
        let p0 = w.as_ptr().add(r * cols);
        let p1 = p0.add(cols);
        let p2 = p1.add(cols);
        let p3 = p2.add(cols);
        let mut a = [_mm256_setzero_ps(); 8];
        let mut k = 0;
        while k < n16 {
            let x0 = _mm256_loadu_ps(xp.add(k));
            let x1 = _mm256_loadu_ps(xp.add(k + 8));
            a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(k)), x0, a[0]);
            a[1] = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(k)), x0, a[1]);
            a[2] = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(k)), x0, a[2]);
            a[3] = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(k)), x0, a[3]);
            a[4] = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(k + 8)), x1, a[4]);
            a[5] = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(k + 8)), x1, a[5]);
            a[6] = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(k + 8)), x1, a[6]);
            a[7] = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(k + 8)), x1, a[7]);
            k += 16;
        }
        if k < n8 {
            let x0 = _mm256_loadu_ps(xp.add(k));
            a[0] = _mm256_fmadd_ps(_mm256_loadu_ps(p0.add(k)), x0, a[0]);
            a[1] = _mm256_fmadd_ps(_mm256_loadu_ps(p1.add(k)), x0, a[1]);
            a[2] = _mm256_fmadd_ps(_mm256_loadu_ps(p2.add(k)), x0, a[2]);
            a[3] = _mm256_fmadd_ps(_mm256_loadu_ps(p3.add(k)), x0, a[3]);
            k += 8;
        }
        let mut s = [
            hsum(_mm256_add_ps(a[0], a[4])),
            hsum(_mm256_add_ps(a[1], a[5])),
            hsum(_mm256_add_ps(a[2], a[6])),
            hsum(_mm256_add_ps(a[3], a[7])),
        ];
        while k < cols {
            let xv = *xp.add(k);
            s[0] = (*p0.add(k)).mul_add(xv, s[0]);
            s[1] = (*p1.add(k)).mul_add(xv, s[1]);
            s[2] = (*p2.add(k)).mul_add(xv, s[2]);
            s[3] = (*p3.add(k)).mul_add(xv, s[3]);
            k += 1;
        }
        for (t, v) in s.into_iter().enumerate() {
            *y.get_unchecked_mut(i + t) = finish(r + t, v);
        }
        i += 4;
    }
    while i < rows {
        let r = r0 + i;
        let p = w.as_ptr().add(r * cols);
        let mut a0 = _mm256_setzero_ps();
        let mut a1 = _mm256_setzero_ps();
        let mut k = 0;
        while k < n16 {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(k)), _mm256_loadu_ps(xp.add(k)), a0);
            a1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(p.add(k + 8)),
                _mm256_loadu_ps(xp.add(k + 8)),
                a1,
            );
            k += 16;
        }
        if k < n8 {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(k)), _mm256_loadu_ps(xp.add(k)), a0);
            k += 8;
        }
        let mut s = hsum(_mm256_add_ps(a0, a1));
        while k < cols {
            s = (*p.add(k)).mul_add(*xp.add(k), s);
            k += 1;
        }
        *y.get_unchecked_mut(i) = finish(r, s);
        i += 1;
    }
}

/// Transposes the row-major `rows x cols` matrix `src` into `dst` (`cols x rows`) in 8x8
/// register blocks; edges are done element by element.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let sp = src.as_ptr();
    let dp = dst.as_mut_ptr();
    let r8 = rows / 8 * 8;
    let c8 = cols / 8 * 8;
    // column blocks outermost: each block's eight destination rows are written front to back
    for c in (0..c8).step_by(8) {
        for r in (0..r8).step_by(8) {
            let l = |i: usize| _mm256_loadu_ps(sp.add((r + i) * cols + c));
            let (a0, a1, a2, a3, a4, a5, a6, a7) = (l(0), l(1), l(2), l(3), l(4), l(5), l(6), l(7));
            let t0 = _mm256_unpacklo_ps(a0, a1);
            let t1 = _mm256_unpackhi_ps(a0, a1);
            let t2 = _mm256_unpacklo_ps(a2, a3);
            let t3 = _mm256_unpackhi_ps(a2, a3);
            let t4 = _mm256_unpacklo_ps(a4, a5);
            let t5 = _mm256_unpackhi_ps(a4, a5);
            let t6 = _mm256_unpacklo_ps(a6, a7);
            let t7 = _mm256_unpackhi_ps(a6, a7);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let s = |i: usize, v: __m256| _mm256_storeu_ps(dp.add((c + i) * rows + r), v);
            s(0, _mm256_permute2f128_ps::<0x20>(u0, u4));
            s(1, _mm256_permute2f128_ps::<0x20>(u1, u5));
            s(2, _mm256_permute2f128_ps::<0x20>(u2, u6));
            s(3, _mm256_permute2f128_ps::<0x20>(u3, u7));
            s(4, _mm256_permute2f128_ps::<0x31>(u0, u4));
            s(5, _mm256_permute2f128_ps::<0x31>(u1, u5));
            s(6, _mm256_permute2f128_ps::<0x31>(u2, u6));
            s(7, _mm256_permute2f128_ps::<0x31>(u3, u7));
        }
    }
    for r in (0..r8).step_by(8) {
        for i in r..r + 8 {
            for c in c8..cols {
                *dp.add(c * rows + i) = *sp.add(i * cols + c);
            }
        }
    }
    for i in r8..rows {
        for c in 0..cols {
            *dp.add(c * rows + i) = *sp.add(i * cols + c);
        }
    }
}

/// SELL-8 x vector over chunks `c0..c1`: eight length-sorted rows at a time, one SIMD lane per
/// row, so each step is one FMA and the row sums need no horizontal reduction; writes
/// `y[perm[slot]]` (`y` is the whole output).
///
/// `x` is gathered with scalar loads assembled into a vector: on the AMD EPYC this was tuned
/// on, hardware gathers were clearly slower (LeNet-300-100 at 98%, batch 1: 1.5 µs with this
/// kernel, 2.3 µs with 256-bit or 512-bit `vgatherdps`). Padding lanes index `x[cols]`, which
/// the caller keeps at 0 (`x.len() == cols + 1`).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sell8_mv(
    s: &Sell8,
    c0: usize,
    c1: usize,
    x: &[f32],
    act: Activation,
    y: *mut f32,
) {
    let xp = x.as_ptr();
    let cp = s.col.as_ptr();
    let vp = s.val.as_ptr();
    let zero = _mm256_setzero_ps();
    let mut lanes = [0.0f32; 8];
    #[inline(always)]
    unsafe fn gather8(xp: *const f32, c: *const u32) -> __m256 {
        // two indices per 64-bit load: fewer loads per lane than one load per index
        let q = c as *const u64;
        let (w0, w1, w2, w3) = (
            q.read_unaligned(),
            q.add(1).read_unaligned(),
            q.add(2).read_unaligned(),
            q.add(3).read_unaligned(),
        );
        let l = |w: u64| *xp.add(w as u32 as usize);
        let h = |w: u64| *xp.add((w >> 32) as usize);
        let lo = _mm_setr_ps(l(w0), h(w0), l(w1), h(w1));
        let hi = _mm_setr_ps(l(w2), h(w2), l(w3), h(w3));
        _mm256_set_m128(hi, lo)
    }
    for ch in c0..c1 {
        let g0 = *s.chunk_ptr.get_unchecked(ch);
        let g1 = *s.chunk_ptr.get_unchecked(ch + 1);
        let mut acc0 = _mm256_loadu_ps(s.bias.as_ptr().add(ch * 8));
        let mut acc1 = zero;
        let mut g = g0;
        while g + 2 <= g1 {
            let x0 = gather8(xp, cp.add(g * 8));
            let x1 = gather8(xp, cp.add(g * 8 + 8));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(vp.add(g * 8)), x0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(vp.add(g * 8 + 8)), x1, acc1);
            g += 2;
        }
        if g < g1 {
            let x0 = gather8(xp, cp.add(g * 8));
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(vp.add(g * 8)), x0, acc0);
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), act8(act, _mm256_add_ps(acc0, acc1)));
        let base = ch * 8;
        let n = (s.rows - base).min(8);
        for (l, v) in lanes.iter().enumerate().take(n) {
            *y.add(*s.perm.get_unchecked(base + l) as usize) = *v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------------

/// Direct sparse convolution of output channels `o0..` of one example: `conv`'s portable body
/// compiled for AVX2 + FMA, with the masked AVX2 [`axpy`].
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv_direct(
    g: &Geom,
    a: &Csr,
    o0: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    direct_body(g, a, o0, x, bias, act, y, axpy)
}

/// Lane masks for the AVX2 axpy's tail: `MASKS[8 - r..16 - r]` enables the first `r` lanes.
static MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// `y += a·x` over `min(len)` values with 8-wide FMAs and one masked step for the tail (the
/// rows of small planes are 7–32 long, where a scalar epilogue would dominate).
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    // SAFETY: only reached from `conv_direct`, which runs after AVX2/FMA detection; all
    // accesses are below `n`, the full steps by the loop bound and the tail by the mask.
    unsafe {
        let av = _mm256_set1_ps(a);
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr());
        let mut i = 0;
        while i + 8 <= n {
            let r = _mm256_fmadd_ps(av, _mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(yp.add(i)));
            _mm256_storeu_ps(yp.add(i), r);
            i += 8;
        }
        if i < n {
            let m = _mm256_loadu_si256(MASKS.as_ptr().add(8 - (n - i)) as *const __m256i);
            let xv = _mm256_maskload_ps(xp.add(i), m);
            let yv = _mm256_maskload_ps(yp.add(i), m);
            _mm256_maskstore_ps(yp.add(i), m, _mm256_fmadd_ps(av, xv, yv));
        }
    }
}

/// CSR × im2col convolution of output channels `o0..` of one example from its patch matrix:
/// `conv`'s portable body compiled for AVX2 + FMA (fused multiply-adds).
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn conv_im2col_sparse(
    plane: usize,
    og: usize,
    a: &Csr,
    o0: usize,
    col: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    im2col_sparse_body::<true>(plane, og, a, o0, col, bias, act, y)
}
