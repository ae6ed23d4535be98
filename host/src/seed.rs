//! `cinema seed --films N`: a deterministic, realistic content data set for development
//! and benchmarks. The same N always gives the same rows (ids included).
//!
//! Shape: Russian and English titles and names; genres skewed (drama and comedy common,
//! westerns rare); ratings skewed towards 6-8; about N/3 persons whose film counts follow
//! a power law (a few people appear in hundreds of films); 1-3 genres, one or two
//! directors, a writer and 3-8 actors per film; one film in five needs a subscription.
//! Rows go in with COPY, in batches, with a progress line, with the content triggers
//! off for the session (`session_replication_role = replica`): run `cinema reindex`
//! after a seed.

use std::io::Write as _;
use std::time::Instant;

use futures::SinkExt;
use uuid::Uuid;

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(
        "postgres is unreachable: {0} (is it running? `scripts/services.sh up`; migrated? `cinema migrate`)"
    )]
    Connect(String),
    #[error("{context}: {message}")]
    Write {
        context: &'static str,
        message: String,
    },
}

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Index in 0..n with a power-law skew towards small indices.
    fn skewed(&mut self, n: usize, exponent: f64) -> usize {
        ((self.unit().powf(exponent)) * n as f64) as usize % n.max(1)
    }
    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const GENRES: &[&str] = &[
    "Drama",
    "Comedy",
    "Thriller",
    "Action",
    "Romance",
    "Crime",
    "Adventure",
    "Documentary",
    "Animation",
    "Fantasy",
    "Science Fiction",
    "Horror",
    "Mystery",
    "Family",
    "History",
    "War",
    "Music",
    "Biography",
    "Sport",
    "Western",
    "Драма",
    "Комедия",
    "Мелодрама",
    "Боевик",
    "Фантастика",
    "Детектив",
];
const TITLE_EN: &[&str] = &[
    "Star", "Night", "City", "Last", "Silent", "Winter", "Lost", "Red", "River", "Shadow",
    "Empire", "Dream", "Road", "Iron", "Golden", "Wild", "Dark", "Secret", "Summer", "Storm",
    "Mirror", "Garden", "Ghost", "Fire",
];
const TITLE_RU: &[&str] = &[
    "Солярис",
    "Зеркало",
    "Сталкер",
    "Брат",
    "Ирония",
    "Судьбы",
    "Москва",
    "Слезам",
    "Не",
    "Верит",
    "Белое",
    "Солнце",
    "Пустыни",
    "Кавказская",
    "Пленница",
    "Служебный",
    "Роман",
    "Осенний",
    "Марафон",
    "Жестокий",
];
const FIRST_EN: &[&str] = &[
    "John", "Mary", "James", "Anna", "Robert", "Linda", "Michael", "Emma", "David", "Olivia",
    "Peter", "Grace",
];
const LAST_EN: &[&str] = &[
    "Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Clark", "Hall", "Young",
    "King", "Wright",
];
const FIRST_RU: &[&str] = &[
    "Андрей",
    "Ольга",
    "Сергей",
    "Наталья",
    "Алексей",
    "Ирина",
    "Дмитрий",
    "Ёлка",
    "Михаил",
    "Татьяна",
    "Фёдор",
    "Анна",
];
const LAST_RU: &[&str] = &[
    "Тарковский",
    "Михалков",
    "Рязанов",
    "Гайдай",
    "Бондарчук",
    "Меньшов",
    "Балабанов",
    "Данелия",
    "Шукшин",
    "Герман",
    "Звягинцев",
    "Лунгин",
];

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub films: usize,
    pub persons: usize,
    pub genres: usize,
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

async fn copy(
    client: &tokio_postgres::Client,
    statement: &str,
    rows: &[String],
    context: &'static str,
) -> Result<(), SeedError> {
    let failed = |e: tokio_postgres::Error| SeedError::Write {
        context,
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |db| db.message().to_owned()),
    };
    let sink = client.copy_in(statement).await.map_err(failed)?;
    let mut sink = std::pin::pin!(sink);
    let mut buffer = String::with_capacity(rows.len() * 64);
    for row in rows {
        buffer.push_str(row);
        buffer.push('\n');
        if buffer.len() > 1 << 20 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buffer)))
                .await
                .map_err(failed)?;
        }
    }
    if !buffer.is_empty() {
        sink.send(bytes::Bytes::from(buffer))
            .await
            .map_err(failed)?;
    }
    sink.as_mut().finish().await.map_err(failed)?;
    Ok(())
}

fn progress(label: &str, done: usize, total: usize, started: Instant) {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    eprint!(
        "\r{label}: {done}/{total} ({percent}%) {:.1}s   ",
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::stderr().flush();
}

/// Replaces the content tables' rows with the data set for `films` films.
pub async fn seed(url: &str, films: usize) -> Result<SeedReport, SeedError> {
    let (client, connection) = cinema_postgres::connect(url)
        .await
        .map_err(|e| SeedError::Connect(e.to_string()))?;
    tokio::spawn(connection);
    let started = Instant::now();
    let mut rng = Rng(0x00C1_E3A5_EED5);
    // Bulk load without the change triggers (one notification and film update per link
    // row would dominate the time); the ETL rebuilds the index after a seed anyway.
    client
        .batch_execute("SET session_replication_role = replica")
        .await
        .map_err(|e| SeedError::Write {
            context: "disable triggers for the load (needs a superuser)",
            message: e.to_string(),
        })?;
    client
        .batch_execute("TRUNCATE content.film_genre, content.film_person, content.film, content.person, content.genre")
        .await
        .map_err(|e| SeedError::Write { context: "truncate content", message: e.to_string() })?;

    let genre_ids: Vec<Uuid> = GENRES.iter().map(|_| rng.uuid()).collect();
    let genre_rows: Vec<String> = GENRES
        .iter()
        .zip(&genre_ids)
        .map(|(name, id)| format!("{id}\t{}\t", escape(name)))
        .collect();
    copy(
        &client,
        "COPY content.genre (id, name, description) FROM STDIN",
        &genre_rows,
        "copy genres",
    )
    .await?;

    let person_count = (films / 3).max(10);
    let mut person_ids = Vec::with_capacity(person_count);
    let mut person_rows = Vec::with_capacity(person_count);
    for i in 0..person_count {
        let id = rng.uuid();
        let name = if i % 2 == 0 {
            format!("{} {}", rng.pick(FIRST_RU), rng.pick(LAST_RU))
        } else {
            format!("{} {}", rng.pick(FIRST_EN), rng.pick(LAST_EN))
        };
        person_rows.push(format!("{id}\t{}", escape(&name)));
        person_ids.push(id);
    }
    copy(
        &client,
        "COPY content.person (id, full_name) FROM STDIN",
        &person_rows,
        "copy persons",
    )
    .await?;

    const BATCH: usize = 10_000;
    let mut done = 0;
    while done < films {
        let end = (done + BATCH).min(films);
        let mut film_rows = Vec::with_capacity(end - done);
        let mut genre_links = Vec::new();
        let mut person_links = Vec::new();
        for i in done..end {
            let id = rng.uuid();
            let words = 1 + rng.below(3);
            let dictionary = if i % 3 == 0 { TITLE_RU } else { TITLE_EN };
            let title: Vec<&str> = (0..words).map(|_| rng.pick(dictionary)).collect();
            let title = title.join(" ");
            // Ratings cluster around 6-7.5: the mean of three uniforms, stretched.
            let mean = (rng.unit() + rng.unit() + rng.unit()) / 3.0;
            let rating = (mean * 8.0 + 2.7).clamp(0.0, 10.0);
            let year = 1920 + rng.skewed(105, 0.5).min(104);
            let date = format!(
                "{}-{:02}-{:02}",
                2024 - (year - 1920),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            let kind = if rng.below(5) == 0 {
                "tv_show"
            } else {
                "movie"
            };
            let access = if rng.below(5) == 0 {
                "subscription"
            } else {
                "free"
            };
            film_rows.push(format!(
                "{id}\t{}\t{}\t{date}\t{rating:.1}\t{kind}\t{access}",
                escape(&title),
                escape(&format!(
                    "{title}: a film about {}",
                    rng.pick(TITLE_EN).to_lowercase()
                ))
            ));
            let mut genres = std::collections::BTreeSet::new();
            for _ in 0..1 + rng.below(3) {
                genres.insert(rng.skewed(GENRES.len(), 2.0));
            }
            for genre in genres {
                genre_links.push(format!("{}\t{id}\t{}", rng.uuid(), genre_ids[genre]));
            }
            let mut cast = std::collections::BTreeSet::new();
            for (role, count) in [
                ("director", 1 + rng.below(2)),
                ("writer", 1),
                ("actor", 3 + rng.below(6)),
            ] {
                for _ in 0..count {
                    let person = rng.skewed(person_ids.len(), 1.6);
                    if cast.insert((person, role)) {
                        person_links.push(format!(
                            "{}\t{id}\t{}\t{role}",
                            rng.uuid(),
                            person_ids[person]
                        ));
                    }
                }
            }
        }
        copy(
            &client,
            "COPY content.film (id, title, description, creation_date, rating, type, access) FROM STDIN",
            &film_rows,
            "copy films",
        )
        .await?;
        copy(
            &client,
            "COPY content.film_genre (id, film_id, genre_id) FROM STDIN",
            &genre_links,
            "copy film genres",
        )
        .await?;
        copy(
            &client,
            "COPY content.film_person (id, film_id, person_id, role) FROM STDIN",
            &person_links,
            "copy film persons",
        )
        .await?;
        done = end;
        progress("films", done, films, started);
    }
    eprintln!();
    client
        .batch_execute("ANALYZE content.film, content.person, content.genre, content.film_genre, content.film_person")
        .await
        .map_err(|e| SeedError::Write { context: "analyze", message: e.to_string() })?;
    Ok(SeedReport {
        films,
        persons: person_count,
        genres: GENRES.len(),
    })
}
