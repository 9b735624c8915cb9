//! Reports: the one place that knows how a benchmark result is laid out on disk and on screen.
//!
//! Every benchmark builds a [`Report`] (its raw rows, the medians, a summary of ratios and verdicts, and
//! plots) and this module writes it under one directory: `rows.csv` (every repeat), `summary.json`
//! (machine facts, exact command line, options, rows, medians, summary, notes) and one SVG per plot. It
//! also renders the compact human table printed to stdout.

use crate::stats::human_size;
use crate::sys::{Machine, utc_timestamp};
use anyhow::{Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One value of a table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// A count.
    Int(u64),
    /// A measurement or ratio (NaN is written as empty in CSV, null in JSON, `-` on screen).
    Float(f64),
    /// A name (mode, network, ...).
    Text(String),
}

impl From<u64> for Cell {
    fn from(v: u64) -> Cell {
        Cell::Int(v)
    }
}
impl From<usize> for Cell {
    fn from(v: usize) -> Cell {
        Cell::Int(v as u64)
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Cell {
        Cell::Float(v)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Cell {
        Cell::Text(v.to_string())
    }
}
impl From<String> for Cell {
    fn from(v: String) -> Cell {
        Cell::Text(v)
    }
}

impl Cell {
    /// The value as a float (text reads as NaN).
    pub fn as_f64(&self) -> f64 {
        match self {
            Cell::Int(v) => *v as f64,
            Cell::Float(v) => *v,
            Cell::Text(_) => f64::NAN,
        }
    }

    fn csv(&self) -> String {
        match self {
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) if v.is_finite() => format!("{v}"),
            Cell::Float(_) => String::new(),
            Cell::Text(s) if s.contains([',', '"', '\n']) => format!("\"{}\"", s.replace('"', "\"\"")),
            Cell::Text(s) => s.clone(),
        }
    }

    fn human(&self) -> String {
        match self {
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) if !v.is_finite() => "-".into(),
            Cell::Float(v) if v.abs() >= 100.0 => format!("{v:.0}"),
            Cell::Float(v) if v.abs() >= 10.0 => format!("{v:.1}"),
            Cell::Float(v) => format!("{v:.2}"),
            Cell::Text(s) => s.clone(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Int(v) => json!(v),
            // serde_json has no NaN: a missing measurement is null.
            Cell::Float(v) if v.is_finite() => json!(v),
            Cell::Float(_) => Value::Null,
            Cell::Text(s) => json!(s),
        }
    }
}

/// Named columns and rows of cells.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Column names (CSV header, JSON keys).
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[&str]) -> Table {
        Table { columns: columns.iter().map(|c| c.to_string()).collect(), rows: Vec::new() }
    }

    /// Appends a row; it must have one cell per column.
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len(), "row width");
        self.rows.push(row);
    }

    /// Index of column `name`.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// CSV with a header line.
    pub fn to_csv(&self) -> String {
        let mut s = self.columns.join(",");
        s.push('\n');
        for r in &self.rows {
            s.push_str(&r.iter().map(Cell::csv).collect::<Vec<_>>().join(","));
            s.push('\n');
        }
        s
    }

    /// An array of objects, one per row.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    Value::Object(self.columns.iter().cloned().zip(r.iter().map(Cell::json)).collect::<Map<_, _>>())
                })
                .collect(),
        )
    }

    /// A GitHub-flavoured markdown table (`|` in cells escaped; NaN as `-`).
    pub fn render_markdown(&self) -> String {
        let esc = |v: &str| v.replace('|', "\\|");
        let mut out = format!("| {} |\n", self.columns.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "));
        let _ = writeln!(out, "|{}", self.columns.iter().map(|_| "---|").collect::<String>());
        for r in &self.rows {
            let _ = writeln!(out, "| {} |", r.iter().map(|c| esc(&c.human())).collect::<Vec<_>>().join(" | "));
        }
        out
    }

    /// Aligned text: text columns left, numbers right.
    pub fn render(&self) -> String {
        let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.iter().map(Cell::human).collect()).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| cells.iter().map(|r| r[i].len()).chain([self.columns[i].len()]).max().unwrap_or(0))
            .collect();
        let left: Vec<bool> =
            (0..self.columns.len()).map(|i| self.rows.first().is_some_and(|r| matches!(r[i], Cell::Text(_)))).collect();
        let mut out = String::new();
        let line =
            |out: &mut String, vals: &[String]| {
                let parts: Vec<String> =
                    vals.iter()
                        .enumerate()
                        .map(|(i, v)| {
                            if left[i] { format!("{v:<w$}", w = widths[i]) } else { format!("{v:>w$}", w = widths[i]) }
                        })
                        .collect();
                let _ = writeln!(out, "  {}", parts.join("  ").trim_end());
            };
        line(&mut out, &self.columns);
        for r in &cells {
            line(&mut out, r);
        }
        out
    }
}

/// One line of a plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// (x, y) points in x order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One SVG line plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    /// File name inside the report directory (`*.svg`).
    pub file: String,
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Logarithmic x (sizes spanning decades); ticks at powers of two.
    pub log_x: bool,
    /// Logarithmic y (costs spanning decades).
    pub log_y: bool,
    /// X values are byte counts: label ticks as 4K, 1M.
    pub x_bytes: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// A benchmark's complete result, ready to be written and printed.
#[derive(Clone, Debug)]
pub struct Report {
    /// Benchmark name (`recv-cutover`, `zerocopy`, ...).
    pub bench: String,
    /// When the run started (UTC, `YYYYMMDDTHHMMSSZ`).
    pub started_utc: String,
    /// The exact command line.
    pub command: Vec<String>,
    /// The configuration that produced the rows.
    pub options: Value,
    /// Every measurement, one row per configuration and repeat.
    pub rows: Table,
    /// Medians over repeats, one row per configuration: the table printed to stdout.
    pub medians: Table,
    /// Further named tables derived from the medians (printed after them, saved in `summary.json`).
    pub tables: Vec<(String, Table)>,
    /// Ratios and verdicts derived from the medians.
    pub summary: Value,
    /// Sentences for the reader (verdicts, skipped parts); printed and saved.
    pub notes: Vec<String>,
    /// Plots written as SVG.
    pub plots: Vec<Plot>,
}

/// Paths of the files [`Report::write`] produced.
#[derive(Clone, Debug)]
pub struct Written {
    /// The report directory.
    pub dir: PathBuf,
    /// `rows.csv`.
    pub rows_csv: PathBuf,
    /// `summary.json`.
    pub summary_json: PathBuf,
    /// One SVG per plot.
    pub plots: Vec<PathBuf>,
}

/// `results/<bench>-<UTC timestamp>/`, relative to the working directory.
pub fn default_out_dir(bench: &str) -> PathBuf {
    Path::new("results").join(format!("{bench}-{}", utc_timestamp()))
}

impl Report {
    /// An empty report for `bench` run with `options`; the command line is this process's.
    pub fn new(bench: &str, options: Value) -> Report {
        Report {
            bench: bench.to_string(),
            started_utc: utc_timestamp(),
            command: std::env::args().collect(),
            options,
            rows: Table::default(),
            medians: Table::default(),
            tables: Vec::new(),
            summary: Value::Null,
            notes: Vec::new(),
            plots: Vec::new(),
        }
    }

    /// The summary document written as `summary.json`.
    pub fn summary_json(&self) -> Value {
        json!({
            "bench": self.bench,
            "started_utc": self.started_utc,
            "machine": Machine::probe(),
            "command": self.command.join(" "),
            "argv": self.command,
            "options": self.options,
            "rows": self.rows.to_json(),
            "medians": self.medians.to_json(),
            "tables": self.tables.iter().map(|(name, t)| json!({"name": name, "rows": t.to_json()})).collect::<Vec<_>>(),
            "summary": self.summary,
            "notes": self.notes,
            "plots": self.plots.iter().map(|p| p.file.clone()).collect::<Vec<_>>(),
        })
    }

    /// Writes `rows.csv`, `summary.json` and the plots into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<Written> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let rows_csv = dir.join("rows.csv");
        std::fs::write(&rows_csv, self.rows.to_csv()).with_context(|| format!("writing {}", rows_csv.display()))?;
        let summary_json = dir.join("summary.json");
        let text = serde_json::to_string_pretty(&self.summary_json())?;
        std::fs::write(&summary_json, text + "\n").with_context(|| format!("writing {}", summary_json.display()))?;
        std::fs::write(dir.join("report.md"), self.render_markdown())
            .with_context(|| format!("writing {}", dir.join("report.md").display()))?;
        let mut plots = Vec::new();
        for p in &self.plots {
            let path = dir.join(&p.file);
            render_plot(p, &path).with_context(|| format!("plotting {}", path.display()))?;
            plots.push(path);
        }
        Ok(Written { dir: dir.to_path_buf(), rows_csv, summary_json, plots })
    }

    /// The summary as markdown: the command line, the medians and the other tables, the notes
    /// (what `ferrofabric bench` prints for the benches that ask for it; always written as `report.md`).
    pub fn render_markdown(&self) -> String {
        let mut s =
            format!("## {} ({})\n\n`{}`\n\n### medians\n\n", self.bench, self.started_utc, self.command.join(" "));
        s.push_str(&self.medians.render_markdown());
        for (name, t) in &self.tables {
            let _ = write!(s, "\n### {name}\n\n{}", t.render_markdown());
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }

    /// The human summary: the medians table and the notes.
    pub fn render_text(&self) -> String {
        let mut s = format!("== {} ({})\n", self.bench, self.started_utc);
        s.push_str(&self.medians.render());
        for (name, t) in &self.tables {
            let _ = writeln!(s, "-- {name}");
            s.push_str(&t.render());
        }
        for n in &self.notes {
            let _ = writeln!(s, "* {n}");
        }
        s
    }
}

fn finite_points(p: &Plot) -> impl Iterator<Item = (f64, f64)> + '_ {
    p.series.iter().flat_map(|s| s.points.iter().copied()).filter(|&pt| plottable(p, pt))
}

fn plottable(p: &Plot, (x, y): (f64, f64)) -> bool {
    x.is_finite() && y.is_finite() && (!p.log_x || x > 0.0) && (!p.log_y || y > 0.0)
}

/// Powers of two inside `lo..=hi`, thinned to at most 12 ticks.
fn pow2_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let all: Vec<f64> = (0..63).map(|e| (1u64 << e) as f64).filter(|&v| v >= lo && v <= hi).collect();
    let step = all.len().div_ceil(12).max(1);
    all.into_iter().step_by(step).collect()
}

fn render_plot(p: &Plot, path: &Path) -> Result<()> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 0.0f64);
    for (x, y) in finite_points(p) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        // No data: axis ranges that still draw an (empty) chart.
        (x0, x1, y0, y1) = (1.0, 10.0, 1.0, 10.0);
    }
    if x1 <= x0 {
        x1 = x0 * 2.0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 * 2.0 + 1.0;
    }
    // Margins so end points do not sit on the frame.
    let xr = if p.log_x { x0 / 1.25..x1 * 1.25 } else { x0..x1 };
    let yr_log = y0 / 1.5..y1 * 1.5;
    let yr_lin = 0.0..y1 * 1.1;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let ticks = pow2_ticks(xr.start, xr.end);
    match (p.log_x, p.log_y) {
        (true, true) => draw(&root, p, xr.log_scale().with_key_points(ticks), yr_log.log_scale())?,
        (true, false) => draw(&root, p, xr.log_scale().with_key_points(ticks), yr_lin)?,
        (false, true) => draw(&root, p, xr, yr_log.log_scale())?,
        (false, false) => draw(&root, p, xr, yr_lin)?,
    }
    root.present()?;
    Ok(())
}

fn draw<X, Y>(root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, p: &Plot, x: X, y: Y) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&p.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)?;
    let x_bytes = p.x_bytes;
    let fmt_x = move |v: &f64| if x_bytes { human_size(v.round().max(0.0) as usize) } else { format!("{}", v.round()) };
    let fmt_y = |v: &f64| match v.abs() {
        0.0 => "0".to_string(),
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    };
    chart
        .configure_mesh()
        .x_desc(&p.x_label)
        .y_desc(&p.y_label)
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&fmt_y)
        .draw()?;
    for (i, s) in p.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|&pt| plottable(p, pt)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|pt| Circle::new(pt, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_formats() {
        let mut t = Table::new(&["mode", "n", "gib_s"]);
        t.push(vec!["direct".into(), 4096usize.into(), 1.2345.into()]);
        t.push(vec!["a,b".into(), 0usize.into(), f64::NAN.into()]);
        assert_eq!(t.to_csv(), "mode,n,gib_s\ndirect,4096,1.2345\n\"a,b\",0,\n");
        let j = t.to_json();
        assert_eq!(j[0]["n"], 4096);
        assert!(j[1]["gib_s"].is_null());
        assert!(t.render().contains("direct"));
    }
}
