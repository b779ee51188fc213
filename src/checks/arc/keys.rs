//! The keys an ARC validation needs, looked up before it starts (at most
//! one per set and one for the newest `ARC-Message-Signature`, each name
//! once, all at once), then handed to mail-auth as its TXT cache: the
//! validation itself, on a blocking thread, sends no query and waits on no
//! network. A name it asks for that was not looked up is "not found".

use crate::{dns::Dns, key_overlay::KeyOverlay};
use mail_auth::dns::ToFqdn;
use tokio::task::JoinSet;

/// Looks up `names` (`s._domainkey.d.`) through the shared caches, all at
/// once; each answer (a key or the error) is kept, for mail-auth to find as
/// its TXT cache.
pub(crate) async fn fetch(dns: &Dns, names: &[String]) -> KeyOverlay {
    let mut lookups = JoinSet::new();
    for name in names {
        let lookup = dns.domain_key(name);
        let name = name.clone();
        lookups.spawn(async move {
            let record = lookup.await;
            // Kept under the name mail-auth asks for (lower case, with
            // the final dot).
            (name.to_fqdn().into(), record)
        });
    }
    let mut answers = Vec::with_capacity(names.len());
    while let Some(joined) = lookups.join_next().await {
        match joined {
            Ok(answer) => answers.push(answer),
            // A lookup task that panicked: its key stays "not found".
            Err(_) => continue,
        }
    }
    KeyOverlay(answers)
}
