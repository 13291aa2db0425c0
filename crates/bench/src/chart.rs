//! The chart of scenario 3: client latency over time, one row per situation, tandem on the left
//! and the same change by hand on the right, with the phases shaded and named, drawn as SVG and
//! PNG with plotters. Text uses DejaVu Sans embedded from the `dejavu` crate, so drawing needs no
//! system font library.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// What the clients saw during one run, times in seconds since they began.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub samples: Vec<Sample>,
    pub phases: Vec<PhaseSpan>,
    /// When another session held a transaction open on the table.
    pub held: Vec<PhaseSpan>,
}

/// One client request.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// When it was sent.
    pub at_s: f64,
    pub latency_ms: f64,
    pub ok: bool,
}

/// A named stretch of a run (a phase of the migration, or the long transaction).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSpan {
    pub name: String,
    pub from_s: f64,
    pub to_s: f64,
}

/// One row of the chart: the same situation done by tandem and by hand.
#[derive(Debug, Clone)]
pub struct ChartRow {
    pub title: String,
    pub tandem: Timeline,
    pub by_hand: Timeline,
}

/// The files one chart was written to.
#[derive(Debug, Clone, Serialize)]
pub struct ChartFiles {
    pub svg: PathBuf,
    pub png: PathBuf,
}

const WIDTH: u32 = 1400;
const ROW_HEIGHT: u32 = 300;
const HEADER: u32 = 50;
/// Requests are summarised per time bucket; a panel has between this many buckets...
const MIN_BUCKETS: usize = 20;
/// ... and this many.
const MAX_BUCKETS: usize = 300;
const FONT: &str = "sans-serif";

const PHASE_COLOURS: [RGBColor; 5] = [
    RGBColor(255, 205, 120),
    RGBColor(150, 200, 255),
    RGBColor(190, 235, 160),
    RGBColor(240, 170, 220),
    RGBColor(200, 200, 200),
];

/// Writes `<stem>.svg` and `<stem>.png`.
pub fn draw(title: &str, rows: &[ChartRow], stem: &Path) -> Result<ChartFiles> {
    register_font();
    let files = ChartFiles {
        svg: stem.with_extension("svg"),
        png: stem.with_extension("png"),
    };
    let size = (WIDTH, HEADER + ROW_HEIGHT * rows.len().max(1) as u32);
    {
        let root = SVGBackend::new(&files.svg, size).into_drawing_area();
        paint(&root, title, rows, false).map_err(|message| Error::Chart {
            path: files.svg.clone(),
            message,
        })?;
    }
    {
        let root = BitMapBackend::new(&files.png, size).into_drawing_area();
        paint(&root, title, rows, true).map_err(|message| Error::Chart {
            path: files.png.clone(),
            message,
        })?;
    }
    Ok(files)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a fixed, valid TTF; a failure here would be a broken dependency.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Text as drawn: in a bitmap, with three-per-em spaces, because plotters' rasterizer places
/// glyphs without their side bearings and a plain space after `T` all but vanishes.
fn label(text: &str, bitmap: bool) -> String {
    if bitmap {
        text.replace(' ', "\u{2004}")
    } else {
        text.to_string()
    }
}

fn paint<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    rows: &[ChartRow],
    bitmap: bool,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (header, body) = root.split_vertically(HEADER);
    header
        .draw_text(
            &label(title, bitmap),
            &TextStyle::from((FONT, 22).into_font().style(FontStyle::Bold)),
            (20, 14),
        )
        .map_err(e)?;
    // One latency scale for every panel, so heights compare across the chart.
    let worst = rows
        .iter()
        .flat_map(|r| r.tandem.samples.iter().chain(&r.by_hand.samples))
        .map(|s| s.latency_ms)
        .fold(1.0f64, f64::max);
    let y_max = 10f64.powf(worst.log10().ceil() + 0.3);
    let y_min = 0.05;
    let cells = body.split_evenly((rows.len().max(1), 2));
    for (i, row) in rows.iter().enumerate() {
        // One time scale per row, so the two ways of doing the same change line up.
        let t_max = [&row.tandem, &row.by_hand]
            .iter()
            .flat_map(|t| {
                t.samples
                    .iter()
                    .map(|s| s.at_s)
                    .chain(t.phases.iter().map(|p| p.to_s))
            })
            .fold(1.0f64, f64::max)
            * 1.02;
        for (j, (who, timeline)) in [("tandem", &row.tandem), ("by hand", &row.by_hand)]
            .into_iter()
            .enumerate()
        {
            let errors = timeline.samples.iter().filter(|s| !s.ok).count();
            let caption = format!(
                "{}: {who}{}",
                row.title,
                if errors > 0 {
                    format!(" ({errors} client errors)")
                } else {
                    String::new()
                }
            );
            let caption = label(&caption, bitmap);
            panel(
                &cells[i * 2 + j],
                &caption,
                timeline,
                t_max,
                y_min,
                y_max,
                bitmap,
            )?;
        }
    }
    root.present().map_err(e)?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    timeline: &Timeline,
    t_max: f64,
    y_min: f64,
    y_max: f64,
    bitmap: bool,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 15))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..t_max, (y_min..y_max).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the clients began")
        .y_desc("latency (ms)")
        .label_style((FONT, 12))
        .y_label_formatter(&|v| format!("{v}"))
        .axis_desc_style((FONT, 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    for (k, p) in timeline.phases.iter().enumerate() {
        let colour = PHASE_COLOURS[k % PHASE_COLOURS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (p.from_s, y_min),
                    (p.to_s.max(p.from_s + t_max / 400.0), y_max),
                ],
                colour.mix(0.45).filled(),
            )))
            .map_err(e)?;
        // Labels step down so neighbouring short phases do not overwrite each other.
        let y = y_max / 10f64.powf(0.25 + 0.35 * (k % 3) as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                label(&p.name, bitmap),
                (p.from_s, y),
                (FONT, 12).into_font().color(&BLACK),
            )))
            .map_err(e)?;
    }
    // The long transaction: a dark band along the bottom.
    for h in &timeline.held {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(h.from_s, y_min), (h.to_s, y_min * 2.5)],
                RGBColor(90, 90, 90).mix(0.7).filled(),
            )))
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label(&h.name, bitmap),
                (h.from_s, y_min * 5.0),
                (FONT, 11).into_font().color(&BLACK),
            )))
            .map_err(e)?;
    }
    let (p50, max) = buckets(&timeline.samples, t_max);
    // A stretch without any answer (clients blocked) breaks the lines instead of bridging it.
    // A bucket alone between gaps is drawn as a dot, a line of one point being invisible.
    let dots = max
        .iter()
        .zip(&p50)
        .filter(|(m, _)| m.len() == 1)
        .flat_map(|(m, p)| [(m[0], RED), (p[0], BLUE)]);
    chart
        .draw_series(dots.map(|(xy, colour)| Circle::new(xy, 2, colour.filled())))
        .map_err(e)?;
    for (k, run) in max.iter().enumerate() {
        let series = chart
            .draw_series(LineSeries::new(run.iter().copied(), RED.stroke_width(1)))
            .map_err(e)?;
        if k == 0 {
            series
                .label("max per bucket")
                .legend(|(x, y)| Rectangle::new([(x, y - 2), (x + 16, y + 2)], RED.filled()));
        }
    }
    for (k, run) in p50.iter().enumerate() {
        let series = chart
            .draw_series(LineSeries::new(run.iter().copied(), BLUE.stroke_width(2)))
            .map_err(e)?;
        if k == 0 {
            series
                .label("median per bucket")
                .legend(|(x, y)| Rectangle::new([(x, y - 2), (x + 16, y + 2)], BLUE.filled()));
        }
    }
    chart
        .draw_series(timeline.samples.iter().filter(|s| !s.ok).map(|s| {
            Cross::new(
                (s.at_s, s.latency_ms.clamp(y_min, y_max)),
                4,
                BLACK.stroke_width(2),
            )
        }))
        .map_err(e)?
        .label("client error")
        .legend(|(x, y)| Cross::new((x + 8, y), 4, BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperMiddle)
        .label_font((FONT, 11))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(e)?;
    Ok(())
}

type Line = Vec<(f64, f64)>;

/// The median and the maximum latency of the requests sent in each time bucket (of those that
/// succeeded; errors are drawn on their own), as runs of consecutive non-empty buckets.
fn buckets(samples: &[Sample], t_max: f64) -> (Vec<Line>, Vec<Line>) {
    // About eight requests a bucket, so that a gap means the clients got no answer.
    let count = (samples.len() / 8).clamp(MIN_BUCKETS, MAX_BUCKETS);
    let width = t_max / count as f64;
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); count + 1];
    for s in samples.iter().filter(|s| s.ok) {
        let i = ((s.at_s / width) as usize).min(count);
        groups[i].push(s.latency_ms);
    }
    let (mut p50, mut max): (Vec<Line>, Vec<Line>) = (Vec::new(), Vec::new());
    let mut previous_empty = true;
    for (i, mut g) in groups.into_iter().enumerate() {
        if g.is_empty() {
            previous_empty = true;
            continue;
        }
        if previous_empty {
            p50.push(Vec::new());
            max.push(Vec::new());
            previous_empty = false;
        }
        g.sort_by(f64::total_cmp);
        let t = (i as f64 + 0.5) * width;
        if let (Some(a), Some(b)) = (p50.last_mut(), max.last_mut()) {
            a.push((t, g[g.len() / 2].max(0.05)));
            b.push((t, g[g.len() - 1].max(0.05)));
        }
    }
    (p50, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(spike_at: f64, error_at: Option<f64>) -> Timeline {
        let samples = (0..400)
            .map(|i| {
                let at_s = i as f64 * 0.01;
                let spike = (at_s - spike_at).abs() < 0.2;
                Sample {
                    at_s,
                    latency_ms: if spike { 800.0 } else { 0.4 },
                    ok: error_at.is_none_or(|e| (at_s - e).abs() > 0.005),
                }
            })
            .collect();
        Timeline {
            samples,
            phases: vec![
                PhaseSpan {
                    name: "start".into(),
                    from_s: 1.0,
                    to_s: 1.5,
                },
                PhaseSpan {
                    name: "backfill".into(),
                    from_s: 1.5,
                    to_s: 3.0,
                },
            ],
            held: vec![PhaseSpan {
                name: "long transaction".into(),
                from_s: 0.8,
                to_s: 2.0,
            }],
        }
    }

    #[test]
    fn draws_svg_and_png_with_phases_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            ChartRow {
                title: "type change".into(),
                tandem: timeline(10.0, None),
                by_hand: timeline(2.0, Some(2.5)),
            },
            ChartRow {
                title: "SET NOT NULL".into(),
                tandem: timeline(10.0, None),
                by_hand: timeline(1.0, None),
            },
        ];
        let files = draw("latency", &rows, &dir.path().join("chart")).unwrap();
        let svg = std::fs::read_to_string(&files.svg).unwrap();
        for text in [
            "latency",
            "type change: tandem",
            "SET NOT NULL: by hand",
            "backfill",
            "(1 client errors)",
            "long transaction",
        ] {
            assert!(svg.contains(text), "{text} missing from the SVG");
        }
        let png = std::fs::read(&files.png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // The IHDR chunk: width and height.
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!((width, height), (WIDTH, HEADER + 2 * ROW_HEIGHT));
    }
}
