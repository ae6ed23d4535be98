//! Subcommands of `cinema` and their settings (flags, each with a `CINEMA_*` environment
//! variable and a default that works on a laptop).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cinema_worker::CancellationToken;
use clap::{Args, Parser, Subcommand};

use crate::internal_api::{self, InternalState};
use crate::runtime::metrics::RuntimeMetrics;
use crate::runtime::{App, RuntimeConfig, RuntimeSettings};

#[derive(Debug, Parser)]
#[command(
    name = "cinema",
    version,
    about = "The cinema platform host: component runtime, workers and ops"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Spin application (like `spin up`) and the internal API.
    Up(Box<UpArgs>),
    /// Apply pending Postgres and ClickHouse migrations.
    Migrate(MigrateArgs),
    /// Check that components import only what `wit/` (world `edge`) allows.
    CheckImports(CheckImportsArgs),
    /// Token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// User accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Rebuild the search index from Postgres (while no `cinema up` uses it; a running
    /// one rebuilds on `POST /etl/reindex` of its internal API).
    Reindex {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Folder of the search index.
        #[arg(long, env = "CINEMA_INDEX_DIR", default_value = DEFAULT_INDEX_DIR)]
        index_dir: PathBuf,
    },
    /// Replace the content tables with a deterministic, realistic data set.
    Seed {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Number of films.
        #[arg(long, default_value_t = 1000)]
        films: usize,
    },
    /// Print a shell completion script (`make install-cli` installs the bash one), e.g.
    /// `cinema completions bash > /etc/bash_completion.d/cinema`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a signing key; the current one retires once its tokens can no longer be valid.
    Rotate {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Seconds before the new key starts signing (verifiers' JWKS cache lifetime).
        #[arg(long, env = "CINEMA_JWKS_CACHE_SECONDS", default_value_t = 300)]
        activate_after_seconds: u64,
        /// Lifetime of access tokens in seconds.
        #[arg(long, env = "CINEMA_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900)]
        token_ttl_seconds: u64,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// Seal every private key still stored in clear with the key-encryption key.
    Seal {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        kek: KekArgs,
    },
    /// Move every private key to a new key-encryption key (one transaction); then give
    /// auth the new one (`SPIN_VARIABLE_SIGNING_KEY_ENCRYPTION_KEY`).
    Reencrypt {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        kek: KekArgs,
        /// File holding the new key-encryption key (64 hex digits).
        #[arg(long)]
        new_key_file: PathBuf,
    },
    /// Print a fresh key-encryption key (64 hex digits) to keep in a secret store.
    NewKek,
    /// Show every signing key and its state.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print the JWKS (public keys that can still verify a live token).
    Jwks {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create the first admin (or grant `admin` to an existing user). The password is
    /// read from CINEMA_ADMIN_PASSWORD, else from the first line of standard input.
    CreateAdmin {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        email: String,
    },
}

/// The key-encryption key private signing keys are sealed with.
#[derive(Debug, Args)]
pub struct KekArgs {
    /// The key-encryption key, 64 hex digits (a secret: never logged). Without it (and
    /// without --key-encryption-key-file) new keys are stored in clear, with a warning.
    #[arg(
        long = "key-encryption-key",
        env = "CINEMA_SIGNING_KEY_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub key_encryption_key: Option<String>,
    /// A file holding the key-encryption key.
    #[arg(long)]
    pub key_encryption_key_file: Option<PathBuf>,
}

impl KekArgs {
    /// The key, if one is given; a malformed one is an error naming where it came from.
    pub fn load(&self) -> anyhow::Result<Option<cinema_domain::key_seal::KeyEncryptionKey>> {
        let (raw, source) = match (&self.key_encryption_key_file, &self.key_encryption_key) {
            (Some(path), _) => (
                read_key_encryption_key_file(path)?,
                path.display().to_string(),
            ),
            (None, Some(raw)) => (raw.clone(), "CINEMA_SIGNING_KEY_ENCRYPTION_KEY".to_owned()),
            (None, None) => return Ok(None),
        };
        parse_key_encryption_key(&raw, &source).map(Some)
    }

    fn require(&self) -> anyhow::Result<cinema_domain::key_seal::KeyEncryptionKey> {
        self.load()?.ok_or_else(|| {
            anyhow::anyhow!(
                "give the key-encryption key: CINEMA_SIGNING_KEY_ENCRYPTION_KEY or --key-encryption-key-file"
            )
        })
    }
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// Postgres database of the platform.
    #[arg(
        long,
        env = "CINEMA_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cinema?sslmode=disable"
    )]
    pub postgres_url: String,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The Spin application manifest.
    #[arg(
        long = "from",
        short = 'f',
        env = "CINEMA_MANIFEST",
        default_value = "spin.toml"
    )]
    pub manifest: PathBuf,
    /// Address of the public HTTP listener.
    #[arg(long, env = "CINEMA_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Address of the internal API (health, metrics); keep it on loopback.
    #[arg(long, env = "CINEMA_INTERNAL_LISTEN", default_value = "127.0.0.1:3001")]
    pub internal_listen: SocketAddr,
    /// Spin runtime-config file (key-value stores).
    #[arg(long, env = "CINEMA_RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Longest a component may work on one request, in milliseconds.
    #[arg(long, env = "CINEMA_REQUEST_DEADLINE_MS", default_value_t = 10_000)]
    pub request_deadline_ms: u64,
    /// Largest memory a component instance may use, in MiB.
    #[arg(long, env = "CINEMA_MEMORY_LIMIT_MIB", default_value_t = 128)]
    pub memory_limit_mib: usize,
    /// Requests one instance serves before it is replaced. Its memory (held keys,
    /// verified tokens, settings) lives that long; a leak stays within the memory limit.
    #[arg(long, env = "CINEMA_MAX_INSTANCE_REUSE", default_value_t = 10_000)]
    pub max_instance_reuse: usize,
    /// Requests one instance serves at the same time (1 keeps a trap to its own request).
    #[arg(long, env = "CINEMA_MAX_CONCURRENT_PER_INSTANCE", default_value_t = 1)]
    pub max_concurrent_per_instance: usize,
    /// Requests in flight at once across all components, shared equally unless the
    /// runtime config's `[component_limits.<id>]` says otherwise (more wait in line).
    #[arg(long, env = "CINEMA_MAX_INSTANCES", default_value_t = 256)]
    pub max_instances: u32,
    /// Connections the public listener keeps open at once (more wait in the backlog).
    #[arg(long, env = "CINEMA_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, in milliseconds.
    #[arg(long, env = "CINEMA_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_read_timeout_ms: u64,
    /// How long shutdown waits for in-flight requests, in milliseconds (a second
    /// SIGTERM or Ctrl-C exits at once).
    #[arg(long, env = "CINEMA_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,
    /// How long a request waits for its component's share before a 503
    /// (`component_busy`, `Retry-After: 1`), in milliseconds.
    #[arg(long, env = "CINEMA_QUEUE_TIMEOUT_MS", default_value_t = 2_000)]
    pub queue_timeout_ms: u64,
    /// Postgres connections per distinct address guests connect to.
    #[arg(long, env = "CINEMA_POSTGRES_POOL_SIZE", default_value_t = 16)]
    pub postgres_pool_size: usize,
    /// Threads serving the public listener, each with its own component instances
    /// (0: one per core).
    #[arg(long, env = "CINEMA_SERVING_THREADS", default_value_t = 0)]
    pub serving_threads: usize,
    /// Write /tmp/perf-<pid>.map so `perf report` names compiled guest functions
    /// (profiling only).
    #[arg(long, env = "CINEMA_GUEST_PERF_MAP")]
    pub guest_perf_map: bool,
    /// Folder of the catalog search index; without it this host serves no search and
    /// runs no ETL.
    #[arg(long, env = "CINEMA_INDEX_DIR")]
    pub index_dir: Option<PathBuf>,
    /// Serve the index without running the ETL (another process keeps it).
    #[arg(long, env = "CINEMA_NO_ETL")]
    pub no_etl: bool,
    /// Postgres the ETL reads content from.
    #[arg(
        long,
        env = "CINEMA_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cinema?sslmode=disable"
    )]
    pub etl_postgres_url: String,
    /// Seconds between the ETL's catch-ups by `modified` while it listens.
    #[arg(long, env = "CINEMA_ETL_CATCH_UP_SECONDS", default_value_t = 30)]
    pub etl_catch_up_seconds: u64,
    /// Kafka bootstrap servers; without them this host runs no event intake and no
    /// ugc-loader.
    #[arg(long, env = "CINEMA_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Topic of UGC events.
    #[arg(long, env = "CINEMA_UGC_TOPIC", default_value = cinema_domain::ugc::UGC_EVENTS_TOPIC)]
    pub ugc_topic: String,
    /// Folder of the intake's spool (events waiting for Kafka).
    #[arg(
        long,
        env = "CINEMA_SPOOL_DIR",
        default_value = "/var/tmp/cinema-spool"
    )]
    pub spool_dir: PathBuf,
    /// Milliseconds Kafka may take to acknowledge before events are spooled.
    #[arg(long, env = "CINEMA_KAFKA_DELIVERY_TIMEOUT_MS", default_value_t = 5000)]
    pub kafka_delivery_timeout_ms: u64,
    /// Run the intake without the ugc-loader.
    #[arg(long, env = "CINEMA_NO_UGC_LOADER")]
    pub no_ugc_loader: bool,
    /// Consumer group of the ugc-loader.
    #[arg(long, env = "CINEMA_UGC_LOADER_GROUP", default_value = "ugc-loader")]
    pub ugc_loader_group: String,
    /// Postgres of the UGC read models (schema `ugc`).
    #[arg(
        long,
        env = "CINEMA_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cinema?sslmode=disable"
    )]
    pub ugc_postgres_url: String,
    /// Consumer group of the UGC read-model consumer.
    #[arg(
        long,
        env = "CINEMA_UGC_READ_MODEL_GROUP",
        default_value = "ugc-read-model"
    )]
    pub ugc_read_model_group: String,
    /// ClickHouse HTTP address the ugc-loader writes to and analytics read from.
    #[arg(
        long,
        env = "CINEMA_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub clickhouse_url: String,
    /// ClickHouse database of `ugc_events`.
    #[arg(long, env = "CINEMA_CLICKHOUSE_DATABASE", default_value = "cinema")]
    pub clickhouse_database: String,
    /// ClickHouse account analytics query as: a read-only one (`scripts/services.sh`
    /// creates `cinema_analytics` with `readonly=1`). Queries also ask for `readonly=1`
    /// themselves, whatever the account.
    #[arg(
        long,
        env = "CINEMA_CLICKHOUSE_ANALYTICS_USER",
        default_value = "cinema_analytics"
    )]
    pub clickhouse_analytics_user: String,
    /// SMTP server of the notify worker: `smtp://host:port`, `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:pass@host:465`. Mail is sent only with this and
    /// `--kafka-brokers`. Holds a secret: it is never logged.
    #[arg(long, env = "CINEMA_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// `From` of every mail.
    #[arg(
        long,
        env = "CINEMA_MAIL_FROM",
        default_value = "cinema <noreply@cinema.local>"
    )]
    pub mail_from: String,
    /// Public base URL, for the links in mails.
    #[arg(
        long,
        env = "CINEMA_PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub public_base_url: String,
    /// Topic of account events (auth's outbox is relayed there).
    #[arg(long, env = "CINEMA_AUTH_EVENTS_TOPIC", default_value = cinema_domain::platform::AUTH_EVENTS_TOPIC)]
    pub auth_events_topic: String,
    /// Topic of catalog events (`film.published`, written by the content database).
    #[arg(long, env = "CINEMA_CATALOG_EVENTS_TOPIC", default_value = cinema_domain::platform::CATALOG_EVENTS_TOPIC)]
    pub catalog_events_topic: String,
    /// Seconds a new film waits before its film digest audience is worked out, and a
    /// user's first suggestion waits for more before their digest (one a day) goes out.
    #[arg(long, env = "CINEMA_DIGEST_DELAY_SECONDS", default_value_t = 900)]
    pub digest_delay_seconds: u64,
    /// Topic of mail that failed for good (one record per delivery, with the reason).
    #[arg(
        long,
        env = "CINEMA_NOTIFY_DEAD_LETTER_TOPIC",
        default_value = "notify.dlq"
    )]
    pub notify_dead_letter_topic: String,
    /// Consumer group of the notify worker.
    #[arg(long, env = "CINEMA_NOTIFY_GROUP", default_value = "notify")]
    pub notify_group: String,
    /// How long an email-confirmation link works, in hours.
    #[arg(long, default_value_t = 48)]
    pub confirmation_ttl_hours: u64,
    /// The internal API's credential, shared with the components (their
    /// `internal_api_token` variable). Without it (and without
    /// SPIN_VARIABLE_INTERNAL_API_TOKEN) a random one is made at start and handed to
    /// the components. Holds a secret: it is never logged.
    #[arg(long, env = "CINEMA_INTERNAL_API_TOKEN", hide_env_values = true)]
    pub internal_api_token: Option<String>,
    /// Postgres holding `auth.signing_keys`: the intake verifies users' access tokens
    /// with the public keys published there. Defaults to the UGC read models' Postgres
    /// (one platform database).
    #[arg(long, env = "CINEMA_AUTH_POSTGRES_URL")]
    pub auth_postgres_url: Option<String>,
    /// Issuer of access tokens (auth's `token_issuer`).
    #[arg(long, env = "CINEMA_TOKEN_ISSUER", default_value = "cinema-auth")]
    pub token_issuer: String,
    /// Audience of access tokens (auth's `token_audience`).
    #[arg(long, env = "CINEMA_TOKEN_AUDIENCE", default_value = "cinema")]
    pub token_audience: String,
    /// Lifetime of access tokens in seconds (auth's `access_token_ttl_seconds`): how
    /// long a revocation is served to the components.
    #[arg(long, env = "CINEMA_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub access_token_ttl_seconds: u64,
    /// A file holding the key-encryption key auth opens the sealed signing keys with
    /// (instead of CINEMA_SIGNING_KEY_ENCRYPTION_KEY in the environment), e.g. a systemd
    /// credential: `LoadCredential=signing-kek:/etc/cinema/signing-kek` and
    /// `CINEMA_SIGNING_KEY_ENCRYPTION_KEY_FILE=%d/signing-kek`.
    #[arg(long, env = "CINEMA_SIGNING_KEY_ENCRYPTION_KEY_FILE")]
    pub signing_key_encryption_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub first_run: FirstRunArgs,
}

/// The key-encryption key `cinema up` hands to auth: read from `file` when one is given
/// (a missing or malformed file stops the start), else from the environment (auth's
/// `SPIN_VARIABLE_SIGNING_KEY_ENCRYPTION_KEY`, then `CINEMA_SIGNING_KEY_ENCRYPTION_KEY`).
fn key_encryption_key_for_auth(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let Some(path) = file else {
        return Ok(std::env::var("SPIN_VARIABLE_SIGNING_KEY_ENCRYPTION_KEY")
            .ok()
            .or_else(|| std::env::var("CINEMA_SIGNING_KEY_ENCRYPTION_KEY").ok()));
    };
    let kek = read_key_encryption_key_file(path)?.trim().to_owned();
    parse_key_encryption_key(&kek, &path.display().to_string())?;
    Ok(Some(kek))
}

/// The text of a key-encryption key file (errors name the file, never its contents).
fn read_key_encryption_key_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "failed to read the key-encryption key file {}",
            path.display()
        )
    })
}

/// A key-encryption key from its hex text; an error names `source`, never the text.
fn parse_key_encryption_key(
    hex: &str,
    source: &str,
) -> anyhow::Result<cinema_domain::key_seal::KeyEncryptionKey> {
    cinema_domain::key_seal::KeyEncryptionKey::from_hex(hex)
        .map_err(|e| anyhow::anyhow!("{source}: {e} (make one with `cinema keys new-kek`)"))
}

/// The first run (`make up`) and the production guard ([`crate::first_run`]).
#[derive(Debug, Args)]
pub struct FirstRunArgs {
    /// Make what an empty platform lacks before anyone can use it: a signing key, a demo
    /// catalogue when `content` is empty, a first admin (its password printed once).
    /// For development; `make up` passes it.
    #[arg(long, env = "CINEMA_FIRST_RUN")]
    pub first_run: bool,
    /// Films of the demo catalogue --first-run seeds into an empty `content`.
    #[arg(long, env = "CINEMA_DEMO_FILMS", default_value_t = 3000)]
    pub demo_films: usize,
    /// Email of the admin --first-run makes when no account holds `admin`.
    #[arg(
        long,
        env = "CINEMA_FIRST_ADMIN_EMAIL",
        default_value = "admin@cinema.local"
    )]
    pub first_admin_email: String,
    /// Refuse to start while the platform database has no operator-made signing key
    /// (`cinema keys rotate`), and refuse --first-run.
    #[arg(long, env = "CINEMA_PRODUCTION")]
    pub production: bool,
}

/// Where the search index lives unless told otherwise.
pub const DEFAULT_INDEX_DIR: &str = "/var/tmp/cinema-index";

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Folder holding `postgres/` and `clickhouse/`.
    #[arg(long, env = "CINEMA_MIGRATIONS_DIR", default_value = "migrations")]
    pub migrations_dir: PathBuf,
    /// Postgres database to migrate (created if missing).
    #[arg(
        long,
        env = "CINEMA_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/cinema?sslmode=disable"
    )]
    pub postgres_url: String,
    /// ClickHouse HTTP endpoint.
    #[arg(
        long,
        env = "CINEMA_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub clickhouse_url: String,
    /// ClickHouse database (created if missing).
    #[arg(long, env = "CINEMA_CLICKHOUSE_DATABASE", default_value = "cinema")]
    pub clickhouse_database: String,
}

#[derive(Debug, Args)]
pub struct CheckImportsArgs {
    /// Folder of the platform WIT package.
    #[arg(long, default_value = "wit")]
    pub wit: PathBuf,
    /// World whose imports are allowed.
    #[arg(long, default_value = "edge")]
    pub world: String,
    /// Component files to check.
    #[arg(required = true)]
    pub components: Vec<PathBuf>,
}

/// Logs go to stderr; `RUST_LOG` filters (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ok(threads) = std::env::var("CINEMA_WORKER_THREADS")
        && let Ok(threads) = threads.parse::<usize>()
    {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "cinema", &mut std::io::stdout());
            Ok(())
        }
        Command::Up(args) => runtime.block_on(up(*args)),
        Command::Migrate(args) => runtime.block_on(migrate(args)),
        Command::CheckImports(args) => check_imports(args),
        Command::Keys(command) => runtime.block_on(keys(command)),
        Command::Users(command) => runtime.block_on(users(command)),
        Command::Reindex {
            database,
            index_dir,
        } => runtime.block_on(crate::search_ops::reindex(
            &database.postgres_url,
            &index_dir,
        )),
        Command::Seed { database, films } => runtime.block_on(async {
            let started = std::time::Instant::now();
            let report = crate::seed::seed(&database.postgres_url, films).await?;
            println!(
                "seeded {} films, {} persons, {} genres in {:.1}s",
                report.films,
                report.persons,
                report.genres,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }),
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let settings = RuntimeSettings {
        request_deadline: Duration::from_millis(args.request_deadline_ms),
        memory_limit_bytes: args.memory_limit_mib << 20,
        max_instance_reuse: args.max_instance_reuse.max(1),
        max_concurrent_requests_per_instance: args.max_concurrent_per_instance.max(1),
        idle_instance_timeout: RuntimeSettings::default().idle_instance_timeout,
        max_instances: args.max_instances.max(1),
        queue_timeout: Duration::from_millis(args.queue_timeout_ms),
        postgres_pool_size: args.postgres_pool_size.max(1),
        serving_threads: crate::runtime::serving_threads(args.serving_threads),
        guest_perf_map: args.guest_perf_map,
    };
    tracing::info!(?settings, manifest = %args.manifest.display(), "starting");
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    // Auth's tables (token keys, revocations) live in the platform database.
    let auth_postgres_url = args
        .auth_postgres_url
        .clone()
        .unwrap_or_else(|| args.ugc_postgres_url.clone());
    // The key-encryption key of signing keys: one variable for the CLI and auth.
    let kek_variable = "SPIN_VARIABLE_SIGNING_KEY_ENCRYPTION_KEY";
    let kek_for_auth =
        key_encryption_key_for_auth(args.signing_key_encryption_key_file.as_deref())?;
    let first_run = prepare_first_run(&args, &auth_postgres_url, kek_for_auth.as_deref()).await?;
    let metrics = RuntimeMetrics::new();
    let credential_variable = format!(
        "SPIN_VARIABLE_{}",
        crate::internal_auth::INTERNAL_TOKEN_VARIABLE.to_ascii_uppercase()
    );
    let (credential, generated) = crate::internal_auth::InternalCredential::given_or_generated(
        args.internal_api_token
            .clone()
            .or_else(|| std::env::var(&credential_variable).ok()),
    );
    if generated {
        tracing::info!(
            "internal api: made a credential for this run and handed it to the components"
        );
    }
    let app_env = std::env::vars()
        .filter(|(name, _)| *name != credential_variable && name != kek_variable)
        .chain([(credential_variable.clone(), credential.expose().to_owned())])
        .chain(kek_for_auth.map(|kek| (kek_variable.to_owned(), kek)));
    let app = App::load(
        &args.manifest,
        &runtime_config,
        settings,
        app_env,
        metrics.clone(),
    )?;
    let _epoch = app.start_epoch_ticker(Duration::from_millis(10));
    let app = Arc::new(app);

    let public = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "failed to listen on {} (is another cinema running? use --listen)",
                args.listen
            )
        })?;
    let internal = tokio::net::TcpListener::bind(args.internal_listen)
        .await
        .with_context(|| {
            format!(
                "failed to listen on {} (is another cinema running? use --internal-listen)",
                args.internal_listen
            )
        })?;
    let public_addr = public.local_addr()?;
    let internal_addr = internal.local_addr()?;
    let catalog = crate::search_ops::start(&args, &metrics)?;
    let ugc = crate::ugc_ops::start(&args, &metrics)?;
    let notify = crate::notify_ops::start(&args, &metrics);
    let revocations =
        crate::revocations::Revocations::new(Duration::from_secs(args.access_token_ttl_seconds));
    tokio::spawn(revocations.clone().run(auth_postgres_url.clone()));
    let internal_state = InternalState {
        app_name: Arc::from(app.name.as_str()),
        components: app.component_ids().into(),
        metrics,
        search: catalog.search_state(),
        intake: ugc.intake().map(|intake| {
            let token_keys = Arc::new(crate::internal_auth::TokenKeys::new(
                &auth_postgres_url,
                &args.token_issuer,
                &args.token_audience,
            ));
            // Read the keys now, so the intake verifies even if Postgres goes away later.
            tokio::spawn({
                let token_keys = token_keys.clone();
                async move { token_keys.warm().await }
            });
            crate::intake::IntakeRoute { intake, token_keys }
        }),
        analytics: crate::analytics_api::AnalyticsState::new(
            &args.clickhouse_url,
            &args.clickhouse_database,
            &args.clickhouse_analytics_user,
        ),
        credential,
        revocations,
    };
    let shutdown = CancellationToken::new();
    let internal_router = internal_api::router(internal_state);
    app.serve_in_process(internal_addr, internal_router.clone());
    let internal_task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            axum::serve(internal, internal_router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    });
    // A machine-readable line: tests and scripts wait for it.
    println!(
        "cinema: serving {} on http://{public_addr} (internal http://{internal_addr})",
        app.name
    );
    if let Some(report) = &first_run {
        print!(
            "{}",
            crate::first_run::next_steps(report, public_addr, internal_addr)
        );
    }
    let serve_shutdown = shutdown.clone();
    let signalled_app = app.clone();
    let mut signals = ShutdownSignals::listen();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutting down: finishing in-flight requests (signal again to exit now)");
        signalled_app.begin_shutdown();
        serve_shutdown.cancel();
        signals.next().await;
        tracing::warn!("second signal: exiting without waiting for in-flight requests");
        std::process::exit(130);
    });
    let public_shutdown = shutdown.clone();
    let limits = crate::runtime::server::ListenerLimits {
        max_connections: args.max_connections,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        drain_timeout: Duration::from_millis(args.drain_timeout_ms),
    };
    crate::runtime::server::serve(public, app, limits, public_shutdown.cancelled_owned()).await?;
    internal_task.await??;
    ugc.stop().await;
    notify.stop().await;
    catalog.stop();
    Ok(())
}

/// `--first-run` and `--production` ([`crate::first_run`]): the first run's report,
/// when one ran.
async fn prepare_first_run(
    args: &UpArgs,
    auth_postgres_url: &str,
    key_encryption_key: Option<&str>,
) -> anyhow::Result<Option<crate::first_run::FirstRunReport>> {
    use crate::first_run::{FirstRunError, FirstRunSettings, prepare, require_signing_key};
    let flags = &args.first_run;
    if flags.production {
        if flags.first_run {
            return Err(FirstRunError::FirstRunInProduction.into());
        }
        require_signing_key(auth_postgres_url).await?;
        return Ok(None);
    }
    if !flags.first_run {
        return Ok(None);
    }
    let kek = KekArgs {
        key_encryption_key: key_encryption_key
            .filter(|kek| !kek.is_empty())
            .map(str::to_owned),
        key_encryption_key_file: None,
    }
    .load()?;
    let settings = FirstRunSettings {
        demo_films: flags.demo_films,
        admin_email: flags.first_admin_email.clone(),
        token_ttl: Duration::from_secs(args.access_token_ttl_seconds),
    };
    let report = prepare(
        auth_postgres_url,
        &args.etl_postgres_url,
        &settings,
        kek.as_ref(),
    )
    .await?;
    if report.signing_key.is_some() && kek.is_none() {
        tracing::warn!(
            "first run: the signing key is stored in clear (no CINEMA_SIGNING_KEY_ENCRYPTION_KEY); fine for development"
        );
    }
    Ok(Some(report))
}

/// SIGTERM and Ctrl-C, listened to for the life of the process (a signal sent while
/// shutdown is under way is still seen).
struct ShutdownSignals {
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn listen() -> Self {
        Self {
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok(),
        }
    }

    async fn next(&mut self) {
        match &mut self.terminate {
            Some(terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    use crate::migrate::{migrate_clickhouse, migrate_postgres, read_migrations};
    let postgres = read_migrations(&args.migrations_dir.join("postgres"))?;
    let clickhouse = read_migrations(&args.migrations_dir.join("clickhouse"))?;
    println!("postgres: {} migration file(s)", postgres.len());
    let report = migrate_postgres(&args.postgres_url, &postgres).await?;
    println!(
        "postgres: {} applied, {} already applied",
        report.applied.len(),
        report.already_applied
    );
    println!("clickhouse: {} migration file(s)", clickhouse.len());
    let report =
        migrate_clickhouse(&args.clickhouse_url, &args.clickhouse_database, &clickhouse).await?;
    println!(
        "clickhouse: {} applied, {} already applied",
        report.applied.len(),
        report.already_applied
    );
    Ok(())
}

fn check_imports(args: CheckImportsArgs) -> anyhow::Result<()> {
    let allowed = crate::imports::AllowedImports::load(&args.wit, &args.world)?;
    let settings = RuntimeSettings::default();
    let engine = crate::runtime::build_engine(&settings, settings.max_instances)?;
    let mut failures = 0;
    for path in &args.components {
        match allowed.check_component(&engine, path) {
            Ok(imports) => println!("ok    {} ({} imports)", path.display(), imports.len()),
            Err(error) => {
                failures += 1;
                println!("FAIL  {error}");
            }
        }
    }
    anyhow::ensure!(
        failures == 0,
        "{failures} component(s) import interfaces outside world `{}`",
        args.world
    );
    Ok(())
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    use crate::auth_ops::{jwks, list_keys, rotate_keys};
    match command {
        KeysCommand::Rotate {
            database,
            activate_after_seconds,
            token_ttl_seconds,
            kek,
        } => {
            let kek = kek.load()?;
            if kek.is_none() {
                eprintln!(
                    "warning: no key-encryption key given (CINEMA_SIGNING_KEY_ENCRYPTION_KEY): \
                     the private key is stored in clear; seal it later with `cinema keys seal`"
                );
            }
            let rotation = rotate_keys(
                &database.postgres_url,
                Duration::from_secs(activate_after_seconds),
                Duration::from_secs(token_ttl_seconds),
                kek.as_ref(),
            )
            .await?;
            println!(
                "added {} (published now, signing in {} s)",
                rotation.new_kid,
                rotation.activates_in.as_secs()
            );
            for kid in rotation.retiring {
                println!(
                    "retiring {kid}: signs for {} s more, published until its last token expires",
                    rotation.activates_in.as_secs()
                );
            }
        }
        KeysCommand::List { database } => {
            println!(
                "{:<48} {:<10} {:<32} {:<32} expires",
                "kid", "status", "activated", "retired"
            );
            for key in list_keys(&database.postgres_url).await? {
                println!(
                    "{:<48} {:<10} {:<32} {:<32} {}",
                    key.kid,
                    key.status,
                    key.activated_at,
                    key.retired_at.unwrap_or_else(|| "-".into()),
                    key.expires_at.unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Seal { database, kek } => {
            let sealed =
                crate::auth_ops::seal_keys(&database.postgres_url, &kek.require()?).await?;
            println!("sealed {sealed} private key(s)");
        }
        KeysCommand::Reencrypt {
            database,
            kek,
            new_key_file,
        } => {
            let new = KekArgs {
                key_encryption_key: None,
                key_encryption_key_file: Some(new_key_file),
            }
            .require()?;
            let moved =
                crate::auth_ops::reencrypt_keys(&database.postgres_url, &kek.require()?, &new)
                    .await?;
            println!(
                "re-encrypted {moved} private key(s); give auth the new key-encryption key now"
            );
        }
        KeysCommand::NewKek => {
            println!(
                "{}",
                cinema_domain::key_seal::KeyEncryptionKey::generate_hex()
            );
        }
        KeysCommand::Jwks { database } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&jwks(&database.postgres_url).await?)?
            );
        }
    }
    Ok(())
}

async fn users(command: UsersCommand) -> anyhow::Result<()> {
    use crate::auth_ops::{AdminOutcome, create_admin};
    match command {
        UsersCommand::CreateAdmin { database, email } => {
            let password = match std::env::var("CINEMA_ADMIN_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    eprint!("password for {email}: ");
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("failed to read the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            match create_admin(&database.postgres_url, &email, &password).await? {
                AdminOutcome::Created { user_id } => println!("created admin {email} ({user_id})"),
                AdminOutcome::Promoted { user_id } => {
                    println!(
                        "{email} ({user_id}) already existed: granted admin, password unchanged"
                    )
                }
            }
        }
    }
    Ok(())
}
