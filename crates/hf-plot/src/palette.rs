//! Series colours: a ten-colour qualitative palette, then golden-ratio hues, so every series of
//! a chart gets its own colour.

use plotters::style::HSLColor;

/// Distinct colour for series `i`: a ten-colour qualitative palette, then golden-ratio hues.
pub(crate) fn series_color(i: usize) -> HSLColor {
    const PALETTE: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if i < PALETTE.len() {
        let (r, g, b) = PALETTE[i];
        rgb_to_hsl(r, g, b)
    } else {
        let h = ((i - PALETTE.len()) as f64 * 0.618_033_988_75 + 0.13) % 1.0;
        let l = [0.40, 0.55][i % 2];
        HSLColor(h, 0.7, l)
    }
}

fn rgb_to_hsl(r: u8, g: u8, b: u8) -> HSLColor {
    let (r, g, b) = (r as f64 / 255.0, g as f64 / 255.0, b as f64 / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let l = (max + min) / 2.0;
    if max == min {
        return HSLColor(0.0, 0.0, l);
    }
    let d = max - min;
    let s = if l > 0.5 {
        d / (2.0 - max - min)
    } else {
        d / (max + min)
    };
    let h = if max == r {
        (g - b) / d + if g < b { 6.0 } else { 0.0 }
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    HSLColor(h / 6.0, s, l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::style::Color;

    #[test]
    fn colours_are_distinct() {
        let cols: Vec<(u8, u8, u8)> = (0..30)
            .map(|i| {
                let c = series_color(i).to_rgba();
                (c.0, c.1, c.2)
            })
            .collect();
        for i in 0..cols.len() {
            for j in 0..i {
                assert_ne!(cols[i], cols[j], "series {i} and {j} share a colour");
            }
        }
        // Palette colours survive the HSL round trip.
        let c = series_color(0).to_rgba();
        assert!((c.0 as i32 - 31).abs() <= 1 && (c.2 as i32 - 180).abs() <= 1);
    }
}
