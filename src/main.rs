//! The `mailkey-milter` command: the daemon, and the tools around it.

// Lints: Cargo.toml's `[lints]` (no unwrap/expect outside tests).

use clap::{Args, CommandFactory, Parser, Subcommand};
use mailkey_milter::{
    check_domain,
    config::{Config, Mode, NameServer},
    envelope::{parse_mail_from, Envelope, TlsEvidence},
    keygen, logging, push_crlf,
    reply::Outcome,
    sign, socket,
    transaction::Pending,
    Shared, SharedHandle,
};
use std::{
    error::Error,
    io::{Read, Write},
    net::IpAddr,
    path::PathBuf,
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
    /// Configuration file (TOML). Without it: safe defaults (monitor mode).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// The daemon's flags, without a command (or after `run`); not global,
    /// so that no other command lists them (see `main`).
    #[command(flatten)]
    daemon: DaemonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Overrides of the configuration that only the daemon reads.
#[derive(Args, Clone, Default)]
struct DaemonArgs {
    /// Override `listen`: inet:HOST:PORT or unix:PATH.
    #[arg(long)]
    listen: Option<String>,
    /// Override `mode`: monitor or enforce.
    #[arg(long)]
    mode: Option<String>,
}

impl DaemonArgs {
    fn given(&self) -> bool {
        self.listen.is_some() || self.mode.is_some()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the milter daemon (the default).
    Run(DaemonArgs),
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
    /// Print the guidance paragraph for bounces the MTA writes itself
    /// (Sendmail: the file of `confERROR_MESSAGE`), from `[guidance]`.
    BounceText,
    /// Tokens: tagged addresses that let a sender's mail through to one
    /// recipient (issue, list, revoke).
    Token(mailkey_milter::tokens::cli::TokenArgs),
}

#[derive(Args)]
struct KeygenArgs {
    /// The sender domain the key signs for.
    #[arg(long)]
    domain: String,
    /// Default ed25519; rsa with --arc.
    #[arg(long, value_parser = ["ed25519", "rsa"])]
    algorithm: Option<String>,
    /// An ARC sealing key for [arc] key_file (RSA), published at
    /// arc._domainkey.DOMAIN, instead of a mailkey.
    #[arg(long)]
    arc: bool,
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
    if cli.daemon.given()
        && cli
            .command
            .as_ref()
            .is_some_and(|c| !matches!(c, Command::Run(_)))
    {
        // `mailkey-milter --mode enforce report …` would ignore --mode.
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--listen and --mode are the daemon's: `mailkey-milter [run] [--listen …] \
                 [--mode …]`; other commands do not take them",
            )
            .exit();
    }
    let file = cli.config;
    // Commands other than the daemon take the file as it is.
    let as_is = || Source {
        file: file.clone(),
        daemon: DaemonArgs::default(),
    };
    let result = match cli.command {
        None => daemon(Source {
            file: file.clone(),
            daemon: cli.daemon,
        }),
        Some(Command::Run(args)) => daemon(Source {
            file: file.clone(),
            daemon: DaemonArgs {
                listen: args.listen.or(cli.daemon.listen),
                mode: args.mode.or(cli.daemon.mode),
            },
        }),
        Some(Command::CheckConfig { file: named }) => check_config(Source {
            file: named.or(file.clone()),
            daemon: DaemonArgs::default(),
        }),
        Some(Command::Evaluate(args)) => evaluate(&as_is(), args),
        Some(Command::Keygen(args)) => run_keygen(args),
        Some(Command::CheckDomain(args)) => as_is().load().and_then(|c| run_check_domain(c, args)),
        Some(Command::Sign(args)) => run_sign(args),
        Some(Command::Report(args)) => as_is()
            .load()
            .and_then(|c| mailkey_milter::report::run(&c.dns, &args).map_err(Into::into)),
        Some(Command::BounceText) => as_is().load().map(|c| {
            for line in mailkey_milter::guidance::static_bounce_paragraph(&c.guidance) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }),
        Some(Command::Token(args)) => as_is()
            .load()
            .and_then(|c| mailkey_milter::tokens::cli::run(&c, args)),
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

/// Where the configuration comes from: the file (or the defaults) and the
/// daemon's command-line overrides; read again on SIGHUP.
#[derive(Clone)]
struct Source {
    file: Option<PathBuf>,
    daemon: DaemonArgs,
}

impl Source {
    /// The configuration file (or defaults) with the command-line overrides.
    fn load(&self) -> Result<Config, Box<dyn Error>> {
        let mut config = match &self.file {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(listen) = &self.daemon.listen {
            config.listen = listen.parse().map_err(|e| format!("--listen: {e}"))?;
        }
        if let Some(mode) = &self.daemon.mode {
            config.mode = mode.parse().map_err(|e| format!("--mode: {e}"))?;
        }
        Ok(config)
    }

    /// The configuration put to work as the daemon's start does it (files
    /// read, keys loaded; no socket bound); call within a runtime.
    fn setup(&self, config: Config) -> Result<Shared, Box<dyn Error>> {
        mailkey_milter::setup(config, self.file.as_deref()).map_err(|e| -> Box<dyn Error> { e })
    }
}

/// `check-config`: exactly what the daemon's start does before it binds
/// its socket, so that it refuses what the start would refuse.
fn check_config(source: Source) -> Result<ExitCode, Box<dyn Error>> {
    let config = source.load()?;
    runtime()?.block_on(async { source.setup(config.clone()) })?;
    print!("{}", config.to_toml());
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn Error>> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn daemon(source: Source) -> Result<ExitCode, Box<dyn Error>> {
    let config = source.load()?;
    logging::init(config.log_format);
    runtime()?.block_on(async {
        // Everything the configuration names (resolver, trust store, keys)
        // is set up before the socket exists: a bad file never leaves a
        // half-started daemon that the MTA could connect to.
        let shared = SharedHandle::new(source.setup(config.clone())?);
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
        if let Some(sealer) = &shared.current().sealer {
            info!(domain = %sealer.domain(), selector = %sealer.selector(), "ARC sealing key loaded");
        }
        if let Some(addr) = config.metrics.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
            info!("metrics on http://{addr}/metrics");
            tokio::spawn(mailkey_milter::metrics::serve(listener, shared.clone()));
        }
        if let Some(controls) = &shared.current().controls {
            info!("recipients' controls: state in {}", controls.store.describe());
            tokio::spawn(mailkey_milter::controls::purge_every_hour(shared.clone()));
        }
        if let (Some(addr), true) = (
            config.challenge.listen,
            shared.current().controls.as_ref().is_some_and(|c| c.challenges.is_some()),
        ) {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for the challenge page on {addr}: {e}"))?;
            info!("challenge page on http://{addr}/");
            tokio::spawn(mailkey_milter::challenge::http::serve(listener, shared.clone()));
        }
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        // SIGHUP: the configuration file is read again (with the same
        // command-line overrides) and handed to the daemon.
        let (reloads, reload_rx) = tokio::sync::mpsc::channel(1);
        let reloader = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let config = source.load().map_err(|e| e.to_string().into());
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

fn evaluate(source: &Source, args: EvaluateArgs) -> Result<ExitCode, Box<dyn Error>> {
    let config = source.load()?;
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
        let shared = std::sync::Arc::new(source.setup(config)?);
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
    println!("verdict: {}", verdict.applied().word());
    if let Some(reply) = verdict.outcome.refusal() {
        if verdict.monitor_only {
            println!("monitor mode; enforce mode would answer:");
        }
        println!("{}", reply.render());
    }
    Ok(ExitCode::from(match verdict.applied() {
        Outcome::Accept => 0,
        Outcome::Reject(_) => 1,
        Outcome::Tempfail(_) => 2,
    }))
}

fn run_keygen(args: KeygenArgs) -> Result<ExitCode, Box<dyn Error>> {
    let algorithm = match args.algorithm.as_deref() {
        Some("rsa") => keygen::Algorithm::Rsa,
        None if args.arc => keygen::Algorithm::Rsa,
        _ => keygen::Algorithm::Ed25519,
    };
    let generated = keygen::run(&keygen::Request {
        domain: args.domain,
        arc: args.arc,
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
