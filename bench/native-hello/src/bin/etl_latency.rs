//! Change-to-searchable latency of the ETL: renames a film in Postgres to a fresh word,
//! then polls the host's search API until that word finds it; prints p50/p99/max.
//! With `--during-reindex`, full rebuilds (`POST /etl/reindex`) run back to back while
//! it measures, and it also prints how many completed and how long each took.
//!
//! Usage: `etl_latency POSTGRES_URL INTERNAL_API_URL [ROUNDS] [--during-reindex]`, with
//! the internal API's credential in `CINEMA_INTERNAL_API_TOKEN`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let during_reindex = std::env::args().any(|arg| arg == "--during-reindex");
    let mut args = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"));
    let (Some(postgres_url), Some(internal)) = (args.next(), args.next()) else {
        eprintln!("usage: etl_latency POSTGRES_URL INTERNAL_API_URL [ROUNDS] [--during-reindex]");
        std::process::exit(2);
    };
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(50);
    let (db, connection) = cinema_postgres::connect(&postgres_url).await?;
    tokio::spawn(connection);
    let http = reqwest::Client::new();
    let internal_token = std::env::var("CINEMA_INTERNAL_API_TOKEN").unwrap_or_default();
    let film: String = db
        .query_one("SELECT id::text FROM content.film ORDER BY id LIMIT 1", &[])
        .await?
        .get(0);
    let stop = Arc::new(AtomicBool::new(false));
    let rebuilds = during_reindex.then(|| {
        tokio::spawn(reindex_until(
            http.clone(),
            format!("{internal}/etl/reindex"),
            internal_token.clone(),
            stop.clone(),
        ))
    });
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
    stop.store(true, Ordering::Relaxed);
    // Which update was slowest (an outlier at the start is another story than one
    // in the middle).
    let slowest_round = samples
        .iter()
        .enumerate()
        .max_by_key(|(_, took)| **took)
        .map_or(0, |(round, _)| round);
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let during = if during_reindex {
        " during full reindexes"
    } else {
        ""
    };
    println!(
        "change-to-searchable over {rounds} updates{during}: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (update {slowest_round})",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0
    );
    if let Some(rebuilds) = rebuilds {
        let took = rebuilds.await??;
        let mean = took.iter().sum::<Duration>().as_secs_f64() / took.len().max(1) as f64;
        println!(
            "full reindexes meanwhile: {} completed, {mean:.1} s each on average",
            took.len()
        );
    }
    Ok(())
}

/// Asks for full rebuilds one after another until `stop`; returns how long each took.
async fn reindex_until(
    http: reqwest::Client,
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Duration>, String> {
    let mut took = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let response = http
            .post(&url)
            .header("x-cinema-internal-token", &token)
            .send()
            .await
            .map_err(|e| format!("reindex request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("reindex answered {}", response.status()));
        }
        took.push(started.elapsed());
    }
    Ok(took)
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
