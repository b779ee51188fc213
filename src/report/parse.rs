//! Reading logs: files, `-` for standard input, gzip'd rotated logs
//! (recognised by their magic bytes, not their name), one JSON object per
//! line. Only per-message lines are kept; startup and other lines pass.

use super::ReportError;
use crate::checks::tls::evidence::{self, Rung};
use crate::rfc3339 as time;
use flate2::bufread::MultiGzDecoder;
use serde::Deserialize;
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
};

/// The newest `log_version` this report reads (see docs/log-format.md),
/// the daemon's; it reads every version from 1 on. Version 1 lines have
/// no TLS evidence fields: they count everywhere but in the evidence
/// tables, where they are "not measured"; a check logged only since a
/// later version ([`crate::checks::Check::logged_since`]) is "not
/// measured" on older lines, and would accept them.
pub const LOG_VERSION: u64 = crate::logging::LOG_VERSION as u64;

/// The checks the report counts, in log order: the registered checks that
/// can refuse a message on their own ([`crate::checks::refusing`]); each
/// logs `<check>.effect`. `effects` of a [`Record`] follow it.
pub fn checks() -> impl Iterator<Item = &'static str> {
    crate::checks::refusing().map(|c| c.name.as_str())
}

/// What each of `checks` would do, from the `<check>.effect` fields of a
/// line of `version`: required from the check's `logged_since` on, "not
/// measured" (accept) on older lines.
fn effects(
    other: &serde_json::Map<String, serde_json::Value>,
    version: u64,
    checks: impl Iterator<Item = &'static crate::checks::Check>,
) -> Result<Vec<(&'static str, Effect)>, LineError> {
    checks
        .map(|check| {
            let name = check.name.as_str();
            if u64::from(check.logged_since) > version {
                return Ok((name, Effect::Accept));
            }
            let field = other.get(&format!("{name}.effect"));
            let effect = match field.and_then(serde_json::Value::as_str) {
                Some("accept") | Some("-") => Effect::Accept,
                Some("reject") => Effect::Reject(()),
                Some("tempfail") => Effect::Tempfail(()),
                Some(other) => {
                    return Err(LineError::Bad(format!(
                        "{name}.effect is {other:?}, not accept, reject, tempfail or -"
                    )))
                }
                None => return Err(LineError::Bad(format!("no {name}.effect field"))),
            };
            Ok((name, effect))
        })
        .collect()
}

/// What one check would do to a message if it were enforced: the daemon's
/// outcome, without the reply code (the log line has only the word).
pub type Effect = crate::reply::Outcome<()>;

/// How the daemon handled the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The checks ran; what each of [`checks`] would do if enforced, by
    /// check name.
    Checked(Vec<(&'static str, Effect)>),
    /// From a trusted client or authenticated: not checked.
    Trusted,
    /// Exempted by configuration: not checked.
    Exempt,
    /// Not a message: a recipient refused at RCPT TO as an invalid SRS
    /// address of ours (or, in monitor mode, that would have been).
    InvalidSrsRecipient,
}

/// One per-message log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// When it was logged.
    pub time: time::Nanos,
    /// The client address, or `local`.
    pub client: String,
    /// The sender domain (`None` for the null sender and address literals).
    pub domain: Option<String>,
    pub kind: Kind,
    /// What a recipient's token or challenge did (`token`, `challenge`).
    pub letting: Letting,
    /// The DKIM2 result (`dkim2=`) of a checked message with a chain, and
    /// whether it makes mailkey reject (`dkim2.effect=reject`); `None` for
    /// `none` and for logs written before DKIM2.
    pub dkim2: Option<(String, bool)>,
    /// The TLS evidence fields of a checked message (version 2 lines).
    pub tls: Option<TlsFacts>,
}

/// The recipients' controls on one line (docs/log-format.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Letting {
    /// Let through by a token.
    pub token: bool,
    /// A refusal that carried a challenge URL.
    pub challenge_offered: bool,
    /// Let through by a solved challenge.
    pub challenge_passed: bool,
    /// The checks would have refused it (`would_reject` is a 5xx).
    pub would_refuse: bool,
}

/// What the certificate check found on each rung (docs/log-format.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    /// `tls.evidence`: the kind that passed, `none`, `plaintext` or `-`.
    pub evidence: String,
    /// Each rung's word, in [`Rung::ALL`] order (`-`: not measured).
    pub rungs: [String; 4],
    /// `org`: the sending organisation.
    pub org: String,
}

impl TlsFacts {
    /// The word `rung` logged.
    pub fn word(&self, rung: Rung) -> &str {
        Rung::ALL
            .iter()
            .position(|r| *r == rung)
            .map_or("-", |i| self.rungs[i].as_str())
    }

    fn from_line(other: &serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        let get = |name: &str| other.get(name).and_then(|v| v.as_str()).map(str::to_string);
        Some(Self {
            evidence: get(evidence::FIELD_EVIDENCE)?,
            rungs: Rung::ALL.map(|r| get(r.field()).unwrap_or_else(|| "-".into())),
            org: get(evidence::FIELD_ORG).unwrap_or_else(|| "unknown".into()),
        })
    }
}

/// The fields the report reads; everything else on the line is ignored.
#[derive(Deserialize)]
struct Line {
    message: Option<String>,
    queue_id: Option<String>,
    log_version: Option<serde_json::Value>,
    timestamp: Option<String>,
    client: Option<String>,
    domain: Option<String>,
    trusted: Option<String>,
    exempt: Option<bool>,
    token: Option<String>,
    token_refused: Option<String>,
    challenge: Option<String>,
    would_reject: Option<String>,
    /// `<check>.effect` and the rest.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// Opens `path` (`-`: standard input), decompressing gzip.
pub fn open(path: &str) -> Result<Box<dyn BufRead>, ReportError> {
    let raw: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(path).map_err(|source| ReportError::Open {
            path: path.into(),
            source,
        })?)
    };
    let mut reader = BufReader::new(raw);
    let magic = reader.fill_buf().map_err(|source| ReportError::Open {
        path: path.into(),
        source,
    })?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        // Multi-member: `cat a.gz b.gz` and some rotators write several.
        Ok(Box::new(BufReader::new(MultiGzDecoder::new(reader))))
    } else {
        Ok(Box::new(reader))
    }
}

/// What the lines of one file held besides per-message lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Not a JSON object (text-format logs, truncated lines).
    pub not_json: u64,
}

/// Reads every line of `path`, handing each per-message record to `sink`.
pub fn read(
    path: &str,
    mut sink: impl FnMut(Record),
    skipped: &mut Skipped,
) -> Result<(), ReportError> {
    let mut reader = open(path)?;
    // Errors name the file; `-` is easier to recognise spelt out.
    let path = if path == "-" { "standard input" } else { path };
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| ReportError::Read {
                path: path.into(),
                line: number + 1,
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        match parse_line(&String::from_utf8_lossy(&buf)) {
            Ok(Some(record)) => sink(record),
            Ok(None) => {}
            Err(LineError::NotJson) => skipped.not_json += 1,
            Err(LineError::Bad(why)) => {
                return Err(ReportError::Line {
                    path: path.into(),
                    line: number,
                    why,
                })
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LineError {
    NotJson,
    Bad(String),
}

/// One line: `Ok(None)` for lines that are not about a message.
pub(crate) fn parse_line(text: &str) -> Result<Option<Record>, LineError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let line: Line = serde_json::from_str(text).map_err(|_| LineError::NotJson)?;
    // Per-message lines are the `message` events that carry a queue ID;
    // `recipient` events are refused recipients (docs/log-format.md).
    let recipient = match line.message.as_deref() {
        Some("message") => false,
        Some("recipient") => true,
        _ => return Ok(None),
    };
    if line.queue_id.is_none() {
        return Ok(None);
    }
    let version = match &line.log_version {
        Some(v) if v.as_u64().is_some_and(|v| (1..=LOG_VERSION).contains(&v)) => {
            v.as_u64().unwrap_or(LOG_VERSION)
        }
        Some(v) => {
            return Err(LineError::Bad(format!(
                "log_version {v} is unknown to this report, which reads versions 1 to \
                 {LOG_VERSION}; use the report of the mailkey-milter that wrote the log"
            )))
        }
        None => {
            return Err(LineError::Bad(format!(
                "a per-message line without log_version (written by a mailkey-milter before \
                 the versioned log format); this report reads version {LOG_VERSION}"
            )))
        }
    };
    let time = line
        .timestamp
        .as_deref()
        .and_then(time::parse_datetime)
        .ok_or_else(|| LineError::Bad("no RFC 3339 timestamp".into()))?;
    let kind = if recipient {
        Kind::InvalidSrsRecipient
    } else if line.exempt == Some(true) {
        Kind::Exempt
    } else if line.trusted.is_some() {
        Kind::Trusted
    } else {
        let effects = effects(&line.other, version, crate::checks::refusing())?;
        Kind::Checked(effects)
    };
    let letting = Letting {
        token: line.token.is_some() && line.token_refused.is_none(),
        challenge_offered: line.challenge.as_deref() == Some("offered"),
        challenge_passed: line.challenge.as_deref() == Some("passed"),
        would_refuse: line
            .would_reject
            .as_deref()
            .is_some_and(|w| w.starts_with('5')),
    };
    let text = |name: &str| line.other.get(name).and_then(serde_json::Value::as_str);
    let dkim2 = text("dkim2")
        .filter(|r| !matches!(*r, "none" | "-"))
        .map(|r| (r.to_string(), text("dkim2.effect") == Some("reject")));
    let tls = match &kind {
        Kind::Checked(_) => TlsFacts::from_line(&line.other),
        _ => None,
    };
    Ok(Some(Record {
        time,
        client: line.client.unwrap_or_else(|| "local".into()),
        domain: line.domain.filter(|d| !d.is_empty() && d != "-"),
        kind,
        letting,
        dkim2,
        tls,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_those_that_refuse_alone() {
        // ARC never rejects or defers (its effect is always accept), and
        // DKIM2 does only through mailkey: the report, which counts what
        // enforcing each check would refuse, leaves them out.
        let checks: Vec<_> = checks().collect();
        assert!(
            checks.starts_with(&["mailkey", "spf", "tls", "mx"]),
            "{checks:?}"
        );
        assert!(!checks.contains(&"arc") && !checks.contains(&"dkim2"));
    }

    const LINE: &str = r#"{"timestamp":"2026-11-23T10:00:00.5Z","level":"INFO","message":"message","log_version":1,"queue_id":"Q","client":"192.0.2.1","domain":"a.test","mailkey":"fail","mailkey.effect":"reject","spf.effect":"accept","tls.effect":"tempfail","mx.effect":"-"}"#;

    #[test]
    fn message_lines_and_others() {
        let r = parse_line(LINE).unwrap().unwrap();
        let Kind::Checked(effects) = &r.kind else {
            panic!("{:?}", r.kind)
        };
        // A check logged since a later version (none today) would follow.
        assert_eq!(
            effects[..4],
            [
                ("mailkey", Effect::Reject(())),
                ("spf", Effect::Accept),
                ("tls", Effect::Tempfail(())),
                ("mx", Effect::Accept)
            ]
        );
        assert_eq!(r.domain.as_deref(), Some("a.test"));
        let started = r#"{"timestamp":"2026-11-23T10:00:00Z","level":"INFO","message":"started"}"#;
        assert_eq!(parse_line(started), Ok(None));
        assert_eq!(parse_line("Nov 23 text line"), Err(LineError::NotJson));
        let exempt = LINE.replace("\"Q\",", "\"Q\",\"exempt\":true,");
        assert_eq!(parse_line(&exempt).unwrap().unwrap().kind, Kind::Exempt);
        let srs = r#"{"timestamp":"2026-11-23T10:00:00.5Z","level":"INFO","message":"recipient","log_version":1,"queue_id":"NOQUEUE","client":"192.0.2.1","helo":"mx.a.test","mail_from":"<>","rcpt_to":"<SRS0=xxxx=AB=a.test=u@fwd.test>","verdict":"accept","stage":"rcpt","reply":"-","would_reject":"550 5.1.1","reasons":"srs: invalid SRS address: hash does not verify"}"#;
        let r = parse_line(srs).unwrap().unwrap();
        assert_eq!(r.kind, Kind::InvalidSrsRecipient);
    }

    #[test]
    fn dkim2_results_are_read_when_logged() {
        assert_eq!(parse_line(LINE).unwrap().unwrap().dkim2, None);
        let chain = LINE.replace(
            "\"mx.effect\":\"-\"",
            "\"mx.effect\":\"-\",\"dkim2\":\"fail\",\"dkim2.effect\":\"reject\"",
        );
        let r = parse_line(&chain).unwrap().unwrap();
        assert_eq!(r.dkim2, Some(("fail".to_string(), true)));
        let mut agg = super::super::aggregate::Aggregate::new(None, None);
        agg.add(&r);
        let text = super::super::render_text::text(&agg.summary(Vec::new(), 10));
        assert!(
            text.contains("DKIM2 chains: fail 1; failures that make mailkey reject: 1"),
            "{text}"
        );
    }

    #[test]
    fn a_check_is_not_measured_on_lines_older_than_its_fields() {
        // A check that can refuse, logged from the version after this one.
        static NEW: crate::checks::Check = crate::checks::Check {
            name: crate::checks::CheckName::new("new"),
            ar_method: "x-new",
            enforced: |_| true,
            refuses_with: &[crate::reply::Code::NO_MX],
            logged_since: 2,
            final_at_rcpt: |_| true,
            arc_vouch: None,
            guidance: None,
            start: |_| Box::pin(async { unreachable!() }),
        };
        let line: Line = serde_json::from_str(LINE).unwrap();
        let today = crate::checks::refusing;
        let read = |version| effects(&line.other, version, today().chain([&NEW]));
        let older = read(1).unwrap();
        assert_eq!(older.last(), Some(&("new", Effect::Accept)));
        assert_eq!(older.len(), crate::checks::refusing().count() + 1);
        assert_eq!(read(2), Err(LineError::Bad("no new.effect field".into())));
        let logged = LINE.replace("\"mx.effect\"", "\"new.effect\":\"reject\",\"mx.effect\"");
        let line: Line = serde_json::from_str(&logged).unwrap();
        let newer = effects(&line.other, 2, today().chain([&NEW])).unwrap();
        assert_eq!(newer.last(), Some(&("new", Effect::Reject(()))));
    }

    #[test]
    fn unknown_versions_and_missing_effects_are_refused() {
        let next = LOG_VERSION + 1;
        let v3 = LINE.replace("\"log_version\":1", &format!("\"log_version\":{next}"));
        let unknown = format!("log_version {next}");
        assert!(matches!(parse_line(&v3), Err(LineError::Bad(w)) if w.contains(&unknown)));
        let v0 = LINE.replace("\"log_version\":1,", "");
        assert!(
            matches!(parse_line(&v0), Err(LineError::Bad(w)) if w.contains("without log_version"))
        );
        let no = LINE.replace(",\"spf.effect\":\"accept\"", "");
        assert!(matches!(parse_line(&no), Err(LineError::Bad(w)) if w.contains("spf.effect")));
    }
}
