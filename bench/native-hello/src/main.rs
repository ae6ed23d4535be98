//! Native baseline for `bench/runtime.sh`: the same handler as `components/hello`, served
//! by axum on the address given as the first argument (default 127.0.0.1:28081).

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:28081".to_owned());
    let app = Router::new().route("/hello", get(|| async { "hello from the cinema edge\n" }));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("native-hello: serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
