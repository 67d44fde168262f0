//! The outputs: a text table, JSON and a hand-written SVG bar chart.

use crate::{stats, Outcome, Settings, WorkloadResult};
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where and when the benchmarks ran.
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub mem_total: String,
    /// `/proc/loadavg`'s 1-minute load when the run started: other work
    /// on the machine skews the figures.
    pub load: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
            .unwrap_or_default();
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_default();
        Machine {
            load,
            date: utc_now(),
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            mem_total,
        }
    }
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// A time in nanoseconds with a fitting unit: (scaled value, unit).
fn scale(ns: f64) -> (f64, &'static str) {
    if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    }
}

fn num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One cell of the table.
fn cell(o: &Outcome) -> String {
    match o {
        Outcome::Times { per_iter_ns, .. } if !per_iter_ns.is_empty() => {
            let s = stats(per_iter_ns);
            let (_, unit) = scale(s.median);
            let f = match unit {
                "ns" => 1.0,
                "µs" => 1e3,
                "ms" => 1e6,
                _ => 1e9,
            };
            format!(
                "{} {unit} [{}–{}]",
                num(s.median / f),
                num(s.min / f),
                num(s.max / f)
            )
        }
        Outcome::Times { .. } => "no samples".into(),
        Outcome::Bytes(b) => format!("{b} B"),
        Outcome::NotImplemented(_) => "not implemented".into(),
        Outcome::NotApplicable => "-".into(),
        Outcome::Failed(_) => "FAILED".into(),
    }
}

/// `a / b` of two outcomes' values, if both have one.
pub fn ratio(a: &Outcome, b: &Outcome) -> Option<f64> {
    match (a.value(), b.value()) {
        (Some(x), Some(y)) if y > 0.0 && x.is_finite() && y.is_finite() => Some(x / y),
        _ => None,
    }
}

/// Two decimals; three significant digits below 0.01 (so a tiny ratio
/// does not read as 0).
fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(
        || "-".into(),
        |r| {
            if r > 0.0 && r < 0.01 {
                format!("{r:.2e}")
            } else {
                format!("{r:.2}")
            }
        },
    )
}

/// The index of Wasmtime, the baseline.
fn baseline(names: &[&str]) -> usize {
    names.iter().position(|n| *n == "wasmtime").unwrap_or(0)
}

/// The text table.
pub fn table(names: &[&str], results: &[WorkloadResult]) -> String {
    let base = baseline(names);
    let mut header: Vec<String> = vec!["workload".into()];
    header.extend(names.iter().map(|n| format!("{n} median [min–max]")));
    let others: Vec<usize> = (0..names.len()).filter(|&i| i != base).collect();
    header.extend(
        others
            .iter()
            .map(|&i| format!("{}/{}", names[i], names[base])),
    );
    let mut rows = vec![header];
    for r in results {
        let mut row = vec![r.name.clone()];
        if let Some(why) = &r.skipped {
            row.push(format!("skipped: {why}"));
            rows.push(row);
            continue;
        }
        row.extend(r.outcomes.iter().map(cell));
        row.extend(
            others
                .iter()
                .map(|&i| ratio_text(ratio(&r.outcomes[i], &r.outcomes[base]))),
        );
        rows.push(row);
    }
    let cols = rows[0].len();
    let mut width = vec![0; cols];
    for row in rows.iter().filter(|r| r.len() == cols) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (k, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, c) in row.iter().enumerate() {
            let pad = width[j].saturating_sub(c.chars().count());
            if j == 0 || row.len() != cols {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if k == 0 {
            let total: usize = width.iter().sum::<usize>() + 2 * (cols - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    // Reasons for "not implemented" and failures, once each.
    let mut notes = Vec::new();
    for r in results {
        for (n, o) in names.iter().zip(&r.outcomes) {
            match o {
                Outcome::NotImplemented(why) => {
                    notes.push(format!("{}: {n}: not implemented ({why})", r.name))
                }
                Outcome::Failed(why) => notes.push(format!("{}: {n}: FAILED: {why}", r.name)),
                _ => {}
            }
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

/// The JSON report: every sample, the statistics and the ratios.
pub fn json(
    names: &[&str],
    versions: &[String],
    results: &[WorkloadResult],
    m: &Machine,
    s: &Settings,
    elapsed: Duration,
) -> String {
    let base = baseline(names);
    let mut o = String::from("{\n");
    let _ = writeln!(o, "  \"date\": {},", json_str(&m.date));
    let _ = writeln!(
        o,
        "  \"machine\": {{\"nproc\": {}, \"cpu\": {}, \"kernel\": {}, \"memory\": {}, \"load_at_start\": {}}},",
        m.nproc,
        json_str(&m.cpu),
        json_str(&m.kernel),
        json_str(&m.mem_total),
        json_str(&m.load)
    );
    let _ = writeln!(
        o,
        "  \"settings\": {{\"quick\": {}, \"samples\": {}, \"target_sample_ms\": {}}},",
        s.quick,
        s.samples,
        s.target.as_millis()
    );
    let _ = writeln!(o, "  \"elapsed_s\": {:.1},", elapsed.as_secs_f64());
    o.push_str("  \"runtimes\": [");
    for (i, (n, v)) in names.iter().zip(versions).enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        let _ = write!(
            o,
            "{sep}{{\"name\": {}, \"version\": {}}}",
            json_str(n),
            json_str(v)
        );
    }
    o.push_str("],\n");
    let _ = writeln!(o, "  \"baseline\": {},", json_str(names[base]));
    o.push_str("  \"workloads\": [\n");
    for (k, r) in results.iter().enumerate() {
        let unit = if r.outcomes.iter().any(|o| matches!(o, Outcome::Bytes(_))) {
            "bytes"
        } else {
            "ns_per_iteration"
        };
        let _ = write!(
            o,
            "    {{\"name\": {}, \"unit\": {}",
            json_str(&r.name),
            json_str(unit)
        );
        if let Some(why) = &r.skipped {
            let _ = write!(o, ", \"skipped\": {}", json_str(why));
        }
        o.push_str(", \"results\": {");
        for (i, (n, out)) in names.iter().zip(&r.outcomes).enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            let _ = write!(o, "{sep}{}: ", json_str(n));
            match out {
                Outcome::Times { per_iter_ns, iters } => {
                    let st = stats(per_iter_ns);
                    let samples: Vec<String> = per_iter_ns.iter().map(|x| json_num(*x)).collect();
                    let _ = write!(
                        o,
                        "{{\"status\": \"ok\", \"median\": {}, \"min\": {}, \"max\": {}, \"iterations_per_sample\": {iters}, \"samples\": [{}]}}",
                        json_num(st.median),
                        json_num(st.min),
                        json_num(st.max),
                        samples.join(", ")
                    );
                }
                Outcome::Bytes(b) => {
                    let _ = write!(o, "{{\"status\": \"ok\", \"bytes\": {b}}}");
                }
                Outcome::NotImplemented(why) => {
                    let _ = write!(
                        o,
                        "{{\"status\": \"not implemented\", \"note\": {}}}",
                        json_str(why)
                    );
                }
                Outcome::NotApplicable => o.push_str("{\"status\": \"not applicable\"}"),
                Outcome::Failed(why) => {
                    let _ = write!(
                        o,
                        "{{\"status\": \"failed\", \"error\": {}}}",
                        json_str(why)
                    );
                }
            }
        }
        o.push_str("}, \"ratios\": {");
        let mut first = true;
        for (i, n) in names.iter().enumerate() {
            if i == base {
                continue;
            }
            let sep = if first { "" } else { ", " };
            first = false;
            let r = ratio(&r.outcomes[i], &r.outcomes[base]);
            let _ = write!(
                o,
                "{sep}\"{n}/{}\": {}",
                names[base],
                r.map_or_else(|| "null".into(), |x| format!("{x:.4}"))
            );
        }
        o.push_str("}}");
        o.push_str(if k + 1 < results.len() { ",\n" } else { "\n" });
    }
    o.push_str("  ]\n}\n");
    o
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Colours of the non-baseline runtimes' bars, in order.
const COLOURS: [&str; 4] = ["#e4572e", "#4c78a8", "#54a24b", "#b279a2"];

/// The chart: one row (bar group) per workload, a bar per non-baseline
/// runtime from the baseline's 1.0 line to its ratio, on a log2 axis.
pub fn svg(
    names: &[&str],
    versions: &[String],
    results: &[WorkloadResult],
    m: &Machine,
    s: &Settings,
) -> String {
    let base = baseline(names);
    let others: Vec<usize> = (0..names.len()).filter(|&i| i != base).collect();
    let rows: Vec<&WorkloadResult> = results.iter().filter(|r| r.skipped.is_none()).collect();

    // Axis range: powers of two covering every ratio and 1.
    let mut lo: f64 = 0.5;
    let mut hi: f64 = 2.0;
    for r in &rows {
        for &i in &others {
            if let Some(x) = ratio(&r.outcomes[i], &r.outcomes[base]) {
                lo = lo.min(x);
                hi = hi.max(x);
            }
        }
    }
    // A little room beyond the extremes for the value labels.
    // Ratios beyond 1/64 or 256 are drawn to the edge and labelled inside.
    let lo_e = ((lo.log2() - 0.4).floor() as i32).max(-6);
    let hi_e = ((hi.log2() + 0.4).ceil() as i32).min(8);

    let label_w = 230.0;
    let plot_x = label_w + 20.0;
    let plot_w = 620.0;
    let value_w = 150.0;
    let width = plot_x + plot_w + value_w;
    let bar_h = 13.0;
    let row_h = bar_h * others.len() as f64 + 10.0;
    let top = 110.0;
    let height = top + row_h * rows.len() as f64 + 70.0;
    let x_of = |r: f64| {
        let e = r.log2().clamp(lo_e as f64, hi_e as f64);
        plot_x + (e - lo_e as f64) / (hi_e - lo_e) as f64 * plot_w
    };

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="24" font-size="17" font-weight="bold">Kiln vs Wasmtime {}: time (or size) relative to Wasmtime</text>"#,
        10,
        xml(&versions[base])
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="44" fill="#555">{} | {} | {} cores, load {} | {} samples{} | log scale, left of 1.0 = faster/smaller than Wasmtime</text>"##,
        xml(&m.date),
        xml(&m.cpu),
        m.nproc,
        xml(&m.load),
        s.samples,
        if s.quick { " (--quick)" } else { "" }
    );
    // Legend.
    let mut lx = 10.0;
    for (k, &i) in others.iter().enumerate() {
        let _ = writeln!(
            o,
            r#"<rect x="{lx}" y="58" width="14" height="11" fill="{}"/><text x="{}" y="68">{} {}</text>"#,
            COLOURS[k % COLOURS.len()],
            lx + 18.0,
            xml(names[i]),
            xml(&versions[i])
        );
        lx += 40.0 + 7.5 * (names[i].len() + versions[i].len()) as f64;
    }
    let _ = writeln!(
        o,
        r#"<line x1="{lx}" y1="63" x2="{}" y2="63" stroke="black" stroke-width="2"/><text x="{}" y="68">{} = 1.0</text>"#,
        lx + 14.0,
        lx + 18.0,
        xml(names[base])
    );

    // Grid and axis labels.
    let plot_top = top - 10.0;
    let plot_bottom = top + row_h * rows.len() as f64;
    for e in lo_e..=hi_e {
        let x = x_of(2f64.powi(e));
        let label = if e >= 0 {
            format!("{}×", 1u64 << e)
        } else {
            format!("1/{}", 1u64 << (-e))
        };
        let _ = writeln!(
            o,
            r##"<line x1="{x:.1}" y1="{plot_top}" x2="{x:.1}" y2="{plot_bottom}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#555">{label}</text><text x="{x:.1}" y="{}" text-anchor="middle" fill="#555">{label}</text>"##,
            plot_top - 4.0,
            plot_bottom + 14.0
        );
    }

    // Rows.
    let mut prev_group = "";
    for (k, r) in rows.iter().enumerate() {
        let y = top + row_h * k as f64;
        let group = r.name.split('/').next().unwrap_or("");
        if k % 2 == 0 {
            let _ = writeln!(
                o,
                r##"<rect x="0" y="{:.1}" width="{width}" height="{row_h}" fill="#f6f6f6"/>"##,
                y - 5.0
            );
        }
        if group != prev_group && k > 0 {
            let _ = writeln!(
                o,
                r##"<line x1="0" y1="{:.1}" x2="{width}" y2="{:.1}" stroke="#999"/>"##,
                y - 5.0,
                y - 5.0
            );
        }
        prev_group = group;
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            label_w + 10.0,
            y + row_h / 2.0 - 1.0,
            xml(&r.name)
        );
        for (j, &i) in others.iter().enumerate() {
            let by = y + bar_h * j as f64;
            let colour = COLOURS[j % COLOURS.len()];
            let x1 = x_of(1.0);
            match ratio(&r.outcomes[i], &r.outcomes[base]) {
                Some(v) => {
                    let x2 = x_of(v);
                    let (x, w) = if x2 >= x1 {
                        (x1, x2 - x1)
                    } else {
                        (x2, x1 - x2)
                    };
                    let _ = writeln!(
                        o,
                        r#"<rect x="{x:.1}" y="{by:.1}" width="{:.1}" height="{}" fill="{colour}"><title>{}: {v:.3}</title></rect>"#,
                        w.max(1.0),
                        bar_h - 2.0,
                        xml(names[i])
                    );
                    let off_scale = v.log2() > hi_e as f64 || v.log2() < lo_e as f64;
                    let (lx, anchor, fill, text) = match (off_scale, x2 >= x1) {
                        (false, true) => (x2 + 3.0, "start", colour, format!("{v:.2}")),
                        (false, false) => (x2 - 3.0, "end", colour, format!("{v:.2}")),
                        (true, true) => (x2 - 3.0, "end", "white", format!("{v:.0} ▶")),
                        (true, false) => (x2 + 3.0, "start", "white", format!("◀ {v:.3}")),
                    };
                    let _ = writeln!(
                        o,
                        r#"<text x="{lx:.1}" y="{:.1}" font-size="10" fill="{fill}" text-anchor="{anchor}">{text}</text>"#,
                        by + bar_h - 4.0
                    );
                }
                None => {
                    let what = match &r.outcomes[i] {
                        Outcome::NotImplemented(_) => Some("not implemented"),
                        Outcome::Failed(_) => Some("FAILED"),
                        _ => None,
                    };
                    if let Some(what) = what {
                        let _ = writeln!(
                            o,
                            r#"<text x="{:.1}" y="{:.1}" font-size="10" fill="{colour}" font-style="italic">{}: {what}</text>"#,
                            x1 + 4.0,
                            by + bar_h - 3.0,
                            xml(names[i])
                        );
                    }
                }
            }
        }
        // The baseline's absolute value, on the right.
        let abs = match &r.outcomes[base] {
            Outcome::Times { per_iter_ns, .. } if !per_iter_ns.is_empty() => {
                let (v, u) = scale(stats(per_iter_ns).median);
                format!("{} = {} {u}", names[base], num(v))
            }
            Outcome::Bytes(b) => format!("{} = {} KiB", names[base], num(*b as f64 / 1024.0)),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            r##"<text x="{}" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
            plot_x + plot_w + 10.0,
            y + row_h / 2.0 - 1.0,
            xml(&abs)
        );
    }
    let x1 = x_of(1.0);
    let _ = writeln!(
        o,
        r#"<line x1="{x1:.1}" y1="{plot_top}" x2="{x1:.1}" y2="{plot_bottom}" stroke="black" stroke-width="2"/>"#
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="{}" fill="#555" font-size="11">Bars: median per iteration (sizes: bytes) divided by Wasmtime's. Generated by cargo xtask bench.</text>"##,
        plot_bottom + 40.0
    );
    o.push_str("</svg>\n");
    o
}
