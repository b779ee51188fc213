//! `mailkey-milter report`: reads the daemon's JSON logs (docs/log-format.md)
//! and says what enforcing each check, and all of them, would have done to
//! the mail of a period — so an operator can switch a check to enforce
//! knowing what it will refuse.

pub(crate) mod aggregate;
pub mod evidence;
pub mod lookup;
pub mod parse;
pub(crate) mod render_html;
pub(crate) mod render_text;

use crate::{config::DnsConfig, dns::Dns, rfc3339 as time};
use aggregate::{Aggregate, Summary};
use clap::Args;
use std::{collections::BTreeSet, path::PathBuf, process::ExitCode};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: cannot read")]
    Read {
        path: String,
        line: u64,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {why}")]
    Line {
        path: String,
        line: u64,
        why: String,
    },
    #[error(
        "{option} {value:?}: not an RFC 3339 date (2026-11-23) or date-time (2026-11-23T08:00:00Z)"
    )]
    Bound { option: &'static str, value: String },
    #[error("cannot write {path}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("--lookup: {0}")]
    Lookup(String),
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// JSON log files (gzip'd or not; several hosts at once); `-` is stdin.
    #[arg(required = true, value_name = "FILES")]
    pub files: Vec<String>,
    /// Only messages from this date (2026-11-01) or date-time (RFC 3339) on.
    #[arg(long)]
    pub since: Option<String>,
    /// Only messages before this date-time, or up to the end of this date.
    #[arg(long)]
    pub until: Option<String>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page with a per-day chart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Look up what the top sender domains publish now (mailkey, SPF, MX).
    #[arg(long)]
    pub lookup: bool,
    /// How many top domains and networks to list per check.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

fn bound(
    option: &'static str,
    value: Option<&str>,
    until: bool,
) -> Result<Option<time::Nanos>, ReportError> {
    value
        .map(|v| {
            time::parse_bound(v, until).ok_or_else(|| ReportError::Bound {
                option,
                value: v.into(),
            })
        })
        .transpose()
}

/// Reads the files and counts (no output).
pub(crate) fn summarize(args: &ReportArgs) -> Result<(Summary, parse::Skipped), ReportError> {
    let since = bound("--since", args.since.as_deref(), false)?;
    let until = bound("--until", args.until.as_deref(), true)?;
    let mut aggregate = Aggregate::new(since, until);
    let mut skipped = parse::Skipped::default();
    for file in &args.files {
        parse::read(file, |r| aggregate.add(&r), &mut skipped)?;
    }
    Ok((aggregate.summary(args.files.clone(), args.top), skipped))
}

/// Every domain named in a top list, once.
fn top_domains(summary: &Summary) -> Vec<String> {
    let set: BTreeSet<&str> = summary
        .impact
        .iter()
        .flat_map(|i| i.top_domains.iter().map(|c| c.name.as_str()))
        .filter(|d| *d != "(none)")
        .collect();
    set.into_iter().map(String::from).collect()
}

async fn lookups(
    dns: &DnsConfig,
    domains: &[String],
) -> Result<Vec<lookup::DomainState>, ReportError> {
    let dns = Dns::new(dns).map_err(|e| ReportError::Lookup(e.to_string()))?;
    let mut out = Vec::new();
    for d in domains {
        out.push(lookup::domain(&dns, d).await);
    }
    Ok(out)
}

/// The subcommand: `dns` is the configuration's resolver, for `--lookup`.
pub fn run(dns: &DnsConfig, args: &ReportArgs) -> Result<ExitCode, ReportError> {
    let (mut summary, skipped) = summarize(args)?;
    if skipped.not_json > 0 {
        eprintln!(
            "mailkey-milter report: skipped {} line{} that {} not JSON \
             (the report reads logs written with log_format = \"json\")",
            skipped.not_json,
            if skipped.not_json == 1 { "" } else { "s" },
            if skipped.not_json == 1 { "is" } else { "are" }
        );
    }
    if args.lookup {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ReportError::Lookup(e.to_string()))?;
        summary.lookup = Some(runtime.block_on(lookups(dns, &top_domains(&summary)))?);
    }
    if let Some(path) = &args.html {
        std::fs::write(path, render_html::page(&summary)).map_err(|source| ReportError::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else {
        print!("{}", render_text::text(&summary));
    }
    Ok(ExitCode::SUCCESS)
}
