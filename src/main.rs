//! The `mailkey-milter` command: the daemon, and the tools around it.

#![warn(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::dbg_macro,
    rust_2018_idioms
)]

use clap::{Args, Parser, Subcommand};
use mailkey_milter::{
    check_domain,
    config::{Config, Mode, NameServer},
    envelope::{parse_mail_from, Envelope, TlsEvidence},
    keygen, logging, push_crlf, sign, socket,
    transaction::Pending,
    verdict::Action,
    Shared, SharedHandle,
};
use std::{
    error::Error,
    io::{Read, Write},
    net::IpAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

#[derive(Parser)]
#[command(
    version,
    about = "Milter that holds envelope senders accountable (mailkey, strict SPF, peer certificate, MX)"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct Common {
    /// Configuration file (TOML). Without it: safe defaults (monitor mode).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Override `listen`: inet:HOST:PORT or unix:PATH.
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Override `mode`: monitor or enforce.
    #[arg(long, global = true)]
    mode: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the milter daemon (the default).
    Run,
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The file (default: --config).
        file: Option<PathBuf>,
    },
    /// Check one message offline; exit 0 accept, 1 reject, 2 tempfail.
    Evaluate(EvaluateArgs),
    /// Make a signing key; print the DNS records and the configuration for it.
    Keygen(KeygenArgs),
    /// Check a domain's mailkey, SPF and MX records; exit 0 ready, 1 something
    /// to fix, 2 a DNS lookup failed.
    CheckDomain(CheckDomainArgs),
    /// Sign the message on stdin with a mailkey signature; write it to stdout.
    Sign(SignArgs),
    /// From JSON logs: what enforcing each check would have rejected.
    Report(mailkey_milter::report::ReportArgs),
}

#[derive(Args)]
struct KeygenArgs {
    /// The sender domain the key signs for.
    #[arg(long)]
    domain: String,
    #[arg(long, value_parser = ["ed25519", "rsa"], default_value = "ed25519")]
    algorithm: String,
    /// RSA key size (2048 to 4096; default 2048).
    #[arg(long)]
    bits: Option<u32>,
    /// Directory for the private key file (created with mode 0700).
    #[arg(long)]
    out: PathBuf,
    /// Publish with t=y: receivers report failures but do not reject.
    #[arg(long)]
    testing: bool,
    /// Replace an existing key file.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct CheckDomainArgs {
    domain: String,
    /// Ask this name server (IP or IP:PORT) instead of the configured ones.
    #[arg(long)]
    nameserver: Option<String>,
    /// Also check that a published record matches this private key file,
    /// and that a message signed with it verifies.
    #[arg(long)]
    key: Option<PathBuf>,
    /// With --key: the domain also signs DKIM2 under this selector; a
    /// DKIM2 test message signed with the key must verify (key at
    /// SELECTOR._domainkey.DOMAIN).
    #[arg(long, requires = "key")]
    dkim2_selector: Option<String>,
    /// The address the domain's mail is sent from: SPF must pass for it.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// The sending server, HOST[:PORT] (port 25 by default): probe its
    /// STARTTLS certificate as receivers do.
    #[arg(long)]
    mta: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SignArgs {
    #[arg(long)]
    domain: String,
    /// The private key file (PEM).
    #[arg(long)]
    key: PathBuf,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The envelope sender; "" for the null sender.
    #[arg(long)]
    mail_from: String,
    #[arg(long)]
    client_ip: IpAddr,
    #[arg(long)]
    helo: String,
    /// The TLS version of the session, as `{tls_version}` (absent: plaintext).
    #[arg(long)]
    tls_version: Option<String>,
    /// The verified client certificate's subject, as `{cert_subject}`.
    #[arg(long)]
    cert_subject: Option<String>,
    /// Its issuer, as `{cert_issuer}`.
    #[arg(long)]
    cert_issuer: Option<String>,
    /// Sendmail's `{verify}` (OK, NO, FAIL, …).
    #[arg(long)]
    verify: Option<String>,
    /// A recipient of the transaction (repeat for each): a DKIM2 chain is
    /// verified against every one; without any, DKIM2 is not verified.
    #[arg(long)]
    rcpt_to: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Run) => {
            load(&cli.common, None).and_then(|c| daemon(c, cli.common.clone()))
        }
        Some(Command::CheckConfig { file }) => {
            load(&cli.common, file.as_deref()).and_then(|c| {
                // The signing keys are part of a usable configuration.
                sign::Signers::load(&c.signing)?;
                print!("{}", c.to_toml());
                Ok(ExitCode::SUCCESS)
            })
        }
        Some(Command::Evaluate(args)) => load(&cli.common, None).and_then(|c| evaluate(c, args)),
        Some(Command::Keygen(args)) => run_keygen(args),
        Some(Command::CheckDomain(args)) => {
            load(&cli.common, None).and_then(|c| run_check_domain(c, args))
        }
        Some(Command::Sign(args)) => run_sign(args),
        Some(Command::Report(args)) => load(&cli.common, None)
            .and_then(|c| mailkey_milter::report::run(&c.dns, &args).map_err(Into::into)),
    };
    result.unwrap_or_else(|e| {
        eprintln!("mailkey-milter: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        ExitCode::FAILURE
    })
}

/// The configuration file (or defaults) with the command-line overrides.
fn load(common: &Common, file: Option<&Path>) -> Result<Config, Box<dyn Error>> {
    let mut config = match file.or(common.config.as_deref()) {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = &common.listen {
        config.listen = listen.parse().map_err(|e| format!("--listen: {e}"))?;
    }
    if let Some(mode) = &common.mode {
        config.mode = mode.parse().map_err(|e| format!("--mode: {e}"))?;
    }
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn Error>> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn daemon(config: Config, common: Common) -> Result<ExitCode, Box<dyn Error>> {
    logging::init(config.log_format);
    runtime()?.block_on(async {
        // Everything the configuration names (resolver, trust store, keys)
        // is set up before the socket exists: a bad file never leaves a
        // half-started daemon that the MTA could connect to.
        let shared = SharedHandle::new(Shared::new(config.clone())?);
        let listener = socket::bind(&config).await?;
        info!(
            listen = %config.listen,
            mode = %config.mode,
            authserv_id = %config.authserv_id,
            "mailkey-milter {} started",
            env!("CARGO_PKG_VERSION")
        );
        if config.mode == Mode::Monitor {
            info!("monitor mode: nothing is rejected; see would_reject= in the log");
        }
        for key in shared.current().signers.keys() {
            info!(domain = %key.domain, key_file = %key.path.display(), key_type = %key.key_type, "signing key loaded");
        }
        if let Some(addr) = config.metrics.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
            info!("metrics on http://{addr}/metrics");
            tokio::spawn(mailkey_milter::metrics::serve(listener, shared.clone()));
        }
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        // SIGHUP: the configuration file is read again (with the same
        // command-line overrides) and handed to the daemon.
        let (reloads, reload_rx) = tokio::sync::mpsc::channel(1);
        let reloader = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let config = load(&common, None).map_err(|e| e.to_string().into());
                if reloads.send(config).await.is_err() {
                    break;
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: finishing transactions in flight and stopping"),
                _ = int.recv() => info!("SIGINT: finishing transactions in flight and stopping"),
            }
        };
        let result = mailkey_milter::run(listener, shared, reload_rx, shutdown).await;
        reloader.abort();
        socket::cleanup(&config);
        result?;
        info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

fn evaluate(config: Config, args: EvaluateArgs) -> Result<ExitCode, Box<dyn Error>> {
    logging::init(config.log_format);
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;
    // Messages on disk usually have LF line ends; SMTP (and signatures) use CRLF.
    let mut crlf = Vec::with_capacity(message.len() + message.len() / 32);
    push_crlf(&mut crlf, &message);
    let message = crlf;
    let envelope = Envelope {
        client_ip: Some(args.client_ip),
        helo: args.helo,
        mail_from: parse_mail_from(&args.mail_from),
        tls: TlsEvidence::from_macros(|name| match name {
            "{tls_version}" => args.tls_version.clone(),
            "{cert_subject}" => args.cert_subject.clone(),
            "{cert_issuer}" => args.cert_issuer.clone(),
            "{verify}" => args.verify.clone(),
            _ => None,
        }),
    };
    let evaluation = runtime()?.block_on(async {
        let shared = std::sync::Arc::new(Shared::new(config)?);
        let pending = Pending::start(&shared, envelope);
        pending.recipients(args.rcpt_to);
        let e = pending.finish(&message).await;
        Ok::<_, Box<dyn Error>>(e)
    })?;
    for r in &evaluation.results {
        match &r.reason {
            Some(why) => println!("{}: {} ({why})", r.check, r.status),
            None => println!("{}: {}", r.check, r.status),
        }
    }
    let verdict = &evaluation.verdict;
    println!("verdict: {}", verdict.action.as_str());
    if let Some(reply) = &verdict.reply {
        if verdict.monitor_only {
            println!("monitor mode; enforce mode would answer:");
        }
        println!("{}", reply.render());
    }
    Ok(ExitCode::from(match verdict.action {
        Action::Accept => 0,
        Action::Reject => 1,
        Action::Tempfail => 2,
    }))
}

fn run_keygen(args: KeygenArgs) -> Result<ExitCode, Box<dyn Error>> {
    let algorithm = match args.algorithm.as_str() {
        "rsa" => keygen::Algorithm::Rsa,
        _ => keygen::Algorithm::Ed25519,
    };
    let generated = keygen::run(&keygen::Request {
        domain: args.domain,
        algorithm,
        bits: args.bits,
        out: args.out,
        testing: args.testing,
        force: args.force,
    })?;
    print!("{}", keygen::instructions(&generated));
    Ok(ExitCode::SUCCESS)
}

fn run_check_domain(mut config: Config, args: CheckDomainArgs) -> Result<ExitCode, Box<dyn Error>> {
    if let Some(ns) = args.nameserver {
        config.dns.nameservers =
            vec![NameServer::try_from(ns).map_err(|e| format!("--nameserver: {e}"))?];
    }
    let mta = match args.mta.as_deref() {
        None => None,
        Some(spec) => Some(match spec.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (
                host,
                port.parse::<u16>()
                    .map_err(|e| format!("--mta {spec:?}: bad port: {e}"))?,
            ),
            _ => (spec, 25),
        }),
    };
    let sending = check_domain::Sending {
        key_file: args.key.as_deref(),
        ip: args.ip,
        mta,
        tls: config.tls.clone(),
        dkim2_selector: args.dkim2_selector.as_deref(),
    };
    let report = runtime()?.block_on(async {
        let dns = mailkey_milter::dns::Dns::new(&config.dns)?;
        Ok::<_, Box<dyn Error>>(check_domain::check_sending(&dns, &args.domain, &sending).await)
    })?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn run_sign(args: SignArgs) -> Result<ExitCode, Box<dyn Error>> {
    let key = sign::DomainKey::load(&args.domain, &args.key)?;
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;
    let mut crlf = Vec::with_capacity(message.len() + message.len() / 32 + 512);
    push_crlf(&mut crlf, &message);
    let value = key.sign(&crlf)?;
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{}:{value}\r\n", sign::HEADER).as_bytes())?;
    out.write_all(&crlf)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
