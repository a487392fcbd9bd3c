//! Database access for both backends through one query code path.
//!
//! [`Db`] is an enum over a SQLite and a PostgreSQL pool. Queries are written once and run on
//! either through [`db_run!`](crate::db_run): the macro takes a connection of the right kind and
//! compiles the same body for each backend. A `write` body is one transaction on both
//! backends, so check-then-act bodies are atomic everywhere. On SQLite, writes go through a
//! single-connection writer pool so concurrent requests queue instead of failing with
//! "database is locked"; readers use their own pool, are `query_only` (a write in a `read`
//! body fails) and never block the writer (WAL). A checkout waits at most
//! `db_pool_timeout_secs`, then the request gets `503 unavailable` with `Retry-After`.
//!
//! The few statements that differ between the backends go through [`BackendSql`], so every
//! other query keeps one code path.

pub mod enums;
pub mod json;
pub mod models;
pub mod schema;

use crate::error::{AppError, AppResult};
use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

/// The SQLite connection type: diesel's sync connection run on the blocking pool.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Pragmas applied to every SQLite connection: WAL for concurrent readers, a long busy
/// timeout as a second line of defence behind the single writer, and foreign keys on.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Applied to every pooled PostgreSQL connection.
const PG_SESSION: &str =
    "SET idle_in_transaction_session_timeout = '60s'; SET lock_timeout = '30s';";

/// Applied to SQLite reader connections on top of [`SQLITE_PRAGMAS`].
const SQLITE_READER_PRAGMAS: &str = "PRAGMA query_only = ON;";

/// SQLite pools: many readers, exactly one writer.
#[derive(Clone)]
pub struct SqlitePools {
    /// Read-only work (queries that change nothing).
    pub readers: Pool<SqliteConn>,
    /// All writes, serialized (max one connection).
    pub writer: Pool<SqliteConn>,
    /// Data generation: moves on before and after every write, so anything computed from
    /// reads at one generation is known stale once it differs (see `crate::cache`).
    pub generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Moves the generation on when a write ends, early returns and errors included.
#[doc(hidden)]
pub struct GenerationBump<'a>(pub &'a std::sync::atomic::AtomicU64);

impl GenerationBump<'_> {
    /// Moves the generation on now and again when dropped.
    pub fn start(generation: &std::sync::atomic::AtomicU64) -> GenerationBump<'_> {
        generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        GenerationBump(generation)
    }
}

impl Drop for GenerationBump<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The pooled database, either backend.
#[derive(Clone)]
pub enum Db {
    /// Embedded default.
    Sqlite(SqlitePools),
    /// Scale-out backend.
    Pg(Pool<AsyncPgConnection>),
}

/// Which backend a [`Db`] runs on, for the few places that must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Runs one diesel-async expression on the right backend.
///
/// `db_run!(db, read, |conn| body)` or `db_run!(db, write, |conn| body)`, or
/// `db_run!(db, bookkeeping, |conn| body)` for writes no cached answer can show (activity
/// timestamps), which leave the data generation where it is, or `db_run!(db, snapshot, |conn|
/// body)` for reads that must all see one consistent state (a backup): a read-only transaction
/// that never blocks writers. `body` may `.await`
/// and use `?` and `return` (which ends the body, not the enclosing function) and is compiled
/// once per backend, so it must only use diesel's portable DSL (or [`BackendSql`]). A `write`
/// body runs in one transaction, committed when it yields `Ok` and rolled back on `Err`.
#[macro_export]
macro_rules! db_run {
    ($db:expr, $mode:ident, |$conn:ident| $body:expr) => {{
        match $db {
            $crate::db::Db::Sqlite(pools) => {
                let mut checkout =
                    $crate::db::Checkout::new($crate::db::sqlite_pool!(pools, $mode).get().await?);
                let _bump = $crate::db::generation_bump!(pools, $mode);
                let $conn: &mut $crate::db::SqliteConn = checkout.conn();
                let outcome = $crate::db::in_mode!($mode, $conn, $body);
                checkout.finished();
                outcome
            }
            $crate::db::Db::Pg(pool) => {
                let mut checkout = $crate::db::Checkout::new(pool.get().await?);
                let $conn: &mut diesel_async::AsyncPgConnection = checkout.conn();
                let outcome = $crate::db::in_mode!($mode, $conn, $body);
                checkout.finished();
                outcome
            }
        }
    }};
}

/// A `read` body as it is; a `write` body inside a transaction. Used by [`db_run!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __in_mode {
    (read, $conn:ident, $body:expr) => {
        (async { $body }).await
    };
    (bookkeeping, $conn:ident, $body:expr) => {
        $crate::db::in_mode!(write, $conn, $body)
    };
    (snapshot, $conn:ident, $body:expr) => {{
        match $crate::db::begin($conn).await {
            Ok(()) => {
                let outcome = match $crate::db::BackendSql::snapshot($conn).await {
                    Ok(()) => (async { $body }).await,
                    Err(e) => Err(e.into()),
                };
                $crate::db::finish($conn, outcome).await
            }
            Err(e) => Err(e.into()),
        }
    }};
    (write, $conn:ident, $body:expr) => {{
        match $crate::db::begin($conn).await {
            Ok(()) => {
                let outcome = (async { $body }).await;
                $crate::db::finish($conn, outcome).await
            }
            Err(e) => Err(e.into()),
        }
    }};
}
pub use crate::__in_mode as in_mode;

/// A pooled connection lent to one [`db_run!`] body. If the body's future is dropped before
/// it finished (a client went away mid-write), the connection may still be inside its
/// transaction, holding locks: it is taken out of the pool and closed (the server rolls the
/// transaction back) instead of being handed to the next request.
#[doc(hidden)]
pub struct Checkout<M: deadpool::managed::Manager> {
    object: Option<deadpool::managed::Object<M>>,
    finished: bool,
}

impl<M: deadpool::managed::Manager> Checkout<M> {
    /// Takes charge of a pooled connection.
    pub fn new(object: deadpool::managed::Object<M>) -> Self {
        Self {
            object: Some(object),
            finished: false,
        }
    }

    /// The connection.
    pub fn conn(&mut self) -> &mut M::Type {
        match &mut self.object {
            Some(o) => o,
            None => unreachable!("a checkout holds its connection until dropped"),
        }
    }

    /// The body ran to its end (committed or rolled back): the connection may be reused.
    pub fn finished(&mut self) {
        self.finished = true;
    }
}

impl<M: deadpool::managed::Manager> Drop for Checkout<M> {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(object) = self.object.take() {
                drop(deadpool::managed::Object::take(object));
            }
        }
    }
}

/// Opens a transaction; see [`db_run!`].
#[doc(hidden)]
pub async fn begin<C: AsyncConnection>(conn: &mut C) -> diesel::QueryResult<()> {
    use diesel_async::TransactionManager;
    C::TransactionManager::begin_transaction(conn).await
}

/// Commits on `Ok`, rolls back on `Err`; a failed commit is the body's error.
#[doc(hidden)]
pub async fn finish<C, T, E>(conn: &mut C, outcome: Result<T, E>) -> Result<T, E>
where
    C: AsyncConnection,
    E: From<diesel::result::Error>,
{
    use diesel_async::TransactionManager;
    match outcome {
        // A failed COMMIT ends the transaction (the transaction manager rolls back).
        Ok(v) => match C::TransactionManager::commit_transaction(conn).await {
            Ok(()) => Ok(v),
            Err(e) => Err(e.into()),
        },
        Err(e) => {
            if let Err(r) = C::TransactionManager::rollback_transaction(conn).await {
                tracing::error!(error = %r, "rollback");
            }
            Err(e)
        }
    }
}

/// The statements that differ between the backends, behind one name each, so the queries
/// around them stay portable.
pub trait BackendSql {
    /// Serializes the current write transaction against every other one that takes the
    /// same `key` (PostgreSQL: a transaction-scoped advisory lock; SQLite: nothing to do,
    /// its writes are already serialized).
    fn lock_key(
        &mut self,
        key: i64,
    ) -> impl std::future::Future<Output = diesel::QueryResult<()>> + Send;

    /// Makes the transaction just begun a read-only snapshot: every later read sees the
    /// data as of its first read (PostgreSQL: repeatable read; SQLite: what a read
    /// transaction under WAL already is).
    fn snapshot(&mut self) -> impl std::future::Future<Output = diesel::QueryResult<()>> + Send;

    /// Moves a table's id generator past its largest id, after rows were inserted with
    /// explicit ids (PostgreSQL identity columns do not follow them; SQLite's rowids do).
    fn follow_ids(
        &mut self,
        table: &str,
    ) -> impl std::future::Future<Output = diesel::QueryResult<()>> + Send;
}

impl BackendSql for SqliteConn {
    async fn lock_key(&mut self, _key: i64) -> diesel::QueryResult<()> {
        Ok(())
    }

    async fn snapshot(&mut self) -> diesel::QueryResult<()> {
        Ok(())
    }

    async fn follow_ids(&mut self, _table: &str) -> diesel::QueryResult<()> {
        Ok(())
    }
}

impl BackendSql for AsyncPgConnection {
    async fn lock_key(&mut self, key: i64) -> diesel::QueryResult<()> {
        use diesel::sql_types::BigInt;
        diesel_async::RunQueryDsl::execute(
            diesel::sql_query("SELECT pg_advisory_xact_lock($1)").bind::<BigInt, _>(key),
            self,
        )
        .await
        .map(|_| ())
    }

    async fn snapshot(&mut self) -> diesel::QueryResult<()> {
        self.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
    }

    async fn follow_ids(&mut self, table: &str) -> diesel::QueryResult<()> {
        // `table` comes from the backup's table registry, never from input.
        self.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        ))
        .await
    }
}

/// The schema this build migrates to: the newest migration's version (`20261130000009`).
/// Both backends carry the same migrations, so one list answers.
pub fn schema_version() -> String {
    use diesel::migration::MigrationSource;
    let list: Vec<Box<dyn diesel::migration::Migration<diesel::sqlite::Sqlite>>> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .unwrap_or_default();
    list.iter()
        .map(|m| m.name().version().to_string())
        .max()
        .unwrap_or_default()
}

/// Keys for [`BackendSql::lock_key`], one per rule that needs a serialized check.
pub mod locks {
    /// "The first account becomes admin" (and the other registration counts).
    pub const REGISTRATION: i64 = 0x4845_0001;
    /// Per-user quotas and names of agents.
    pub const AGENTS: i64 = 1;
    /// Per-user quota of API keys.
    pub const API_KEYS: i64 = 2;
    /// Per-user quota of chats.
    pub const CHATS: i64 = 3;
    /// Per-user quota of jobs.
    pub const JOBS: i64 = 4;

    /// The key of rule `kind` for one user (the user id fills the low 48 bits).
    pub fn per_user(kind: i64, user_id: i64) -> i64 {
        (kind << 48) | (user_id & 0xFFFF_FFFF_FFFF)
    }
}

/// Loads the rows of one read query on the right backend, like `db_run!` but for the hot
/// read paths: on SQLite the rows are decoded on the blocking thread straight from the
/// statement (diesel-async's async path first copies every row into an owned row, which
/// doubles the cost of wide result sets). `query` is written once and must own what it
/// captures (`move`), since it runs on another thread.
///
/// `db_load!(db, Row, query)` evaluates to `AppResult<Vec<Row>>`.
#[macro_export]
macro_rules! db_load {
    ($db:expr, $row:ty, $query:expr) => {{
        let result: $crate::error::AppResult<Vec<$row>> = async {
            match $db {
                $crate::db::Db::Sqlite(pools) => {
                    let mut pooled = pools.readers.get().await?;
                    let rows = pooled
                        .spawn_blocking(move |conn| diesel::RunQueryDsl::load::<$row>($query, conn))
                        .await?;
                    Ok(rows)
                }
                $crate::db::Db::Pg(pool) => {
                    let mut pooled = pool.get().await?;
                    let conn: &mut diesel_async::AsyncPgConnection = &mut *pooled;
                    Ok(diesel_async::RunQueryDsl::load::<$row>($query, conn).await?)
                }
            }
        }
        .await;
        result
    }};
}

/// Picks the SQLite pool for a mode (`read` or `write`); used by [`db_run!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __sqlite_pool {
    ($pools:expr, read) => {
        $pools.readers
    };
    ($pools:expr, write) => {
        $pools.writer
    };
    ($pools:expr, bookkeeping) => {
        $pools.writer
    };
    ($pools:expr, snapshot) => {
        $pools.readers
    };
}
pub use crate::__sqlite_pool as sqlite_pool;

/// A [`GenerationBump`] for writes, nothing for reads; used by [`db_run!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __generation_bump {
    ($pools:expr, read) => {
        ()
    };
    ($pools:expr, write) => {
        $crate::db::GenerationBump::start(&$pools.generation)
    };
    ($pools:expr, bookkeeping) => {
        ()
    };
    ($pools:expr, snapshot) => {
        ()
    };
}
pub use crate::__generation_bump as generation_bump;

fn sqlite_path(url: &str) -> &str {
    url.trim_start_matches("sqlite://")
}

impl Db {
    /// Opens the pools and runs pending migrations. A checkout waits at most `wait`.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        wait: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let db = if url.starts_with("sqlite://") {
            let path = sqlite_path(url).to_string();
            if let Some(dir) = std::path::Path::new(&path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let manager = |pragmas: &'static str| {
                let mut cfg = ManagerConfig::<SqliteConn>::default();
                // The default (Verified) runs a test query on every checkout, doubling the cost
                // of each short query; a broken connection surfaces as a query error instead.
                cfg.recycling_method = RecyclingMethod::Fast;
                cfg.custom_setup = Box::new(move |url| {
                    let url = url.to_string();
                    async move {
                        let mut c = SqliteConn::establish(&url).await?;
                        c.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        c.batch_execute(pragmas)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(c)
                    }
                    .boxed()
                });
                AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path.clone(), cfg)
            };
            let writer = Pool::builder(manager("PRAGMA query_only = OFF;"))
                .max_size(1)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(wait))
                .build()?;
            let readers = Pool::builder(manager(SQLITE_READER_PRAGMAS))
                .max_size(pool_size)
                .runtime(deadpool::Runtime::Tokio1)
                .wait_timeout(Some(wait))
                .build()?;
            // Migrate on the writer so WAL mode is set before readers open.
            {
                let conn = SqliteConn::establish(&path).await?;
                let mut conn = conn;
                conn.batch_execute(SQLITE_PRAGMAS).await?;
                run_migrations(conn, SQLITE_MIGRATIONS).await?;
            }
            Db::Sqlite(SqlitePools {
                readers,
                writer,
                generation: Default::default(),
            })
        } else {
            let conn = AsyncPgConnection::establish(url).await?;
            run_migrations(conn, PG_MIGRATIONS).await?;
            let mut cfg = ManagerConfig::<AsyncPgConnection>::default();
            cfg.recycling_method = RecyclingMethod::Fast;
            // Backstops: a transaction left open (a crashed task) or a lock wait cannot
            // hold a connection and its locks for ever.
            cfg.custom_setup = Box::new(|url| {
                let url = url.to_string();
                async move {
                    let mut c = AsyncPgConnection::establish(&url).await?;
                    c.batch_execute(PG_SESSION)
                        .await
                        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                    Ok(c)
                }
                .boxed()
            });
            let manager =
                AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, cfg);
            Db::Pg(
                Pool::builder(manager)
                    .max_size(pool_size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .wait_timeout(Some(wait))
                    .build()?,
            )
        };
        Ok(db)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// The current data generation when this process sees every write (SQLite: one process,
    /// one writer); `None` on PostgreSQL, where other processes write too, so nothing may be
    /// cached across requests.
    pub fn generation(&self) -> Option<u64> {
        match self {
            Db::Sqlite(p) => Some(p.generation.load(std::sync::atomic::Ordering::SeqCst)),
            Db::Pg(_) => None,
        }
    }

    /// Each pool's connections: (pool name, open, in use, callers waiting), for metrics.
    pub fn pool_use(&self) -> Vec<(&'static str, usize, usize, usize)> {
        fn one<M: deadpool::managed::Manager>(
            name: &'static str,
            pool: &deadpool::managed::Pool<M>,
        ) -> (&'static str, usize, usize, usize) {
            let s = pool.status();
            (name, s.size, s.size.saturating_sub(s.available), s.waiting)
        }
        match self {
            Db::Sqlite(p) => vec![
                one("sqlite_readers", &p.readers),
                one("sqlite_writer", &p.writer),
            ],
            Db::Pg(p) => vec![one("postgres", p)],
        }
    }

    /// `sqlite` or `postgres`, for health output.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> bool {
        let r: AppResult<()> = async {
            db_run!(self, read, |conn| conn
                .batch_execute("SELECT 1")
                .await
                .map_err(AppError::from))
        }
        .await;
        r.is_ok()
    }
}

/// Runs pending migrations. The harness blocks in place, so this needs the multi-thread runtime
/// (the server's and the tests'); it runs once at start.
async fn run_migrations<C>(conn: C, migrations: EmbeddedMigrations) -> anyhow::Result<()>
where
    C: AsyncConnection + 'static,
    AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
{
    let mut harness = AsyncMigrationHarness::new(conn);
    harness
        .run_pending_migrations(migrations)
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::connection::Connection;
    use diesel::sql_types::Integer;
    use diesel::RunQueryDsl;

    /// `.cargo/config.toml` builds SQLite with query-planner stability; without it, hot reads
    /// with `LIMIT ?` are recompiled on every run.
    #[test]
    fn sqlite_is_built_with_a_stable_query_planner() {
        let mut conn = diesel::sqlite::SqliteConnection::establish(":memory:").unwrap();
        let used: i32 = diesel::select(diesel::dsl::sql::<Integer>(
            "sqlite_compileoption_used('ENABLE_QPSG')",
        ))
        .get_result(&mut conn)
        .unwrap();
        assert_eq!(used, 1);
    }
}
