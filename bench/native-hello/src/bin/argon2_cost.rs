//! Measures the password-hash cost alone: argon2id verifications per second with the
//! platform's parameters, on N threads (default 2), for D seconds (default 5).
//! Usage: argon2_cost [threads] [seconds]

use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let hash = match cinema_domain::password::hash_password("Bench-pass1") {
        Ok(hash) => hash,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let hash = hash.clone();
            std::thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let _ = cinema_domain::password::verify_password("Bench-pass1", &hash);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    println!(
        "argon2id m={}KiB t={} p={}: {:.1} verifications/s on {threads} thread(s)",
        cinema_domain::password::MEMORY_KIB,
        cinema_domain::password::ITERATIONS,
        cinema_domain::password::PARALLELISM,
        total as f64 / seconds as f64
    );
}
