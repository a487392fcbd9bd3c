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
    #[command(subcommand)]
    command: Command,
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
    /// Rebuilds every collection's vector index from the database (re-embedding chunks
    /// whose vectors are of another model than the configured one).
    Reindex {
        /// Only update indexes (add what is new, drop what is gone) instead of rebuilding.
        #[arg(long)]
        incremental: bool,
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

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();
    if let Err(e) = run(Cli::parse()).await {
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
        Command::Reindex { incremental } => {
            let cfg = load_config(&cli, None)?;
            let state = hearth::App::build(cfg).await?;
            reindex_command(&state, !*incremental).await
        }
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
