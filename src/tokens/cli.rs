//! `mailkey-milter token issue|list|revoke`: the operator's side of
//! tokens, on the store the daemon uses (the embedded file may be open in
//! the daemon at the same time; SQLite serialises the writers).

use super::{Tokens, MAX_USES, TAG_LEN};
use crate::{
    config::Config,
    envelope::domain_name,
    rfc3339 as time,
    state::{self, Token, TokenState, MAX_ADDRESS},
};
use clap::{Args, Subcommand};
use std::{error::Error, time::SystemTime};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token; print the tagged address to give to the sender.
    Issue {
        /// The recipient it lets mail through to (alice@example.org).
        #[arg(long = "for", value_name = "ADDRESS")]
        recipient: String,
        /// Only for mail from this domain (and its subdomains) or address.
        #[arg(long, value_name = "DOMAIN|ADDRESS")]
        sender: Option<String>,
        /// How many messages it lets through (default: no limit).
        #[arg(long)]
        uses: Option<u32>,
        /// Until when: a date (that day included), an RFC 3339 date-time,
        /// or a duration from now (90m, 12h, 30d, 8w). Default: never.
        #[arg(long, value_name = "DATE|DURATION")]
        expires: Option<String>,
    },
    /// List the tokens with their uses and state.
    List,
    /// Withdraw a token at once (its ID or its tagged address).
    Revoke { token: String },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `90m`, `12h`, `30d`, `8w` in seconds.
fn duration(s: &str) -> Option<u64> {
    let unit = match s.chars().last()? {
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let n: u64 = s.get(..s.len() - 1)?.parse().ok()?;
    n.checked_mul(unit).filter(|d| *d > 0)
}

/// `--expires`, as seconds since the epoch.
pub fn expiry(s: &str, now: u64) -> Result<u64, String> {
    if let Some(d) = duration(s) {
        return Ok(now.saturating_add(d));
    }
    let at = time::parse_bound(s, true).ok_or_else(|| {
        format!(
            "--expires {s:?}: allowed is a date (2027-01-31), an RFC 3339 date-time, \
             or a duration (90m, 12h, 30d, 8w)"
        )
    })?;
    let at = u64::try_from(at / time::SECOND).unwrap_or(0);
    if at <= now {
        return Err(format!("--expires {s:?}: that is in the past"));
    }
    Ok(at)
}

/// `alice@Example.ORG` → `alice@example.org`, or why it is not usable.
fn recipient(s: &str) -> Result<String, String> {
    let (local, domain) = s
        .rsplit_once('@')
        .ok_or_else(|| format!("--for {s:?}: allowed is an address, local@domain"))?;
    let domain =
        domain_name(domain).ok_or_else(|| format!("--for {s:?}: {domain:?} is not a domain"))?;
    let address = format!("{}@{domain}", local.to_ascii_lowercase());
    let room = MAX_ADDRESS - TAG_LEN - super::PREFIX.len() - 1;
    if local.is_empty() || local.contains(char::is_whitespace) || address.len() > room {
        return Err(format!(
            "--for {s:?}: allowed is an address of at most {room} characters"
        ));
    }
    Ok(address)
}

/// `--sender`: a domain or an address, lower-cased.
fn scope(s: &str) -> Result<String, String> {
    let (local, domain) = s.rsplit_once('@').unwrap_or(("", s));
    let domain = domain_name(domain).ok_or_else(|| {
        format!("--sender {s:?}: allowed is a domain (shop.example) or an address")
    })?;
    Ok(if s.contains('@') {
        format!("{}@{domain}", local.to_ascii_lowercase())
    } else {
        domain
    })
}

/// One token as `token list` shows it.
pub fn describe(t: &TokenState, now: u64) -> String {
    let tok = &t.token;
    let state = if t.revoked.is_some() {
        "revoked"
    } else if tok.expires.is_some_and(|e| e <= now) {
        "expired"
    } else if tok.max_uses.is_some_and(|m| t.used >= m) {
        "used up"
    } else {
        "active"
    };
    let uses = match tok.max_uses {
        Some(max) => format!("{}/{max}", t.used),
        None => format!("{}/-", t.used),
    };
    let expires = tok.expires.map_or("never".to_string(), super::datetime);
    format!(
        "{:<12}  {:<8}  {:<9}  {:<20}  {:<24}  {}",
        tok.tag,
        state,
        uses,
        expires,
        tok.scope.as_deref().unwrap_or("any sender"),
        tok.recipient
    )
}

/// Runs a `token` command against the configured store.
pub fn run(config: &Config, args: TokenArgs) -> Result<std::process::ExitCode, Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = state::open(&config.state)?;
        let now = now();
        match args.command {
            TokenCommand::Issue {
                recipient: r,
                sender,
                uses,
                expires,
            } => {
                let tokens = Tokens::load(&config.tokens)?
                    .ok_or("tokens are off: set [tokens] secret_file in the configuration")?;
                if uses.is_some_and(|u| u == 0 || u > MAX_USES) {
                    return Err(format!("--uses: allowed is 1 to {MAX_USES}").into());
                }
                let mut nonce = [0u8; 8];
                openssl::rand::rand_bytes(&mut nonce)?;
                let mut token = Token {
                    tag: String::new(),
                    recipient: recipient(&r)?,
                    scope: sender.as_deref().map(scope).transpose()?,
                    expires: expires.as_deref().map(|e| expiry(e, now)).transpose()?,
                    max_uses: uses,
                    nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
                    created: now,
                };
                tokens
                    .sign(&mut token)
                    .ok_or("cannot compute the token's tag")?;
                store.put_token(&token).await?;
                println!("{}", tokens.address(&token));
                let uses = token
                    .max_uses
                    .map_or("any number of".into(), |n| n.to_string());
                let until = token.expires.map_or("no end date".into(), |e| {
                    format!("until {}", super::datetime(e))
                });
                let from = token.scope.as_deref().unwrap_or("any sender");
                eprintln!(
                    "Give this address to the sender. It lets {uses} messages from {from} \
                     through to {} ({until}).\nWithdraw it with: mailkey-milter token revoke {}",
                    token.recipient, token.tag
                );
            }
            TokenCommand::List => {
                println!(
                    "{:<12}  {:<8}  {:<9}  {:<20}  {:<24}  for",
                    "id", "state", "uses", "expires", "sender"
                );
                for t in store.tokens().await? {
                    println!("{}", describe(&t, now));
                }
            }
            TokenCommand::Revoke { token } => {
                let tag = match &config.tokens.secret_file {
                    Some(_) => Tokens::load(&config.tokens)?
                        .and_then(|t| t.parse(&token))
                        .map_or(token.clone(), |t| t.tag),
                    None => token.clone(),
                };
                if !store.revoke(&tag, now).await? {
                    return Err(format!("no token {tag:?} in {}", store.describe()).into());
                }
                println!("revoked {tag}");
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_dates_date_times_and_durations() {
        let now = 1_800_000_000; // 2027-01-15T08:00:00Z
        assert_eq!(expiry("30d", now), Ok(now + 30 * 86_400));
        assert_eq!(expiry("90m", now), Ok(now + 5400));
        let end_of_day = u64::try_from(time::parse_date("2027-01-31").unwrap()).unwrap() + 86_400;
        assert_eq!(expiry("2027-01-31", now), Ok(end_of_day));
        assert!(expiry("2020-01-01", now).unwrap_err().contains("past"));
        assert!(expiry("soon", now).is_err());
        assert!(expiry("0d", now).is_err());
    }

    #[test]
    fn addresses_and_scopes_are_checked_and_lower_cased() {
        assert_eq!(recipient("Alice@Example.ORG").unwrap(), "alice@example.org");
        assert!(recipient("alice").is_err());
        assert!(recipient("alice@localhost").is_err());
        assert_eq!(scope("Shop.Example").unwrap(), "shop.example");
        assert_eq!(scope("News@Shop.Example").unwrap(), "news@shop.example");
        assert!(scope("not a domain").is_err());
    }
}
