//! Axis ticks: where they go (decades on log axes, 1-2-5 steps on linear ones), how they are
//! labelled, and the plotters coordinate type ([`Axis`]) that carries them.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

/// Tick label for plot-space value `v`.
pub(crate) fn tick_label(v: f64, log: bool, span: f64) -> String {
    if log {
        let e = v.round();
        if (v - e).abs() < 1e-6 {
            let e = e as i32;
            return if (0..=4).contains(&e) {
                format!("{}", 10f64.powi(e))
            } else if (-3..0).contains(&e) {
                format!("{:.*}", (-e) as usize, 10f64.powi(e))
            } else {
                format!("1e{e}")
            };
        }
        let val = 10f64.powf(v);
        if (1e-3..1e5).contains(&val) {
            let mag = val.log10().floor() as i32;
            let s = format!("{:.*}", (1 - mag).max(0) as usize, val);
            return if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            };
        }
        format_sig(val, 2)
    } else {
        if v.abs() < span * 1e-9 {
            return "0".to_string();
        }
        format_sig(v, 4)
    }
}

/// A linear plot-space axis with precomputed tick positions (plotters' own key points are
/// placed for linear data; on log axes we want decades).
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    pub(crate) fn new((lo, hi): (f64, f64), bold: Vec<f64>, light: Vec<f64>) -> Self {
        Axis {
            lo,
            hi,
            bold,
            light,
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        let len = (limit.1 - limit.0) as f64;
        if !frac.is_finite() {
            return if frac > 0.0 { limit.1 } else { limit.0 };
        }
        // Clamp far-outside values so the pixel arithmetic cannot overflow.
        let px = (len * frac.clamp(-10.0, 11.0)).round();
        limit.0 + px as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Tick positions (bold, light) in plot space for the range `(lo, hi)`.
///
/// Log axes get whole decades when at least two fit (thinned to at most ~10, the others
/// becoming light lines), otherwise 1-2-5 or 1..9 multiples of decades; linear axes get
/// 1-2-5 "nice" steps. Never empty for a non-degenerate range.
pub(crate) fn ticks(lo: f64, hi: f64, log: bool) -> (Vec<f64>, Vec<f64>) {
    if lo >= hi || !lo.is_finite() || !hi.is_finite() {
        return (Vec::new(), Vec::new());
    }
    if log {
        let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
        let decades: Vec<f64> = (a..=b).map(|k| k as f64).collect();
        let multiples = |ms: &[f64]| -> Vec<f64> {
            ((lo.floor() as i64)..=(hi.ceil() as i64))
                .flat_map(|k| ms.iter().map(move |m| k as f64 + m.log10()))
                .filter(|v| *v >= lo && *v <= hi)
                .collect()
        };
        if (2..=3).contains(&decades.len()) {
            // Two or three decades: label 1-2-5 multiples too.
            return (
                multiples(&[1.0, 2.0, 5.0]),
                multiples(&[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]),
            );
        }
        if decades.len() >= 2 {
            let step = decades.len().div_ceil(10).max(1) as i64;
            let (bold, rest): (Vec<f64>, Vec<f64>) = decades
                .iter()
                .partition(|&&k| (k as i64).rem_euclid(step) == 0);
            let mut light = rest;
            if step == 1 && decades.len() <= 8 {
                light.extend(multiples(&[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]));
            }
            return (bold, light);
        }
        for ms in [
            &[1.0, 2.0, 5.0][..],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..],
        ] {
            let pts = multiples(ms);
            if pts.len() >= 3 {
                return (pts, Vec::new());
            }
        }
    }
    let raw = (hi - lo) / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|st| raw <= *st)
        .unwrap_or(10.0 * mag);
    let grid = |st: f64| -> Vec<f64> {
        let first = (lo / st).ceil() as i64;
        let last = (hi / st).floor() as i64;
        (first..=last).map(|i| i as f64 * st).collect()
    };
    (grid(step), grid(step / 5.0))
}

/// Formats `v` with at most `sig` significant digits, trailing zeros trimmed; scientific for
/// very large or very small magnitudes.
pub fn format_sig(v: f64, sig: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sig = sig.max(1);
    let mag = v.abs().log10().floor() as i32;
    if !(-2..5).contains(&mag) {
        let s = format!("{:.*e}", sig - 1, v);
        // "1.50e-3" -> trim zeros in the mantissa: "1.5e-3"
        if let Some((m, e)) = s.split_once('e') {
            let m = if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.')
            } else {
                m
            };
            return format!("{m}e{e}");
        }
        return s;
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    let s = format!("{:.*}", decimals, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_prefer_decades_on_log_axes() {
        let (b, l) = ticks(-4.2, 1.3, true);
        assert_eq!(b, vec![-4.0, -3.0, -2.0, -1.0, 0.0, 1.0]);
        assert!(l.contains(&(-3.0 + 2f64.log10())));
        // 25 decades: thinned to every third, the rest light.
        let (b, l) = ticks(-24.5, 0.5, true);
        assert!(b.len() <= 10 && b.len() >= 5 && b.contains(&-3.0), "{b:?}");
        assert!(l.contains(&-1.0));
        // Less than two decades: 1-2-5 multiples.
        let (b, _) = ticks(0.2, 1.9, true);
        let vals: Vec<f64> = b
            .iter()
            .map(|v| (10f64.powf(*v) * 1e6).round() / 1e6)
            .collect();
        assert_eq!(vals, vec![2.0, 5.0, 10.0, 20.0, 50.0]);
        // Two decades: 1-2-5 labels.
        let (b, l) = ticks(-0.7, 1.0, true);
        assert_eq!(b.len(), 6, "{b:?}");
        assert!(l.contains(&4f64.log10()));
        // A sliver of a decade still gets ticks.
        assert!(ticks(0.30, 0.31, true).0.len() >= 2);
        let (b, l) = ticks(-0.05, 1.05, false);
        assert_eq!(b.len(), 6);
        assert!((b[1] - 0.2).abs() < 1e-12 && l.len() > b.len());
        assert!(ticks(1.0, 1.0, false).0.is_empty());
    }

    #[test]
    fn tick_labels_are_readable() {
        assert_eq!(tick_label(-3.0, true, 5.0), "0.001");
        assert_eq!(tick_label(2.0, true, 5.0), "100");
        assert_eq!(tick_label(-12.0, true, 5.0), "1e-12");
        assert_eq!(tick_label(0.5, true, 1.0), "3.2");
        assert_eq!(tick_label(-2.5, true, 1.0), "0.0032");
        assert_eq!(tick_label(-5.5, true, 1.0), "3.2e-6");
        assert_eq!(tick_label(2f64.log10(), true, 1.0), "2");
        assert_eq!(tick_label(-3.0 + 5f64.log10(), true, 1.0), "0.005");
        assert_eq!(tick_label(0.30000000000000004, false, 1.0), "0.3");
        assert_eq!(tick_label(1e-17, false, 1.0), "0");
        assert_eq!(format_sig(1.503e-3, 4), "1.503e-3");
        assert_eq!(format_sig(0.0123456, 3), "0.0123");
        assert_eq!(format_sig(123456.0, 3), "1.23e5");
    }
}
