//! Host-side bindings for the Spin interfaces of `wit/` (world `spin-capabilities`).
//!
//! The WASI parts of the platform world come from wasmtime-wasi and wasmtime-wasi-http;
//! everything Spin-specific is generated here from the same WIT files the components are
//! checked against, so host and guests cannot drift apart.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "cinema:platform/spin-capabilities",
    imports: {
        // Synchronous WIT functions that still need I/O: the guest blocks while the host
        // awaits (a pooled connection, a query).
        "spin:postgres/postgres.[static]connection.open": async | trappable,
        "spin:postgres/postgres.[method]connection.query": async | trappable,
        "spin:postgres/postgres.[method]connection.execute": async | trappable,
        "spin:postgres/postgres.[method]connection-builder.build": async | trappable,
        default: trappable,
    },
    with: {
        "spin:key-value/key-value.store": super::key_value::OpenStore,
        "spin:postgres/postgres.connection": super::postgres::OpenConnection,
        "spin:postgres/postgres.connection-builder": super::postgres::ConnectionBuilder,
    },
});
