//! Data to plot space: log10 on log axes, invalid points skipped (non-finite, `<= 0` on a log
//! axis, or too large to draw), lines broken where they were, padded non-degenerate axis ranges
//! and shaded bands clipped to them.

use crate::chart::Series;

/// Maps a data value to plot space (log10 on log axes); `None` if it cannot be shown.
fn to_plot(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    if log {
        if v > 0.0 {
            Some(v.log10())
        } else {
            None
        }
    } else {
        Some(v)
    }
}

/// Values beyond this magnitude (in plot space) are skipped: plotting ±1e308 ranges overflows.
const MAX_ABS: f64 = 1e150;

fn map_point(p: (f64, f64), log_x: bool, log_y: bool) -> Option<(f64, f64)> {
    let x = to_plot(p.0, log_x)?;
    let y = to_plot(p.1, log_y)?;
    (x.abs() <= MAX_ABS && y.abs() <= MAX_ABS).then_some((x, y))
}

/// A padded, non-degenerate plot-space range covering `values`.
pub(crate) fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        // No data: a unit range (1..10 on a log axis).
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 0.0 || span < 1e-12 * lo.abs().max(hi.abs()) {
        let pad = if log { 0.5 } else { (lo.abs() * 0.1).max(0.5) };
        return (lo - pad, hi + pad);
    }
    (lo - 0.05 * span, hi + 0.05 * span)
}

/// Clips a data-space interval to the plot-space range `(lo, hi)`; `None` if nothing is left.
pub(crate) fn clip_band(band: (f64, f64), log: bool, (lo, hi): (f64, f64)) -> Option<(f64, f64)> {
    let (a, b) = if band.0 <= band.1 {
        band
    } else {
        (band.1, band.0)
    };
    if a.is_nan() || b.is_nan() {
        return None;
    }
    let map = |v: f64| -> f64 {
        if log {
            if v <= 0.0 {
                f64::NEG_INFINITY
            } else {
                v.log10()
            }
        } else {
            v
        }
    };
    let (a, b) = (map(a).max(lo), map(b).min(hi));
    (a < b).then_some((a, b))
}

/// Splits a series into runs of consecutive valid plot-space points.
pub(crate) fn segments(s: &Series, log_x: bool, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for &p in &s.points {
        match map_point(p, log_x, log_y) {
            Some(q) => cur.push(q),
            None => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The error bars of a series as plot-space `(x, y_low, y_high)`, skipping invalid ones
/// (non-finite or non-positive errors, ends invalid on a log axis).
pub(crate) fn error_bars(s: &Series, log_x: bool, log_y: bool) -> Vec<(f64, f64, f64)> {
    s.points
        .iter()
        .zip(&s.y_err)
        .filter(|(_, e)| e.is_finite() && **e > 0.0)
        .filter_map(|(&(x, y), &e)| {
            let lo = map_point((x, y - e), log_x, log_y)?;
            let hi = map_point((x, y + e), log_x, log_y)?;
            Some((lo.0, lo.1, hi.1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::Style;

    #[test]
    fn error_bars_skip_invalid_values_and_respect_log_axes() {
        let s = Series::new(
            "m",
            vec![(1.0, 10.0), (2.0, 20.0), (3.0, 5.0)],
            Style::LinePoints,
        )
        .with_y_err(vec![1.0, f64::NAN, 6.0]);
        assert_eq!(
            error_bars(&s, false, false),
            vec![(1.0, 9.0, 11.0), (3.0, -1.0, 11.0)]
        );
        // on a log y axis the bar reaching below 0 is dropped
        let b = error_bars(&s, false, true);
        assert_eq!(b.len(), 1);
        assert!((b[0].1 - 9f64.log10()).abs() < 1e-12);
    }

    #[test]
    fn ranges_are_padded_and_never_degenerate() {
        assert_eq!(axis_range(std::iter::empty(), false), (0.0, 1.0));
        let (lo, hi) = axis_range([3.0].into_iter(), false);
        assert!(lo < 3.0 && hi > 3.0);
        let (lo, hi) = axis_range([2.0, 2.0, 2.0].into_iter(), true);
        assert!((lo - 1.5).abs() < 1e-12 && (hi - 2.5).abs() < 1e-12);
        let (lo, hi) = axis_range([0.0, 10.0].into_iter(), false);
        assert!((lo + 0.5).abs() < 1e-12 && (hi - 10.5).abs() < 1e-12);
    }

    #[test]
    fn invalid_points_are_skipped_and_split_lines() {
        let s = Series::new(
            "s",
            vec![
                (1.0, 1.0),
                (2.0, 0.0),
                (3.0, 3.0),
                (f64::NAN, 1.0),
                (4.0, 4.0),
            ],
            Style::Line,
        );
        let segs = segments(&s, false, true);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0], vec![(1.0, 0.0)]);
        assert!((segs[1][0].1 - 3f64.log10()).abs() < 1e-12);
        assert_eq!(segments(&s, false, false).len(), 2);
    }

    #[test]
    fn bands_are_clipped_to_the_range() {
        let r = (-1.0, 2.0);
        assert_eq!(
            clip_band((50.0, f64::INFINITY), true, r),
            Some((50f64.log10(), 2.0))
        );
        assert_eq!(clip_band((0.0, 0.5), true, r), Some((-1.0, 0.5f64.log10())));
        assert_eq!(clip_band((1000.0, 1e6), true, r), None);
        assert_eq!(clip_band((-5.0, -1.0), true, r), None);
        assert_eq!(clip_band((f64::NAN, 1.0), false, r), None);
        assert_eq!(clip_band((1.0, 0.0), false, r), Some((0.0, 1.0)));
    }
}
