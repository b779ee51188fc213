//! The verifier works on a large message as received: it allocates
//! nothing in proportion to it (issue #21 item 8; it used to copy the whole
//! message for every domain with a mailkey, so a message peaked at twice
//! its size; only one the milter keeps in memory, ≤ 32 KiB, is copied now).
//! Counted with an allocator that records the peak of bytes in use, around
//! one call of the mailkey check (keys handed over as the lookup returns
//! them, so no DNS and no other task allocates meanwhile).

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{message, TestKey};
use mailkey_milter::{
    checks::{mailkey, Status},
    config::{DnsConfig, MailkeyConfig},
    dkim2,
    dns::{Dns, TxtAnswer},
    envelope::SenderDomain,
    protocol::KeyLookup,
};
use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
};

/// The system allocator, counting bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn verifying_a_16_mib_message_allocates_no_copy_of_it() {
    let key = TestKey::ed25519();
    let signed = key.sign(&big_message(), "sender.test", "mailkey");
    // A second signature of another domain, which the verifier must leave
    // in place (it used to be what the copy was made for).
    let signed = TestKey::ed25519().sign(&signed, "esp.test", "s1");
    let keys = Arc::new(KeyLookup::from_answer(TxtAnswer::Records(vec![key
        .record
        .clone()
        .into_bytes()])));
    let (runtime, dns) = runtime_and_dns();
    let sender = SenderDomain::Domain("sender.test".into());
    let now = now();
    let config = MailkeyConfig::default();

    let before = IN_USE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let result = runtime
        .block_on(mailkey::check(
            &dns,
            &config,
            &sender,
            keys,
            signed.as_bytes(),
            now,
            std::time::Instant::now() + std::time::Duration::from_secs(60),
        ))
        .unwrap_or_else(mailkey::Stopped::into_result);
    let extra = PEAK.load(Relaxed) - before;
    assert_eq!(result.status, Status::Pass, "{:?}", result.reason);
    // Headers, signatures, keys and hashes: kilobytes, not the 16 MiB body.
    assert!(
        extra < signed.len() / 16,
        "the check allocated {extra} bytes at its peak for a message of {}",
        signed.len()
    );
}

/// The same for a DKIM2 chain (#21 item 8): a 16 MiB message that carries
/// a DKIM1 signature too is verified where it lies; the verifier used to
/// copy it without its `DKIM-Signature` fields.
#[test]
fn verifying_a_16_mib_dkim2_chain_allocates_no_copy_of_it() {
    let key = TestKey::ed25519();
    let mail = key.sign(&big_message(), "sender.test", "mailkey");
    let signed = key.sign_dkim2(
        &mail,
        "sender.test",
        "mailkey",
        FROM,
        &["bob@receiver.test"],
    );
    let (runtime, dns) = runtime_and_dns();
    dns.preload_txt(
        "mailkey._domainkey.sender.test",
        TxtAnswer::Records(vec![key.record.clone().into_bytes()]),
    );
    let now = now();
    let rcpt = vec!["<bob@receiver.test>".to_string()];
    let arrival = dkim2::verify::Arrival {
        mail_from: FROM,
        rcpt_to: &rcpt,
    };

    let before = IN_USE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let outcome = runtime.block_on(dkim2::verify::verify(&dns, arrival, signed.as_bytes(), now));
    let extra = PEAK.load(Relaxed) - before;
    assert_eq!(outcome.status, Status::Pass, "{:?}", outcome.failure);
    assert!(
        extra < signed.len() / 16,
        "the DKIM2 verifier allocated {extra} bytes at its peak for a message of {}",
        signed.len()
    );
}

const FROM: &str = "alice@sender.test";

/// A message from [`FROM`] with a 16 MiB body.
fn big_message() -> String {
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n";
    let body = line.repeat(16 * 1024 * 1024 / line.len());
    message(FROM).replace("Hello Bob,\r\n", &body)
}

/// A current-thread runtime (the verifiers then work in place) and a
/// resolver that is never asked: the keys are at hand.
fn runtime_and_dns() -> (tokio::runtime::Runtime, Dns) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dns = runtime
        .block_on(async { Dns::new(&DnsConfig::default()) })
        .expect("dns");
    (runtime, dns)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
