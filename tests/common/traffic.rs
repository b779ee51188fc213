//! The modelled senders of issue #23's traffic mix — what real sending
//! sides show a receiver that asks for client certificates — with
//! everything each needs on loopback: DNS (SPF, MX, MTA-STS, TLSA), its
//! port 25 as our probe finds it, its domain's MX hosts and MTA-STS policy
//! host, certificates from one test CA. `tests/tls_evidence.rs` drives it
//! through the milter socket under every `[tls] evidence` setting;
//! `tests/e2e_tls_evidence.rs` through a real Postfix, and the report.
#![allow(dead_code)]

use super::{
    dns::Zone,
    tls::{https_server, self_signed, Behaviour, Identity, Leaf, Pki, Responder},
};
use openssl::hash::{hash, MessageDigest};
use std::{net::Ipv4Addr, path::PathBuf};

/// What the client does about TLS when it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientTls {
    Plaintext,
    /// STARTTLS, no client certificate.
    NoCertificate,
    /// A client certificate from the test CA with this CN.
    CaCertificate(&'static str),
    /// A self-signed client certificate with this CN.
    SelfSigned(&'static str),
}

/// What our probe of the client's port 25 finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port25 {
    Nothing,
    /// STARTTLS with a CA certificate for the HELO name.
    CaCertificate,
    /// STARTTLS with a self-signed certificate for the HELO name.
    SelfSigned,
    /// Accepts and never answers (a firewall that drops, a tarpit).
    Silent,
}

/// How the sender domain's MX host (and MTA-STS) look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mx {
    /// STARTTLS with a CA certificate for its name.
    CaCertificate,
    /// Nothing listens.
    Nothing,
    /// SMTP without STARTTLS.
    NoStartTls,
    /// Nothing listens on the MX; an MTA-STS policy in enforce mode.
    MtaSts,
    /// A self-signed certificate named by the MX host's TLSA record.
    Dane,
    /// The MX is the client itself (its port 25 as above).
    ClientItself,
}

/// One modelled sending side.
#[derive(Clone, Copy, Debug)]
pub struct Sender {
    /// What it stands for (issue #23's table).
    pub model: &'static str,
    pub ip: &'static str,
    pub helo: &'static str,
    pub from: &'static str,
    pub tls: ClientTls,
    pub port25: Port25,
    pub mx_host: &'static str,
    pub mx_ip: &'static str,
    pub mx: Mx,
    /// Messages it sends in the Postfix mix.
    pub messages: usize,
    /// The organisation the daemon names.
    pub org: &'static str,
    /// The reply under each of [`SETTINGS`]: `250`, `550 5.7.5`,
    /// `451 4.7.5`, `550 5.7.10`.
    pub verdicts: [&'static str; 7],
    /// Legitimate (its operator can be held to account) or not.
    pub legitimate: bool,
}

/// The candidate settings, in the report's order.
pub const SETTINGS: [&str; 7] = [
    r#"["mta-verified"]"#,
    r#"["mta-verified", "sender-domain"]"#,
    r#"["mta-verified", "probe"]"#,
    r#"["mta-verified", "sender-domain", "probe"]"#,
    r#"["sender-domain"]"#,
    r#"["probe"]"#,
    r#"["sender-domain", "probe"]"#,
];
/// The setting issue #23 must meet: `["mta-verified", "sender-domain", "probe"]`.
pub const DONE_WHEN: usize = 3;

const A: &str = "250";
const R: &str = "550 5.7.5";
const T: &str = "451 4.7.5";
const P: &str = "550 5.7.10";

pub const SENDERS: [Sender; 10] = [
    Sender {
        model: "Gmail: CA client certificate, CN is not the HELO name",
        ip: "127.0.50.1",
        helo: "mail-wr1-f54.google.test",
        from: "alice@gmail.test",
        tls: ClientTls::CaCertificate("smtp.gmail.test"),
        port25: Port25::Nothing,
        mx_host: "mx1.gmail.test",
        mx_ip: "127.0.51.1",
        mx: Mx::CaCertificate,
        messages: 3,
        org: "gmail.test",
        verdicts: [A, A, A, A, A, R, A],
        legitimate: true,
    },
    Sender {
        model: "Microsoft 365: CA client certificate of the platform, customer's domain",
        ip: "127.0.50.2",
        helo: "mail-db5eur02.outbound.protection.outlook.test",
        from: "bob@contoso.test",
        tls: ClientTls::CaCertificate("mail.protection.outlook.test"),
        port25: Port25::Nothing,
        mx_host: "contoso-test.mail.protection.outlook.test",
        mx_ip: "127.0.51.2",
        mx: Mx::CaCertificate,
        messages: 2,
        org: "outlook.test",
        verdicts: [A, A, A, A, A, R, A],
        legitimate: true,
    },
    Sender {
        model: "Amazon SES: TLS, no client certificate, outbound IP does not listen",
        ip: "127.0.50.3",
        helo: "a8-1.smtp-out.amazonses.test",
        from: "news@shop.test",
        tls: ClientTls::NoCertificate,
        port25: Port25::Nothing,
        mx_host: "inbound-smtp.amazonaws.test",
        mx_ip: "127.0.51.3",
        mx: Mx::CaCertificate,
        messages: 3,
        org: "amazonses.test",
        verdicts: [R, A, R, A, A, R, A],
        legitimate: true,
    },
    Sender {
        model: "Fastmail: TLS, no client certificate, MTA-STS enforce",
        ip: "127.0.50.4",
        helo: "out1-smtp.messagingengine.test",
        from: "carol@fastmail.test",
        tls: ClientTls::NoCertificate,
        port25: Port25::Nothing,
        mx_host: "in1-smtp.fastmail.test",
        mx_ip: "127.0.51.4",
        mx: Mx::MtaSts,
        messages: 1,
        org: "messagingengine.test",
        verdicts: [R, A, R, A, A, R, A],
        legitimate: true,
    },
    Sender {
        model: "self-hosted: sends and receives on one address with a CA certificate",
        ip: "127.0.50.5",
        helo: "mail.selfhosted.test",
        from: "dave@selfhosted.test",
        tls: ClientTls::NoCertificate,
        port25: Port25::CaCertificate,
        mx_host: "mail.selfhosted.test",
        mx_ip: "127.0.50.5",
        mx: Mx::ClientItself,
        messages: 2,
        org: "selfhosted.test",
        verdicts: [R, A, A, A, A, A, A],
        legitimate: true,
    },
    Sender {
        model: "DANE: TLS, no client certificate, MX named by its TLSA record",
        ip: "127.0.50.10",
        helo: "out.dane.test",
        from: "ivan@dane.test",
        tls: ClientTls::NoCertificate,
        port25: Port25::Nothing,
        mx_host: "mx.dane.test",
        mx_ip: "127.0.51.10",
        mx: Mx::Dane,
        messages: 1,
        org: "dane.test",
        verdicts: [R, A, R, A, A, R, A],
        legitimate: true,
    },
    Sender {
        model: "no accountable domain: TLS, no certificate anywhere",
        ip: "127.0.50.6",
        helo: "mail.kernel.test",
        from: "erin@kernel.test",
        tls: ClientTls::NoCertificate,
        port25: Port25::Nothing,
        mx_host: "mail.kernel.test",
        mx_ip: "127.0.51.6",
        mx: Mx::NoStartTls,
        messages: 1,
        org: "kernel.test",
        verdicts: [R, R, R, R, R, R, R],
        legitimate: false,
    },
    Sender {
        model: "Proton-like: self-signed certificates",
        ip: "127.0.50.7",
        helo: "mail.proton.test",
        from: "frank@proton.test",
        tls: ClientTls::SelfSigned("mail.proton.test"),
        port25: Port25::SelfSigned,
        mx_host: "mail.proton.test",
        mx_ip: "127.0.50.7",
        mx: Mx::ClientItself,
        messages: 1,
        org: "proton.test",
        verdicts: [R, R, R, R, R, R, R],
        legitimate: false,
    },
    Sender {
        model: "no TLS at all",
        ip: "127.0.50.8",
        helo: "smtp.163.test",
        from: "grace@163.test",
        tls: ClientTls::Plaintext,
        port25: Port25::Nothing,
        mx_host: "mx.163.test",
        mx_ip: "127.0.51.8",
        mx: Mx::Nothing,
        messages: 2,
        org: "163.test",
        verdicts: [P, P, P, P, P, P, P],
        legitimate: false,
    },
    Sender {
        model: "firewalled: its port 25 drops us (a time-out), domain not certified",
        ip: "127.0.50.9",
        helo: "out.firewalled.test",
        from: "henry@firewalled.test",
        tls: ClientTls::NoCertificate,
        port25: Port25::Silent,
        mx_host: "mx.firewalled.test",
        mx_ip: "127.0.51.9",
        mx: Mx::Nothing,
        messages: 1,
        org: "firewalled.test",
        verdicts: [R, R, T, T, R, T, T],
        legitimate: false,
    },
];

impl Sender {
    pub fn domain(&self) -> &'static str {
        self.from.split_once('@').map_or("", |(_, d)| d)
    }
}

/// Everything the senders need, running; dropped at the end of a test.
pub struct World {
    pub pki: Pki,
    pub zone: Zone,
    /// Client certificates (cert, key files) by the sender's IP.
    pub client_certs: Vec<(&'static str, PathBuf, PathBuf)>,
    _responders: Vec<Responder>,
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("IPv4")
}

fn starttls(identity: Identity) -> Behaviour {
    Behaviour::StartTls {
        identity,
        ocsp: None,
    }
}

impl World {
    pub fn start(tag: &str) -> World {
        let pki = Pki::new(tag);
        let mut zone = Zone::default();
        let mut responders = Vec::new();
        let mut client_certs = Vec::new();
        for (i, s) in SENDERS.iter().enumerate() {
            let serial = 20 + 4 * i as u32;
            let d = s.domain();
            zone = zone
                .txt(d, "v=spf1 ip4:127.0.50.0/24 -all")
                .mx(d, 10, s.mx_host)
                .a(s.mx_host, ip(s.mx_ip));
            match s.tls {
                ClientTls::CaCertificate(cn) => {
                    let (c, k) = pki.write(d, &pki.leaf(Leaf::valid(&[cn], serial)));
                    client_certs.push((s.ip, c, k));
                }
                ClientTls::SelfSigned(cn) => {
                    let (c, k) = pki.write(d, &self_signed(&[cn]));
                    client_certs.push((s.ip, c, k));
                }
                _ => {}
            }
            let port = match s.port25 {
                Port25::Nothing => None,
                Port25::CaCertificate => {
                    Some(starttls(pki.leaf(Leaf::valid(&[s.helo], serial + 1))))
                }
                Port25::SelfSigned => Some(starttls(self_signed(&[s.helo]))),
                Port25::Silent => Some(Behaviour::Silent),
            };
            if let Some(b) = port {
                responders.push(Responder::start(s.ip, b));
            }
            match s.mx {
                Mx::CaCertificate => responders.push(Responder::start(
                    s.mx_ip,
                    starttls(pki.leaf(Leaf::valid(&[s.mx_host], serial + 2))),
                )),
                Mx::NoStartTls => responders.push(Responder::start(s.mx_ip, Behaviour::NoStartTls)),
                Mx::MtaSts => {
                    let host = format!("mta-sts.{d}");
                    let sts_ip = s.mx_ip.replace("127.0.51.", "127.0.52.");
                    zone = zone
                        .txt(&format!("_mta-sts.{d}"), "v=STSv1; id=20261201T000000;")
                        .a(&host, ip(&sts_ip));
                    let policy = format!(
                        "version: STSv1\r\nmode: enforce\r\nmx: {}\r\nmax_age: 86400\r\n",
                        s.mx_host
                    );
                    let id = pki.leaf(Leaf::valid(&[&host], serial + 3));
                    responders.push(https_server(&sts_ip, id, "200 OK", &policy));
                }
                Mx::Dane => {
                    let id = self_signed(&[s.mx_host]);
                    let spki = id.cert.public_key().unwrap().public_key_to_der().unwrap();
                    let digest = hash(MessageDigest::sha256(), &spki).unwrap().to_vec();
                    zone = zone.tlsa(&format!("_25._tcp.{}", s.mx_host), 3, 1, 1, digest);
                    responders.push(Responder::start(s.mx_ip, starttls(id)));
                }
                Mx::Nothing | Mx::ClientItself => {}
            }
        }
        World {
            pki,
            zone,
            client_certs,
            _responders: responders,
        }
    }

    /// The client certificate files of the sender at `ip`, if it has one.
    pub fn client_cert(&self, ip: &str) -> Option<(&PathBuf, &PathBuf)> {
        self.client_certs
            .iter()
            .find(|(i, _, _)| *i == ip)
            .map(|(_, c, k)| (c, k))
    }

    /// The daemon's `[tls]` table for `setting` (one of [`SETTINGS`]).
    pub fn tls_config(&self, setting: &str) -> String {
        format!(
            "[tls]\nevidence = {setting}\nprobe_port = {}\nmta_sts_port = {}\n\
             probe_timeout_ms = 800\nca_file = \"{}\"\n",
            super::tls::probe_port(),
            super::tls::https_port(),
            self.pki.ca_file().display()
        )
    }
}
