//! A mixed load against `cinema up`, the way users hit it: catalog lists and film
//! pages, searches, UGC heartbeats, token refreshes and a few logins, each worker as its
//! own signed-up user. Reports, per route, requests per second, p50/p95/p99/max latency
//! and errors (any answer other than the route's success status, or no answer), and
//! the host's resident memory over the run, as JSON and Markdown.
//!
//! Usage:
//! `load_mix BASE_URL --duration SECS [--concurrency N] [--rate REQ_PER_S]
//!  [--host-pid PID] [--out PATH_WITHOUT_EXTENSION] [--title TEXT]`
//!
//! Without `--rate` every worker sends as fast as it is answered (the peak); with it,
//! requests go out on a fixed schedule at that total rate (the soak), so a slow answer
//! shows as latency, not as fewer requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What the mix is made of, in percent.
const ROUTES: [Route; 6] = [
    Route {
        name: "catalog_list",
        weight: 20,
        success: 200,
    },
    Route {
        name: "film_detail",
        weight: 30,
        success: 200,
    },
    Route {
        name: "search",
        weight: 25,
        success: 200,
    },
    Route {
        name: "ugc_heartbeat",
        weight: 20,
        success: 202,
    },
    Route {
        name: "token_refresh",
        weight: 4,
        success: 200,
    },
    Route {
        name: "login",
        weight: 1,
        success: 200,
    },
];

const PASSWORD: &str = "Bench-mix-pass1";

#[derive(Clone, Copy)]
struct Route {
    name: &'static str,
    weight: u32,
    success: u16,
}

struct Settings {
    base: String,
    duration: Duration,
    concurrency: usize,
    rate: Option<f64>,
    host_pid: Option<u32>,
    out: Option<String>,
    title: String,
}

impl Settings {
    fn from_args() -> Result<Self, String> {
        let mut args = std::env::args().skip(1);
        let base = args.next().ok_or("usage: load_mix BASE_URL --duration SECS [--concurrency N] [--rate R] [--host-pid PID] [--out PATH] [--title TEXT]")?;
        let mut settings = Self {
            base: base.trim_end_matches('/').to_owned(),
            duration: Duration::from_secs(60),
            concurrency: 32,
            rate: None,
            host_pid: None,
            out: None,
            title: "Mixed load".to_owned(),
        };
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("{flag} must be a number, not {value}"))
            };
            match flag.as_str() {
                "--duration" => settings.duration = Duration::from_secs_f64(number()?),
                "--concurrency" => settings.concurrency = number()?.max(1.0) as usize,
                "--rate" => settings.rate = Some(number()?).filter(|rate| *rate > 0.0),
                "--host-pid" => settings.host_pid = Some(number()? as u32),
                "--out" => settings.out = Some(value),
                "--title" => settings.title = value,
                other => return Err(format!("unknown flag {other}")),
            }
        }
        Ok(settings)
    }
}

/// A worker's user and its current tokens.
struct Session {
    email: String,
    access: String,
    refresh: String,
}

/// What one worker measured: latencies in microseconds and answers that were not the
/// route's success, per route.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<Vec<u32>>,
    failures: Vec<BTreeMap<String, u64>>,
}

impl Tally {
    fn new() -> Self {
        Self {
            latencies_us: vec![Vec::new(); ROUTES.len()],
            failures: vec![BTreeMap::new(); ROUTES.len()],
        }
    }

    fn merge(&mut self, other: Tally) {
        for (mine, theirs) in self.latencies_us.iter_mut().zip(other.latencies_us) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            for (outcome, count) in theirs {
                *mine.entry(outcome).or_default() += count;
            }
        }
    }
}

/// The catalog's material: free films (id, a word of the title to search for).
struct Catalog {
    films: Vec<(String, String)>,
}

/// A small xorshift generator: the mix needs spread, not cryptography.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn route(&mut self) -> usize {
        let total: u32 = ROUTES.iter().map(|r| r.weight).sum();
        let mut roll = (self.next() % u64::from(total)) as u32;
        for (index, route) in ROUTES.iter().enumerate() {
            if roll < route.weight {
                return index;
            }
            roll -= route.weight;
        }
        ROUTES.len() - 1
    }
}

#[tokio::main]
async fn main() {
    let settings = match Settings::from_args() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("load_mix: {message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(settings).await {
        eprintln!("load_mix: {message}");
        std::process::exit(1);
    }
}

async fn run(settings: Settings) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(settings.concurrency)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let catalog = catalog(&http, &settings.base).await?;
    eprintln!(
        "load_mix: {} free films to read; signing up {} users...",
        catalog.films.len(),
        settings.concurrency
    );
    let mut sessions = Vec::with_capacity(settings.concurrency);
    let run_id = std::process::id();
    for worker in 0..settings.concurrency {
        let email = format!("mix-{run_id}-{worker}-{}@example.com", nanos());
        sessions.push(sign_up(&http, &settings.base, email).await?);
    }
    let catalog = std::sync::Arc::new(catalog);
    let memory = settings
        .host_pid
        .map(|pid| tokio::spawn(sample_rss(pid, settings.duration)));
    eprintln!(
        "load_mix: {} for {:?} with {} workers{}...",
        settings.title,
        settings.duration,
        settings.concurrency,
        settings
            .rate
            .map(|r| format!(" at {r:.0} req/s"))
            .unwrap_or_default()
    );
    let started = Instant::now();
    let deadline = started + settings.duration;
    let progress = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let elapsed = started.elapsed();
            if elapsed >= settings.duration {
                break;
            }
            eprintln!(
                "load_mix: {:.0} s of {:.0} s",
                elapsed.as_secs_f64(),
                settings.duration.as_secs_f64()
            );
        }
    });
    let workers: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(index, session)| {
            let http = http.clone();
            let base = settings.base.clone();
            let catalog = catalog.clone();
            // Worker i sends its j-th request at (j * workers + i) / rate.
            let interval = settings
                .rate
                .map(|rate| Duration::from_secs_f64(settings.concurrency as f64 / rate));
            let offset = settings
                .rate
                .map(|rate| Duration::from_secs_f64(index as f64 / rate));
            tokio::spawn(async move {
                let mut session = session;
                let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) * 0x2545_F491));
                let mut tally = Tally::new();
                let mut sent: u32 = 0;
                loop {
                    if let (Some(interval), Some(offset)) = (interval, offset) {
                        let due = started + offset + interval * sent;
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                    } else if Instant::now() >= deadline {
                        break;
                    }
                    sent += 1;
                    let route = dice.route();
                    let began = Instant::now();
                    let outcome =
                        request(&http, &base, &catalog, &mut session, &mut dice, route).await;
                    let micros = began.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    tally.latencies_us[route].push(micros);
                    if let Err(outcome) = outcome {
                        *tally.failures[route].entry(outcome).or_default() += 1;
                    }
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::new();
    for worker in workers {
        tally.merge(worker.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    progress.abort();
    let rss = match memory {
        Some(task) => task.await.ok(),
        None => None,
    };
    let report = report(&settings, &tally, elapsed, rss.as_deref());
    println!("{}", markdown(&report));
    if let Some(out) = &settings.out {
        std::fs::write(
            format!("{out}.json"),
            serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
        )
        .map_err(|e| format!("write {out}.json: {e}"))?;
        std::fs::write(format!("{out}.md"), markdown(&report))
            .map_err(|e| format!("write {out}.md: {e}"))?;
        eprintln!("load_mix: wrote {out}.json and {out}.md");
    }
    Ok(())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Free films from the catalog's list, with a word of each title.
async fn catalog(http: &reqwest::Client, base: &str) -> Result<Catalog, String> {
    let reader = sign_up(http, base, format!("mix-reader-{}@example.com", nanos())).await?;
    let mut films = Vec::new();
    for page in 1..=5 {
        let url = format!(
            "{base}/api/v1/films?access=free&sort=-imdb_rating&page_size=100&page_number={page}"
        );
        let body: Value = http
            .get(&url)
            .bearer_auth(&reader.access)
            .send()
            .await
            .map_err(|e| format!("catalog list: {e}"))?
            .json()
            .await
            .map_err(|e| format!("catalog list: {e}"))?;
        for film in body.as_array().into_iter().flatten() {
            let (Some(id), Some(title)) = (film["uuid"].as_str(), film["title"].as_str()) else {
                continue;
            };
            let word = title
                .split_whitespace()
                .find(|word| word.chars().count() >= 3)
                .unwrap_or(title)
                .to_lowercase();
            films.push((id.to_owned(), word));
        }
    }
    if films.is_empty() {
        return Err("the catalog lists no free films: seed it first (`cinema seed --films 100000`, then `cinema reindex`)".into());
    }
    Ok(Catalog { films })
}

async fn sign_up(http: &reqwest::Client, base: &str, email: String) -> Result<Session, String> {
    let credentials = json!({"email": email, "password": PASSWORD});
    let signup = http
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .map_err(|e| format!("signup: {e}"))?;
    if signup.status() != 201 {
        return Err(format!(
            "signup answered {}: is auth up, with a signing key (`cinema keys rotate`)?",
            signup.status()
        ));
    }
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&credentials)
        .send()
        .await
        .map_err(|e| format!("login: {e}"))?
        .json()
        .await
        .map_err(|e| format!("login: {e}"))?;
    Ok(Session {
        email,
        access: login["access_token"]
            .as_str()
            .ok_or("login: no access token")?
            .to_owned(),
        refresh: login["refresh_token"]
            .as_str()
            .ok_or("login: no refresh token")?
            .to_owned(),
    })
}

/// Sends one request of `route`; `Err` names what came back instead of success.
async fn request(
    http: &reqwest::Client,
    base: &str,
    catalog: &Catalog,
    session: &mut Session,
    dice: &mut Dice,
    route: usize,
) -> Result<(), String> {
    let (film, word) = &catalog.films[dice.below(catalog.films.len())];
    let builder = match ROUTES[route].name {
        "catalog_list" => {
            let page = 1 + dice.below(20);
            let sort = ["-imdb_rating", "imdb_rating", "-creation_date"][dice.below(3)];
            http.get(format!("{base}/api/v1/films?sort={sort}&page_size=50&page_number={page}"))
                .bearer_auth(&session.access)
        }
        "film_detail" => http
            .get(format!("{base}/api/v1/films/{film}"))
            .bearer_auth(&session.access),
        "search" => {
            // Whole words, and words typed halfway.
            let query: String = if dice.below(2) == 0 {
                word.clone()
            } else {
                word.chars().take(word.chars().count().div_ceil(2).max(3)).collect()
            };
            http.get(format!("{base}/api/v1/films/search"))
                .query(&[("query", query.as_str()), ("page_size", "20")])
                .bearer_auth(&session.access)
        }
        "ugc_heartbeat" => http
            .post(format!("{base}/api/v1/ugc/events"))
            .bearer_auth(&session.access)
            .json(&json!({"type": "view_progress", "film_id": film, "position_s": dice.below(5400), "duration_s": 5400})),
        "token_refresh" => http
            .post(format!("{base}/api/v1/auth/refresh"))
            .json(&json!({"refresh_token": session.refresh})),
        _ => http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": session.email, "password": PASSWORD})),
    };
    let response = builder.send().await.map_err(|e| {
        if e.is_timeout() {
            "timeout".to_owned()
        } else {
            "no answer".to_owned()
        }
    })?;
    let status = response.status().as_u16();
    if status != ROUTES[route].success {
        let _ = response.bytes().await;
        return Err(status.to_string());
    }
    if matches!(ROUTES[route].name, "token_refresh" | "login") {
        let tokens: Value = response
            .json()
            .await
            .map_err(|_| "unreadable tokens".to_owned())?;
        if let (Some(access), Some(refresh)) = (
            tokens["access_token"].as_str(),
            tokens["refresh_token"].as_str(),
        ) {
            session.access = access.to_owned();
            session.refresh = refresh.to_owned();
        }
    } else {
        response.bytes().await.map_err(|_| "cut off".to_owned())?;
    }
    Ok(())
}

/// The host's memory once a second, for `duration`: `(resident, anonymous)` in KiB.
/// Resident memory includes the search index's mapped files (page cache the kernel
/// can drop); anonymous memory is the heap and stacks, where a leak would show.
async fn sample_rss(pid: u32, duration: Duration) -> Vec<(u64, u64)> {
    let field = |status: &str, name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse().ok())
    };
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < duration {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let (Some(resident), Some(anonymous)) =
                (field(&status, "VmRSS:"), field(&status, "RssAnon:"))
        {
            samples.push((resident, anonymous));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    samples
}

fn percentile(sorted: &[u32], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

fn report(
    settings: &Settings,
    tally: &Tally,
    elapsed: Duration,
    rss: Option<&[(u64, u64)]>,
) -> Value {
    let seconds = elapsed.as_secs_f64();
    let mut routes = Vec::new();
    let (mut total, mut errors) = (0usize, 0u64);
    for (index, route) in ROUTES.iter().enumerate() {
        let mut latencies = tally.latencies_us[index].clone();
        latencies.sort_unstable();
        let failed: u64 = tally.failures[index].values().sum();
        total += latencies.len();
        errors += failed;
        routes.push(json!({
            "route": route.name,
            "share_percent": route.weight,
            "requests": latencies.len(),
            "req_per_s": round(latencies.len() as f64 / seconds, 1),
            "p50_ms": round(percentile(&latencies, 0.50), 2),
            "p95_ms": round(percentile(&latencies, 0.95), 2),
            "p99_ms": round(percentile(&latencies, 0.99), 2),
            "max_ms": round(percentile(&latencies, 1.0), 2),
            "errors": failed,
            "error_outcomes": tally.failures[index],
        }));
    }
    let memory = rss.filter(|samples| !samples.is_empty()).map(|samples| {
        let mib = |kib: u64| round(kib as f64 / 1024.0, 1);
        // Growth: the last minute's mean over the first minute's (or tenths, if shorter).
        let window = (samples.len() / 10).clamp(1, 60);
        let growth = |pick: fn(&(u64, u64)) -> u64| {
            let mean = |part: &[(u64, u64)]| {
                part.iter().map(pick).sum::<u64>() as f64 / part.len() as f64 / 1024.0
            };
            round(
                mean(&samples[samples.len() - window..]) - mean(&samples[..window]),
                1,
            )
        };
        let (first, last) = (samples[0], samples[samples.len() - 1]);
        json!({
            "samples": samples.len(),
            "first_mib": mib(first.0),
            "last_mib": mib(last.0),
            "max_mib": mib(samples.iter().map(|s| s.0).max().unwrap_or(0)),
            "growth_mib": growth(|s| s.0),
            "anonymous_first_mib": mib(first.1),
            "anonymous_last_mib": mib(last.1),
            "anonymous_growth_mib": growth(|s| s.1),
        })
    });
    json!({
        "title": settings.title,
        "base_url": settings.base,
        "duration_s": round(seconds, 1),
        "concurrency": settings.concurrency,
        "target_rate": settings.rate,
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "total": {
            "requests": total,
            "req_per_s": round(total as f64 / seconds, 1),
            "errors": errors,
        },
        "routes": routes,
        "host_rss": memory,
    })
}

fn markdown(report: &Value) -> String {
    let mut out = format!(
        "## {}\n\n{} s, {} workers{}, {} CPUs: **{} req/s**, {} requests, {} errors.\n\n",
        report["title"].as_str().unwrap_or_default(),
        report["duration_s"],
        report["concurrency"],
        report["target_rate"]
            .as_f64()
            .map(|rate| format!(" at a fixed {rate:.0} req/s"))
            .unwrap_or_default(),
        report["cpus"],
        report["total"]["req_per_s"],
        report["total"]["requests"],
        report["total"]["errors"],
    );
    out += "| route | share | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |\n";
    out += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for route in report["routes"].as_array().into_iter().flatten() {
        out += &format!(
            "| {} | {}% | {} | {} | {} | {} | {} | {} |\n",
            route["route"].as_str().unwrap_or_default(),
            route["share_percent"],
            route["req_per_s"],
            route["p50_ms"],
            route["p95_ms"],
            route["p99_ms"],
            route["max_ms"],
            route["errors"],
        );
    }
    if let Some(rss) = report["host_rss"].as_object() {
        out += &format!(
            "\nHost RSS: {} MiB at the start, {} MiB at the end, {} MiB at most; growth (last \
             minute over first) {} MiB. Of it anonymous (heap, stacks; the rest is mostly the \
             search index's mapped files): {} MiB at the start, {} MiB at the end, growth {} MiB.\n",
            rss["first_mib"],
            rss["last_mib"],
            rss["max_mib"],
            rss["growth_mib"],
            rss["anonymous_first_mib"],
            rss["anonymous_last_mib"],
            rss["anonymous_growth_mib"]
        );
    }
    out
}
