//! `--plot DIR`: SVG charts of a run's results beside its markdown report.
//!
//! - `throughput.svg`: streaming throughput against message size (both axes
//!   logarithmic) for the fshm ring through its copying API and its in-place API,
//!   iceoryx2 (in builds with it), a pipe and a socketpair;
//! - `latency.svg`: ping-pong round trips, spinning and sleeping, median and p99 bars;
//! - `wakeup.svg`: wake-up latencies of the `events` and `async` groups (median, p99).
//!
//! Each chart shows the medians over the repetitions of what the run measured; a series
//! or bar the run did not measure is left out, and a chart with nothing to show is not
//! written. Drawn with `plotters`' SVG backend alone: no system library, no font file
//! (the SVG names generic font families; the viewer picks the fonts).

use crate::util::median;
use crate::Results;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::io;
use std::path::Path;

/// Message sizes of the throughput chart (the streaming chunks).
const SIZES: [u64; 4] = [64, 4096, 65536, 1 << 20];

/// Series of the throughput chart: job kind, legend, colour.
const THROUGHPUT: [(&str, &str, RGBColor); 5] = [
    (
        "ring-rust",
        "fshm ring, copying (Read/Write)",
        RGBColor(0, 90, 181),
    ),
    (
        "ring-inplace",
        "fshm ring, in place (reserve/fill_buf)",
        RGBColor(0, 160, 220),
    ),
    (
        "iox2-stream",
        "iceoryx2 publish-subscribe",
        RGBColor(220, 120, 0),
    ),
    ("pipe", "pipe", RGBColor(120, 120, 120)),
    ("socket", "Unix socketpair", RGBColor(160, 40, 40)),
];

/// Bars of the round-trip chart: job kind, label.
const ROUND_TRIPS: [(&str, &str); 6] = [
    ("pp-spin", "fshm, spinning"),
    ("pp-nospin", "fshm, sleeping"),
    ("pp-pipe", "pipe pair"),
    ("pp-socket", "socketpair"),
    ("pp-iox2-spin", "iceoryx2, polling"),
    ("pp-iox2-event", "iceoryx2, event"),
];

/// Bars of the wake-up chart: job kind, label.
const WAKEUPS: [(&str, &str); 5] = [
    ("ev-lat-fd", "EventFd + poll(2)"),
    ("ev-lat-blocking", "blocking follower"),
    ("ev-lat-pipe", "pipe + poll(2)"),
    ("async-lat-async", "async follower (tokio)"),
    ("async-lat-blocking", "blocking, async group"),
];

/// Colours of the median and p99 bars.
const MEDIAN: RGBColor = RGBColor(0, 90, 181);
const P99: RGBColor = RGBColor(240, 150, 40);

/// The figures of job `kind` whose next arguments are `args` (`"ring-rust 4096 "`
/// matches `ring-rust 4096 <volume>`): the median over the repetitions of each metric.
fn medians(r: &Results, kind: &str, args: &str) -> Option<Vec<f64>> {
    let prefix = format!("{kind} {args}");
    r.iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .min_by(|a, b| a.0.cmp(b.0))
        .map(|(_, metrics)| metrics.iter().map(|v| median(v)).collect())
}

/// One line of the throughput chart.
pub struct Series {
    pub label: &'static str,
    pub color: RGBColor,
    /// (message size in bytes, MB/s), finite and positive.
    pub points: Vec<(f64, f64)>,
}

/// One bar pair of a latency chart.
pub struct Bar {
    pub label: &'static str,
    /// Median and p99, µs.
    pub median: f64,
    pub p99: f64,
}

pub fn throughput_series(r: &Results) -> Vec<Series> {
    THROUGHPUT
        .iter()
        .map(|&(kind, label, color)| Series {
            label,
            color,
            points: SIZES
                .iter()
                .filter_map(|&c| {
                    let mbs = *medians(r, kind, &format!("{c} "))?.first()?;
                    (mbs.is_finite() && mbs > 0.0).then_some((c as f64, mbs))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn bars(r: &Results, which: &[(&str, &'static str)]) -> Vec<Bar> {
    which
        .iter()
        .filter_map(|&(kind, label)| {
            let m = medians(r, kind, "")?;
            let (median, p99) = (*m.first()?, *m.get(1)?);
            (median.is_finite() && p99.is_finite() && median > 0.0 && p99 > 0.0).then_some(Bar {
                label,
                median,
                p99,
            })
        })
        .collect()
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn size_label(b: f64) -> String {
    let b = b.round() as u64;
    if b >= 1 << 20 {
        format!("{} MiB", b >> 20)
    } else if b >= 1024 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

/// A latency as the bar labels show it.
fn figure(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

/// Bounds of a logarithmic axis holding `values` with some room, on whole decades.
fn log_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Whole decades, so that the axis has at least two labelled lines.
    let lo = 10f64.powf((lo / 1.5).log10().floor());
    let hi = 10f64.powf((hi * 1.5).log10().ceil());
    lo..hi
}

fn draw_throughput(root: &DrawingArea<SVGBackend, Shift>, series: &[Series]) -> DrawResult<()> {
    root.fill(&WHITE)?;
    let y = log_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Streaming between two processes (MB/s, higher is better)",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        // x: log2 of the message size, so that each measured size gets its label.
        .build_cartesian_2d(5.5f64..20.5, y.clone().log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("message size (log scale)")
        .y_desc("MB/s (log scale)")
        .x_labels(16)
        .x_label_formatter(&|x| {
            let exact = SIZES.iter().any(|&s| ((s as f64).log2() - x).abs() < 0.01);
            if exact {
                size_label(x.exp2())
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    // Grid lines at the measured sizes.
    for &s in &SIZES {
        let x = (s as f64).log2();
        chart.draw_series(LineSeries::new(
            [(x, y.start), (x, y.end)],
            RGBColor(200, 200, 200),
        ))?;
    }
    for s in series {
        let color = s.color;
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x.log2(), y)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn draw_bars(root: &DrawingArea<SVGBackend, Shift>, title: &str, bars: &[Bar]) -> DrawResult<()> {
    root.fill(&WHITE)?;
    let y = log_range(bars.iter().flat_map(|b| [b.median, b.p99]));
    let n = bars.len();
    let labels: Vec<&str> = bars.iter().map(|b| b.label).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, y.clone().log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                labels
                    .get(i as usize)
                    .map_or(String::new(), |s| s.to_string())
            } else {
                String::new()
            }
        })
        .y_desc("µs (log scale, lower is better)")
        .y_label_formatter(&|v| {
            if *v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()?;
    let floor = y.start;
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64;
        chart.draw_series([
            Rectangle::new([(x - 0.35, floor), (x - 0.02, b.median)], MEDIAN.filled()),
            Rectangle::new([(x + 0.02, floor), (x + 0.35, b.p99)], P99.filled()),
        ])?;
        // The figures above their bars.
        let style = ("sans-serif", 14)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (at, v) in [(x - 0.185, b.median), (x + 0.185, b.p99)] {
            chart.draw_series([Text::new(figure(v), (at, v * 1.05), style.clone())])?;
        }
    }
    // Legend entries: empty series with a label each.
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
        .label("median")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], MEDIAN.filled()));
    chart
        .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
        .label("p99")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], P99.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Width and height of every chart, in SVG pixels.
pub const SIZE: (u32, u32) = (900, 520);

/// The charts of `r`: (file name, SVG text), for each chart with something to show.
pub fn charts(r: &Results) -> io::Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let err = |e: Box<dyn std::error::Error>| io::Error::other(format!("drawing a chart: {e}"));
    let series = throughput_series(r);
    if !series.is_empty() {
        let mut svg = String::new();
        draw_throughput(
            &SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
            &series,
        )
        .map_err(err)?;
        out.push(("throughput.svg", svg));
    }
    for (file, title, which) in [
        (
            "latency.svg",
            "Ping-pong round trip, 8-byte messages, two processes",
            &ROUND_TRIPS[..],
        ),
        (
            "wakeup.svg",
            "Wake-up latency: writer commits, a waiting reader returns",
            &WAKEUPS[..],
        ),
    ] {
        let b = bars(r, which);
        if b.is_empty() {
            continue;
        }
        let mut svg = String::new();
        draw_bars(
            &SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
            title,
            &b,
        )
        .map_err(err)?;
        out.push((file, svg));
    }
    Ok(out)
}

/// Writes the charts of `r` into `dir` (created if missing); returns their paths.
pub fn write(r: &Results, dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let mut paths = Vec::new();
    for (file, svg) in charts(r)? {
        let p = dir.join(file);
        std::fs::write(&p, svg)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        paths.push(p);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use resvg::{tiny_skia, usvg};

    /// Results as a run leaves them: per job key, per metric, one figure per repetition.
    fn synthetic() -> Results {
        let mut r = Results::new();
        let mut put = |key: String, metrics: &[f64]| {
            // Two repetitions, 10 % apart.
            r.insert(key, metrics.iter().map(|&m| vec![m, m * 1.1]).collect());
        };
        for (i, c) in SIZES.iter().enumerate() {
            let f = (i + 1) as f64;
            put(format!("ring-rust {c} 67108864"), &[300.0 * f * f]);
            put(format!("ring-inplace {c} 67108864"), &[400.0 * f * f]);
            put(format!("pipe {c} 67108864"), &[50.0 * f]);
            put(format!("socket {c} 67108864"), &[40.0 * f]);
        }
        put("pp-spin 10000".into(), &[0.3, 0.9]);
        put("pp-nospin 10000".into(), &[6.0, 20.0]);
        put("pp-pipe 10000".into(), &[9.0, 30.0]);
        put("pp-socket 10000".into(), &[11.0, 35.0]);
        put("ev-lat-fd 1000".into(), &[7.0, 25.0]);
        put("ev-lat-blocking 1000".into(), &[5.0, 15.0]);
        put("ev-lat-pipe 1000".into(), &[8.0, 22.0]);
        put("async-lat-async 1000".into(), &[9.0, 40.0]);
        put("async-lat-blocking 1000".into(), &[5.5, 16.0]);
        r
    }

    /// Renders `svg` (as resvg does, without text: no fonts are loaded) and returns the
    /// pixels as RGBA.
    fn render(name: &str, svg: &str) -> tiny_skia::Pixmap {
        let tree = usvg::Tree::from_str(svg, &usvg::Options::default())
            .unwrap_or_else(|e| panic!("{name} does not parse as SVG: {e}"));
        let size = tree.size().to_int_size();
        assert_eq!((size.width(), size.height()), SIZE, "{name}");
        let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).expect("pixmap");
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        pixmap
    }

    /// How many pixels are (about) `c`.
    fn count(p: &tiny_skia::Pixmap, c: RGBColor) -> usize {
        p.pixels()
            .iter()
            .filter(|px| {
                let d = |a: u8, b: u8| a.abs_diff(b) <= 8;
                px.alpha() == 255 && d(px.red(), c.0) && d(px.green(), c.1) && d(px.blue(), c.2)
            })
            .count()
    }

    #[test]
    fn every_chart_renders_with_its_data() {
        let charts = charts(&synthetic()).expect("charts");
        let names: Vec<&str> = charts.iter().map(|c| c.0).collect();
        assert_eq!(names, ["throughput.svg", "latency.svg", "wakeup.svg"]);
        for (name, svg) in &charts {
            let p = render(name, svg);
            let total = p.pixels().len();
            let white = count(&p, WHITE);
            // Opaque white background, and a good part of it covered by the chart.
            assert_eq!(
                p.pixels().iter().filter(|px| px.alpha() == 255).count(),
                total,
                "{name}: background not opaque"
            );
            assert!(
                total - white > total / 50,
                "{name}: only {} of {total} pixels drawn",
                total - white
            );
            if *name == "throughput.svg" {
                // Every measured series is drawn (lines and markers in its colour); the
                // unmeasured one (iceoryx2 here) is not.
                for (kind, label, color) in THROUGHPUT {
                    let n = count(&p, color);
                    if kind == "iox2-stream" {
                        assert_eq!(n, 0, "{name}: {label} drawn without data");
                    } else {
                        assert!(n > 200, "{name}: {label}: {n} pixels");
                    }
                }
            } else {
                assert!(count(&p, MEDIAN) > 2000, "{name}: median bars");
                assert!(count(&p, P99) > 2000, "{name}: p99 bars");
            }
        }
    }

    #[test]
    fn medians_over_repetitions_feed_the_charts() {
        let s = throughput_series(&synthetic());
        let copying = s
            .iter()
            .find(|s| s.label.contains("copying"))
            .expect("copying");
        assert_eq!(copying.points.len(), 4);
        // Two repetitions m and 1.1 m: the median of two is their mean.
        assert!(
            (copying.points[0].1 - 315.0).abs() < 1e-9,
            "{:?}",
            copying.points
        );
        let b = bars(&synthetic(), &ROUND_TRIPS);
        assert_eq!(b.len(), 4, "no iceoryx2 bars without iceoryx2 results");
        assert!((b[0].p99 - 0.945).abs() < 1e-9);
        assert_eq!(
            [figure(0.27), figure(31.5), figure(1697.4)],
            ["0.27", "31.5", "1697"]
        );
    }

    #[test]
    fn nothing_measured_draws_nothing() {
        assert!(charts(&Results::new()).expect("charts").is_empty());
        let mut r = Results::new();
        r.insert("pp-spin 10".into(), vec![vec![f64::NAN], vec![f64::NAN]]);
        assert!(charts(&r).expect("charts").is_empty());
    }
}
