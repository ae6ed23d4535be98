//! `spin:key-value@3.0.0`: labelled key-value stores shared by all requests.
//!
//! Owns the stores and their backends. Each label (`default`, and every label a
//! component declares in `key_value_stores`) is a store of its own in process memory
//! unless the runtime-config file (Spin's `runtime-config.toml` format) maps it
//! elsewhere; give each Redis-backed label its own Redis database, as with Spin:
//!
//! ```toml
//! [key_value_store.catalog]
//! type = "redis"
//! url = "redis://127.0.0.1:6379/1"
//! ```
//!
//! A component may open only the labels in its `key_value_stores`; other labels answer
//! `access-denied`, undefined ones `no-such-store`. A memory store is bounded
//! ([`MAX_MEMORY_KEYS`]); a Redis store is bounded by Redis's own `maxmemory` policy
//! (run it with `allkeys-lru` when it backs caches). Backend failures (Redis down) come
//! back to the guest as `other(..)` errors quickly; they never trap the guest or stall
//! the host, and a Redis that comes back is used again without a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::AsyncCommands;
use serde::Deserialize;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, StreamReader};

use super::bindings::spin::key_value::key_value::{self as wit, Error};
use super::state::InstanceState;

/// Most keys a memory store holds; past it, setting a new key evicts an arbitrary one
/// (like Redis's `allkeys-random`). Components use the store as a cache (catalog
/// answers per index version, the JWKS), so eviction costs a refetch, never data.
pub const MAX_MEMORY_KEYS: usize = 100_000;

/// Why the key-value configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum KeyValueConfigError {
    #[error("key_value_store.{label}: type `{kind}` is not supported by cinema (use `redis`)")]
    UnsupportedType { label: String, kind: String },
    #[error("key_value_store.{label}: redis url is not valid: {source}")]
    BadRedisUrl {
        label: String,
        source: redis::RedisError,
    },
}

/// `[key_value_store.<label>]` in the runtime-config file.
#[derive(Debug, Clone, Deserialize)]
pub struct StoreConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// Backend of one labelled store.
#[derive(Clone)]
pub enum StoreBackend {
    Memory(Arc<RwLock<HashMap<String, Vec<u8>>>>),
    Redis(Arc<RedisStore>),
}

/// A Redis-backed store: one multiplexed, auto-reconnecting connection, created on
/// first use so that the host starts even while Redis is down.
pub struct RedisStore {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
}

/// Bound on how long one Redis operation may take before the guest gets an error.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisStore {
    async fn connection(&self) -> Result<redis::aio::ConnectionManager, Error> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        let connection = self
            .client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|e| Error::Other(format!("redis unavailable: {e}")))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }
}

fn redis_error(error: redis::RedisError) -> Error {
    Error::Other(format!("redis operation failed: {error}"))
}

/// All stores of the application, by label.
#[derive(Clone, Default)]
pub struct KeyValueStores {
    stores: Arc<BTreeMap<String, StoreBackend>>,
}

impl std::fmt::Debug for KeyValueStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.stores.keys()).finish()
    }
}

impl KeyValueStores {
    /// Builds the stores: the runtime-config entries, and a memory store of its own
    /// for `default` and every other label a component declares (`declared`) that the
    /// runtime config does not map.
    pub fn from_config(
        config: &BTreeMap<String, StoreConfig>,
        declared: impl IntoIterator<Item = String>,
    ) -> Result<Self, KeyValueConfigError> {
        let mut stores = BTreeMap::new();
        stores.insert("default".to_owned(), StoreBackend::Memory(Arc::default()));
        for label in declared {
            stores
                .entry(label)
                .or_insert_with(|| StoreBackend::Memory(Arc::default()));
        }
        for (label, store) in config {
            let backend = match store.kind.as_str() {
                "redis" => {
                    let url = store
                        .url
                        .clone()
                        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
                    let client = redis::Client::open(url).map_err(|source| {
                        KeyValueConfigError::BadRedisUrl {
                            label: label.clone(),
                            source,
                        }
                    })?;
                    StoreBackend::Redis(Arc::new(RedisStore {
                        client,
                        connection: tokio::sync::Mutex::new(None),
                    }))
                }
                "memory" => StoreBackend::Memory(Arc::default()),
                other => {
                    return Err(KeyValueConfigError::UnsupportedType {
                        label: label.clone(),
                        kind: other.to_owned(),
                    });
                }
            };
            stores.insert(label.clone(), backend);
        }
        Ok(Self {
            stores: Arc::new(stores),
        })
    }

    fn backend(&self, label: &str) -> Option<StoreBackend> {
        self.stores.get(label).cloned()
    }
}

impl StoreBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Self::Memory(map) => Ok(read(map).get(key).cloned()),
            Self::Redis(redis) => redis
                .connection()
                .await?
                .get(key)
                .await
                .map_err(redis_error),
        }
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Memory(map) => {
                let mut map = write(map);
                if map.len() >= MAX_MEMORY_KEYS
                    && !map.contains_key(&key)
                    && let Some(victim) = map.keys().next().cloned()
                {
                    map.remove(&victim);
                }
                map.insert(key, value);
                Ok(())
            }
            Self::Redis(redis) => redis
                .connection()
                .await?
                .set(key, value)
                .await
                .map_err(redis_error),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        match self {
            Self::Memory(map) => {
                write(map).remove(key);
                Ok(())
            }
            Self::Redis(redis) => redis
                .connection()
                .await?
                .del(key)
                .await
                .map_err(redis_error),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, Error> {
        match self {
            Self::Memory(map) => Ok(read(map).contains_key(key)),
            Self::Redis(redis) => redis
                .connection()
                .await?
                .exists(key)
                .await
                .map_err(redis_error),
        }
    }

    async fn keys(&self) -> Result<Vec<String>, Error> {
        match self {
            Self::Memory(map) => Ok(read(map).keys().cloned().collect()),
            Self::Redis(redis) => {
                let mut connection = redis.connection().await?;
                let mut keys = Vec::new();
                let mut iter = connection.scan::<String>().await.map_err(redis_error)?;
                while let Some(key) = futures::StreamExt::next(&mut iter).await {
                    keys.push(key);
                }
                Ok(keys)
            }
        }
    }
}

// A poisoned lock only means another request panicked mid-update of a plain map;
// the map itself is still consistent, so keep serving it.
fn read(
    map: &RwLock<HashMap<String, Vec<u8>>>,
) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<u8>>> {
    map.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(
    map: &RwLock<HashMap<String, Vec<u8>>>,
) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<u8>>> {
    map.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the guest's `store` resource points at.
pub struct OpenStore {
    backend: StoreBackend,
}

/// `HasData` marker for the key-value interface.
pub struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = &'a mut InstanceState;
}

impl wit::Host for InstanceState {}

impl wit::HostStore for InstanceState {
    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

/// Looks up the backend behind a guest handle (cheap clone: an `Arc`).
fn backend_of<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<StoreBackend> {
    accessor.with(|mut access| Ok(access.get().table.get(store)?.backend.clone()))
}

impl<T> wit::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        accessor.with(|mut access| {
            let state = access.get();
            if !state.component.key_value_stores.contains(&label) {
                return Ok(Err(Error::AccessDenied));
            }
            let Some(backend) = state.shared.key_value.backend(&label) else {
                return Ok(Err(Error::NoSuchStore));
            };
            Ok(Ok(state.table.push(OpenStore { backend })?))
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.get(&key).await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.set(key, value).await)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.delete(&key).await)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let backend = backend_of(accessor, &store)?;
        Ok(backend.exists(&key).await)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let backend = backend_of(accessor, &store)?;
        let (keys, result) = match backend.keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(error) => (Vec::new(), Err(error)),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future = FutureReader::new(
                &mut access,
                std::future::ready(Ok::<_, wasmtime::Error>(result)),
            )?;
            Ok((stream, future))
        })
    }
}

/// Adds `spin:key-value` to the linker.
pub fn add_to_linker(
    linker: &mut wasmtime::component::Linker<InstanceState>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<InstanceState, KeyValue>(linker, |state| state)
}
