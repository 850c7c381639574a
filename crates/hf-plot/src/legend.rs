//! The legend: where it goes (the spot that hides the least data) and the glyph drawn in front
//! of each entry.

use plotters::element::{Drawable, PointCollection};
use plotters::prelude::{DrawingBackend, SeriesLabelPosition};
use plotters::style::{Color, HSLColor};
use plotters_backend::{BackendCoord, DrawingErrorKind};

use crate::chart::Style;

/// Where to put the legend: of the corners and edge middles, the spot whose (estimated) legend
/// box covers the fewest data points, lines sampled between their points. `size` is the legend
/// box as a fraction of the plot area (width, height).
pub(crate) fn legend_position(
    segs: &[Vec<Vec<(f64, f64)>>],
    styles: &[Style],
    xr: (f64, f64),
    yr: (f64, f64),
    size: (f64, f64),
) -> SeriesLabelPosition {
    let (fw, fh) = (size.0.min(1.0), size.1.min(1.0));
    let norm = |(x, y): (f64, f64)| ((x - xr.0) / (xr.1 - xr.0), (y - yr.0) / (yr.1 - yr.0));
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for (series, style) in segs.iter().zip(styles) {
        for seg in series {
            pts.extend(seg.iter().map(|&p| norm(p)));
            if *style != Style::Points {
                for w in seg.windows(2) {
                    let (a, b) = (norm(w[0]), norm(w[1]));
                    pts.extend((1..8).map(|k| {
                        let t = k as f64 / 8.0;
                        (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
                    }));
                }
            }
        }
    }
    // (position, u range, v range) with v measured from the bottom; a small margin around.
    let (m, mid_u, mid_v) = (
        0.02,
        (0.5 - fw / 2.0, 0.5 + fw / 2.0),
        (0.5 - fh / 2.0, 0.5 + fh / 2.0),
    );
    let (left, right, top, bottom) = (
        (0.0, fw + m),
        (1.0 - fw - m, 1.0),
        (1.0 - fh - m, 1.0),
        (0.0, fh + m),
    );
    let candidates = [
        (SeriesLabelPosition::UpperRight, right, top),
        (SeriesLabelPosition::UpperLeft, left, top),
        (SeriesLabelPosition::LowerLeft, left, bottom),
        (SeriesLabelPosition::LowerRight, right, bottom),
        (SeriesLabelPosition::UpperMiddle, mid_u, top),
        (SeriesLabelPosition::LowerMiddle, mid_u, bottom),
        (SeriesLabelPosition::MiddleRight, right, mid_v),
        (SeriesLabelPosition::MiddleLeft, left, mid_v),
    ];
    let inside = |(u, v): (f64, f64), ur: (f64, f64), vr: (f64, f64)| {
        u >= ur.0 && u <= ur.1 && v >= vr.0 && v <= vr.1
    };
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, ur, vr) in candidates {
        let n = pts.iter().filter(|&&p| inside(p, ur, vr)).count();
        if n < best.0 {
            best = (n, pos);
        }
    }
    best.1
}

/// The little picture in front of a legend entry, drawn straight on the backend: a 24-pixel
/// line (solid or dashed) and/or a marker, matching the series style.
pub(crate) struct LegendGlyph {
    pub(crate) at: [(i32, i32); 1],
    pub(crate) style: Style,
    pub(crate) color: HSLColor,
}

impl<'a> PointCollection<'a, (i32, i32)> for &'a LegendGlyph {
    type Point = &'a (i32, i32);
    type IntoIter = &'a [(i32, i32)];
    fn point_iter(self) -> Self::IntoIter {
        &self.at
    }
}

impl<DB: DrawingBackend> Drawable<DB> for LegendGlyph {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut pos: I,
        backend: &mut DB,
        _parent_dim: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = pos.next() else {
            return Ok(());
        };
        let line = self.color.stroke_width(2);
        let pieces: &[(i32, i32)] = match self.style {
            Style::Line | Style::LinePoints => &[(0, 24)],
            Style::Dashed => &[(0, 6), (9, 15), (18, 24)],
            Style::Points => &[],
        };
        for &(a, b) in pieces {
            backend.draw_line((x + a, y), (x + b, y), &line)?;
        }
        let radius = match self.style {
            Style::Points => 4,
            Style::LinePoints => 3,
            _ => 0,
        };
        if radius > 0 {
            backend.draw_circle((x + 12, y), radius, &self.color.filled(), true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_avoids_the_data() {
        let pos = |pts: Vec<(f64, f64)>, style: Style| {
            legend_position(&[vec![pts]], &[style], (0.0, 1.0), (0.0, 1.0), (0.3, 0.2))
        };
        let at = |p: SeriesLabelPosition| format!("{p:?}");
        assert_eq!(at(pos(vec![], Style::Points)), "UpperRight");
        assert_eq!(at(pos(vec![(0.9, 0.9)], Style::Points)), "UpperLeft");
        let top_row: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64 / 10.0, 0.95)).collect();
        assert_eq!(at(pos(top_row, Style::Points)), "LowerLeft");
        // Lines count along their length, not just at their points.
        let across = vec![(-1.0, 0.9), (2.0, 0.9)];
        assert_eq!(at(pos(across.clone(), Style::Points)), "UpperRight");
        assert_eq!(at(pos(across, Style::Dashed)), "LowerLeft");
        let rising = vec![(0.0, 0.0), (1.0, 1.0)];
        assert_eq!(at(pos(rising, Style::Line)), "UpperLeft");
    }
}
