//! BENCHMARKS.md and its plot, written from one run.

use crate::load::LoadResult;
use std::{fmt::Write as _, path::Path, process::Command};

/// One connection count of one algorithm: both milters.
pub struct Row {
    pub algorithm: &'static str,
    pub connections: usize,
    pub ours: LoadResult,
    pub theirs: LoadResult,
}

/// How the run was made, for the header of the report.
pub struct RunInfo {
    pub command: String,
    pub seconds: f64,
    pub messages: usize,
    pub opendkim: String,
    pub load_before: String,
    pub load_after: String,
    /// The 1,000-connection point: (algorithm, ours, OpenDKIM), with the
    /// peak resident memory of each milter (VmHWM) over the whole run.
    pub thousand: Option<(&'static str, LoadResult, LoadResult)>,
    pub peak_rss_mib: (f64, f64),
}

/// The peak resident memory of process `pid` so far (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The CPU model and count, from /proc/cpuinfo and nproc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, nproc = {nproc}, Linux {}", kernel.trim())
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn table(rows: &[&Row]) -> String {
    let mut t = String::from(
        "| conns | ours msg/s | ours p50 ms | ours p99 ms | ours CPU µs/msg | ours pass \
         | OpenDKIM msg/s | OpenDKIM p50 ms | OpenDKIM p99 ms | OpenDKIM CPU µs/msg \
         | OpenDKIM pass | ours/OpenDKIM msg/s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (o, t2) = (&r.ours, &r.theirs);
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0}% | {:.0} | {:.2} | {:.2} | {:.0} | {:.0}% | {:.2}× |",
            r.connections,
            o.rate(),
            o.pct_ms(0.5),
            o.pct_ms(0.99),
            o.cpu_us_per_msg(),
            o.pass_share() * 100.0,
            t2.rate(),
            t2.pct_ms(0.5),
            t2.pct_ms(0.99),
            t2.cpu_us_per_msg(),
            t2.pass_share() * 100.0,
            o.rate() / t2.rate().max(f64::MIN_POSITIVE),
        );
    }
    t
}

/// Writes `md` (BENCHMARKS.md) and `png` (the plot), the plot's data
/// beside it in `work`.
pub fn write(md: &Path, png: &Path, work: &Path, info: &RunInfo, rows: &[Row]) {
    let algorithms: Vec<&'static str> = rows.iter().fold(Vec::new(), |mut v, r| {
        if !v.contains(&r.algorithm) {
            v.push(r.algorithm);
        }
        v
    });
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks: mailkey-milter beside OpenDKIM\n");
    let _ = writeln!(
        out,
        "Written by `{}` (bench/compare.sh; it installs OpenDKIM and gnuplot \
         with bench/setup.sh). Numbers from one run on a shared machine: \
         compare the two columns of a row, not runs on different days.\n",
        info.command
    );
    let _ = writeln!(out, "- Machine: {}", machine());
    let _ = writeln!(
        out,
        "- Load average before / after the run: {} / {}",
        info.load_before, info.load_after
    );
    let _ = writeln!(out, "- OpenDKIM: {} (Debian package)", info.opendkim);
    let _ = writeln!(
        out,
        "- Each point: {:.1} s of load after all connections are open; \
         {} distinct ~5 KB messages per algorithm, sent round-robin. The load \
         generator (the project's milter client, the same for both) runs on \
         the same cores as the milters.",
        info.seconds, info.messages
    );
    let _ = writeln!(
        out,
        "- mailkey-milter (release build, enforce mode) runs all four checks: \
         mailkey signature, strict SPF and MX against a DNS server on 127.0.0.1 \
         (answers cached after the first message, as in production), peer \
         certificate satisfied by Postfix's verified-certificate macros. It \
         logs one line per message to a file.\n\
         - OpenDKIM (`Mode v`) only verifies the DKIM signature; its keys come \
         from a file (`TestDNSData`), so it sends no DNS query. It logs nothing.\n\
         - CPU µs/msg: user + system time of the milter process \
         (/proc/PID/stat, 10 ms ticks) divided by messages; p50/p99: time from \
         MAIL to the end-of-message reply. \"pass\": share of messages whose \
         Authentication-Results said `mailkey=pass` / `dkim=pass`.\n"
    );
    for a in &algorithms {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.algorithm == *a).collect();
        let _ = writeln!(out, "## {a}\n\n{}", table(&mine));
    }
    if let Some((a, o, t)) = &info.thousand {
        let _ = writeln!(
            out,
            "## 1,000 connections ({a})\n\n\
             | | msg/s | p99 ms | CPU µs/msg | peak RSS over the run (VmHWM) |\n\
             |---|---:|---:|---:|---:|\n\
             | mailkey-milter | {:.0} | {:.2} | {:.0} | {:.1} MiB |\n\
             | OpenDKIM | {:.0} | {:.2} | {:.0} | {:.1} MiB |\n",
            o.rate(),
            o.pct_ms(0.99),
            o.cpu_us_per_msg(),
            info.peak_rss_mib.0,
            t.rate(),
            t.pct_ms(0.99),
            t.cpu_us_per_msg(),
            info.peak_rss_mib.1,
        );
    }
    let png_name = png
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let _ = writeln!(
        out,
        "![messages per second against connections](bench/{png_name})\n"
    );
    std::fs::write(md, out).expect("write BENCHMARKS.md");
    plot(png, work, &algorithms, rows);
}

/// msg/s against connections (log scale), one line per milter and
/// algorithm, drawn by gnuplot.
fn plot(png: &Path, work: &Path, algorithms: &[&str], rows: &[Row]) {
    let mut plots = Vec::new();
    for (i, a) in algorithms.iter().enumerate() {
        let data = work.join(format!("compare-{i}.dat"));
        let text: String = rows
            .iter()
            .filter(|r| r.algorithm == *a)
            .map(|r| {
                format!(
                    "{} {:.1} {:.1}\n",
                    r.connections,
                    r.ours.rate(),
                    r.theirs.rate()
                )
            })
            .collect();
        std::fs::write(&data, text).expect("write plot data");
        let d = data.display();
        plots.push(format!(
            "'{d}' using 1:2 with linespoints lw 2 title 'mailkey-milter, {a}'"
        ));
        plots.push(format!(
            "'{d}' using 1:3 with linespoints lw 2 dt 2 title 'OpenDKIM, {a}'"
        ));
    }
    let script = format!(
        "set terminal pngcairo size 900,560\nset output '{}'\n\
         set title 'Messages per second against concurrent MTA connections'\n\
         set xlabel 'connections'\nset ylabel 'messages/s'\nset logscale x 2\n\
         set yrange [0:*]\nset grid\nset key top left\nplot {}\n",
        png.display(),
        plots.join(", ")
    );
    let gp = work.join("compare.gp");
    std::fs::write(&gp, script).expect("write gnuplot script");
    match Command::new("gnuplot").arg(&gp).status() {
        Ok(s) if s.success() => {}
        other => eprintln!("gnuplot failed ({other:?}); run bench/setup.sh"),
    }
}
