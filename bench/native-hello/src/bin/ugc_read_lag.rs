//! Write-to-read lag of the UGC read models through `cinema up`: posts a heartbeat at a
//! new position, then polls `GET /api/v1/ugc/me/progress/{film}` until it shows that
//! position; prints p50/p99/max over the rounds (after one uncounted warm-up round).
//!
//! Usage: `ugc_read_lag BASE_URL ACCESS_TOKEN [ROUNDS]`

use std::time::{Duration, Instant};

const FILM: &str = "30000000-0000-4000-8000-0000000000ff";
/// The longest film the schema allows, so every position fits.
const DURATION_S: u32 = cinema_domain::ugc::MAX_DURATION_S;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: ugc_read_lag BASE_URL ACCESS_TOKEN [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(50);
    let http = reqwest::Client::new();
    let progress_url = format!("{base}/api/v1/ugc/me/progress/{FILM}");
    let mut samples = Vec::with_capacity(rounds as usize);
    // Each round's position differs from the one before (and, likely, from an
    // earlier run's last), so the read shows this round's write and no older one.
    let first = u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs()
            % 1_000,
    )?;
    // Round 0 is a warm-up, not counted: on a freshly started host it also waits for
    // the read-model consumer to join its group.
    for round in 0..=rounds {
        let position = (first * 100 + round) % DURATION_S;
        let started = Instant::now();
        let accepted = http
            .post(format!("{base}/api/v1/ugc/events"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "type": "view_progress", "film_id": FILM,
                "position_s": position, "duration_s": DURATION_S,
            }))
            .send()
            .await?;
        if accepted.status() != 202 {
            return Err(format!("heartbeat answered {}", accepted.status()).into());
        }
        loop {
            let response = http.get(&progress_url).bearer_auth(&token).send().await?;
            if response.status() == 200 {
                let body: serde_json::Value = response.json().await?;
                if body["position_s"].as_u64() == Some(u64::from(position)) {
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("position {position} not readable after 30 s").into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if round > 0 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "  write-to-read lag over {rounds} heartbeats: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0
    );
    Ok(())
}
