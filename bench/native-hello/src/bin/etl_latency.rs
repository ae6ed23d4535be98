//! Change-to-searchable latency of the ETL: renames a film in Postgres to a fresh word,
//! then polls the host's search API until that word finds it; prints p50/p99/max.
//!
//! Usage: `etl_latency POSTGRES_URL INTERNAL_API_URL [ROUNDS]`, with the internal API's
//! credential in `CINEMA_INTERNAL_API_TOKEN`.

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(postgres_url), Some(internal)) = (args.next(), args.next()) else {
        eprintln!("usage: etl_latency POSTGRES_URL INTERNAL_API_URL [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(50);
    let (db, connection) = tokio_postgres::connect(&postgres_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let http = reqwest::Client::new();
    let internal_token = std::env::var("CINEMA_INTERNAL_API_TOKEN").unwrap_or_default();
    let film: String = db
        .query_one("SELECT id::text FROM content.film ORDER BY id LIMIT 1", &[])
        .await?
        .get(0);
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Words far apart from each other, so a typo-tolerant search for this round's
        // word cannot match the previous round's title.
        let word = distinct_word(round as u64 ^ u64::from(std::process::id()) << 20);
        let started = Instant::now();
        db.execute(
            "UPDATE content.film SET title = $1 WHERE id = $2::text::uuid",
            &[&word, &film],
        )
        .await?;
        loop {
            let url = format!("{internal}/search/films?query={word}&page_size=1");
            let body: serde_json::Value = http
                .get(&url)
                .header("x-cinema-internal-token", &internal_token)
                .send()
                .await?
                .json()
                .await?;
            if body["items"][0]["title"].as_str() == Some(word.as_str()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{word} not searchable after 30 s").into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "change-to-searchable over {rounds} updates: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0
    );
    Ok(())
}

/// A 12-letter word from a number (a bijective scramble, base 26).
fn distinct_word(seed: u64) -> String {
    let mut value = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    (0..12)
        .map(|_| {
            let letter = (b'a' + (value % 26) as u8) as char;
            value /= 26;
            letter
        })
        .collect()
}
