//! Renders results as Markdown tables and the fan-out chart as a small,
//! hand-written SVG (two line charts, no plotting crate).

use std::fmt::Write as _;

use crate::{
    client::Percentiles,
    procfs::CpuUse,
    scenarios::{ApplyResult, FanoutResult, IsolationResult, SlowPhase, SlowResult},
};

fn opt(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$}"))
}

fn cpu(c: Option<CpuUse>) -> String {
    match c {
        Some(c) => format!(
            "{:.0} (engine {}, rest {})",
            c.total,
            opt(c.engine, 0),
            opt(c.server(), 0)
        ),
        None => "n/a".to_owned(),
    }
}

fn pct(p: &Percentiles) -> String {
    format!("{:.1} / {:.1} / {:.1}", p.p50, p.p99, p.p999)
}

/// Engine isolation: one row per window pair, then the means.
pub fn isolation_table(results: &[IsolationResult]) -> String {
    let mut s = String::from(
        "| load | pair | idle TPS | load TPS | load/idle | commands ok/s | command p50 / p99 / p99.9 ms | sent late p99 ms | RESOURCE_EXHAUSTED | other errors | subscribers live | deliveries/s | staleness p50 / p99 / p99.9 ms | server CPU % idle | server CPU % load | load generator CPU % |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let label = format!(
            "{} {} cmd/s + {} subs, {} s windows",
            r.server_label,
            r.args.rate,
            r.args.subscribers,
            r.args.window.as_secs_f64()
        );
        for (i, p) in r.pairs.iter().enumerate() {
            let ratio = if p.idle.tps > 0.0 {
                p.load.tps / p.idle.tps
            } else {
                f64::NAN
            };
            let _ = writeln!(
                s,
                "| {label} | {} | {:.1} | {:.1} | {ratio:.3} | {:.0} | {} | {:.1} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                i + 1,
                p.idle.tps,
                p.load.tps,
                p.commands.ok as f64 / r.args.window.as_secs_f64(),
                pct(&p.commands.latency),
                p.commands.late.p99,
                p.commands.exhausted,
                p.commands.other_errors(),
                p.live,
                p.deliveries_per_s,
                if p.live > 0 {
                    pct(&p.staleness)
                } else {
                    "–".to_owned()
                },
                cpu(p.idle_cpu),
                cpu(p.load_cpu),
                opt(p.bench_cpu, 0),
            );
        }
        let (idle, load, ratio) = r.summary();
        let _ = writeln!(
            s,
            "| **{label}** | **mean** | **{idle:.1}** | **{load:.1}** | **{ratio:.3}** | | | | | | | | | | | |"
        );
    }
    s
}

/// ApplyCommand: one row per run.
pub fn apply_table(results: &[ApplyResult]) -> String {
    let mut s = String::from(
        "| server | mode | applied/s | RESOURCE_EXHAUSTED | other errors | p50 ms | p99 ms | p99.9 ms | max ms | sent late p99 ms | engine TPS | tick ms | p99 target (tick + 1 ms) | p99 met | server CPU % |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let mode = match (r.args.rate, r.args.concurrency) {
            (Some(rate), _) => format!("open loop {rate} /s"),
            (_, Some(n)) => format!("closed loop, {n} callers"),
            _ => "?".to_owned(),
        };
        let target = r.tick_ms() + 1.0;
        let l = &r.window.latency;
        let _ = writeln!(
            s,
            "| {} | {mode} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {} | {} |",
            r.label,
            r.throughput(),
            r.window.exhausted,
            if r.window.errors.is_empty() {
                "0".to_owned()
            } else {
                format!("{:?}", r.window.errors)
            },
            l.p50,
            l.p99,
            l.p999,
            l.max,
            r.window.late.p99,
            r.tps.tps,
            r.tick_ms(),
            target,
            if l.p99 <= target { "yes" } else { "no" },
            cpu(r.cpu),
        );
    }
    s
}

/// Fan-out: one row per subscriber count.
pub fn fanout_table(results: &[FanoutResult]) -> String {
    let mut s = String::from(
        "| server | subscribers | live / failed | ramp s | deliveries/s (ideal) | delivered % | staleness p50 / p99 / p99.9 ms | max ms | publish→receipt p50 / p99 / p99.9 ms (10 ms probe) | waited for its interval or its group's turn (fleet p50 − probe p50), ms | TPS idle → during (ratio) | server CPU % of a core | network CPU µs per delivery | load generator CPU % | RSS idle → during MiB | RSS per subscriber KiB | encoded | delivered | delivered / encoded |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let ideal = r.args.subscribers as f64 * 1000.0 / f64::from(r.args.interval_ms.max(1));
        let mib = |k: Option<u64>| opt(k.map(|k| k as f64 / 1024.0), 1);
        let (enc, del, ratio) = match r.stats {
            Some(d) => (
                d.encoded.to_string(),
                d.delivered.to_string(),
                format!("{:.0}", d.delivered as f64 / d.encoded.max(1) as f64),
            ),
            None => ("n/a".into(), "n/a".into(), "n/a".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} | {:.1} | {:.0} ({ideal:.0}) | {:.1} | {} | {:.1} | {} | {:.1} | {:.1} → {:.1} ({:.3}) | {} | {} | {} | {} → {} | {} | {enc} | {del} | {ratio} |",
            r.server_label,
            r.args.subscribers,
            r.live,
            r.failed,
            r.ramp_s,
            r.deliveries_per_s,
            100.0 * r.deliveries_per_s / ideal.max(1.0),
            pct(&r.staleness),
            r.staleness.max,
            pct(&r.transit),
            (r.staleness.p50 - r.transit.p50).max(0.0),
            r.idle_tps.tps,
            r.tps.tps,
            if r.idle_tps.tps > 0.0 {
                r.tps.tps / r.idle_tps.tps
            } else {
                f64::NAN
            },
            cpu(r.cpu),
            opt(r.cpu_per_delivery_us(), 1),
            opt(r.bench_cpu, 0),
            mib(r.rss_idle_kib),
            mib(r.rss_kib),
            opt(r.rss_per_subscriber().map(|b| b / 1024.0), 1),
        );
    }
    s
}

fn phase_row(name: &str, p: &SlowPhase) -> String {
    format!(
        "| {name} | {:.0} | {} | {:.1} | {:.1} | {} |\n",
        p.deliveries_per_s,
        pct(&p.staleness),
        p.staleness.max,
        p.tps.tps,
        cpu(p.cpu)
    )
}

/// Slow readers: the healthy subscribers before and after, and RSS over time.
pub fn slow_section(r: &SlowResult) -> String {
    let mut s = format!(
        "{} healthy subscribers live (of {}); {} slow streams opened (of {}) in {:.1} s; \
         server reported {} open streams with the slow readers in place.\n\n",
        r.healthy_live,
        r.args.healthy,
        r.slow_opened,
        r.args.slow,
        r.slow_open_s,
        r.active_subscribers
            .map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
    );
    s.push_str(
        "| phase | healthy deliveries/s | healthy staleness p50 / p99 / p99.9 ms | max ms | engine TPS | server CPU % of a core |\n|---|---|---|---|---|---|\n",
    );
    s.push_str(&phase_row("healthy only", &r.baseline));
    s.push_str(&phase_row("with slow readers", &r.with_slow));
    let ratio = |a: f64, b: f64| if a > 0.0 { b / a } else { f64::NAN };
    let _ = write!(
        s,
        "\nWith/without: TPS ratio {:.3}, healthy p99 staleness ratio {:.2}.\n\n",
        ratio(r.baseline.tps.tps, r.with_slow.tps.tps),
        ratio(r.baseline.staleness.p99, r.with_slow.staleness.p99),
    );
    s.push_str("Server RSS twice a second (t = 0 at the start of the healthy-only window; ");
    let _ = writeln!(
        s,
        "slow readers added at t = {:.1} s; idle RSS before any subscriber {} MiB):\n",
        r.slow_at_s,
        opt(r.rss_idle_kib.map(|k| k as f64 / 1024.0), 1)
    );
    s.push_str("| t s | RSS MiB |\n|---|---|\n");
    for (t, kib) in &r.rss_series {
        let _ = writeln!(s, "| {t:.1} | {:.1} |", *kib as f64 / 1024.0);
    }
    s
}

/// One line of a chart: name, colour, dash pattern, points.
type Series = (String, &'static str, &'static str, Vec<(f64, f64)>);

/// Staleness p50/p99 and server CPU against subscribers, as an SVG; one
/// solid line per figure for the first server configuration, dashed for
/// the second.
pub fn fanout_svg(results: &[FanoutResult]) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for r in results {
        if !labels.contains(&r.server_label.as_str()) {
            labels.push(&r.server_label);
        }
    }
    let mut staleness: Vec<Series> = Vec::new();
    let mut cpu_lines: Vec<Series> = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let dash = if i == 0 { "" } else { "6 4" };
        let rs: Vec<&FanoutResult> = results
            .iter()
            .filter(|r| r.server_label == *label)
            .collect();
        let line = |f: &dyn Fn(&FanoutResult) -> f64| -> Vec<(f64, f64)> {
            rs.iter()
                .map(|r| (r.args.subscribers as f64, f(r)))
                .collect()
        };
        staleness.push((
            format!("p50 {label}"),
            "#1f77b4",
            dash,
            line(&|r| r.staleness.p50),
        ));
        staleness.push((
            format!("p99 {label}"),
            "#d62728",
            dash,
            line(&|r| r.staleness.p99),
        ));
        cpu_lines.push((
            format!("whole process {label}"),
            "#2ca02c",
            dash,
            line(&|r| r.cpu.map_or(f64::NAN, |c| c.total)),
        ));
        cpu_lines.push((
            format!("without engine thread {label}"),
            "#9467bd",
            dash,
            line(&|r| r.cpu.and_then(|c| c.server()).unwrap_or(f64::NAN)),
        ));
    }
    let mut svg = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"470\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"960\" height=\"470\" fill=\"white\"/>\n",
    );
    panel(
        &mut svg,
        0.0,
        "Staleness vs subscribers (10 Hz each)",
        "ms",
        &staleness,
        Some((100.0, "p99 target 100 ms")),
    );
    panel(
        &mut svg,
        480.0,
        "Server CPU vs subscribers",
        "% of one core",
        &cpu_lines,
        None,
    );
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    unit: &str,
    series: &[Series],
    target: Option<(f64, &str)>,
) {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, _, _, pts)| pts.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (left, top, width, height) = (x0 + 60.0, 40.0, 390.0, 290.0);
    let x_max = xs.iter().copied().fold(1.0_f64, f64::max) * 1.05;
    let mut y_max = series
        .iter()
        .flat_map(|(_, _, _, pts)| pts.iter().map(|p| p.1))
        .filter(|y| y.is_finite())
        .fold(1.0_f64, f64::max);
    if let Some((t, _)) = target {
        y_max = y_max.max(t);
    }
    y_max *= 1.1;
    let px = |x: f64| left + x / x_max * width;
    let py = |y: f64| top + height - y / y_max * height;
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"22\" font-size=\"14\" font-weight=\"bold\">{title}</text>",
        left
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>",
        top + height,
        left + width,
        top + height,
        top + height
    );
    let step = nice_step(y_max / 5.0);
    for i in 0..=10 {
        let y = step * f64::from(i);
        if y > y_max {
            break;
        }
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{y:.0}</text>",
            py(y),
            left + width,
            left - 6.0,
            py(y) + 4.0
        );
    }
    for &x in &xs {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x:.0}</text>",
            px(x),
            top + height + 16.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">subscribers</text>\
         <text x=\"{}\" y=\"{}\" transform=\"rotate(-90 {} {})\" text-anchor=\"middle\">{unit}</text>",
        left + width / 2.0,
        top + height + 34.0,
        x0 + 16.0,
        top + height / 2.0,
        x0 + 16.0,
        top + height / 2.0
    );
    if let Some((t, label)) = target {
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>\
             <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"#d62728\">{label}</text>",
            py(t),
            left + width,
            py(t) - 4.0
        );
    }
    for (i, (name, colour, dash, pts)) in series.iter().enumerate() {
        let points: Vec<String> = pts
            .iter()
            .filter(|(_, y)| y.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let ly = top + height + 56.0 + 16.0 * i as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{0}\" y1=\"{ly}\" x2=\"{1}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{2}\" y=\"{3}\">{name}</text>",
            left + 10.0,
            left + 30.0,
            left + 36.0,
            ly + 4.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::nice_step;

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(13.0), 20.0);
        assert_eq!(nice_step(60.0), 100.0);
        assert_eq!(nice_step(450.0), 500.0);
    }
}
