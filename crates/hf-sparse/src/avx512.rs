//! The batched sparse kernel for AVX-512 CPUs: [`avx2::spmm_t_rows`](crate::avx2) with 16-wide
//! registers (a register tile of up to 128 examples of one output row, the last `batch mod 16`
//! examples under a lane mask). Chosen at run time within `Isa::Avx2Fma` when the CPU has
//! AVX-512F ([`crate::dispatch::avx512`]); ONNX Runtime's kernels use AVX-512 on such CPUs too.

use crate::formats::Csr;
use crate::Activation;
use std::arch::x86_64::*;

/// The activation on sixteen lanes.
#[inline(always)]
unsafe fn act16(act: Activation, r: __m512) -> __m512 {
    match act {
        Activation::None => r,
        Activation::Relu => _mm512_max_ps(r, _mm512_setzero_ps()),
        Activation::Relu6 => {
            _mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), _mm512_set1_ps(6.0))
        }
    }
}

/// One register tile of `16 * N` batch columns of one output row, lanes outside `mask` neither
/// read nor written (a full tile passes all lanes). Two sets of accumulators for `N <= 2`, so
/// consecutive weights do not wait on each other's FMA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const N: usize>(
    cols: &[u32],
    vals: &[f32],
    xt: *const f32,
    batch: usize,
    j: usize,
    b: f32,
    act: Activation,
    out: *mut f32,
    mask: __mmask16,
) {
    let mut acc = [_mm512_setzero_ps(); N];
    let mut k = 0;
    if N <= 2 {
        let mut acc1 = [_mm512_setzero_ps(); N];
        while k + 2 <= cols.len() {
            let v0 = _mm512_set1_ps(*vals.get_unchecked(k));
            let v1 = _mm512_set1_ps(*vals.get_unchecked(k + 1));
            let p0 = xt.add(*cols.get_unchecked(k) as usize * batch + j);
            let p1 = xt.add(*cols.get_unchecked(k + 1) as usize * batch + j);
            for t in 0..N {
                let x0 = _mm512_maskz_loadu_ps(mask, p0.add(16 * t));
                let x1 = _mm512_maskz_loadu_ps(mask, p1.add(16 * t));
                acc[t] = _mm512_fmadd_ps(v0, x0, acc[t]);
                acc1[t] = _mm512_fmadd_ps(v1, x1, acc1[t]);
            }
            k += 2;
        }
        for t in 0..N {
            acc[t] = _mm512_add_ps(acc[t], acc1[t]);
        }
    }
    while k < cols.len() {
        let v = _mm512_set1_ps(*vals.get_unchecked(k));
        let p = xt.add(*cols.get_unchecked(k) as usize * batch + j);
        for (t, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(mask, p.add(16 * t)), *a);
        }
        k += 1;
    }
    let bv = _mm512_set1_ps(b);
    for (t, a) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(out.add(16 * t), mask, act16(act, _mm512_add_ps(*a, bv)));
    }
}

/// `Y^T[r, :] = act(b[r] + sum_k A[r, c_k] X^T[c_k, :])` for the rows of `yt` (feature-major
/// activations, `batch` columns), as `avx2::spmm_t_rows` computes it.
///
/// # Safety
/// The CPU must have AVX-512F; CSR invariants and lengths as `avx2::spmm_t_rows`.
#[target_feature(enable = "avx512f,avx2,fma")]
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
    let all: __mmask16 = 0xffff;
    for (i, yrow) in yt.chunks_exact_mut(batch).enumerate() {
        let r = r0 + i;
        let s = *a.row_ptr.get_unchecked(r);
        let e = *a.row_ptr.get_unchecked(r + 1);
        let cols = a.col_idx.get_unchecked(s..e);
        let vals = a.values.get_unchecked(s..e);
        let b = bias.map_or(0.0, |b| *b.get_unchecked(r));
        let op = yrow.as_mut_ptr();
        let mut j = 0;
        while j + 128 <= batch {
            tile::<8>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 128;
        }
        while j + 64 <= batch {
            tile::<4>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 64;
        }
        while j + 32 <= batch {
            tile::<2>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 32;
        }
        while j + 16 <= batch {
            tile::<1>(cols, vals, xp, batch, j, b, act, op.add(j), all);
            j += 16;
        }
        if j < batch {
            let mask: __mmask16 = (1u16 << (batch - j)) - 1;
            tile::<1>(cols, vals, xp, batch, j, b, act, op.add(j), mask);
        }
    }
}
