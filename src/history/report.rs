//! The backup report: one self-contained HTML page (inline CSS and SVG, no
//! script, no font, no address outside the file) with, per phone, the
//! verdict, the backup's size over time, each run's duration and rate,
//! stalls by cause, and the days since the last complete backup against
//! the reminder. The charts are drawn by `plotters` (its SVG backend): a
//! maintained charting crate whose SVG needs nothing at view time.

use std::fmt::Write as _;

use jiff::Timestamp;
use plotters::prelude::*;

use super::summary::{self, PhoneHistory};
use super::{Outcome, Run};
use crate::humanize;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 240;
const BLUE: RGBColor = RGBColor(0x2b, 0x6c, 0xb0);
const RED: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);

/// The report for `runs` (oldest first) at `now`.
pub fn html(
    now: Timestamp,
    runs: &[Run],
    overdue_days: i64,
    known_complete: impl Fn(&str) -> Option<Timestamp>,
) -> String {
    let phones = summary::per_phone(now, runs, overdue_days, known_complete);
    let mut out = String::with_capacity(64 * 1024);
    out.push_str(HEAD);
    let _ = write!(
        out,
        "<h1>iPhone backups</h1>\n<p class=\"when\">Made by Unstuck on {}.</p>\n",
        escape(&local(now))
    );
    if phones.is_empty() {
        out.push_str(
            "<p>No backups are in the history yet. Unstuck remembers every backup it makes or \
             watches from now on.</p>\n",
        );
    }
    for phone in &phones {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.udid == phone.udid).collect();
        section(&mut out, now, phone, &mine, overdue_days);
    }
    out.push_str("</body>\n</html>\n");
    out
}

const HEAD: &str = "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\" />
<title>iPhone backups — Unstuck</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.6em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.verdict { font-size: 1.2em; }
.overdue { color: #c0392b; }
.when, .udid { color: #666; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figcaption { font-weight: 600; margin-bottom: .3em; }
table { border-collapse: collapse; margin-top: 1em; }
td, th { padding: .2em .8em; border-bottom: 1px solid #eee; text-align: left; }
</style>
</head>
<body>
";

fn section(out: &mut String, now: Timestamp, p: &PhoneHistory, runs: &[&Run], overdue_days: i64) {
    let name = p.name.as_deref().unwrap_or("An iPhone");
    let _ = write!(
        out,
        "<section>\n<h2>{}</h2>\n<p class=\"udid\">{}</p>\n<p class=\"verdict{}\">{}</p>\n",
        escape(name),
        escape(&p.udid),
        if p.overdue { " overdue" } else { "" },
        escape(&p.verdict)
    );
    out.push_str("<div class=\"charts\">\n");
    figure(out, "Backup size", &size_chart(runs));
    figure(out, "Duration and rate of each run", &runs_chart(runs));
    figure(out, "Stalls by cause", &causes_chart(p));
    figure(
        out,
        "Days since the last complete backup",
        &overdue_chart(p, overdue_days),
    );
    out.push_str("</div>\n");
    table(out, now, runs);
    out.push_str("</section>\n");
}

fn figure(out: &mut String, caption: &str, svg: &str) {
    let _ = write!(
        out,
        "<figure><figcaption>{}</figcaption>\n{}\n</figure>\n",
        escape(caption),
        svg
    );
}

/// The newest runs as a table.
fn table(out: &mut String, now: Timestamp, runs: &[&Run]) {
    out.push_str(
        "<table>\n<tr><th>Started</th><th>Program</th><th>Outcome</th><th>Length</th>\
         <th>Data</th><th>Stalls</th></tr>\n",
    );
    for run in runs.iter().rev().take(20) {
        let outcome = match (run.outcome, run.error_code) {
            (Outcome::Failed, Some(code)) => format!("failed (error {code})"),
            (o, _) => o.name().to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&humanize::ago(now, run.started)),
            escape(&run.program),
            escape(&outcome),
            escape(&humanize::duration(run.ended.duration_since(run.started))),
            escape(&humanize::bytes(run.bytes)),
            run.stalls.len()
        );
    }
    out.push_str("</table>\n");
}

/// An SVG chart drawn by `draw` into a string; a failure to draw leaves a
/// note in its place (the rest of the report stands).
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> String {
    let mut text = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut text, (WIDTH, HEIGHT)).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root));
        drawn.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => text,
        Err(e) => format!("<p>This chart could not be drawn: {}</p>", escape(&e)),
    }
}

fn empty(message: &str) -> String {
    svg(|root| {
        root.draw(&Text::new(
            message.to_owned(),
            (20, (HEIGHT / 2) as i32),
            ("sans-serif", 16).into_font().color(&GREY),
        ))
        .map_err(|e| e.to_string())
    })
}

/// Days since the first run, for a time axis.
fn day_of(first: Timestamp, t: Timestamp) -> f64 {
    t.duration_since(first).as_secs_f64() / 86_400.0
}

fn date_label(first: Timestamp, day: f64) -> String {
    let t = first + jiff::SignedDuration::from_secs_f64(day * 86_400.0);
    t.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%b %d")
        .to_string()
}

/// The backup's size after each complete run (where known), else the data
/// each run wrote.
fn size_chart(runs: &[&Run]) -> String {
    let sized: Vec<(Timestamp, u64)> = runs
        .iter()
        .filter(|r| r.outcome == Outcome::Complete)
        .filter_map(|r| r.size.map(|s| (r.ended, s)))
        .collect();
    let (points, what) = if sized.is_empty() {
        (
            runs.iter().map(|r| (r.ended, r.bytes)).collect::<Vec<_>>(),
            "data written per run",
        )
    } else {
        (sized, "size of the complete backup")
    };
    let Some(first) = points.first().map(|p| p.0) else {
        return empty("No runs yet.");
    };
    let last = points
        .iter()
        .map(|p| day_of(first, p.0))
        .fold(0.0, f64::max);
    let top = points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64 * 1.1;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..last.max(1.0), 0.0..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|d| date_label(first, *d))
            .y_label_formatter(&|b| humanize::bytes(*b as u64))
            .y_desc(what)
            .draw()
            .map_err(|e| e.to_string())?;
        let series: Vec<(f64, f64)> = points
            .iter()
            .map(|(t, b)| (day_of(first, *t), *b as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(series.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Each run's length in minutes (bars, red when it did not complete) and
/// its average rate in MB/s (a line on the right-hand axis's scale).
fn runs_chart(runs: &[&Run]) -> String {
    if runs.is_empty() {
        return empty("No runs yet.");
    }
    let minutes: Vec<f64> = runs
        .iter()
        .map(|r| r.ended.duration_since(r.started).as_secs_f64() / 60.0)
        .collect();
    let rates: Vec<f64> = runs
        .iter()
        .map(|r| r.average_rate.unwrap_or(0.0) / 1e6)
        .collect();
    let top_minutes = minutes.iter().copied().fold(1.0, f64::max) * 1.1;
    let top_rate = rates.iter().copied().fold(0.1, f64::max) * 1.1;
    let n = runs.len();
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .right_y_label_area_size(50)
            .build_cartesian_2d(0.0..n as f64, 0.0..top_minutes)
            .map_err(|e| e.to_string())?
            .set_secondary_coord(0.0..n as f64, 0.0..top_rate);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(10) + 1)
            .x_label_formatter(&|i| {
                whole(*i)
                    .filter(|i| *i < n)
                    .map_or(String::new(), |i| format!("{}", i + 1))
            })
            .x_desc("run")
            .y_desc("minutes")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .configure_secondary_axes()
            .y_desc("MB/s")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(runs.iter().zip(&minutes).enumerate().map(|(i, (r, m))| {
                let colour = if r.outcome == Outcome::Complete {
                    BLUE.mix(0.6).filled()
                } else {
                    RED.mix(0.7).filled()
                };
                Rectangle::new([(i as f64 + 0.15, 0.0), (i as f64 + 0.85, *m)], colour)
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_secondary_series(LineSeries::new(
                rates.iter().enumerate().map(|(i, r)| (i as f64 + 0.5, *r)),
                BLACK.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// How many stalls each cause had, as bars.
fn causes_chart(p: &PhoneHistory) -> String {
    if p.stalls_by_cause.is_empty() {
        return empty("No stalls: every backup moved on its own.");
    }
    let labels: Vec<String> = p
        .stalls_by_cause
        .iter()
        .map(|(c, _)| c.headline().to_owned())
        .collect();
    let n = labels.len();
    let top = p.stalls_by_cause.iter().map(|(_, n)| *n).max().unwrap_or(1) as f64 * 1.15;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(8)
            .build_cartesian_2d(0.0..top, 0.0..n as f64)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("stalls")
            .x_label_formatter(&|x| whole(*x).map_or(String::new(), |x| x.to_string()))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(p.stalls_by_cause.iter().enumerate().map(|(i, (_, count))| {
                let y = (n - 1 - i) as f64;
                Rectangle::new(
                    [(0.0, y + 0.2), (*count as f64, y + 0.8)],
                    RED.mix(0.6).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(p.stalls_by_cause.iter().zip(&labels).enumerate().map(
                |(i, ((_, count), label))| {
                    let y = (n - 1 - i) as f64 + 0.5;
                    Text::new(
                        format!("{label} ({count})"),
                        (0.05 * top, y),
                        ("sans-serif", 13).into_font(),
                    )
                },
            ))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// The days since the last complete backup as a bar, against the reminder
/// threshold as a line.
fn overdue_chart(p: &PhoneHistory, overdue_days: i64) -> String {
    let days = p.days_since_complete.unwrap_or(overdue_days * 2) as f64;
    let top = days.max(overdue_days as f64) * 1.3 + 1.0;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(8)
            .build_cartesian_2d(0.0..top, 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("days")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let colour = if p.overdue { RED } else { BLUE };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.3), (days.max(0.05), 0.7)],
                colour.mix(0.7).filled(),
            )))
            .map_err(|e| e.to_string())?;
        let at = overdue_days as f64;
        chart
            .draw_series(LineSeries::new(
                [(at, 0.1), (at, 0.9)],
                BLACK.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("reminder after {overdue_days} days"),
                (at, 0.95),
                ("sans-serif", 13).into_font(),
            )))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// `x` when it is a whole number (an axis of counts labels only those).
fn whole(x: f64) -> Option<usize> {
    (x >= 0.0 && (x - x.round()).abs() < 1e-9).then_some(x.round() as usize)
}

fn local(t: Timestamp) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// Text made safe for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::Cause;
    use crate::history::{Stall, StallEnd};
    use crate::stall::Phase;

    fn at(days: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + days * 86_400).unwrap()
    }

    fn runs() -> Vec<Run> {
        (0..12)
            .map(|d| Run {
                udid: "00008120-001A2B3C4D5E6F70".into(),
                name: Some("Ann's <iPhone> & co".into()),
                program: if d % 3 == 0 {
                    "idevicebackup2"
                } else {
                    "unstuck"
                }
                .into(),
                started: at(d),
                ended: at(d) + jiff::SignedDuration::from_mins(10 + d),
                outcome: if d == 5 {
                    Outcome::Failed
                } else {
                    Outcome::Complete
                },
                bytes: 100_000_000 * (d as u64 + 1),
                files: Some(1000),
                average_rate: Some(5e6 + d as f64 * 1e5),
                slowest_rate: None,
                error_code: (d == 5).then_some(105),
                cause: (d == 5).then_some(Cause::HostDiskFull),
                restarts: 0,
                size: (d != 5).then_some(30_000_000_000 + d as u64 * 100_000_000),
                stalls: if d % 4 == 0 {
                    vec![Stall {
                        phase: Phase::Copying,
                        started: at(d),
                        secs: 150,
                        cause: if d == 8 {
                            Cause::Detached
                        } else {
                            Cause::Unknown
                        },
                        ended_by: StallEnd::Restarted,
                    }]
                } else {
                    vec![]
                },
            })
            .collect()
    }

    #[test]
    fn the_report_is_one_well_formed_page_with_nothing_outside_it() {
        let page = html(at(13), &runs(), 7, |_| None);
        // Well formed as XML once the doctype is set aside.
        let body = page.trim_start_matches("<!DOCTYPE html>\n");
        roxmltree::Document::parse(body).expect("well-formed");
        assert!(page.contains("Ann&#39;s &lt;iPhone&gt; &amp; co"));
        assert!(!page.contains("<iPhone>"));
        assert_eq!(page.matches("<svg").count(), 4);
        for outside in [
            "href=", "src=", "https://", "<script", "<link", "@import", "url(",
        ] {
            assert!(!page.contains(outside), "{outside}");
        }
        assert!(
            page.contains("3 stalls this month, all recovered"),
            "{page}"
        );
        let empty = html(at(13), &[], 7, |_| None);
        assert!(empty.contains("No backups are in the history yet"));
    }
}
