//! Pictures of the reports, as SVG (plotters): where people would rather look than read.

use std::path::Path;

use mpc_io_std::tasks::accuracy::AccuracyRow;
use mpc_io_std::tasks::bench::ModelReport;
use mpc_io_std::tasks::eval::EvalReport;
use plotters::prelude::*;

/// A plotting failure, as text for the command's error line.
type Result<T> = std::result::Result<T, String>;

fn fail(e: impl std::fmt::Display) -> String {
    format!("plot: {e}")
}

/// A figure of one benchmark's bucket.
type BucketValue = fn(&ModelReport, &str) -> f64;
/// A figure of one evaluation.
type EvalValue = fn(&EvalBar) -> f64;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Online seconds and bytes per bucket, one stacked bar per benchmark (preset and weight mode),
/// side by side.
pub fn bench(path: &Path, reports: &[ModelReport]) -> Result<()> {
    let root = SVGBackend::new(path, (400 + 360 * reports.len().max(1) as u32, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let title = reports.first().map_or(String::new(), |r| {
        format!("{}, {} tokens, {} layers: online cost per bucket", r.config, r.seq, r.layers)
    });
    let root = root.titled(&title, ("sans-serif", 20)).map_err(fail)?;
    let panels = root.split_evenly((1, 2));
    let buckets: Vec<&str> = reports.first().map(|r| r.buckets.keys().copied().collect()).unwrap_or_default();
    let labels: Vec<String> = reports.iter().map(|r| format!("{} {}", r.preset, r.weights)).collect();
    let measures: [(&str, BucketValue); 2] = [
        ("seconds", |r, b| r.buckets.get(b).map_or(0.0, |c| c.seconds)),
        ("MB sent (both parties)", |r, b| r.buckets.get(b).map_or(0.0, |c| c.bytes as f64 / 1e6)),
    ];
    for (panel, (unit, value)) in panels.iter().zip(measures.iter()) {
        let top = reports.iter().map(|r| buckets.iter().map(|b| value(r, b)).sum::<f64>()).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(panel)
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..reports.len()).into_segmented(), 0.0..top * 1.4 + 1e-9)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(*unit)
            .x_label_style(("sans-serif", 12))
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(fail)?;
        for (k, bucket) in buckets.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let bars = reports.iter().enumerate().map(|(i, r)| {
                let below: f64 = buckets[..k].iter().map(|b| value(r, b)).sum();
                let mut bar = Rectangle::new(
                    [(SegmentValue::Exact(i), below), (SegmentValue::Exact(i + 1), below + value(r, bucket))],
                    color.filled(),
                );
                bar.set_margin(0, 0, 12, 12);
                bar
            });
            chart
                .draw_series(bars)
                .map_err(fail)?
                .label(*bucket)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(fail)?;
    }
    root.present().map_err(fail)
}

/// What the accuracy picture shows of one evaluation.
#[derive(Clone, Debug)]
pub struct EvalBar {
    model: String,
    setting: String,
    n: usize,
    accuracy: f64,
    plain_accuracy: f64,
    agreement_with_plain: f64,
}

impl From<&EvalReport> for EvalBar {
    fn from(r: &EvalReport) -> Self {
        Self {
            model: r.model.clone(),
            setting: r.setting.to_string(),
            n: r.n,
            accuracy: r.accuracy,
            plain_accuracy: r.plain_accuracy,
            agreement_with_plain: r.agreement_with_plain,
        }
    }
}

impl EvalBar {
    /// From a saved `eval --json` line (`None` when a field is missing).
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        Some(Self {
            model: v["model"].as_str()?.to_string(),
            setting: v["setting"].as_str()?.to_string(),
            n: v["n"].as_u64()? as usize,
            accuracy: v["accuracy"].as_f64()?,
            plain_accuracy: v["plain_accuracy"].as_f64()?,
            agreement_with_plain: v["agreement_with_plain"].as_f64()?,
        })
    }
}

/// Accuracy, the plaintext model's accuracy and the agreement with it, per model and setting.
pub fn eval(path: &Path, reports: &[EvalBar]) -> Result<()> {
    let root = SVGBackend::new(path, (260 + 180 * reports.len() as u32, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let root = root.titled("test accuracy per model and setting", ("sans-serif", 20)).map_err(fail)?;
    let low = reports.iter().map(|r| r.accuracy.min(r.plain_accuracy)).fold(1.0, f64::min);
    let floor = (low * 10.0).floor() / 10.0 - 0.05;
    let labels: Vec<String> = reports
        .iter()
        .map(|r| {
            let name = Path::new(&r.model).file_name().map_or(r.model.clone(), |f| f.to_string_lossy().into_owned());
            format!("{name}, {} (n = {})", r.setting, r.n)
        })
        .collect();
    let mut chart = ChartBuilder::on(&root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((0..reports.len()).into_segmented(), floor.max(0.0)..1.0)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("fraction of the examples")
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(fail)?;
    let measures: [(&str, EvalValue); 3] = [
        ("accuracy in the setting", |r| r.accuracy),
        ("plaintext accuracy", |r| r.plain_accuracy),
        ("agreement with plaintext", |r| r.agreement_with_plain),
    ];
    for (k, (name, value)) in measures.iter().enumerate() {
        let color = PALETTE[k];
        let bars = reports.iter().enumerate().map(|(i, r)| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), floor.max(0.0)), (SegmentValue::Exact(i + 1), value(r))],
                color.filled(),
            );
            // Three bars side by side in each segment.
            let segment = 150u32;
            bar.set_margin(0, 0, 10 + k as u32 * segment / 3, 10 + (2 - k as u32) * segment / 3);
            bar
        });
        chart
            .draw_series(bars)
            .map_err(fail)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)
}

/// |private - f64| against the input, one panel per function (log scale; exact results sit on
/// the floor of 1e-9).
pub fn accuracy(path: &Path, rows: &[AccuracyRow]) -> Result<()> {
    let columns = 3;
    let lines = rows.len().div_ceil(columns).max(1);
    let root = SVGBackend::new(path, (1050, 260 * lines as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let panels = root.split_evenly((lines, columns));
    const FLOOR: f64 = 1e-9;
    for (panel, row) in panels.iter().zip(rows) {
        let (lo, hi) =
            row.errors.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| (lo.min(*x), hi.max(*x)));
        let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
        let top = row.errors.iter().map(|(_, e)| *e).fold(FLOOR, f64::max) * 10.0;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} on {}", row.function, row.domain), ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..hi, (FLOOR..top).log_scale())
            .map_err(fail)?;
        chart
            .configure_mesh()
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .x_labels(5)
            .y_labels(5)
            .draw()
            .map_err(fail)?;
        // The envelope: the largest error in each of 200 slices of the input range (a plot of
        // every point would weigh megabytes).
        const SLICES: usize = 200;
        let mut envelope = vec![None::<(f64, f64)>; SLICES];
        for &(x, e) in &row.errors {
            let slice = (((x - lo) / (hi - lo)) * (SLICES - 1) as f64).round() as usize;
            let worst = envelope[slice.min(SLICES - 1)].get_or_insert((x, e));
            if e > worst.1 || e.is_nan() {
                *worst = (x, if e.is_nan() { top } else { e });
            }
        }
        let line = envelope.into_iter().flatten().map(|(x, e)| (x, e.max(FLOOR)));
        chart.draw_series(LineSeries::new(line, PALETTE[0].stroke_width(2))).map_err(fail)?;
    }
    root.present().map_err(fail)
}
