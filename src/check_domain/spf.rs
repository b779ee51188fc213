//! check-domain's SPF findings: one record, strict (`-all`), and within the
//! lookup limit. What a given client IP gets is the milter's business; the
//! record is judged here without one.

use super::report::{Findings, Mark};
use crate::{
    checks::spf::is_spf_record,
    dns::{Dns, TxtAnswer},
};

/// RFC 7208 §4.6.4: at most 10 terms that cause DNS lookups.
pub(crate) const SPF_LOOKUP_LIMIT: usize = 10;

pub(super) async fn check(dns: &Dns, domain: &str, f: &mut Findings) {
    let records = match dns.txt(domain).await {
        TxtAnswer::Records(r) => r,
        TxtAnswer::NotFound => Vec::new(),
        TxtAnswer::TempError(e) => {
            f.temporary("spf", format!("lookup of {domain} failed: {e}"));
            return;
        }
    };
    let spf: Vec<String> = records
        .iter()
        .filter(|r| is_spf_record(r))
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    let record = match spf.as_slice() {
        [] => {
            f.add(
                Mark::Fail,
                "spf",
                format!("no SPF record at {domain}; publish e.g. \"v=spf1 mx -all\""),
            );
            return;
        }
        [one] => one,
        more => {
            f.add(
                Mark::Fail,
                "spf",
                format!(
                    "{} SPF records at {domain}: that is a permerror; merge them into one",
                    more.len()
                ),
            );
            return;
        }
    };
    f.add(Mark::Ok, "spf", format!("record: {record}"));
    let mut walk = SpfWalk::default();
    walk.record(dns, record, 0).await;
    match walk.all.as_deref() {
        Some("-all") => f.add(Mark::Ok, "spf", "strict: ends in -all"),
        Some(all) => f.add(
            Mark::Fail,
            "spf",
            format!("not strict: ends in {all}; end it with -all so that forgeries fail"),
        ),
        None => f.add(
            Mark::Fail,
            "spf",
            "not strict: no \"all\" term (unlisted hosts are neutral); end it with -all",
        ),
    }
    if let Some(e) = walk.temp_error {
        f.temporary("spf", format!("could not follow every include: {e}"));
    }
    if walk.lookups > SPF_LOOKUP_LIMIT {
        f.add(
            Mark::Fail,
            "spf",
            format!(
                "about {} DNS lookups, over the limit of {SPF_LOOKUP_LIMIT}: receivers get permerror",
                walk.lookups
            ),
        );
    } else {
        f.add(
            Mark::Ok,
            "spf",
            format!(
                "about {} DNS lookup{} (limit {SPF_LOOKUP_LIMIT})",
                walk.lookups,
                if walk.lookups == 1 { "" } else { "s" }
            ),
        );
    }
}

/// A rough count of an SPF record's DNS lookups (include:, a, mx, ptr,
/// exists:, redirect=, followed into include: and redirect= targets), and
/// the `all` term that decides for unlisted hosts.
#[derive(Default)]
struct SpfWalk {
    lookups: usize,
    all: Option<String>,
    temp_error: Option<String>,
}

impl SpfWalk {
    async fn record(&mut self, dns: &Dns, record: &str, depth: usize) {
        let mut redirect = None;
        for term in record.split_ascii_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            let mech = lower.trim_start_matches(['+', '-', '~', '?']);
            let name = mech.split([':', '/', '=']).next().unwrap_or("");
            match name {
                "include" => {
                    self.lookups += 1;
                    if let Some(target) = mech.strip_prefix("include:") {
                        // An include's own `all` does not end the outer record.
                        let outer_all = self.all.take();
                        self.follow(dns, target, depth).await;
                        self.all = outer_all;
                    }
                }
                "a" | "mx" | "ptr" | "exists" => self.lookups += 1,
                "redirect" => {
                    self.lookups += 1;
                    redirect = mech.strip_prefix("redirect=").map(str::to_string);
                }
                "all" if depth == 0 || self.all.is_none() => self.all = Some(lower.clone()),
                _ => {}
            }
        }
        if let (Some(target), None) = (redirect, &self.all) {
            self.follow(dns, &target, depth).await;
        }
    }

    async fn follow(&mut self, dns: &Dns, target: &str, depth: usize) {
        // Macros (`%{i}`) cannot be expanded without a client; the lookup
        // limit stops loops.
        if target.contains('%') || depth >= SPF_LOOKUP_LIMIT || self.lookups > SPF_LOOKUP_LIMIT {
            return;
        }
        match dns.txt(target).await {
            TxtAnswer::Records(r) => {
                if let Some(record) = r.iter().find(|r| is_spf_record(r)) {
                    let record = String::from_utf8_lossy(record).into_owned();
                    Box::pin(self.record(dns, &record, depth + 1)).await;
                }
            }
            TxtAnswer::NotFound => {}
            TxtAnswer::TempError(e) => self.temp_error = Some(format!("{target}: {e}")),
        }
    }
}
