//! A test PKI made in code (a CA, leaves, CRLs) and STARTTLS responders:
//! tiny SMTP servers on their own loopback addresses that speak just enough
//! (220, EHLO, STARTTLS, handshake, QUIT) for the certificate probe, and
//! count the connections they get.

#![allow(dead_code)]

use openssl::{
    asn1::{Asn1Integer, Asn1Time},
    bn::BigNum,
    ec::{EcGroup, EcKey},
    hash::MessageDigest,
    nid::Nid,
    pkey::{PKey, Private},
    ssl::{SslAcceptor, SslMethod},
    x509::{
        extension::{
            AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
            SubjectAlternativeName, SubjectKeyIdentifier,
        },
        CrlNumber, X509Builder, X509CrlBuilder, X509Name, X509RevokedBuilder, X509,
    },
};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::{SystemTime, UNIX_EPOCH},
};

const DAY: i64 = 86_400;

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    n.build()
}

/// A certificate and its key.
pub struct Identity {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// The test CA; files go to a directory of its own.
pub struct Pki {
    pub ca: Identity,
    pub dir: PathBuf,
}

/// A leaf to make: names (SANs; the first is also the CN), validity
/// relative to now in seconds, serial number.
pub struct Leaf<'a> {
    pub names: &'a [&'a str],
    pub not_before: i64,
    pub not_after: i64,
    pub serial: u32,
}

impl<'a> Leaf<'a> {
    pub fn valid(names: &'a [&'a str], serial: u32) -> Self {
        Self {
            names,
            not_before: -DAY,
            not_after: 90 * DAY,
            serial,
        }
    }
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("mailkey-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = key();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&serial(1)).unwrap();
        // Each test's CA has a name of its own: a leaf of another test's CA
        // is then one from an unknown CA, not one with a bad signature.
        let ca_name = name(&format!("Test CA {tag}"));
        b.set_subject_name(&ca_name).unwrap();
        b.set_issuer_name(&ca_name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::from_unix(unix_now() - DAY).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_unix(unix_now() + 3650 * DAY).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        let ski = SubjectKeyIdentifier::new()
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(ski).unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        let pki = Pki {
            ca: Identity {
                cert: b.build(),
                key,
            },
            dir,
        };
        std::fs::write(pki.ca_file(), pki.ca.cert.to_pem().unwrap()).unwrap();
        pki
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA directory as `smtpd_tls_CApath` wants it: the CA certificate
    /// under its subject-hash name (`openssl rehash`).
    pub fn ca_dir(&self) -> PathBuf {
        let dir = self.dir.join("capath");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(self.ca_file(), dir.join("ca.pem")).unwrap();
        let status = std::process::Command::new("openssl")
            .arg("rehash")
            .arg(&dir)
            .status()
            .expect("the openssl command");
        assert!(status.success(), "openssl rehash failed");
        dir
    }

    /// Writes `id` as `NAME.pem` and `NAME.key` into this CA's directory.
    pub fn write(&self, name: &str, id: &Identity) -> (PathBuf, PathBuf) {
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert, id.cert.to_pem().unwrap()).unwrap();
        std::fs::write(&key, id.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (cert, key)
    }

    /// A valid leaf for `name` with `serial`, written as by [`Pki::write`]:
    /// (certificate file, key file) as strings, for MTA settings.
    pub fn files_for(&self, name: &str, serial: u32) -> (String, String) {
        let (cert, key) = self.write(name, &self.leaf(Leaf::valid(&[name], serial)));
        (cert.display().to_string(), key.display().to_string())
    }

    /// A leaf signed by this CA.
    pub fn leaf(&self, leaf: Leaf<'_>) -> Identity {
        make_leaf(&leaf, Some(&self.ca))
    }

    /// A CRL revoking `serials`, written to a file.
    pub fn crl(&self, serials: &[u32]) -> PathBuf {
        let mut b = X509CrlBuilder::new().unwrap();
        b.set_issuer_name(self.ca.cert.subject_name()).unwrap();
        b.set_last_update(&Asn1Time::from_unix(unix_now() - DAY).unwrap())
            .unwrap();
        b.set_next_update(&Asn1Time::from_unix(unix_now() + 30 * DAY).unwrap())
            .unwrap();
        for s in serials {
            let mut r = X509RevokedBuilder::new().unwrap();
            r.set_serial_number(&serial(*s)).unwrap();
            r.set_revocation_date(&Asn1Time::from_unix(unix_now() - 3600).unwrap())
                .unwrap();
            b.add_revoked(r.build()).unwrap();
        }
        let dummy = X509Builder::new().unwrap();
        let ctx = dummy.x509v3_context(Some(&self.ca.cert), None);
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&ctx)
            .unwrap();
        b.append_extension(aki).unwrap();
        let number = CrlNumber::new(BigNum::from_u32(1).unwrap()).unwrap();
        b.append_extension(number.build().unwrap()).unwrap();
        b.sign(&self.ca.key, MessageDigest::sha256()).unwrap();
        let crl = b.build().unwrap();
        let path = self.dir.join("ca.crl.pem");
        std::fs::write(&path, crl.to_pem().unwrap()).unwrap();
        path
    }
}

impl Pki {
    /// A stapleable OCSP response about `leaf` (serial `serial`), signed by
    /// the CA, saying "revoked" or "good". The openssl crate cannot build
    /// OCSP responses, so the `openssl ocsp` responder makes it.
    pub fn ocsp(&self, leaf: &Identity, serial: u32, revoked: bool) -> Vec<u8> {
        let file = |name: &str, data: &[u8]| {
            let path = self.dir.join(name);
            std::fs::write(&path, data).unwrap();
            path
        };
        let ca = file("ocsp-ca.pem", &self.ca.cert.to_pem().unwrap());
        let key = file(
            "ocsp-ca.key",
            &self.ca.key.private_key_to_pem_pkcs8().unwrap(),
        );
        let cert = file("ocsp-leaf.pem", &leaf.cert.to_pem().unwrap());
        let mut hex = format!("{serial:X}");
        if hex.len() % 2 == 1 {
            hex.insert(0, '0');
        }
        let line = if revoked {
            format!("R\t491231000000Z\t200101000000Z\t{hex}\tunknown\t/CN=leaf\n")
        } else {
            format!("V\t491231000000Z\t\t{hex}\tunknown\t/CN=leaf\n")
        };
        let index = file("ocsp-index.txt", line.as_bytes());
        let out = self.dir.join("ocsp.der");
        let status = std::process::Command::new("openssl")
            .arg("ocsp")
            .args(["-issuer".as_ref(), ca.as_os_str()])
            .args(["-cert".as_ref(), cert.as_os_str()])
            .args(["-index".as_ref(), index.as_os_str()])
            .args(["-rsigner".as_ref(), ca.as_os_str()])
            .args(["-rkey".as_ref(), key.as_os_str()])
            .args(["-CA".as_ref(), ca.as_os_str()])
            .args(["-respout".as_ref(), out.as_os_str()])
            .args(["-ndays", "1"])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("the openssl command");
        assert!(status.success(), "openssl ocsp failed");
        std::fs::read(out).unwrap()
    }
}

/// A certificate signed by nobody but itself.
pub fn self_signed(names: &[&str]) -> Identity {
    make_leaf(&Leaf::valid(names, 7), None)
}

fn serial(n: u32) -> Asn1Integer {
    BigNum::from_u32(n).unwrap().to_asn1_integer().unwrap()
}

fn make_leaf(leaf: &Leaf<'_>, issuer: Option<&Identity>) -> Identity {
    let key = key();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial(leaf.serial)).unwrap();
    let subject = name(leaf.names[0]);
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(issuer.map_or(&subject, |i| i.cert.subject_name()))
        .unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(unix_now() + leaf.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(unix_now() + leaf.not_after).unwrap())
        .unwrap();
    let mut san = SubjectAlternativeName::new();
    for n in leaf.names {
        san.dns(n);
    }
    let ctx = b.x509v3_context(issuer.map(|i| i.cert.as_ref()), None);
    let san = san.build(&ctx).unwrap();
    b.append_extension(san).unwrap();
    b.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .client_auth()
            .build()
            .unwrap(),
    )
    .unwrap();
    let signer = issuer.map_or(&key, |i| &i.key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    Identity {
        cert: b.build(),
        key,
    }
}

/// The port every responder listens on (one per test process), and the
/// daemon's `probe_port`.
pub fn probe_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        // 127.0.0.2 is no test's responder address.
        let l = TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap().port()
    })
}

/// The HTTPS port of every MTA-STS policy host (one per test process), and
/// the daemon's `mta_sts_port`.
pub fn https_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let l = TcpListener::bind("127.0.0.2:0").unwrap();
        l.local_addr().unwrap().port()
    })
}

/// An HTTPS server on `ip`:[`https_port`] showing `identity`, answering
/// every request with `status` and `body` (an MTA-STS policy host).
pub fn https_server(ip: &str, identity: Identity, status: &str, body: &str) -> Responder {
    assert!(ip.starts_with("127."), "test traffic stays on loopback");
    let listener = TcpListener::bind((ip, https_port())).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_private_key(&identity.key).unwrap();
    b.set_certificate(&identity.cert).unwrap();
    let acceptor = Arc::new(b.build());
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let (acceptor, response) = (acceptor.clone(), response.clone());
            std::thread::spawn(move || {
                let Ok(mut tls) = acceptor.accept(stream) else {
                    return;
                };
                // The request head, then the answer.
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    match tls.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let _ = tls.write_all(response.as_bytes());
                let _ = tls.shutdown();
            });
        }
    });
    Responder {
        addr,
        connections,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

/// How a responder answers.
pub enum Behaviour {
    /// Offers STARTTLS and shows this certificate (and stapled OCSP).
    StartTls {
        identity: Identity,
        ocsp: Option<Vec<u8>>,
    },
    /// Speaks SMTP without STARTTLS.
    NoStartTls,
    /// Accepts the connection and never says anything.
    Silent,
    /// Answers `421` (too busy) and closes: a temporary refusal.
    Busy,
    /// Sends an endless multi-line banner one byte a second, as a tarpit
    /// does, until the responder is dropped.
    Drip,
}

/// A STARTTLS responder on `ip`:[`probe_port`].
pub struct Responder {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Set when dropped: dripping connections close, so no probe outlives
    /// the test because of us.
    stop: Arc<AtomicBool>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Responder {
    pub fn start(ip: &str, behaviour: Behaviour) -> Responder {
        assert!(ip.starts_with("127."), "test traffic stays on loopback");
        let listener = TcpListener::bind((ip, probe_port())).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let acceptor = match &behaviour {
            Behaviour::StartTls { identity, ocsp } => {
                let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
                b.set_private_key(&identity.key).unwrap();
                b.set_certificate(&identity.cert).unwrap();
                if let Some(der) = ocsp.clone() {
                    b.set_status_callback(move |ssl| {
                        ssl.set_ocsp_status(&der)?;
                        Ok(true)
                    })
                    .unwrap();
                }
                Some(Arc::new(b.build()))
            }
            _ => None,
        };
        let silent = matches!(behaviour, Behaviour::Silent);
        let busy = matches!(behaviour, Behaviour::Busy);
        let drip = matches!(behaviour, Behaviour::Drip);
        let count = connections.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let stopped = stopped.clone();
                std::thread::spawn(move || {
                    if drip {
                        serve_drip(stream, &stopped)
                    } else if busy {
                        let mut s = stream;
                        let _ = s.write_all(b"421 4.3.2 too busy, try later\r\n");
                    } else {
                        serve(stream, acceptor, silent)
                    }
                });
            }
        });
        Responder {
            addr,
            connections,
            stop,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// One line, read byte by byte (nothing is buffered past it: the TLS
/// handshake follows on the same socket).
fn line(s: &mut impl Read) -> Option<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) => {
                out.push(b[0]);
                if b[0] == b'\n' {
                    return Some(String::from_utf8_lossy(&out).trim_end().to_string());
                }
            }
            _ => return None,
        }
    }
}

/// One byte a second of `220-…` lines, for ever (until `stop`).
fn serve_drip(mut s: TcpStream, stop: &AtomicBool) {
    for b in b"220-drip.responder.test slow\r\n".iter().cycle() {
        if stop.load(Ordering::SeqCst) || s.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn serve(mut s: TcpStream, acceptor: Option<Arc<SslAcceptor>>, silent: bool) {
    if silent {
        // Hold the connection until the prober gives up.
        let _ = std::io::copy(&mut s, &mut std::io::sink());
        return;
    }
    let _ = s.write_all(b"220 mail.responder.test ESMTP\r\n");
    let Some(_ehlo) = line(&mut s) else { return };
    let ehlo = if acceptor.is_some() {
        "250-mail.responder.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    } else {
        "250-mail.responder.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    };
    let _ = s.write_all(ehlo.as_bytes());
    let Some(cmd) = line(&mut s) else { return };
    let Some(acceptor) = acceptor.filter(|_| cmd.eq_ignore_ascii_case("STARTTLS")) else {
        let _ = s.write_all(b"221 2.0.0 bye\r\n");
        return;
    };
    let _ = s.write_all(b"220 2.0.0 ready to start TLS\r\n");
    let Ok(mut tls) = acceptor.accept(s) else {
        return;
    };
    while let Some(cmd) = line(&mut tls) {
        if cmd.eq_ignore_ascii_case("QUIT") {
            let _ = tls.write_all(b"221 2.0.0 bye\r\n");
            let _ = tls.shutdown();
            return;
        }
        let _ = tls.write_all(b"250 ok\r\n");
    }
}
