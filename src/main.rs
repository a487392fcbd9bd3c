//! The `hearth` command: a thin CLI over the library.

use clap::{Parser, Subcommand};
use hearth::config::Config;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "Self-hosted, GraphQL-first AI platform"
)]
struct Cli {
    /// Configuration file (default: ./hearth.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (SQLite file, uploads, generated secrets).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://…
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log lines as human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server.
    Serve {
        /// Listen address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Applies pending database migrations and exits.
    Migrate,
    /// Prints the GraphQL schema (SDL).
    Schema,
    /// Prints the OpenAPI 3.1 document of the REST doors (JSON).
    Openapi,
    /// Manages users.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Inspects and drives the job queue, as the operator (every user's jobs).
    Jobs {
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// Installs, lists, packs and signs plugins.
    Plugin {
        #[command(subcommand)]
        action: PluginCommand,
    },
    /// Indexes the files under a folder into a named collection, with a progress bar: new
    /// and changed files (by sha256), every file with `--full`; nothing is removed. This
    /// process ingests them (on PostgreSQL, serving processes share the work).
    Ingest {
        /// The folder.
        dir: PathBuf,
        /// The collection (default: the folder's name).
        #[arg(long)]
        collection: Option<String>,
        /// Username or email of the collection's owner (default: the first admin).
        #[arg(long)]
        owner: Option<String>,
        /// Ingest every file again, changed or not.
        #[arg(long)]
        full: bool,
    },
    /// Writes or restores a backup archive (the same ZIP as `GET /backup/export`).
    Backup {
        #[command(subcommand)]
        action: BackupCommand,
    },
    /// Rebuilds every collection's vector index from the database (re-embedding chunks
    /// whose vectors are of another model than the configured one).
    Reindex {
        /// Only update indexes (add what is new, drop what is gone) instead of rebuilding.
        #[arg(long)]
        incremental: bool,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Writes an archive of the instance (every table, the configuration without secrets,
    /// recent logs) while servers keep serving.
    Export {
        /// The ZIP to write.
        file: PathBuf,
    },
    /// Restores an archive: replaces every table (all or nothing) and ends every session.
    /// On SQLite, stop the server first (or use `POST /backup/import`), so it does not keep
    /// indexes of the data replaced.
    Import {
        /// The ZIP to read.
        file: PathBuf,
        /// Only check the archive and print what would change.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Lists jobs, newest first.
    List {
        /// Most jobs shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Runs a job now (its schedule does not move).
    Run {
        /// Job id.
        id: i64,
    },
    /// Cancels a job's running or pending run.
    Cancel {
        /// Job id.
        id: i64,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Installs (or upgrades) a plugin from a ZIP bundle, a bundle folder or a bare module,
    /// as the operator. It is installed disabled.
    Install {
        /// A `.zip`, a folder with `plugin.toml`, or a `.wasm`.
        path: PathBuf,
        /// The name of a bare module.
        #[arg(long)]
        name: Option<String>,
        /// The version of a bare module.
        #[arg(long)]
        version: Option<String>,
    },
    /// Lists installed plugins.
    List,
    /// Writes a new ed25519 secret key to a file (mode 0600) and prints its public key, the
    /// value for `[plugins] trusted_keys`.
    Keygen {
        /// Where to write the secret key.
        #[arg(long, default_value = "hearth-plugin.key")]
        out: PathBuf,
    },
    /// Signs a bundle folder: writes `plugin.sig` over every other file in it.
    Sign {
        /// The bundle folder.
        dir: PathBuf,
        /// The secret key file from `hearth plugin keygen`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Packs a bundle folder into a ZIP ready to upload.
    Pack {
        /// The bundle folder.
        dir: PathBuf,
        /// The ZIP to write.
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Creates a user.
    Create {
        /// Email address.
        #[arg(long)]
        email: String,
        /// Username.
        #[arg(long)]
        username: String,
        /// Password (8–256 characters).
        #[arg(long)]
        password: String,
        /// Give the admin role.
        #[arg(long)]
        admin: bool,
    },
}

fn load_config(cli: &Cli, bind: Option<&String>) -> anyhow::Result<Config> {
    let mut cfg = Config::load(cli.config.as_deref())?;
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    if let Some(u) = &cli.database_url {
        cfg.database_url = Some(u.clone());
    }
    if let Some(b) = bind {
        cfg.bind = b.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Logs to standard output as text or JSON lines (`--log-format json`), filtered by `HEARTH_LOG`, and
/// to the live feed of `/api/websocket`.
fn init_logs(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(hearth::ops::logs::FeedLayer);
    match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true),
            )
            .init(),
    }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    if let Err(e) = run(cli).await {
        eprintln!("hearth: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Schema => {
            print!("{}", hearth::graphql::sdl());
            Ok(())
        }
        Command::Openapi => {
            print!("{}", hearth::rest::openapi::json());
            Ok(())
        }
        Command::Migrate => {
            let cfg = load_config(&cli, None)?;
            hearth::App::build(cfg).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User {
            action:
                UserCommand::Create {
                    email,
                    username,
                    password,
                    admin,
                },
        } => {
            let cfg = load_config(&cli, None)?;
            let state = hearth::App::build(cfg).await?;
            let user = hearth::service::auth::register(
                &state,
                hearth::service::auth::RegisterInput {
                    email: email.clone(),
                    password: password.clone(),
                    username: Some(username.clone()),
                    name: None,
                    admin: *admin,
                    setup_token: None,
                },
                true,
                &Default::default(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message))?;
            println!(
                "created user {} ({}) with role {}",
                user.username, user.email, user.role
            );
            Ok(())
        }
        Command::Backup { action } => {
            let cfg = load_config(&cli, None)?;
            let state = hearth::App::build(cfg).await?;
            let fail =
                |e: hearth::error::AppError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
            match action {
                BackupCommand::Export { file } => {
                    let out = hearth::service::backup::export_to(&state, file)
                        .await
                        .map_err(fail)?;
                    for (table, t) in &out.manifest.tables {
                        println!("{:>10}  {table}", t.rows);
                    }
                    println!("wrote {} ({} bytes)", out.path.display(), out.bytes);
                }
                BackupCommand::Import { file, dry_run } => {
                    let answer = hearth::service::backup::import_from(&state, file, *dry_run)
                        .await
                        .map_err(fail)?;
                    println!("{}", serde_json::to_string_pretty(&answer)?);
                    if !*dry_run {
                        println!("restored {}", file.display());
                    }
                }
            }
            Ok(())
        }
        Command::Reindex { incremental } => {
            let cfg = load_config(&cli, None)?;
            let state = hearth::App::build(cfg).await?;
            reindex_command(&state, !*incremental).await
        }
        Command::Ingest {
            dir,
            collection,
            owner,
            full,
        } => ingest_command(&cli, dir, collection.clone(), owner.as_deref(), *full).await,
        Command::Plugin { action } => plugin_command(&cli, action).await,
        Command::Jobs { action } => {
            let cfg = load_config(&cli, None)?;
            let state = hearth::App::build(cfg).await?;
            jobs_command(&state, action).await
        }
        Command::Serve { bind } => {
            let cfg = load_config(&cli, bind.as_ref())?;
            let addr = cfg.bind.clone();
            let (state, app) = hearth::http::app_for(cfg).await?;
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            tracing::info!(
                address = %listener.local_addr()?,
                database = state.db.backend_name(),
                "Hearth is serving: GraphQL at /graphql"
            );
            hearth::http::run_until(listener, app, state, hearth::http::shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

fn describe_job(j: &hearth::db::models::Job) -> String {
    let when = |t: Option<chrono::NaiveDateTime>| {
        t.map(|t| {
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_else(|| "-".into())
    };
    format!(
        "{:>6}  {:<10} {:<14} next {:<20}  attempt {}  owner {}  {}",
        j.id,
        j.state.as_str(),
        j.kind,
        when(j.next_run_at),
        j.attempt,
        j.owner_id,
        j.name
    )
}

/// `hearth jobs …`. A serving process picks a change up at once through the event bus, or
/// at its next lease upkeep (`jobs.lease_secs / 3`) at the latest.
async fn reindex_command(state: &hearth::state::AppState, full: bool) -> anyhow::Result<()> {
    use hearth::rag::reindex;
    let fail = |e: hearth::error::AppError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
    let list = reindex::all(state).await.map_err(fail)?;
    let never = || false;
    for c in &list {
        let out = reindex::collection(state, c, full, &never)
            .await
            .map_err(fail)?;
        println!(
            "collection {} ({} {}): {} vectors, {} re-embedded",
            c.id, c.kind, c.name, out.vectors, out.reembedded
        );
    }
    println!("{} collections reindexed", list.len());
    Ok(())
}

/// `hearth ingest DIR`: stores the folder's files, then runs their ingestion in this process
/// (its worker runs no other kind of job) and shows it until every document has settled.
async fn ingest_command(
    cli: &Cli,
    dir: &std::path::Path,
    collection: Option<String>,
    owner: Option<&str>,
    full: bool,
) -> anyhow::Result<()> {
    use hearth::db::enums::DocumentStatus;
    use hearth::service::documents;
    let fail = |e: hearth::error::AppError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
    let mut cfg = load_config(cli, None)?;
    let ingest = hearth::rag::ingest::KIND;
    for kind in hearth::jobs::JobsHub::new().kind_names() {
        if kind != ingest {
            cfg.jobs.kind_concurrency.insert(kind.to_string(), 0);
        }
    }
    cfg.jobs.workers = cfg.jobs.workers.max(1);
    let state = hearth::App::build(cfg).await?;
    let caller = hearth::service::users::operator(&state, owner)
        .await
        .map_err(fail)?;
    let name = match collection {
        Some(c) => c,
        None => std::fs::canonicalize(dir)
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "ingested".into()),
    };
    let (pass, queued) =
        hearth::rag::sources::ingest_dir(&state, &caller, dir.to_path_buf(), name.clone(), full)
            .await
            .map_err(fail)?;
    println!(
        "collection {name:?} of {}: {} files to ingest, {} unchanged, {} skipped",
        caller.user.username, pass.indexed, pass.unchanged, pass.skipped
    );
    if queued.is_empty() {
        return Ok(());
    }
    hearth::jobs::scheduler::start(&state).await?;
    let bar = indicatif::ProgressBar::new(queued.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40.cyan/blue} {pos}/{len} documents [{elapsed_precise}] {msg}",
        )?
        .progress_chars("=> "),
    );
    let busy = |s: DocumentStatus| {
        matches!(
            s,
            DocumentStatus::Queued | DocumentStatus::Extracting | DocumentStatus::Embedding
        )
    };
    let docs = loop {
        let docs = documents::owned(&state, &caller, &queued)
            .await
            .map_err(fail)?;
        // A document deleted meanwhile has settled too.
        let settled = queued.len() - docs.iter().filter(|d| busy(d.status)).count();
        let chunks: i64 = docs.iter().map(|d| d.chunks_embedded as i64).sum();
        let failed = docs
            .iter()
            .filter(|d| d.status == DocumentStatus::Failed)
            .count();
        bar.set_position(settled as u64);
        bar.set_message(format!("{chunks} chunks embedded, {failed} failed"));
        if settled == queued.len() {
            break docs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    bar.finish();
    state.background.begin_stop();
    state
        .background
        .stop(std::time::Duration::from_secs(10))
        .await;
    let chunks: i64 = docs.iter().map(|d| d.chunks_total as i64).sum();
    let failed: Vec<_> = docs
        .iter()
        .filter(|d| d.status == DocumentStatus::Failed)
        .collect();
    println!(
        "{} documents indexed ({chunks} chunks), {} failed",
        docs.len() - failed.len(),
        failed.len()
    );
    for d in &failed {
        println!(
            "failed: {}: {}",
            d.source_path.as_deref().unwrap_or(&d.filename),
            d.error.as_deref().unwrap_or("")
        );
    }
    if !failed.is_empty() {
        anyhow::bail!("{} documents failed", failed.len());
    }
    Ok(())
}

async fn jobs_command(state: &hearth::state::AppState, action: &JobsCommand) -> anyhow::Result<()> {
    use hearth::service::jobs::system;
    let fail = |e: hearth::error::AppError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
    match action {
        JobsCommand::List { limit } => {
            for job in system::list(state, (*limit).clamp(1, 10_000))
                .await
                .map_err(fail)?
            {
                println!("{}", describe_job(&job));
            }
        }
        JobsCommand::Run { id } => {
            let job = system::run_now(state, *id).await.map_err(fail)?;
            println!("run requested: {}", describe_job(&job));
        }
        JobsCommand::Cancel { id } => {
            let job = system::cancel(state, *id).await.map_err(fail)?;
            println!("cancel requested: {}", describe_job(&job));
        }
    }
    Ok(())
}

/// `hearth plugin …`. Keys, signatures and packing need no database.
async fn plugin_command(cli: &Cli, action: &PluginCommand) -> anyhow::Result<()> {
    use hearth::plugins::{bundle, signature};
    let fail = |e: hearth::error::AppError| anyhow::anyhow!("{}: {}", e.code.as_str(), e.message);
    match action {
        PluginCommand::Install {
            path,
            name,
            version,
        } => {
            let state = hearth::App::build(load_config(cli, None)?).await?;
            let view = hearth::service::plugins::install_path(
                &state,
                path,
                name.as_deref(),
                version.as_deref(),
            )
            .await
            .map_err(fail)?;
            println!(
                "installed {} {} ({}), sha256 {}",
                view.row.name, view.row.version, view.row.state, view.row.sha256
            );
        }
        PluginCommand::List => {
            let state = hearth::App::build(load_config(cli, None)?).await?;
            for v in hearth::service::plugins::list_all(&state)
                .await
                .map_err(fail)?
            {
                println!(
                    "{:<24} {:<10} {:<9} {:<8} tools: {}",
                    v.row.name,
                    v.row.version,
                    v.row.state.as_str(),
                    if v.row.signed_by.is_some() {
                        "signed"
                    } else {
                        "unsigned"
                    },
                    v.manifest
                        .tools
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        PluginCommand::Keygen { out } => {
            let (secret, public) = signature::keygen();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts
                .open(out)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
            std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes())?;
            println!("secret key written to {}", out.display());
            println!("public key (for [plugins] trusted_keys): {public}");
        }
        PluginCommand::Sign { dir, key } => {
            let secret = std::fs::read_to_string(key)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key.display()))?;
            let mut files =
                bundle::dir_files(dir, sign_limits()).map_err(|e| anyhow::anyhow!(e))?;
            files.remove(bundle::SIG_FILE);
            let sig = signature::sign(&files, &secret).map_err(|e| anyhow::anyhow!(e))?;
            std::fs::write(dir.join(bundle::SIG_FILE), format!("{sig}\n"))?;
            println!(
                "signed {} files of {} with {}",
                files.len(),
                dir.display(),
                signature::public_of(&secret).map_err(|e| anyhow::anyhow!(e))?
            );
        }
        PluginCommand::Pack { dir, out } => {
            let files = bundle::dir_files(dir, sign_limits()).map_err(|e| anyhow::anyhow!(e))?;
            let zip = bundle::pack(&files).map_err(|e| anyhow::anyhow!(e))?;
            std::fs::write(out, zip)?;
            println!("packed {} files into {}", files.len(), out.display());
        }
    }
    Ok(())
}

/// Generous caps for reading one's own bundle folder.
fn sign_limits() -> hearth::plugins::bundle::BundleLimits {
    hearth::plugins::bundle::BundleLimits {
        max_files: 10_000,
        max_unpacked_bytes: 1 << 30,
        max_ratio: u64::MAX,
    }
}
