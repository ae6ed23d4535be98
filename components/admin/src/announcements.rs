//! Announcements (admins, `users:manage`): mail an admin writes for every user or for
//! one role. Saving queues it in `notify.announcements` (with its audit entry, in one
//! statement); the notify worker expands it into deliveries in batches and sends them.
//! The page shows each announcement's progress: recipients, sent, waiting, failed.

use cinema_edge::pg::{Pg, RFC3339_UTC, column, nullable};
use serde::Serialize;
use spin_sdk::pg::ParameterValue;

use crate::content::{Fields, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use crate::error::{AdminResult, FieldError};

/// An announcement and how far its mail got.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Announcement {
    pub id: String,
    pub subject: String,
    pub audience_role: Option<String>,
    pub created: String,
    pub created_by_email: String,
    /// `queued`, `expanding` or `expanded`.
    pub status: String,
    pub recipients: i64,
    pub sent: i64,
    pub failed: i64,
}

/// A checked announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncementDraft {
    pub subject: String,
    pub body: String,
    pub audience_role: Option<String>,
}

impl AnnouncementDraft {
    /// `subject` and `body` are required; `audience` is empty (everyone) or one of
    /// `roles`.
    pub fn check(fields: &Fields, roles: &[String]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let subject = fields.get("subject").map_or("", |s| s.trim());
        if subject.is_empty()
            || subject.chars().count() > MAX_NAME_CHARS
            || subject.contains(['\r', '\n'])
        {
            errors.push(FieldError {
                field: "subject",
                message: format!("is required: one line of at most {MAX_NAME_CHARS} characters"),
            });
        }
        let body = fields.get("body").map_or("", |b| b.trim());
        if body.is_empty() || body.chars().count() > MAX_DESCRIPTION_CHARS {
            errors.push(FieldError {
                field: "body",
                message: format!("is required, at most {MAX_DESCRIPTION_CHARS} characters"),
            });
        }
        let audience = fields.get("audience").map_or("", |a| a.trim());
        let audience_role = if audience.is_empty() {
            None
        } else if roles.iter().any(|r| r == audience) {
            Some(audience.to_owned())
        } else {
            errors.push(FieldError {
                field: "audience",
                message: "must be everyone or an existing role".into(),
            });
            None
        };
        if errors.is_empty() {
            Ok(Self {
                subject: subject.to_owned(),
                body: body.replace("\r\n", "\n"),
                audience_role,
            })
        } else {
            Err(errors)
        }
    }
}

/// The newest announcements with their progress.
pub async fn list(pg: &Pg) -> AdminResult<Vec<Announcement>> {
    let rows = pg
        .rows(
            "list announcements",
            &format!(
                "SELECT a.id::text AS id, a.subject, a.audience_role, a.status, a.recipients::bigint AS recipients, \
                        to_char(a.created AT TIME ZONE 'UTC', {RFC3339_UTC}) AS created, \
                        COALESCE((SELECT email FROM auth.users WHERE id = a.created_by), '') AS created_by_email, \
                        (SELECT count(*) FROM notify.deliveries d WHERE d.event_id = a.id AND d.status = 'sent') AS sent, \
                        (SELECT count(*) FROM notify.deliveries d WHERE d.event_id = a.id AND d.status = 'failed') AS failed \
                 FROM notify.announcements a ORDER BY a.created DESC, a.id LIMIT 50"
            ),
            Vec::new(),
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok(Announcement {
                id: column(row, "id")?,
                subject: column(row, "subject")?,
                audience_role: nullable(row, "audience_role")?,
                created: column(row, "created")?,
                created_by_email: column(row, "created_by_email")?,
                status: column(row, "status")?,
                recipients: column(row, "recipients")?,
                sent: column(row, "sent")?,
                failed: column(row, "failed")?,
            })
        })
        .collect::<Result<Vec<_>, cinema_edge::pg::DbError>>()?)
}

/// Queues an announcement and its audit entry; answers its id.
pub async fn create(pg: &Pg, draft: &AnnouncementDraft, actor: &str) -> AdminResult<String> {
    let id = uuid::Uuid::new_v4().to_string();
    pg.execute(
        "queue an announcement",
        "WITH a AS ( \
             INSERT INTO notify.announcements (id, subject, body, audience_role, created_by) \
             VALUES ($1, $2, $3, $4, $5::text::uuid) RETURNING id, subject, audience_role) \
         INSERT INTO admin.audit_log (id, actor_id, actor_email, action, entity_type, entity_id, before, after) \
         SELECT gen_random_uuid(), $5::text::uuid, \
                COALESCE((SELECT email FROM auth.users WHERE id = $5::text::uuid), ''), \
                'announcement.create', 'announcement', a.id, NULL, \
                jsonb_build_object('subject', a.subject, 'audience', COALESCE(a.audience_role, 'everyone')) \
         FROM a",
        vec![
            ParameterValue::Uuid(id.clone()),
            ParameterValue::Str(draft.subject.clone()),
            ParameterValue::Str(draft.body.clone()),
            draft
                .audience_role
                .clone()
                .map_or(ParameterValue::DbNull, ParameterValue::Str),
            ParameterValue::Str(actor.to_owned()),
        ],
    )
    .await?;
    Ok(id)
}
