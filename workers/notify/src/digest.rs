//! Film digests: new films → the users they suit → at most one mail per user per day.
//!
//! Two steps, each one SQL statement, so a crash between or inside them loses nothing
//! and doubles nothing:
//! - **match**: a film in `notify.published_films` that has waited the digest delay
//!   (time for the editor to attach genres and people) gets its audience: users who
//!   bookmarked a film by one of its directors, or rated a film of one of its genres 8
//!   or more, and have neither bookmarked nor rated this film. Each becomes a row of
//!   `notify.digest_items` with the reason (a director beats a genre), keyed by (user,
//!   film).
//! - **compose**: a user whose oldest waiting suggestion has waited the delay too, and
//!   who got no digest yet today (UTC), gets one `film_digest` delivery carrying every
//!   waiting film. The delivery's event id is derived from the day, so its key (day,
//!   user, template) makes a second digest that day impossible; the items are marked
//!   with the day in the same statement. Suggestions that arrive after today's digest
//!   wait for tomorrow's. Blocked users and users who turned `film_digest` off get no
//!   mail (their suggestions are dropped); each digest carries its own one-click
//!   unsubscribe link.

use std::time::Duration;

use cinema_worker::CancellationToken;

use crate::NotifySettings;

/// Films matched per statement.
const FILMS_PER_ROUND: i64 = 20;
/// Users whose digest is composed per statement.
const USERS_PER_ROUND: i64 = 500;
/// Longest pause between rounds when idle (the delay is minutes in production).
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Runs until `stop` is cancelled.
pub async fn run(settings: NotifySettings, stop: CancellationToken) {
    let idle = (settings.digest_delay / 4).clamp(Duration::from_millis(100), MAX_IDLE);
    crate::repeat_rounds(
        &settings,
        |postgres, settings| Box::pin(round(postgres, settings)),
        idle,
        "notify: film digest round failed; retrying",
        stop,
    )
    .await;
}

/// One match and one compose; `true` when either had work (another round follows at
/// once).
async fn round(
    postgres: &mut Option<tokio_postgres::Client>,
    settings: &NotifySettings,
) -> Result<bool, tokio_postgres::Error> {
    let client = crate::connected(postgres, &settings.postgres_url, "digest").await?;
    let delay = settings.digest_delay.as_secs_f64();
    let matched = client
        .query(MATCH_FILMS, &[&delay, &FILMS_PER_ROUND])
        .await?;
    if let Some(row) = matched.first() {
        tracing::debug!(
            films = matched.len(),
            suggestions = row.get::<_, i64>("suggestions"),
            "notify: films matched to their audience"
        );
    }
    let unsubscribe_base = format!(
        "{}/api/v1/auth/unsubscribe?token=",
        settings.public_base_url.trim_end_matches('/')
    );
    let composed = client
        .query_one(
            COMPOSE_DIGESTS,
            &[&delay, &USERS_PER_ROUND, &unsubscribe_base],
        )
        .await?;
    let digests: i64 = composed.get("digests");
    let settled: i64 = composed.get("settled");
    if settled > 0 {
        tracing::info!(
            digests,
            suggestions = settled,
            "notify: film digests queued"
        );
    }
    Ok(!matched.is_empty() || settled > 0)
}

/// `$1` delay in seconds, `$2` films per round. One row per film matched.
const MATCH_FILMS: &str = "\
WITH films AS ( \
    SELECT film_id FROM notify.published_films \
    WHERE matched_at IS NULL AND published_at <= now() - make_interval(secs => $1) \
    ORDER BY published_at, film_id LIMIT $2 FOR UPDATE SKIP LOCKED), \
by_director AS ( \
    SELECT b.user_id, f.film_id, 0 AS priority, \
           jsonb_build_object('kind', 'director', 'name', p.full_name) AS reason \
    FROM films f \
    JOIN content.film_person d ON d.film_id = f.film_id AND d.role = 'director' \
    JOIN content.person p ON p.id = d.person_id \
    JOIN content.film_person other ON other.person_id = d.person_id \
         AND other.role = 'director' AND other.film_id <> f.film_id \
    JOIN ugc.bookmarks b ON b.film_id = other.film_id AND b.active), \
by_genre AS ( \
    SELECT r.user_id, f.film_id, 1 AS priority, \
           jsonb_build_object('kind', 'genre', 'name', g.name) AS reason \
    FROM films f \
    JOIN content.film_genre fg ON fg.film_id = f.film_id \
    JOIN content.genre g ON g.id = fg.genre_id \
    JOIN content.film_genre other ON other.genre_id = fg.genre_id AND other.film_id <> f.film_id \
    JOIN ugc.ratings r ON r.film_id = other.film_id AND r.score >= 8), \
picked AS ( \
    SELECT DISTINCT ON (c.user_id, c.film_id) c.user_id, c.film_id, c.reason \
    FROM (SELECT * FROM by_director UNION ALL SELECT * FROM by_genre) c \
    WHERE NOT EXISTS (SELECT 1 FROM ugc.bookmarks seen \
                      WHERE seen.user_id = c.user_id AND seen.film_id = c.film_id AND seen.active) \
      AND NOT EXISTS (SELECT 1 FROM ugc.ratings seen \
                      WHERE seen.user_id = c.user_id AND seen.film_id = c.film_id \
                        AND seen.score IS NOT NULL) \
    ORDER BY c.user_id, c.film_id, c.priority, c.reason->>'name'), \
added AS ( \
    INSERT INTO notify.digest_items (user_id, film_id, reason) \
    SELECT user_id, film_id, reason FROM picked ON CONFLICT DO NOTHING RETURNING 1) \
UPDATE notify.published_films p SET matched_at = now() FROM films f WHERE p.film_id = f.film_id \
RETURNING p.film_id, (SELECT count(*) FROM added) AS suggestions";

/// `$1` delay in seconds, `$2` users per round, `$3` the unsubscribe link without its
/// token. One row: digests queued and suggestions settled.
const COMPOSE_DIGESTS: &str = "\
WITH today AS (SELECT (now() AT TIME ZONE 'UTC')::date AS day), \
due AS ( \
    SELECT w.user_id FROM notify.digest_items w \
    WHERE w.digest_day IS NULL AND NOT EXISTS ( \
        SELECT 1 FROM notify.digest_items d, today \
        WHERE d.digest_day = today.day AND d.user_id = w.user_id) \
    GROUP BY w.user_id HAVING min(w.created) <= now() - make_interval(secs => $1) \
    ORDER BY w.user_id LIMIT $2), \
waiting AS ( \
    SELECT i.user_id, i.film_id, i.reason, i.created \
    FROM notify.digest_items i JOIN due USING (user_id) WHERE i.digest_day IS NULL), \
batch AS ( \
    SELECT u.id, u.email, u.locale, \
           replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '') AS token, \
           jsonb_agg(jsonb_build_object( \
               'title', f.title, 'year', extract(year FROM f.creation_date)::int, \
               'access', f.access, 'reason', w.reason) ORDER BY w.created, f.title) AS films \
    FROM waiting w \
    JOIN auth.users u ON u.id = w.user_id \
    JOIN content.film f ON f.id = w.film_id \
    WHERE NOT u.is_blocked AND NOT EXISTS ( \
        SELECT 1 FROM auth.notification_preferences p WHERE p.user_id = u.id AND NOT p.film_digest) \
    GROUP BY u.id, u.email, u.locale), \
added AS ( \
    INSERT INTO notify.deliveries (event_id, user_id, template, recipient, locale, context) \
    SELECT md5('film_digest:' || today.day::text)::uuid, b.id, 'film_digest', b.email, b.locale, \
           jsonb_build_object('films', b.films, 'unsubscribe_url', $3 || b.token) \
    FROM batch b, today ON CONFLICT DO NOTHING RETURNING user_id), \
tokens AS ( \
    INSERT INTO auth.unsubscribe_tokens (token_hash, user_id, category) \
    SELECT sha256(convert_to(b.token, 'UTF8')), b.id, 'film_digest' \
    FROM batch b JOIN added a ON a.user_id = b.id RETURNING user_id), \
settled AS ( \
    UPDATE notify.digest_items i SET digest_day = today.day FROM waiting w, today \
    WHERE i.user_id = w.user_id AND i.film_id = w.film_id \
      AND (w.user_id IN (SELECT user_id FROM added) OR w.user_id NOT IN (SELECT id FROM batch)) \
    RETURNING i.user_id) \
SELECT (SELECT count(*) FROM added) AS digests, (SELECT count(*) FROM settled) AS settled, \
       (SELECT count(*) FROM tokens) AS tokens";
