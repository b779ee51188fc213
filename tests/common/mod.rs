//! Shared test support: the real daemon started in-process on a loopback
//! port, keys and signed messages, and an MTA-side milter client.
#![allow(dead_code)]

pub mod arc;
pub mod browser;
pub mod cdp;
pub mod controls;
pub mod dns;
pub mod dsn;
pub mod footer_milter;
pub mod postfix;
pub mod process;
pub mod redis;
pub mod require;
pub mod sendmail;
pub mod smtp_sink;
pub mod swaks;
pub mod tls;
pub mod traffic;

// Not every test binary uses all three.
#[allow(unused_imports)]
pub use require::{require, require_for, Need};

use indymilter_test::{EomActions, MacroStage, ProtoOpts, SocketInfo, Status, TestConnection};
use mail_auth::{
    crypto::{Ed25519Key, RsaKey, Sha256},
    dkim::DkimSigner,
    headers::HeaderWriter,
};
use mailkey_milter::{config::Config, Shared, SharedHandle};
use openssl::{pkey::PKey, rsa::Rsa};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::{
    ffi::CString,
    net::{IpAddr, SocketAddr},
    path::Path,
};
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

/// The daemon, serving on 127.0.0.1; stops when dropped.
pub struct Daemon {
    pub addr: SocketAddr,
    pub shared: SharedHandle,
    /// Where SIGHUP's configurations would arrive (kept open).
    _reloads: mpsc::Sender<mailkey_milter::Reload>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Daemon {
    /// Starts the daemon with a configuration given as TOML text.
    pub async fn start(config_toml: &str) -> Daemon {
        let config = Config::parse(config_toml, Path::new("test.toml")).expect("test config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        Self::serve(mailkey_milter::socket::NoDelay(listener), config, addr)
    }

    /// Runs the daemon on `listener` as `main` does.
    fn serve(
        listener: impl indymilter::Listener + Send + 'static,
        config: Config,
        addr: SocketAddr,
    ) -> Daemon {
        let shared = SharedHandle::new(Shared::new(config).expect("resolver"));
        let (stop, stopped) = oneshot::channel::<()>();
        let (reloads, reload_rx) = mpsc::channel(1);
        let task = tokio::spawn(mailkey_milter::run(
            listener,
            shared.clone(),
            reload_rx,
            async move {
                let _ = stopped.await;
            },
        ));
        Daemon {
            addr,
            shared,
            _reloads: reloads,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts the daemon on a unix socket at `path`.
    pub async fn start_unix(config_toml: &str, path: &Path) -> Daemon {
        let config = Config::parse(config_toml, Path::new("test.toml")).expect("test config");
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).expect("bind unix socket");
        Self::serve(listener, config, SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Reloads as SIGHUP does, with `config_toml` as the file read again.
    pub fn reload(&self, config_toml: &str) {
        let config = Config::parse(config_toml, Path::new("test.toml")).map_err(|e| e.into());
        self.shared.reload(config);
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("join")
                .expect("milter exited with an error");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Log output captured in memory, for tests that assert on log lines
/// (`tracing_subscriber::fmt().with_writer(move || capture.clone())`).
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Captures the log of this thread (a `#[tokio::test]` runs the daemon
    /// on it) until the guard is dropped.
    pub fn for_thread() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let guard = tracing::subscriber::set_default(logs.subscriber());
        (logs, guard)
    }

    /// The log of every test in this test binary: one global subscriber,
    /// since a per-thread one misses lines while other tests' threads log
    /// (tracing's callsite cache is global). Tests tell their lines apart
    /// by something only they send (a client address, a domain).
    pub fn global() -> &'static LogCapture {
        static LOGS: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = LogCapture::default();
            tracing::subscriber::set_global_default(logs.subscriber())
                .expect("one global subscriber");
            logs
        })
    }

    /// A subscriber that writes plain text lines into this capture.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    /// The first line containing every one of `parts`; panics with the
    /// whole log when there is none.
    pub fn line_with(&self, parts: &[&str]) -> String {
        let log = self.text();
        log.lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no log line with {parts:?} in:\n{log}"))
    }
}

/// A config for tests: enforce mode, the test DNS server, only 127.0.0.1
/// trusted (clients use other loopback addresses).
pub fn config(dns: &dns::TestDns, extra: &str) -> String {
    format!(
        "mode = \"enforce\"\nauthserv_id = \"mx.receiver.test\"\n\
         trusted_networks = [\"127.0.0.1/32\"]\n{extra}\n\
         [dns]\nnameservers = [\"{}\"]\ntimeout_ms = 500\n",
        dns.addr()
    )
}

/// A zone where sender.test passes every check but mailkey: strict SPF
/// for all of 127.0.0.0/8 and a real MX.
pub fn sender_zone() -> dns::Zone {
    dns::Zone::default()
        .txt("sender.test", "v=spf1 ip4:127.0.0.0/8 -all")
        .mx("sender.test", 10, "mx.sender.test")
        .a("mx.sender.test", std::net::Ipv4Addr::new(127, 0, 0, 25))
}

/// A signing key and the TXT record that publishes it.
pub struct TestKey {
    pub algorithm: &'static str,
    pkcs8: Vec<u8>,
    pub record: String,
}

impl TestKey {
    pub fn ed25519() -> Self {
        let pkey = PKey::generate_ed25519().expect("ed25519");
        let public = pkey.raw_public_key().expect("raw public key");
        Self {
            algorithm: "ed25519",
            pkcs8: pkey.private_key_to_pkcs8().expect("pkcs8"),
            record: format!(
                "v=DKIM1; k=ed25519; p={}",
                openssl::base64::encode_block(&public)
            ),
        }
    }

    pub fn rsa(bits: u32) -> Self {
        let pkey = PKey::from_rsa(Rsa::generate(bits).expect("rsa")).expect("pkey");
        let public = pkey.public_key_to_der().expect("spki");
        Self {
            algorithm: "rsa",
            pkcs8: pkey.private_key_to_pkcs8().expect("pkcs8"),
            record: format!(
                "v=DKIM1; k=rsa; p={}",
                openssl::base64::encode_block(&public)
            ),
        }
    }

    /// A DKIM2 signer for `domain` with this key under `selector`
    /// (mail-auth's, as a sender's MTA would sign).
    pub fn dkim2_signer(
        &self,
        domain: &str,
        selector: &str,
    ) -> mail_auth::dkim2::Dkim2Signer<mail_auth::signer::Ready> {
        let key: mail_auth::crypto::DkimKey = match self.algorithm {
            "ed25519" => Ed25519Key::from_pkcs8_der(&self.pkcs8)
                .expect("ed25519 key")
                .into(),
            _ => {
                let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()));
                RsaKey::<Sha256>::from_key_der(der).expect("rsa key").into()
            }
        };
        mail_auth::dkim2::Dkim2Signer::from_key(key)
            .domain(domain)
            .selector(selector)
            .out_of_band_arrangement()
    }

    /// `message` with a DKIM2 originator signature (`i=1`) of `domain`
    /// for the envelope `mail_from` → `rcpt_to` prepended.
    pub fn sign_dkim2(
        &self,
        message: &str,
        domain: &str,
        selector: &str,
        mail_from: &str,
        rcpt_to: &[&str],
    ) -> String {
        let rcpt: Vec<String> = rcpt_to.iter().map(|r| format!("<{r}>")).collect();
        let signed = self
            .dkim2_signer(domain, selector)
            .sign(
                message.as_bytes(),
                mail_auth::dkim2::Hop::real(format!("<{mail_from}>"), rcpt),
                None,
            )
            .expect("DKIM2 sign");
        format!("{}{message}", signed.to_header())
    }

    /// `modified` (a changed copy of `received`, which carries a chain)
    /// with this key's DKIM2 hop for `domain` prepended: a new
    /// `Message-Instance` with the recipe when the content changed.
    pub fn hop_dkim2(
        &self,
        received: &str,
        modified: &str,
        domain: &str,
        mail_from: &str,
        rcpt_to: &[&str],
    ) -> String {
        let rcpt: Vec<String> = rcpt_to.iter().map(|r| format!("<{r}>")).collect();
        let signed = self
            .dkim2_signer(domain, "mailkey")
            .sign_revised(
                received.as_bytes(),
                modified.as_bytes(),
                mail_auth::dkim2::Hop::real(format!("<{mail_from}>"), rcpt),
                None,
            )
            .expect("DKIM2 hop");
        format!("{}{modified}", signed.to_header())
    }

    /// Writes the private key to `path` as PEM, as `[signing]` reads it.
    pub fn write_pem(&self, path: &Path) {
        let pkey = PKey::private_key_from_pkcs8(&self.pkcs8).expect("pkcs8");
        let pem = pkey.private_key_to_pem_pkcs8().expect("pem");
        std::fs::write(path, pem).expect("write key file");
    }

    /// The record with extra tags, e.g. `t=y`.
    pub fn record_with(&self, tags: &str) -> String {
        self.record
            .replacen("v=DKIM1;", &format!("v=DKIM1; {tags};"), 1)
    }

    /// Returns `message` with a DKIM-Signature prepended.
    pub fn sign(&self, message: &str, domain: &str, selector: &str) -> String {
        self.sign_with(message, domain, selector, |s| s)
    }

    /// Like [`sign`](Self::sign), with the signer adjusted by `tweak`.
    pub fn sign_with<F>(&self, message: &str, domain: &str, selector: &str, tweak: F) -> String
    where
        F: Fn(SignerOptions) -> SignerOptions,
    {
        let opts = tweak(SignerOptions::default());
        let header = match self.algorithm {
            "ed25519" => {
                let key = Ed25519Key::from_pkcs8_der(&self.pkcs8).expect("ed25519 key");
                opts.apply(DkimSigner::from_key(key).domain(domain).selector(selector))
                    .sign(message.as_bytes())
                    .expect("sign")
                    .to_header()
            }
            _ => {
                let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()));
                let key = RsaKey::<Sha256>::from_key_der(der).expect("rsa key");
                opts.apply(DkimSigner::from_key(key).domain(domain).selector(selector))
                    .sign(message.as_bytes())
                    .expect("sign")
                    .to_header()
            }
        };
        format!("{header}{message}")
    }
}

impl TestKey {
    /// `signed` (a message whose first field is a DKIM-Signature, Ed25519)
    /// with that signature's tag-list rewritten by `edit` and `b=` made
    /// again over it: signatures no signer makes (`t=` of 13 digits,
    /// `l=0`), valid but for what was edited. `edit` gets and returns the
    /// tags without `b=`, `; `-separated on one line.
    pub fn resign(&self, signed: &str, edit: impl Fn(&str) -> String) -> String {
        assert_eq!(self.algorithm, "ed25519", "resign signs with Ed25519");
        let end = signed.find("\r\nFrom:").expect("signature first") + 2;
        let (field, rest) = signed.split_at(end);
        let value = field.split_once(':').expect("field").1.replace("\r\n", "");
        let tags: Vec<&str> = value
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.starts_with("b="))
            .collect();
        let tags = edit(&tags.join("; "));
        // A placeholder b= (the hash input leaves out its value).
        let unsigned = format!("DKIM-Signature: {tags}; b=AAAA\r\n{rest}");
        let data = mail_auth::AuthenticatedMessage::parse(unsigned.as_bytes())
            .and_then(|m| m.canonicalized_dkim_headers())
            .expect("a signature to sign");
        let pkey = PKey::private_key_from_pkcs8(&self.pkcs8).expect("key");
        let digest = openssl::sha::sha256(&data);
        let b = openssl::sign::Signer::new_without_digest(&pkey)
            .and_then(|mut s| s.sign_oneshot_to_vec(&digest))
            .expect("sign");
        format!(
            "DKIM-Signature: {tags}; b={}\r\n{rest}",
            openssl::base64::encode_block(&b)
        )
    }
}

/// Signer settings a test may change.
pub struct SignerOptions {
    pub headers: Vec<&'static str>,
    pub body_length: bool,
    /// `x=` this long after `t=`.
    pub expiration: Option<std::time::Duration>,
}

impl Default for SignerOptions {
    fn default() -> Self {
        Self {
            headers: vec!["From", "To", "Subject", "Date", "Message-ID"],
            body_length: false,
            expiration: None,
        }
    }
}

impl SignerOptions {
    fn apply<T: mail_auth::crypto::SigningKey>(
        self,
        signer: DkimSigner<T, mail_auth::signer::NeedHeaders>,
    ) -> DkimSigner<T, mail_auth::signer::Ready> {
        let signer = signer.headers(self.headers).body_length(self.body_length);
        match self.expiration {
            Some(e) => signer.expiration(e),
            None => signer,
        }
    }
}

/// A plain message from `from` (CRLF line ends).
pub fn message(from: &str) -> String {
    format!(
        "From: Alice <{from}>\r\nTo: bob@receiver.test\r\nSubject: Quarterly report\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello Bob,\r\n\r\nthe numbers are attached.\r\n"
    )
}

/// [`message`] from `from` with a body of at least `size` bytes (lines of
/// 70 characters), signed with `key` for sender.test.
pub fn large_signed_message(key: &TestKey, from: &str, size: usize) -> String {
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu\r\n";
    let body = line.repeat(size / line.len() + 1);
    let mail = message(from).replace("Hello Bob,\r\n", &body);
    key.sign(&mail, "sender.test", "mailkey")
}

/// A stage went on: `Continue`, or `Noreply` where the daemon negotiated
/// that the MTA need not wait (connect, HELO, MAIL, header, body).
pub fn goes_on(status: &Status) -> bool {
    matches!(status, Status::Continue | Status::Noreply)
}

/// One SMTP transaction as the MTA would present it to the milter.
pub struct Transaction<'a> {
    pub client_ip: IpAddr,
    pub helo: &'a str,
    pub mail_from: &'a str,
    /// Macros for the MAIL stage, e.g. `{auth_authen}`.
    pub mail_macros: Vec<(&'a str, &'a str)>,
    /// The TLS macros, sent at the MAIL stage as Postfix may: by default a
    /// TLSv1.3 session with a client certificate Postfix verified, so the
    /// peer-certificate check passes without a probe.
    pub tls_macros: Vec<(&'a str, &'a str)>,
    pub message: String,
    /// RCPT TO arguments in order (`<bob@receiver.test>` by default).
    pub rcpts: Vec<String>,
}

/// The recipient of every test transaction unless it says otherwise.
pub const RECIPIENT: &str = "bob@receiver.test";

/// The macros Postfix sends for a client certificate it verified.
pub const VERIFIED_TLS: [(&str, &str); 5] = [
    ("{tls_version}", "TLSv1.3"),
    ("{cipher}", "TLS_AES_256_GCM_SHA384"),
    ("{cipher_bits}", "256"),
    ("{cert_subject}", "mail.sender.test"),
    ("{cert_issuer}", "Test CA"),
];

impl<'a> Transaction<'a> {
    pub fn new(client_ip: &str, mail_from: &'a str, message: String) -> Self {
        Self {
            client_ip: client_ip.parse().expect("ip"),
            helo: "mail.sender.test",
            mail_from,
            mail_macros: Vec::new(),
            tls_macros: VERIFIED_TLS.to_vec(),
            message,
            rcpts: vec![format!("<{RECIPIENT}>")],
        }
    }

    /// The same to these recipients (`alice@x.test`: brackets added).
    pub fn to(mut self, rcpts: &[&str]) -> Self {
        self.rcpts = rcpts.iter().map(|r| format!("<{r}>")).collect();
        self
    }
}

/// What the milter answered: at end of message, or at RCPT TO when it
/// rejected the recipient there (the MTA then never sends the body).
pub struct Outcome {
    pub status: Status,
    pub actions: EomActions,
    /// The answer came at RCPT TO, before any header or body was sent.
    pub at_rcpt: bool,
    /// The answer to each RCPT TO, in order.
    pub rcpts: Vec<Status>,
}

impl Outcome {
    /// The SMTP reply text of a reject/tempfail, or "".
    pub fn reply(&self) -> String {
        match &self.status {
            Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
                m.to_string_lossy().into_owned()
            }
            _ => String::new(),
        }
    }

    /// Asserts a reject whose reply starts with `code` (`"550-5.7.20"`,
    /// `"550"`) and says every one of `says`; returns the reply.
    #[track_caller]
    pub fn assert_rejected(&self, code: &str, says: &[&str]) -> String {
        let rejected = matches!(self.status, Status::Reject { .. });
        assert!(rejected, "expected a reject, got {:?}", self.status);
        self.assert_reply(code, says)
    }

    /// Like [`assert_rejected`](Self::assert_rejected) for a tempfail.
    #[track_caller]
    pub fn assert_tempfailed(&self, code: &str, says: &[&str]) -> String {
        let deferred = matches!(self.status, Status::Tempfail { .. });
        assert!(deferred, "expected a tempfail, got {:?}", self.status);
        self.assert_reply(code, says)
    }

    /// Asserts the reply text starts with `code` and says every one of
    /// `says`, whatever the status; returns it.
    #[track_caller]
    pub fn assert_reply(&self, code: &str, says: &[&str]) -> String {
        let reply = self.reply();
        assert!(
            reply.starts_with(code),
            "reply {reply:?} does not start with {code}"
        );
        for s in says {
            assert!(reply.contains(s), "reply {reply:?} does not say {s:?}");
        }
        reply
    }

    /// The `Authentication-Results` value we inserted; panics without one.
    #[track_caller]
    pub fn ar(&self) -> String {
        self.auth_results().expect("Authentication-Results")
    }

    /// The `Authentication-Results` value we inserted, if any.
    pub fn auth_results(&self) -> Option<String> {
        self.actions.actions.iter().find_map(|a| match a {
            indymilter_test::EomAction::InsertHeader { name, value, .. }
                if name.to_bytes() == b"Authentication-Results" =>
            {
                // With SMFIP_HDR_LEADSPC the value carries its own leading
                // space: the MTA writes `Name:` + value.
                let value = value.to_string_lossy();
                assert!(
                    value.starts_with(' '),
                    "header value without leading space: {value:?}"
                );
                Some(value[1..].to_string())
            }
            _ => None,
        })
    }

    pub fn is_accept(&self) -> bool {
        matches!(self.status, Status::Accept | Status::Continue)
    }

    /// `message` as the MTA passes it on: the header fields the milter
    /// inserted at the top (each at index 0, in the order it asked) in
    /// front of it, folded with CRLF.
    pub fn with_inserted_headers(&self, message: &str) -> String {
        let mut head = String::new();
        for a in &self.actions.actions {
            if let indymilter_test::EomAction::InsertHeader { index, name, value } = a {
                assert_eq!(*index, 0);
                let field = format!(
                    "{}:{}\r\n",
                    name.to_string_lossy(),
                    value.to_string_lossy().replace('\n', "\r\n")
                );
                head.insert_str(0, &field);
            }
        }
        head + message
    }

    /// The body the milter replaced the message's with, if it did.
    pub fn replaced_body(&self) -> Option<Vec<u8>> {
        let chunks: Vec<&[u8]> = self
            .actions
            .actions
            .iter()
            .filter_map(|a| match a {
                indymilter_test::EomAction::ReplaceBody { chunk } => Some(chunk.as_ref()),
                _ => None,
            })
            .collect();
        (!chunks.is_empty()).then(|| chunks.concat())
    }
}

/// Opens a connection, connects and says HELO.
pub async fn open(addr: SocketAddr, client_ip: IpAddr, helo: &str) -> TestConnection {
    // Values are passed exactly as split from the message (leading space
    // included), as Postfix and Sendmail do with SMFIP_HDR_LEADSPC.
    let conn = TestConnection::configure()
        .exact_leading_space(true)
        .open_tcp(addr)
        .await
        .expect("open milter connection");
    greet(conn, client_ip, helo).await
}

/// Like [`open`], over a unix socket.
pub async fn open_unix(path: &Path, client_ip: IpAddr, helo: &str) -> TestConnection {
    let conn = TestConnection::configure()
        .exact_leading_space(true)
        .open_unix(path)
        .await
        .expect("open milter connection");
    greet(conn, client_ip, helo).await
}

/// Connect and HELO on an opened connection (see [`open`]).
pub async fn greet(mut conn: TestConnection, client_ip: IpAddr, helo: &str) -> TestConnection {
    conn.macros(MacroStage::Connect, [("j", "mx.receiver.test")])
        .await
        .expect("macros");
    // Stages a milter declined at negotiation are skipped, as an MTA does
    // (OpenDKIM, in the comparison benchmark, declines HELO).
    let opts = conn.negotiated_opts();
    if !opts.contains(ProtoOpts::NO_CONNECT) {
        let status = conn
            .connect(
                "client.sender.test",
                SocketInfo::Inet(SocketAddr::new(client_ip, 40000)),
            )
            .await
            .expect("connect");
        assert!(goes_on(&status), "{status:?}");
    }
    if !opts.contains(ProtoOpts::NO_HELO) {
        let status = conn.helo(helo).await.expect("helo");
        assert!(goes_on(&status), "{status:?}");
    }
    conn
}

/// Sends one transaction on an open connection.
pub async fn send_on(conn: &mut TestConnection, t: &Transaction<'_>) -> Outcome {
    let mut mail_macros = vec![("i", "QUEUEID1")];
    mail_macros.extend(t.tls_macros.iter().copied());
    mail_macros.extend(t.mail_macros.iter().copied());
    conn.macros(MacroStage::Mail, mail_macros)
        .await
        .expect("macros");
    let status = conn
        .mail([
            format!("<{}>", t.mail_from),
            format!("SIZE={}", t.message.len()),
        ])
        .await
        .expect("mail");
    assert!(goes_on(&status), "{status:?}");
    let opts = conn.negotiated_opts();
    let mut rcpts = Vec::new();
    if !opts.contains(ProtoOpts::NO_RCPT) {
        for rcpt in &t.rcpts {
            rcpts.push(conn.rcpt([rcpt.as_str()]).await.expect("rcpt"));
        }
        if !rcpts.contains(&Status::Continue) {
            // Every recipient is refused: an MTA ends the transaction here
            // (RSET), without DATA.
            conn.abort().await.expect("abort");
            return Outcome {
                status: rcpts
                    .last()
                    .cloned()
                    .unwrap_or(Status::Tempfail { message: None }),
                actions: EomActions { actions: vec![] },
                at_rcpt: true,
                rcpts,
            };
        }
    }
    let (head, body) = t.message.split_once("\r\n\r\n").unwrap_or((&t.message, ""));
    for (name, value) in header_fields(head) {
        let status = conn.header(name, value).await.expect("header");
        assert!(goes_on(&status), "{status:?}");
    }
    if !opts.contains(ProtoOpts::NO_EOH) {
        conn.eoh().await.expect("eoh");
    }
    for chunk in body.as_bytes().chunks(65535) {
        conn.body(chunk.to_vec()).await.expect("body");
    }
    conn.macros(MacroStage::Eom, [("i", "QUEUEID1")])
        .await
        .expect("macros");
    let (actions, status) = conn.eom().await.expect("eom");
    Outcome {
        status,
        actions,
        at_rcpt: false,
        rcpts,
    }
}

/// One transaction on a new connection.
pub async fn send(addr: SocketAddr, t: &Transaction<'_>) -> Outcome {
    let mut conn = open(addr, t.client_ip, t.helo).await;
    let outcome = send_on(&mut conn, t).await;
    let _ = conn.close().await;
    outcome
}

/// Splits a header block into (name, value) as an MTA passes them: the
/// value keeps its leading space, folded lines are joined with LF.
pub fn header_fields(head: &str) -> Vec<(CString, CString)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    fields
        .into_iter()
        .map(|(n, v)| {
            (
                CString::new(n).expect("name"),
                CString::new(v).expect("value"),
            )
        })
        .collect()
}
