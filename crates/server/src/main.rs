//! The `canary` command: parses arguments, loads the config, sets up logging,
//! binds the listeners and hands over to [`canary_server::run`].

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use canary_server::Listeners;
use canary_server::adapters::clock::SystemClock;
use canary_server::adapters::listeners::{self, Inherited};
use canary_server::config::Config;
use clap::{Parser, Subcommand, ValueEnum};

use canary_server::cli;

/// canary: canary deployments with a built-in traffic-splitting proxy and a live console.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "The client commands (status, start, …) talk to a running server at --server \
                  (CANARY_SERVER) with --token (CANARY_TOKEN).\n\
                  Exit codes: 0 done (watch: promoted), 1 refused by the server, 2 bad usage, \
                  3 server unreachable or failing, 4 not authorised, 10 rolled back, 11 failed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: cli::Connection,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the console, the REST API and the WebSocket stream.
    Serve(ServeArgs),
    /// Run a live demo: two demo services standing in for production and
    /// canary, steady traffic through the proxy, and the console, with a
    /// demo panel that breaks the canary on purpose.
    Demo(DemoArgs),
    /// Hash a password for `auth.users` (reads it from standard input, or
    /// asks twice without echo on a terminal) and print the config entry.
    HashPassword(HashPasswordArgs),
    /// Make a new API token for `auth.tokens`: prints the secret once, and
    /// the config entry with its hash.
    NewToken(NewTokenArgs),
    /// Check a config file and exit: 0 when the server would start with it,
    /// 1 with the file, line, column and key at fault when not.
    Check(CheckArgs),
    /// Copy the store (state and audit trail) to a new file, safely while
    /// the server runs. To restore: stop the server, put the copy in the data
    /// dir as canary.db (removing canary.db-wal and canary.db-shm), start it.
    Backup(BackupArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

/// Which configuration file to read (`serve` and `check`).
#[derive(Debug, clap::Args)]
struct ConfigFile {
    /// The configuration file.
    #[arg(
        long,
        short,
        default_value = "canary-config.yaml",
        env = "CANARY_CONFIG"
    )]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    file: ConfigFile,
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The server's data dir (`server.data_dir`).
    #[arg(long, default_value = "canary-data")]
    data_dir: PathBuf,
    /// The file to write; it must not exist yet.
    #[arg(long)]
    to: PathBuf,
}

#[derive(Debug, clap::Args)]
struct HashPasswordArgs {
    /// The user's name, for the printed config entry.
    #[arg(long, default_value = "NAME")]
    user: String,
    /// The user's role: viewer, operator or admin.
    #[arg(long, default_value = "operator")]
    role: canary_shared::Role,
}

#[derive(Debug, clap::Args)]
struct NewTokenArgs {
    /// The token's name, recorded as the actor of what it does.
    #[arg(long)]
    name: String,
    /// The token's role: viewer, operator or admin.
    #[arg(long, default_value = "operator")]
    role: canary_shared::Role,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    overrides: Overrides,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CANARY_LOG_FORMAT")]
    log_format: LogFormat,
}

/// Command-line values that win over the config file.
#[derive(Debug, clap::Args)]
struct Overrides {
    /// Address of the console and API; overrides `server.admin_listen`.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Address of the traffic-splitting proxy; overrides `server.proxy_listen`.
    #[arg(long)]
    proxy_listen: Option<SocketAddr>,
    /// Where state and the audit trail live; overrides `server.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The built console (trunk's dist folder); overrides `server.assets_dir`.
    #[arg(long)]
    assets_dir: Option<PathBuf>,
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(admin_listen) = self.admin_listen {
            config.server.admin_listen = admin_listen;
        }
        if let Some(proxy_listen) = self.proxy_listen {
            config.server.proxy_listen = proxy_listen;
        }
        if let Some(data_dir) = &self.data_dir {
            config.server.data_dir.clone_from(data_dir);
        }
        if let Some(assets_dir) = &self.assets_dir {
            config.server.assets_dir.clone_from(assets_dir);
        }
    }
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Address of the console and API.
    #[arg(long, default_value = "127.0.0.1:8000")]
    admin_listen: SocketAddr,
    /// Address of the traffic-splitting proxy.
    #[arg(long, default_value = "127.0.0.1:8080")]
    proxy_listen: SocketAddr,
    /// Where the demo keeps its state, audit trail, config and deploy script.
    #[arg(long, default_value = "canary-demo-data")]
    data_dir: PathBuf,
    /// The built console (trunk's dist folder).
    #[arg(long)]
    assets_dir: Option<PathBuf>,
    /// Requests per second the load generator sends through the proxy.
    #[arg(long, default_value_t = 40)]
    load: u32,
    /// What splits the demo's traffic: canary's own proxy, or a real HAProxy
    /// or nginx (Debian's, installed) that canary steers.
    #[arg(long, value_enum, default_value_t = DemoRouterArg::Builtin)]
    router: DemoRouterArg,
    /// The demo services speak gRPC (over h2c, through the built-in proxy),
    /// and the load is gRPC calls; a failing canary answers UNAVAILABLE.
    #[arg(long, conflicts_with = "router")]
    grpc: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "CANARY_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DemoRouterArg {
    /// canary's own proxy.
    Builtin,
    /// HAProxy, through its Runtime API.
    Haproxy,
    /// nginx, through a file canary writes.
    Nginx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

// glibc's allocator showed up in the proxy's profile (BENCHMARKS.md);
// mimalloc's per-thread heaps suit a request-per-task server better.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log format chosen by `serve` or `demo`, once logging is set up:
/// with JSON, everything the server writes is a JSON line, the fatal error too.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

fn json_logs() -> bool {
    LOG_FORMAT.get() == Some(&LogFormat::Json)
}

fn main() -> std::process::ExitCode {
    // mimalloc asks the kernel for transparent huge pages on its arena, so
    // each 2 MiB region a thread touches is resident whole: canary's
    // memory doubled under load for no measurable speed (BENCHMARKS.md,
    // seventeenth session). Off before the threads start allocating; the
    // setting is the process's and its children's (mimalloc's own
    // `MIMALLOC_ALLOW_THP=0` does the same), and a kernel without it
    // leaves things as they were.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    // Before any thread starts: it clears the variables it reads.
    let inherited = match Inherited::take() {
        Ok(inherited) => inherited,
        Err(err) => {
            eprintln!("canary: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(inherited) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // The message and its causes, without a backtrace: these are
            // errors a user fixes (a config key, a busy port), not bugs.
            if json_logs() {
                tracing::error!(error = %format!("{err:#}"), "canary stopped");
            } else {
                eprintln!("canary: {err:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(inherited: Inherited) -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args, inherited),
        Command::Demo(args) => demo(args, inherited),
        Command::HashPassword(args) => hash_password(&args),
        Command::NewToken(args) => new_token(&args),
        Command::Backup(args) => backup(&args),
        Command::Check(args) => check(&args),
        Command::Client(command) => {
            let exit = cli::run(&cli.connection, command)?;
            std::process::exit(exit as i32)
        }
    }
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn hash_password(args: &HashPasswordArgs) -> anyhow::Result<()> {
    let password = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
        let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
        anyhow::ensure!(
            first == again,
            "the two passwords differ; nothing was hashed"
        );
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    anyhow::ensure!(
        password.chars().count() >= 12,
        "the password is shorter than 12 characters; choose a longer one"
    );
    let hash = canary_server::adapters::credentials::hash_password(&password)?;
    println!("# Add under auth.users in canary-config.yaml:");
    println!("- name: {}", args.user);
    println!("  role: {}", args.role);
    println!("  password_hash: \"{hash}\"");
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn new_token(args: &NewTokenArgs) -> anyhow::Result<()> {
    let name = canary_server::config::IdentityName::try_from(args.name.clone())
        .map_err(|message| anyhow::anyhow!("--name: {message}"))?;
    let (secret, hash) = canary_server::adapters::credentials::new_token()?;
    println!("# The secret, shown only now; give it to the script as CANARY_TOKEN:");
    println!("{secret}");
    println!("# Add under auth.tokens in canary-config.yaml:");
    println!("- name: {}", name.0);
    println!("  role: {}", args.role);
    println!("  secret_hash: \"{hash}\"");
    Ok(())
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command's output and warnings"
)]
fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.file.config).map_err(|err| anyhow::anyhow!("{err}"))?;
    // What `serve` would refuse on this machine, in the same words.
    let warnings = canary_server::preflight::check(&config, Some(&args.file.config))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let steps: Vec<String> = config
        .canary
        .traffic_steps
        .shares()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "{}: ok; console on {}, proxy on {}, production {}, canary {}, steps {}, {} safety checks",
        args.file.config.display(),
        config.server.admin_listen,
        config.server.proxy_listen,
        config.upstreams.production.url,
        config.upstreams.canary.url,
        steps.join(" → "),
        config.check_specs().len()
    );
    for warning in warnings {
        eprintln!("canary: warning: {warning}");
    }
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let now = canary_server::ports::Clock::now(&SystemClock);
    canary_server::adapters::store::SqliteStore::backup(&args.data_dir, &args.to, now)
        .with_context(|| {
            format!(
                "cannot back up {} to {}",
                args.data_dir.display(),
                args.to.display()
            )
        })?;
    println!(
        "canary: backed up {} to {}",
        args.data_dir.display(),
        args.to.display()
    );
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let _ = LOG_FORMAT.set(format);
}

fn serve(args: ServeArgs, inherited: Inherited) -> anyhow::Result<()> {
    init_tracing(args.log_format);
    // A config error is printed as it is: it already names file, line, column and field.
    let mut config = Config::load(&args.file.config).map_err(|err| anyhow::anyhow!("{err}"))?;
    args.overrides.apply(&mut config);
    let warnings = canary_server::preflight::check(&config, Some(&args.file.config))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let listeners = listeners::bind(&config, inherited).await?;
        let source = args.file.config.display().to_string();
        announce(&config, &listeners, &source)?;
        canary_server::run(config, listeners, Arc::new(SystemClock), shutdown)
            .await
            .context("server failed")
    })
}

/// `canary demo`: the demo services, their load, and the server in one process.
fn demo(args: DemoArgs, inherited: Inherited) -> anyhow::Result<()> {
    use canary_server::adapters::demo::{self, Demo};
    init_tracing(args.log_format);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let mut services = Demo::start(args.load, args.grpc)
            .await
            .context("cannot start the demo services")?;
        let data_dir = args.data_dir;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        // The config written there names it absolutely: its relative paths
        // would be taken from its own folder.
        let data_dir = std::fs::canonicalize(&data_dir)
            .with_context(|| format!("cannot resolve the data dir {}", data_dir.display()))?;
        // The deploy hook is a real script, written where the demo keeps its
        // data, so the demo runs from any working directory.
        let script = data_dir.join("demo-deploy.sh");
        std::fs::write(&script, demo::DEPLOY_SCRIPT)
            .with_context(|| format!("cannot write {}", script.display()))?;
        let mut yaml = demo::config_yaml(
            &services,
            &data_dir.to_string_lossy(),
            &script.to_string_lossy(),
            args.router == DemoRouterArg::Builtin,
        );
        // A real router in front of the services, when asked for.
        let external = match args.router {
            DemoRouterArg::Builtin => None,
            DemoRouterArg::Haproxy | DemoRouterArg::Nginx => {
                use canary_server::adapters::demo_router::{self, DemoRouter};
                let kind = if args.router == DemoRouterArg::Haproxy {
                    DemoRouter::Haproxy
                } else {
                    DemoRouter::Nginx
                };
                let router = demo_router::start(
                    kind,
                    &data_dir,
                    services.production_url().trim_start_matches("http://"),
                    services.canary_url().trim_start_matches("http://"),
                )
                .map_err(|err| anyhow::anyhow!("{err}"))?;
                yaml.push_str(&router.config_yaml);
                Some(router)
            }
        };
        let config_file = data_dir.join("canary-config.yaml");
        std::fs::write(&config_file, &yaml)
            .with_context(|| format!("cannot write {}", config_file.display()))?;
        let mut config = Config::load(&config_file).map_err(|err| anyhow::anyhow!("{err}"))?;
        config.server.admin_listen = args.admin_listen;
        config.server.proxy_listen = args.proxy_listen;
        if let Some(assets_dir) = args.assets_dir {
            config.server.assets_dir = assets_dir;
        }
        let listeners = listeners::bind(&config, inherited).await?;
        let proxy_addr = listeners
            .proxy
            .as_ref()
            .map(|proxy| proxy.local_addr())
            .transpose()
            .context("cannot read the bound address")?;
        announce(&config, &listeners, &config_file.display().to_string())?;
        #[allow(clippy::print_stdout, reason = "what the newcomer reads first")]
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "canary: demo services: production {} at {}, canary {} at {}; {} requests/s of load through {}",
                demo::PRODUCTION_VERSION,
                services.production_url(),
                demo::CANARY_VERSION,
                services.canary_url(),
                args.load,
                match args.router {
                    DemoRouterArg::Builtin if args.grpc => "the proxy (gRPC calls over h2c)",
                    DemoRouterArg::Builtin => "the proxy",
                    DemoRouterArg::Haproxy => "HAProxy",
                    DemoRouterArg::Nginx => "nginx",
                }
            );
            let _ = writeln!(
                out,
                "canary: demo data in {} (delete it to start afresh)",
                data_dir.display()
            );
        }
        let control = services.control();
        let (_controller, server) = canary_server::start_with_demo(
            config,
            listeners,
            Arc::new(SystemClock),
            shutdown,
            Some(control),
        )
        .context("server failed")?;
        match &external {
            Some(router) => {
                #[allow(clippy::print_stdout, reason = "what the newcomer reads first")]
                {
                    let mut out = std::io::stdout().lock();
                    let name = if args.router == DemoRouterArg::Haproxy { "HAProxy" } else { "nginx" };
                    let _ = writeln!(
                        out,
                        "canary: the demo's traffic goes through {name} at http://{}/, which canary steers",
                        router.front
                    );
                }
                services.send_load(router.front);
            }
            None => services.send_load(proxy_addr.context("the demo's built-in proxy has no listener")?),
        }
        let result = server
            .await
            .unwrap_or_else(|join_error| Err(std::io::Error::other(join_error)));
        drop(services);
        drop(external);
        result.context("server failed")
    })
}

/// Binds both listeners, naming the config key of an address that cannot be used.
/// Logs and prints where the console and the proxy listen.
fn announce(config: &Config, listeners: &Listeners, source: &str) -> anyhow::Result<()> {
    let admin_addr = listeners
        .admin
        .local_addr()
        .context("cannot read the bound address")?;
    let proxy_addr = listeners
        .proxy
        .as_ref()
        .map(|proxy| proxy.local_addr())
        .transpose()
        .context("cannot read the bound address")?;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let console = format!(
        "{scheme}://{admin_addr}{}/admin/canary/",
        config.server.prefix()
    );
    let proxy = match proxy_addr {
        Some(address) => format!("http://{address}/"),
        None => format!(
            "none: the traffic goes through the router (router.kind {})",
            config.router.kind.config_name()
        ),
    };
    tracing::info!(%console, %proxy, config = %source, "canary serving");
    if json_logs() {
        // The log line above says it, as JSON like every other line.
        return Ok(());
    }
    // Scripts and tests read these lines to find the ports when port 0 was asked for.
    #[allow(clippy::print_stdout, reason = "the lines a launcher reads")]
    {
        // Written, not `println!`: a server whose stdout has gone (a closed
        // pipe) must keep serving, not panic on its start-up lines.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "canary: console at {console}");
        match proxy_addr {
            Some(_) => {
                let _ = writeln!(out, "canary: proxy at {proxy}");
            }
            None => {
                let _ = writeln!(out, "canary: proxy {proxy}");
            }
        }
        let _ = out.flush();
    }
    Ok(())
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from now on and resolves on the
/// first (and for SIGHUP, so that it never ends the process). The handlers are installed before this returns, so a signal that
/// arrives while the server is still starting is not lost to the default
/// action (which would end the process without a graceful shutdown).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    // SIGHUP reloads the certificates (the server's own task does that);
    // listening from here on keeps its default action, ending the process,
    // from taking a `systemctl reload` sent while the server starts.
    let hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    Ok(async move {
        let _hangup = hangup;
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
