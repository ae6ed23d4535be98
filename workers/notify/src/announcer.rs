//! Announcements: what an admin writes in the console (`notify.announcements`) becomes
//! one delivery per recipient, in batches of [`BATCH`] users (keyset by user id, so a
//! restart resumes where it stopped and never doubles a recipient: deliveries are keyed
//! by the announcement id). Recipients are every active user, or the holders of one
//! role, minus those who turned announcements off; each delivery carries its own
//! one-click unsubscribe link (a random token stored hashed in
//! `auth.unsubscribe_tokens`, made in the same statement).

use std::time::Duration;

use cinema_worker::CancellationToken;

use crate::NotifySettings;

/// Users expanded per statement.
pub const BATCH: i64 = 500;

/// Runs until `stop` is cancelled.
pub async fn run(settings: NotifySettings, stop: CancellationToken) {
    let idle = settings.poll_interval.max(Duration::from_millis(200));
    crate::repeat_rounds(
        &settings,
        |postgres, settings| Box::pin(expand_once(postgres, settings)),
        idle,
        "notify: announcement expansion failed; retrying",
        stop,
    )
    .await;
}

/// Expands one batch of the oldest open announcement; `true` when there was one.
async fn expand_once(
    postgres: &mut Option<tokio_postgres::Client>,
    settings: &NotifySettings,
) -> Result<bool, tokio_postgres::Error> {
    let client = crate::connected(postgres, &settings.postgres_url, "announcer").await?;
    let unsubscribe_base = format!(
        "{}/api/v1/auth/unsubscribe?token=",
        settings.public_base_url.trim_end_matches('/')
    );
    let rows = client
        .query(
            "WITH a AS ( \
                 SELECT id, subject, body, audience_role, last_user_id FROM notify.announcements \
                 WHERE status <> 'expanded' ORDER BY created, id LIMIT 1 FOR UPDATE SKIP LOCKED), \
             batch AS ( \
                 SELECT u.id, u.email, u.locale, \
                        replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '') AS token \
                 FROM auth.users u, a \
                 WHERE NOT u.is_blocked \
                   AND (a.last_user_id IS NULL OR u.id > a.last_user_id) \
                   AND (a.audience_role IS NULL OR EXISTS ( \
                        SELECT 1 FROM auth.user_roles ur JOIN auth.roles r ON r.id = ur.role_id \
                        WHERE ur.user_id = u.id AND r.name = a.audience_role)) \
                   AND NOT EXISTS ( \
                        SELECT 1 FROM auth.notification_preferences p \
                        WHERE p.user_id = u.id AND NOT p.announcements) \
                 ORDER BY u.id LIMIT $1), \
             tokens AS ( \
                 INSERT INTO auth.unsubscribe_tokens (token_hash, user_id, category) \
                 SELECT sha256(convert_to(b.token, 'UTF8')), b.id, 'announcements' FROM batch b \
                 RETURNING user_id), \
             added AS ( \
                 INSERT INTO notify.deliveries (event_id, user_id, template, recipient, locale, context) \
                 SELECT a.id, b.id, 'announcement', b.email, b.locale, \
                        jsonb_build_object('subject', a.subject, 'body', a.body, \
                                           'unsubscribe_url', $2 || b.token) \
                 FROM batch b, a ON CONFLICT DO NOTHING RETURNING user_id) \
             UPDATE notify.announcements n SET \
                 last_user_id = COALESCE((SELECT id FROM batch ORDER BY id DESC LIMIT 1), n.last_user_id), \
                 recipients = n.recipients + (SELECT count(*) FROM added), \
                 status = CASE WHEN (SELECT count(*) FROM batch) < $1 THEN 'expanded' ELSE 'expanding' END \
             FROM a WHERE n.id = a.id \
             RETURNING n.id, n.status, (SELECT count(*) FROM tokens) AS tokens",
            &[&BATCH, &unsubscribe_base],
        )
        .await?;
    Ok(!rows.is_empty())
}
