//! The chart model: what a chart shows ([`Chart`]), its data series ([`Series`]) and how each
//! series is drawn ([`Style`]). Plain data, no drawing.

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Solid line through the points in the given order.
    #[default]
    Line,
    /// Dashed line through the points in the given order.
    Dashed,
    /// Filled circle markers, no line.
    Points,
    /// Solid line with small circle markers.
    LinePoints,
}

/// One named data series; `name` is shown in the legend (an empty name is left out of it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in data units; invalid points (non-finite, or `<= 0` on a log axis) are
    /// skipped, and a line is broken where they were.
    pub points: Vec<(f64, f64)>,
    /// How the series is drawn.
    pub style: Style,
    /// Optional vertical error bars: `y_err[i]` is drawn as `points[i].1 ± y_err[i]` (empty:
    /// none; non-finite or non-positive values draw no bar).
    pub y_err: Vec<f64>,
}

impl Series {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, style: Style) -> Self {
        Series {
            name: name.into(),
            points,
            style,
            y_err: Vec::new(),
        }
    }

    /// The same series with vertical error bars `± y_err[i]` at each point.
    pub fn with_y_err(mut self, y_err: Vec<f64>) -> Self {
        self.y_err = y_err;
        self
    }
}

/// A whole chart: axes, series and shaded bands. Series get distinct colours in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Caption above the plot (omitted when empty).
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Logarithmic x axis (base 10); x values `<= 0` are skipped.
    pub log_x: bool,
    /// Logarithmic y axis (base 10); y values `<= 0` are skipped.
    pub log_y: bool,
    /// The data.
    pub series: Vec<Series>,
    /// X intervals drawn as light grey vertical bands (e.g. regions of a law). Bounds may be
    /// infinite or `<= 0` on a log axis: bands are clipped to the plotted range.
    pub shaded_x: Vec<(f64, f64)>,
    /// Y intervals drawn as light grey horizontal bands, clipped like [`Chart::shaded_x`].
    pub shaded_y: Vec<(f64, f64)>,
}
