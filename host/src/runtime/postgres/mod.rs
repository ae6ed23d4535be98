//! `spin:postgres@4.2.0`: Postgres for guests, over connection pools shared by all
//! requests.
//!
//! Spin opens a fresh connection for every `open`; here `open` checks a connection out
//! of a pool kept per address (`deadpool-postgres`, prepared statements cached per
//! connection) and the guest's `connection` resource holds it until dropped, so
//! multi-statement transactions behave exactly as on Spin. A connection whose session
//! state the guest changed (`BEGIN` left open, `SET`, `LISTEN`, temp tables, ...) is
//! closed instead of returned to the pool, so nothing leaks between requests.
//!
//! Values convert completely in both directions (see [`convert`]); database errors come
//! back as `query-failed(db-error)` with SQLSTATE, message and detail, client-side
//! parameter problems as `bad-parameter`, and an unreachable server as
//! `connection-failed` within the pool's wait timeout. Addresses must be allowed by the
//! component's `allowed_outbound_hosts` (`postgres://host:port`).

// The error type is the interface's own (`spin:postgres` `error`), returned by value to
// the guest; boxing it on the way would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod convert;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, StreamReader};

use super::bindings::spin::postgres::postgres::{
    self as wit, Column, DbError, Error, ParameterValue, QueryError, RowSet,
};
use super::outbound::OutboundPolicy;
use super::state::InstanceState;

/// How long `open` waits for a pooled connection (or a new one) before failing.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Connection pools by address, shared by every component instance.
#[derive(Clone)]
pub struct PostgresPools {
    pools: Arc<Mutex<HashMap<String, Pool>>>,
    max_size: usize,
}

impl std::fmt::Debug for PostgresPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Addresses may hold passwords: show only how many pools exist.
        let count = self.pools.lock().map(|p| p.len()).unwrap_or(0);
        f.debug_struct("PostgresPools")
            .field("pools", &count)
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl PostgresPools {
    pub fn new(max_size: usize) -> Self {
        Self {
            pools: Arc::default(),
            max_size: max_size.max(1),
        }
    }

    fn pool_for(&self, address: &str, config: tokio_postgres::Config) -> Result<Pool, Error> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pool) = pools.get(address) {
            return Ok(pool.clone());
        }
        let manager = Manager::from_config(
            config,
            cinema_postgres::tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|e| Error::Other(format!("failed to build connection pool: {e}")))?;
        pools.insert(address.to_owned(), pool.clone());
        Ok(pool)
    }

    /// Checks a connection out for a guest, after the outbound-host check.
    async fn connect(
        &self,
        policy: &OutboundPolicy,
        address: &str,
    ) -> Result<OpenConnection, Error> {
        let config = tokio_postgres::Config::from_str(address)
            .map_err(|e| Error::ConnectionFailed(format!("invalid connection address: {e}")))?;
        let ports = config.get_ports();
        for (index, host) in config.get_hosts().iter().enumerate() {
            let port = ports.get(index).or(ports.first()).copied().unwrap_or(5432);
            let allowed = match host {
                tokio_postgres::config::Host::Tcp(name) => {
                    policy.allows("postgres", name, Some(port))
                }
                // Unix sockets are host-local resources no edge component may reach.
                _ => false,
            };
            if !allowed {
                let shown = match host {
                    tokio_postgres::config::Host::Tcp(name) => format!("postgres://{name}:{port}"),
                    _ => "a unix socket".to_owned(),
                };
                return Err(Error::ConnectionFailed(format!(
                    "{shown} is not in this component's allowed_outbound_hosts"
                )));
            }
        }
        let pool = self.pool_for(address, config)?;
        let client = pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Timeout(_) => {
                Error::ConnectionFailed("timed out waiting for a database connection".to_owned())
            }
            deadpool_postgres::PoolError::Backend(e) => {
                Error::ConnectionFailed(cinema_postgres::describe(&e))
            }
            other => Error::ConnectionFailed(other.to_string()),
        })?;
        Ok(OpenConnection {
            client: Arc::new(tokio::sync::Mutex::new(PooledClient {
                object: Some(client),
                tainted: false,
            })),
        })
    }
}

/// A guest's `connection`: one pooled client, held until the guest drops it.
#[derive(Clone)]
pub struct OpenConnection {
    client: Arc<tokio::sync::Mutex<PooledClient>>,
}

/// A guest's `connection-builder`.
pub struct ConnectionBuilder {
    address: String,
    ca_root: Option<String>,
}

/// What running one statement on a pooled client produced.
struct Ran {
    columns: Vec<Column>,
    rows: Vec<Vec<wit::DbValue>>,
}

impl OpenConnection {
    async fn run(&self, statement: &str, params: Vec<ParameterValue>) -> Result<Ran, Error> {
        let mut guard = self.client.lock().await;
        if convert::changes_session_state(statement) {
            // Close it on drop rather than hand the changed session to another request.
            guard.tainted = true;
        }
        let client = guard
            .object
            .as_ref()
            .ok_or_else(|| Error::ConnectionFailed("connection was closed".to_owned()))?;
        let prepared = client.prepare_cached(statement).await.map_err(map_error)?;
        let params = convert::params_for(&params, prepared.params())?;
        let columns = prepared.columns().iter().map(convert::column).collect();
        let rows = client
            .query(&prepared, &convert::as_sql_refs(&params))
            .await
            .map_err(map_error)?;
        let rows = rows
            .iter()
            .map(convert::row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ran { columns, rows })
    }

    async fn execute(&self, statement: &str, params: Vec<ParameterValue>) -> Result<u64, Error> {
        let mut guard = self.client.lock().await;
        if convert::changes_session_state(statement) {
            guard.tainted = true;
        }
        let client = guard
            .object
            .as_ref()
            .ok_or_else(|| Error::ConnectionFailed("connection was closed".to_owned()))?;
        let prepared = client.prepare_cached(statement).await.map_err(map_error)?;
        let params = convert::params_for(&params, prepared.params())?;
        client
            .execute(&prepared, &convert::as_sql_refs(&params))
            .await
            .map_err(map_error)
    }
}

/// A pooled client plus whether its session may go back to the pool.
struct PooledClient {
    object: Option<Object>,
    /// The guest changed session state: close the connection instead of reusing it.
    tainted: bool,
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if self.tainted
            && let Some(object) = self.object.take()
        {
            // Detached from the pool, the client (and its session) is closed.
            drop(Object::take(object));
        }
    }
}

/// Maps a driver error to the interface's variants, without leaking credentials.
fn map_error(error: tokio_postgres::Error) -> Error {
    if let Some(db) = error.as_db_error() {
        let mut extras = Vec::new();
        let mut push = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                extras.push((name.to_owned(), value.to_owned()));
            }
        };
        push("hint", db.hint());
        push("schema", db.schema());
        push("table", db.table());
        push("column", db.column());
        push("constraint", db.constraint());
        push("datatype", db.datatype());
        return Error::QueryFailed(QueryError::DbError(DbError {
            as_text: db.to_string(),
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras,
        }));
    }
    if error.is_closed() {
        return Error::ConnectionFailed(format!("connection lost: {error}"));
    }
    let text = match std::error::Error::source(&error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    };
    if text.starts_with("error serializing parameter") {
        Error::BadParameter(text)
    } else if text.starts_with("error deserializing") {
        Error::ValueConversionFailed(text)
    } else {
        Error::QueryFailed(QueryError::Text(text))
    }
}

/// `HasData` marker for the postgres interface.
pub struct Postgres;

impl HasData for Postgres {
    type Data<'a> = &'a mut InstanceState;
}

impl wit::Host for InstanceState {}

impl InstanceState {
    /// Opens a connection; owns everything it awaits on (the store data is not `Sync`).
    fn connect_postgres(
        &self,
        address: String,
    ) -> impl Future<Output = Result<OpenConnection, Error>> + Send + 'static {
        let pools = self.shared.postgres.clone();
        let policy = self.component.outbound.clone();
        async move { pools.connect(&policy, &address).await }
    }

    fn postgres_connection(
        &self,
        connection: &Resource<OpenConnection>,
    ) -> wasmtime::Result<OpenConnection> {
        Ok(self.table.get(connection)?.clone())
    }
}

impl wit::HostConnection for InstanceState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        match self.connect_postgres(address).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn query(
        &mut self,
        connection: Resource<OpenConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let connection = self.postgres_connection(&connection)?;
        Ok(connection.run(&statement, params).await.map(|ran| RowSet {
            columns: ran.columns,
            rows: ran.rows,
        }))
    }

    async fn execute(
        &mut self,
        connection: Resource<OpenConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let connection = self.postgres_connection(&connection)?;
        Ok(connection.execute(&statement, params).await)
    }

    fn drop(&mut self, connection: Resource<OpenConnection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl wit::HostConnectionBuilder for InstanceState {
    fn new(&mut self, address: String) -> wasmtime::Result<Resource<ConnectionBuilder>> {
        Ok(self.table.push(ConnectionBuilder {
            address,
            ca_root: None,
        })?)
    }

    fn set_ca_root(
        &mut self,
        builder: Resource<ConnectionBuilder>,
        certificate: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.table.get_mut(&builder)?.ca_root = Some(certificate);
        Ok(Ok(()))
    }

    async fn build(
        &mut self,
        builder: Resource<ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        let builder = self.table.get(&builder)?;
        if builder.ca_root.is_some() {
            return Ok(Err(tls_unsupported()));
        }
        let address = builder.address.clone();
        match self.connect_postgres(address).await {
            Ok(connection) => Ok(Ok(self.table.push(connection)?)),
            Err(error) => Ok(Err(error)),
        }
    }

    fn drop(&mut self, builder: Resource<ConnectionBuilder>) -> wasmtime::Result<()> {
        self.table.delete(builder)?;
        Ok(())
    }
}

fn tls_unsupported() -> Error {
    Error::Other("TLS connections (set-ca-root) are not supported by the cinema host; connect over loopback or a private network".to_owned())
}

/// Clones what an async call needs out of the store.
fn shared_for<T>(accessor: &Accessor<T, Postgres>) -> (PostgresPools, Arc<OutboundPolicy>) {
    accessor.with(|mut access| {
        let state = access.get();
        (
            state.shared.postgres.clone(),
            state.component.outbound.clone(),
        )
    })
}

fn client_of<T>(
    accessor: &Accessor<T, Postgres>,
    connection: &Resource<OpenConnection>,
) -> wasmtime::Result<OpenConnection> {
    accessor.with(|mut access| Ok(access.get().table.get(connection)?.clone()))
}

impl<T> wit::HostConnectionWithStore<T> for Postgres {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        let (pools, policy) = shared_for(accessor);
        match pools.connect(&policy, &address).await {
            Ok(connection) => {
                accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
            }
            Err(error) => Ok(Err(error)),
        }
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<OpenConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<Column>,
                StreamReader<Vec<wit::DbValue>>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let connection = client_of(accessor, &connection)?;
        let ran = connection.run(&statement, params).await;
        match ran {
            Ok(ran) => accessor.with(|mut access| {
                let rows = StreamReader::new(&mut access, ran.rows)?;
                let done = FutureReader::new(
                    &mut access,
                    std::future::ready(Ok::<_, wasmtime::Error>(Ok(()))),
                )?;
                Ok(Ok((ran.columns, rows, done)))
            }),
            Err(error) => Ok(Err(error)),
        }
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        connection: Resource<OpenConnection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let connection = client_of(accessor, &connection)?;
        let result = connection.execute(&statement, params).await;
        Ok(result)
    }
}

impl<T> wit::HostConnectionBuilderWithStore<T> for Postgres {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<OpenConnection>, Error>> {
        let (address, has_ca) = accessor.with(|mut access| {
            let builder = access.get().table.get(&builder)?;
            Ok::<_, wasmtime::Error>((builder.address.clone(), builder.ca_root.is_some()))
        })?;
        if has_ca {
            return Ok(Err(tls_unsupported()));
        }
        let (pools, policy) = shared_for(accessor);
        match pools.connect(&policy, &address).await {
            Ok(connection) => {
                accessor.with(|mut access| Ok(Ok(access.get().table.push(connection)?)))
            }
            Err(error) => Ok(Err(error)),
        }
    }
}

/// Adds `spin:postgres` to the linker.
pub fn add_to_linker(
    linker: &mut wasmtime::component::Linker<InstanceState>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<InstanceState, Postgres>(linker, |state| state)
}
