//! Painting charts onto a plotters drawing area (any backend): mesh and tick labels, shaded
//! bands, the series in their colours and styles, and the legend.

use plotters::coord::Shift;
use plotters::element::{Circle, Rectangle};
use plotters::prelude::{
    ChartBuilder, DashedLineSeries, DrawingArea, DrawingBackend, LineSeries, PathElement,
};
use plotters::style::{Color, IntoFont, RGBColor, ShapeStyle, BLACK, WHITE};

use crate::chart::{Chart, Series, Style};
use crate::legend::{legend_position, LegendGlyph};
use crate::palette::series_color;
use crate::plot_space::{axis_range, clip_band, error_bars, segments};
use crate::ticks::{tick_label, ticks, Axis};

/// Paints every chart into its own vertical slot of `root` and flushes the backend.
pub(crate) fn paint_all<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    charts: &[Chart],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((charts.len().max(1), 1));
    for (chart, area) in charts.iter().zip(areas.iter()) {
        paint_chart(area, chart)?;
    }
    root.present().map_err(|e| e.to_string())
}

fn paint_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (log_x, log_y) = (chart.log_x, chart.log_y);
    let segs: Vec<Vec<Vec<(f64, f64)>>> = chart
        .series
        .iter()
        .map(|s| segments(s, log_x, log_y))
        .collect();
    let bars: Vec<Vec<(f64, f64, f64)>> = chart
        .series
        .iter()
        .map(|s| error_bars(s, log_x, log_y))
        .collect();
    let mut all: Vec<(f64, f64)> = segs.iter().flatten().flatten().copied().collect();
    all.extend(
        bars.iter()
            .flatten()
            .flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]),
    );
    let xr = axis_range(all.iter().map(|p| p.0), log_x);
    let yr = axis_range(all.iter().map(|p| p.1), log_y);

    let mut builder = ChartBuilder::on(area);
    builder
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(75);
    if !chart.title.is_empty() {
        builder.caption(&chart.title, ("sans-serif", 24).into_font());
    }
    let (xb, xl) = ticks(xr.0, xr.1, log_x);
    let (yb, yl) = ticks(yr.0, yr.1, log_y);
    let mut ctx = builder
        .build_cartesian_2d(Axis::new(xr, xb, xl), Axis::new(yr, yb, yl))
        .map_err(|e| err(&e))?;

    let (xspan, yspan) = (xr.1 - xr.0, yr.1 - yr.0);
    let xfmt = move |v: &f64| tick_label(*v, log_x, xspan);
    let yfmt = move |v: &f64| tick_label(*v, log_y, yspan);
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(("sans-serif", 15).into_font())
        .axis_desc_style(("sans-serif", 17).into_font())
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(|e| err(&e))?;

    // Bands under the data, translucent so overlapping bands read darker.
    let band = ShapeStyle::from(&BLACK.mix(0.09)).filled();
    let mut rects = Vec::new();
    for &b in &chart.shaded_x {
        if let Some((a, c)) = clip_band(b, log_x, xr) {
            rects.push(Rectangle::new([(a, yr.0), (c, yr.1)], band));
        }
    }
    for &b in &chart.shaded_y {
        if let Some((a, c)) = clip_band(b, log_y, yr) {
            rects.push(Rectangle::new([(xr.0, a), (xr.1, c)], band));
        }
    }
    if !rects.is_empty() {
        ctx.draw_series(rects).map_err(|e| err(&e))?;
    }

    let mut any_label = false;
    for (i, (series, segs)) in chart.series.iter().zip(segs.iter()).enumerate() {
        let color = series_color(i);
        let line = color.stroke_width(2);
        let fill = color.filled();
        if !bars[i].is_empty() {
            ctx.draw_series(bars[i].iter().map(|&(x, lo, hi)| {
                PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1))
            }))
            .map_err(|e| err(&e))?;
        }
        let mut first = true;
        // An empty series still gets its legend entry (via one empty draw).
        let empty = [Vec::new()];
        let parts: &[Vec<(f64, f64)>] = if segs.is_empty() { &empty } else { segs };
        for seg in parts {
            let anno = match series.style {
                Style::Line => ctx.draw_series(LineSeries::new(seg.iter().copied(), line)),
                Style::Dashed => {
                    ctx.draw_series(DashedLineSeries::new(seg.iter().copied(), 10, 6, line))
                }
                Style::Points => ctx.draw_series(seg.iter().map(|&p| Circle::new(p, 4, fill))),
                Style::LinePoints => {
                    ctx.draw_series(LineSeries::new(seg.iter().copied(), line).point_size(3))
                }
            }
            .map_err(|e| err(&e))?;
            if first && !series.name.is_empty() {
                any_label = true;
                let style = series.style;
                anno.label(series.name.as_str())
                    .legend(move |at| LegendGlyph {
                        at: [at],
                        style,
                        color,
                    });
            }
            first = false;
        }
    }

    if any_label {
        // Legend box estimate: 15 px text (~8.2 px per character), 19 px rows, glyph + padding.
        let labelled: Vec<&Series> = chart.series.iter().filter(|s| !s.name.is_empty()).collect();
        let chars = labelled
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let (aw, ah) = area.dim_in_pixel();
        let title_h = if chart.title.is_empty() { 0.0 } else { 40.0 };
        let plot_w = (aw as f64 - 75.0 - 30.0).max(1.0);
        let plot_h = (ah as f64 - 50.0 - 30.0 - title_h).max(1.0);
        let legend_size = (
            (chars as f64 * 8.2 + 60.0) / plot_w,
            (labelled.len() as f64 * 19.0 + 14.0) / plot_h,
        );
        let styles: Vec<Style> = chart.series.iter().map(|s| s.style).collect();
        ctx.configure_series_labels()
            .position(legend_position(&segs, &styles, xr, yr, legend_size))
            .background_style(WHITE.mix(0.88))
            .border_style(RGBColor(120, 120, 120))
            .label_font(("sans-serif", 15).into_font())
            .draw()
            .map_err(|e| err(&e))?;
    }
    Ok(())
}
