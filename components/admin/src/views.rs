//! Every page of the console, as maud templates (escaped by default). Pages take
//! what they show and a [`Chrome`] (who is signed in, the CSRF token for forms); they
//! do no I/O.

use http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use crate::content::{
    AuditEntry, AuditFilter, FILM_ACCESS, FILM_TYPES, Fields, Film, FilmFilter, FilmRow, FilmSort,
    Kind, Named, PERSON_ROLES, Page,
};
use crate::error::FieldError;
use crate::session::CSRF_FIELD;
use crate::users::UserPage;

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub user_id: String,
    pub roles: Vec<String>,
    pub may_manage_users: bool,
    pub csrf: String,
    /// The user an admin is acting as, when impersonating.
    pub impersonating: Option<String>,
}

/// Which section of the console is open (highlighted in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Films,
    Genres,
    Persons,
    Audit,
    Users,
    Announcements,
}

/// How finely a [`moment`] is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Precision {
    Day,
    Minute,
    Second,
}

impl Precision {
    fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Minute => "minute",
            Self::Second => "second",
        }
    }
}

/// A moment (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as `cinema_edge::pg::RFC3339_UTC` reads it)
/// as a person reads it: a `<time>` whose text is the UTC time to the given precision
/// ("2026-12-02 21:50 UTC", what a page without script shows); `admin.js` rewrites it
/// into the reader's local time in their locale, keeping the UTC text as its tooltip.
/// Never microseconds: the `datetime` attribute keeps milliseconds, HTML's limit.
fn moment(rfc3339_utc: &str, precision: Precision) -> Markup {
    let shown = match precision {
        Precision::Day => 10,
        Precision::Minute => 16,
        Precision::Second => 19,
    };
    let utc_text = rfc3339_utc
        .get(..shown)
        .unwrap_or(rfc3339_utc)
        .replace('T', " ");
    let machine = match rfc3339_utc.get(..23) {
        Some(to_milliseconds) if rfc3339_utc.ends_with('Z') => format!("{to_milliseconds}Z"),
        _ => rfc3339_utc.to_owned(),
    };
    html! {
        time datetime=(machine) data-precision=(precision.name()) {
            (utc_text) @if precision != Precision::Day { " UTC" }
        }
    }
}

fn csrf_input(chrome: &Chrome) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(chrome.csrf); }
}

fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · cinema admin" }
                link rel="stylesheet" href="/admin/static/admin.css";
                script src="/admin/static/admin.js" defer {}
            }
            body { (body) }
        }
    }
}

/// A signed-in page: navigation, the impersonation banner, then `content`.
pub fn layout(chrome: &Chrome, section: Section, title: &str, content: Markup) -> Markup {
    let nav = [
        (Section::Films, "/admin/films", "Films"),
        (Section::Genres, "/admin/genres", "Genres"),
        (Section::Persons, "/admin/persons", "Persons"),
        (Section::Audit, "/admin/audit", "Audit log"),
    ];
    document(
        title,
        html! {
            header.top {
                a.brand href="/admin/films" { "cinema" span { "admin" } }
                nav {
                    @for (item, href, label) in nav {
                        a href=(href) class=[(item == section).then_some("active")] { (label) }
                    }
                    @if chrome.may_manage_users {
                        a href="/admin/users" class=[(section == Section::Users).then_some("active")] { "Users" }
                        a href="/admin/announcements" class=[(section == Section::Announcements).then_some("active")] { "Announcements" }
                    }
                }
                div.who {
                    span.roles { (chrome.roles.join(", ")) }
                    form method="post" action="/admin/logout" {
                        (csrf_input(chrome))
                        button.link type="submit" { "Sign out" }
                    }
                }
            }
            @if let Some(user) = &chrome.impersonating {
                div.impersonation role="status" {
                    "You hold a token acting as " strong { (user) } "."
                    a href="/admin/impersonation" { "Show it" }
                    form method="post" action="/admin/impersonation/end" {
                        (csrf_input(chrome))
                        button type="submit" { "End impersonation" }
                    }
                }
            }
            main {
                h1 { (title) }
                (content)
            }
        },
    )
}

/// The sign-in form.
pub fn login_page(error: Option<&str>, email: &str, next: &str, csrf: &str) -> Markup {
    document(
        "Sign in",
        html! {
            main.narrow {
                h1 { "cinema admin" }
                p.muted { "Sign in with an admin or manager account." }
                @if let Some(error) = error {
                    p.alert role="alert" { (error) }
                }
                form.card method="post" action="/admin/login" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label { "Email" input type="email" name="email" value=(email) required autofocus autocomplete="username"; }
                    label { "Password" input type="password" name="password" required autocomplete="current-password"; }
                    button.primary type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// A page for an error the user should see.
pub fn error_page(status: StatusCode, message: &str) -> Markup {
    document(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            main.narrow {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p { (message) }
                p { a href="/admin/films" { "Back to the console" } }
            }
        },
    )
}

fn field_error(errors: &[FieldError], field: &str) -> Markup {
    html! {
        @for error in errors.iter().filter(|e| e.field == field) {
            span.field-error role="alert" { (error.message) }
        }
    }
}

fn value<'a>(values: &'a Fields, field: &str) -> &'a str {
    values.get(field).map_or("", String::as_str)
}

fn pager(page_number: i64, pages: i64, total: i64, href: impl Fn(i64) -> String) -> Markup {
    html! {
        nav.pager {
            span.muted { (total) " in all · page " (page_number) " of " (pages) }
            @if page_number > 1 { a href=(href(page_number - 1)) { "← Previous" } }
            @if page_number < pages { a href=(href(page_number + 1)) { "Next →" } }
        }
    }
}

/// The film list with its search, filters and sorting.
pub fn films_page(
    chrome: &Chrome,
    page: &Page<FilmRow>,
    filter: &FilmFilter,
    genres: &[Named],
) -> Markup {
    let selected = |current: Option<&String>, value: &str| current.is_some_and(|c| c == value);
    layout(
        chrome,
        Section::Films,
        "Films",
        html! {
            div.toolbar {
                form.filters method="get" action="/admin/films" {
                    input type="search" name="query" value=(filter.query) placeholder="Search titles";
                    select name="genre" {
                        option value="" { "Any genre" }
                        @for genre in genres {
                            option value=(genre.id) selected[selected(filter.genre_id.as_ref(), &genre.id)] { (genre.name) }
                        }
                    }
                    select name="type" {
                        option value="" { "Any type" }
                        @for t in FILM_TYPES { option value=(t) selected[selected(filter.film_type.as_ref(), t)] { (t) } }
                    }
                    select name="access" {
                        option value="" { "Any access" }
                        @for a in FILM_ACCESS { option value=(a) selected[selected(filter.access.as_ref(), a)] { (a) } }
                    }
                    input type="number" name="year" min="1800" max="2200" placeholder="Year"
                        value=[filter.year];
                    select name="sort" {
                        @for (name, sort) in FilmSort::ALL {
                            option value=(name) selected[filter.sort == sort] { "Sort: " (name) }
                        }
                    }
                    button type="submit" { "Apply" }
                }
                a.button.primary href="/admin/films/new" { "New film" }
            }
            table {
                thead { tr { th { "Title" } th { "Date" } th.num { "Rating" } th { "Type" } th { "Access" } th { "Genres" } } }
                tbody {
                    @for film in &page.items {
                        tr {
                            td { a href={ "/admin/films/" (film.id) } { (film.title) } }
                            td { (film.creation_date.as_deref().unwrap_or("—")) }
                            td.num { @match film.rating { Some(r) => (format!("{r:.1}")), None => "—" } }
                            td { (film.film_type) }
                            td { span class={ "badge " (film.access) } { (film.access) } }
                            td.muted { (film.genres) }
                        }
                    }
                    @if page.items.is_empty() { tr { td colspan="6" .muted { "No films match." } } }
                }
            }
            (pager(page.page_number, page.pages(), page.total, |n| format!("/admin/films?{}", filter.query_string(n))))
        },
    )
}

/// The film form: new (`film` is `None`) or edit, with the links on the edit page.
pub fn film_page(
    chrome: &Chrome,
    film: Option<&Film>,
    values: &Fields,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Markup {
    let title = film.map_or("New film".to_owned(), |f| f.title.clone());
    let action = film.map_or("/admin/films".to_owned(), |f| {
        format!("/admin/films/{}", f.id)
    });
    layout(
        chrome,
        Section::Films,
        &title,
        html! {
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if !errors.is_empty() { p.alert role="alert" { "Please correct the fields marked below." } }
            div.columns {
                form.card.film-form method="post" action=(action) novalidate {
                    (csrf_input(chrome))
                    label { "Title" input type="text" name="title" value=(value(values, "title")) required maxlength="255"; (field_error(errors, "title")) }
                    label { "Description" textarea name="description" rows="6" { (value(values, "description")) } (field_error(errors, "description")) }
                    div.row {
                        label { "Release date" input type="date" name="creation_date" value=(value(values, "creation_date")); (field_error(errors, "creation_date")) }
                        label { "Rating (0–10)" input type="number" name="rating" min="0" max="10" step="0.1" value=(value(values, "rating")); (field_error(errors, "rating")) }
                    }
                    div.row {
                        label { "Type" select name="type" {
                            @for t in FILM_TYPES { option value=(t) selected[value(values, "type") == t] { (t) } }
                        } (field_error(errors, "type")) }
                        label { "Access" select name="access" {
                            @for a in FILM_ACCESS { option value=(a) selected[value(values, "access") == a] { (a) } }
                        } (field_error(errors, "access")) }
                    }
                    div.actions {
                        button.primary type="submit" { @if film.is_some() { "Save changes" } @else { "Create film" } }
                        a href="/admin/films" { "Cancel" }
                    }
                }
                @if let Some(film) = film {
                    div.links {
                        section.card {
                            h2 { "Genres" }
                            ul.chips {
                                @for genre in &film.genres {
                                    li {
                                        (genre.name)
                                        form.inline method="post" action={ "/admin/films/" (film.id) "/genres/" (genre.id) "/delete" } {
                                            (csrf_input(chrome))
                                            button.remove type="submit" title="Remove" aria-label={ "Remove " (genre.name) } { "×" }
                                        }
                                    }
                                }
                                @if film.genres.is_empty() { li.muted { "none yet" } }
                            }
                            form.picker method="post" action={ "/admin/films/" (film.id) "/genres" } {
                                (csrf_input(chrome))
                                input type="hidden" name="genre_id" data-picked="genre";
                                input type="search" name="genre_name" data-picker="genres" list="genre-options" placeholder="Find a genre…" autocomplete="off";
                                datalist #genre-options {}
                                button type="submit" { "Add genre" }
                                (field_error(errors, "genre_id"))
                            }
                        }
                        section.card {
                            h2 { "People" }
                            ul.people {
                                @for person in &film.persons {
                                    li {
                                        span.role { (person.role) }
                                        a href={ "/admin/persons/" (person.id) } { (person.full_name) }
                                        form.inline method="post" action={ "/admin/films/" (film.id) "/persons/" (person.id) "/" (person.role) "/delete" } {
                                            (csrf_input(chrome))
                                            button.remove type="submit" title="Remove" aria-label={ "Remove " (person.full_name) } { "×" }
                                        }
                                    }
                                }
                                @if film.persons.is_empty() { li.muted { "none yet" } }
                            }
                            form.picker method="post" action={ "/admin/films/" (film.id) "/persons" } {
                                (csrf_input(chrome))
                                input type="hidden" name="person_id" data-picked="person";
                                input type="search" name="person_name" data-picker="persons" list="person-options" placeholder="Find a person…" autocomplete="off";
                                datalist #person-options {}
                                select name="role" { @for role in PERSON_ROLES { option value=(role) { (role) } } }
                                button type="submit" { "Add person" }
                                (field_error(errors, "person_id"))
                            }
                        }
                        section.card.danger {
                            h2 { "Danger zone" }
                            form method="post" action={ "/admin/films/" (film.id) "/delete" } data-confirm="Delete this film for good?" {
                                (csrf_input(chrome))
                                button.danger type="submit" { "Delete film" }
                            }
                            p.muted { "Last changed " (film.modified) ". " a href={ "/admin/audit?entity_id=" (film.id) } { "History" } }
                        }
                    }
                }
            }
        },
    )
}

fn kind_title(kind: Kind) -> (&'static str, &'static str, Section) {
    match kind {
        Kind::Genre => ("Genres", "genre", Section::Genres),
        Kind::Person => ("Persons", "person", Section::Persons),
    }
}

/// The genre or person list.
pub fn named_list_page(chrome: &Chrome, kind: Kind, page: &Page<Named>, query: &str) -> Markup {
    let (title, singular, section) = kind_title(kind);
    let base = format!("/admin/{}", kind.plural());
    layout(
        chrome,
        section,
        title,
        html! {
            div.toolbar {
                form.filters method="get" action=(base) {
                    input type="search" name="query" value=(query) placeholder={ "Search " (kind.plural()) };
                    button type="submit" { "Search" }
                }
                a.button.primary href={ (base) "/new" } { "New " (singular) }
            }
            table {
                thead { tr { th { "Name" } @if kind == Kind::Genre { th { "Description" } } th.num { "Films" } } }
                tbody {
                    @for item in &page.items {
                        tr {
                            td { a href={ (base) "/" (item.id) } { (item.name) } }
                            @if kind == Kind::Genre { td.muted { (item.description) } }
                            td.num { (item.films) }
                        }
                    }
                    @if page.items.is_empty() { tr { td colspan="3" .muted { "Nothing matches." } } }
                }
            }
            (pager(page.page_number, page.pages(), page.total, |n| {
                let mut query_string = form_urlencoded::Serializer::new(String::new());
                query_string.append_pair("query", query).append_pair("page", &n.to_string());
                format!("{base}?{}", query_string.finish())
            }))
        },
    )
}

/// The genre or person form: new or edit.
pub fn named_page(
    chrome: &Chrome,
    kind: Kind,
    item: Option<&Named>,
    values: &Fields,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Markup {
    let (_, singular, section) = kind_title(kind);
    let base = format!("/admin/{}", kind.plural());
    let title = item.map_or(format!("New {singular}"), |i| i.name.clone());
    let action = item.map_or(base.clone(), |i| format!("{base}/{}", i.id));
    let name_field = kind.name_column();
    layout(
        chrome,
        section,
        &title,
        html! {
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if !errors.is_empty() { p.alert role="alert" { "Please correct the fields marked below." } }
            form.card method="post" action=(action) novalidate {
                (csrf_input(chrome))
                label { @if kind == Kind::Genre { "Name" } @else { "Full name" }
                    input type="text" name=(name_field) value=(value(values, name_field)) required maxlength="255";
                    (field_error(errors, name_field)) }
                @if kind == Kind::Genre {
                    label { "Description" textarea name="description" rows="4" { (value(values, "description")) } (field_error(errors, "description")) }
                }
                div.actions {
                    button.primary type="submit" { @if item.is_some() { "Save changes" } @else { "Create " (singular) } }
                    a href=(base) { "Cancel" }
                }
            }
            @if let Some(item) = item {
                section.card.danger {
                    p.muted { "Linked to " (item.films) " film(s). " a href={ "/admin/audit?entity_id=" (item.id) } { "History" } }
                    form method="post" action={ (base) "/" (item.id) "/delete" } data-confirm={ "Delete this " (singular) " and unlink it from its films?" } {
                        (csrf_input(chrome))
                        button.danger type="submit" { "Delete " (singular) }
                    }
                }
            }
        },
    )
}

/// Keys whose values differ between `before` and `after`, with both sides.
pub fn diff(
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Vec<(String, String, String)> {
    let empty = serde_json::Map::new();
    let before = before
        .and_then(serde_json::Value::as_object)
        .unwrap_or(&empty);
    let after = after
        .and_then(serde_json::Value::as_object)
        .unwrap_or(&empty);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "—".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| (key.clone(), show(before.get(key)), show(after.get(key))))
        .collect()
}

/// The audit log with its filters.
pub fn audit_page(chrome: &Chrome, page: &Page<AuditEntry>, filter: &AuditFilter) -> Markup {
    layout(
        chrome,
        Section::Audit,
        "Audit log",
        html! {
            form.filters method="get" action="/admin/audit" {
                select name="entity_type" {
                    option value="" { "Anything" }
                    @for t in ["film", "genre", "person", "user"] {
                        option value=(t) selected[filter.entity_type.as_deref() == Some(t)] { (t) }
                    }
                }
                input type="text" name="action" value=[filter.action.as_deref()] placeholder="Action (film.update)";
                input type="text" name="actor" value=(filter.actor) placeholder="By (email)";
                input type="text" name="entity_id" value=[filter.entity_id.as_deref()] placeholder="Entity id";
                button type="submit" { "Filter" }
            }
            table.audit {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Entity" } th { "Change" } } }
                tbody {
                    @for entry in &page.items {
                        tr {
                            td.nowrap { (moment(&entry.at, Precision::Second)) }
                            td { (entry.actor_email) }
                            td { code { (entry.action) } }
                            td { a href={ "/admin/audit?entity_id=" (entry.entity_id) } { (entry.entity_type) " " (entry.entity_id.get(..8).unwrap_or(&entry.entity_id)) } }
                            td {
                                table.diff {
                                    @for (key, before, after) in diff(entry.before.as_ref(), entry.after.as_ref()) {
                                        tr { th { (key) } td.before { (before) } td.after { (after) } }
                                    }
                                }
                            }
                        }
                    }
                    @if page.items.is_empty() { tr { td colspan="5" .muted { "No entries match." } } }
                }
            }
            (pager(page.page_number, page.pages(), page.total, |n| format!("/admin/audit?{}", filter.query_string(n))))
        },
    )
}

/// The users list (admins): search, block and unblock, roles, impersonation.
pub fn users_page(chrome: &Chrome, users: &UserPage, roles: &[String], query: &str) -> Markup {
    let pages = ((users.total + users.page_size - 1) / users.page_size.max(1)).max(1);
    layout(
        chrome,
        Section::Users,
        "Users",
        html! {
            div.toolbar {
                form.filters method="get" action="/admin/users" {
                    input type="search" name="query" value=(query) placeholder="Search by email or name";
                    button type="submit" { "Search" }
                }
            }
            table.users {
                thead { tr { th { "Email" } th { "Name" } th { "Joined" } th { "Roles" } th { "Status" } th { "Actions" } } }
                tbody {
                    @for user in &users.items {
                        tr data-user=(user.email) {
                            td { (user.email) }
                            td { (user.first_name) " " (user.last_name) }
                            td.nowrap { (moment(&user.created, Precision::Day)) }
                            td {
                                @for role in &user.roles {
                                    form.inline method="post" action={ "/admin/users/" (user.id) "/roles" } {
                                        (csrf_input(chrome))
                                        input type="hidden" name="role" value=(role);
                                        input type="hidden" name="op" value="revoke";
                                        span.chip { (role) button.remove type="submit" title="Revoke" aria-label={ "Revoke " (role) } { "×" } }
                                    }
                                }
                                form.inline.grant method="post" action={ "/admin/users/" (user.id) "/roles" } {
                                    (csrf_input(chrome))
                                    input type="hidden" name="op" value="grant";
                                    select name="role" aria-label="Role to grant" {
                                        @for role in roles.iter().filter(|r| !user.roles.contains(r)) { option value=(role) { (role) } }
                                    }
                                    button type="submit" { "Grant" }
                                }
                            }
                            td { @if user.is_blocked { span.badge.blocked { "blocked" } } @else { span.badge.free { "active" } } }
                            td.actions {
                                @if user.is_blocked {
                                    form.inline method="post" action={ "/admin/users/" (user.id) "/unblock" } {
                                        (csrf_input(chrome)) button type="submit" { "Unblock" }
                                    }
                                } @else if user.id != chrome.user_id {
                                    form.inline method="post" action={ "/admin/users/" (user.id) "/block" } data-confirm={ "Block " (user.email) " and end their sessions?" } {
                                        (csrf_input(chrome)) button.danger type="submit" { "Block" }
                                    }
                                    form.inline method="post" action={ "/admin/users/" (user.id) "/impersonate" } {
                                        (csrf_input(chrome)) button type="submit" { "Log in as" }
                                    }
                                }
                            }
                        }
                    }
                    @if users.items.is_empty() { tr { td colspan="6" .muted { "No users match." } } }
                }
            }
            (pager(users.page_number, pages, users.total, |n| {
                let mut query_string = form_urlencoded::Serializer::new(String::new());
                query_string.append_pair("query", query).append_pair("page_number", &n.to_string());
                format!("/admin/users?{}", query_string.finish())
            }))
        },
    )
}

/// Announcements (admins): the form, and the progress of each one sent.
pub fn announcements_page(
    chrome: &Chrome,
    list: &[crate::announcements::Announcement],
    roles: &[String],
    values: &Fields,
    errors: &[FieldError],
    queued: bool,
) -> Markup {
    layout(
        chrome,
        Section::Announcements,
        "Announcements",
        html! {
            @if queued { p.notice role="status" { "Queued. Mail goes out in batches; the table below shows the progress." } }
            @if !errors.is_empty() { p.alert role="alert" { "Please correct the fields marked below." } }
            form.card method="post" action="/admin/announcements" novalidate data-confirm="Send this announcement?" {
                (csrf_input(chrome))
                label { "Subject" input type="text" name="subject" value=(value(values, "subject")) required maxlength="255"; (field_error(errors, "subject")) }
                label { "Text" textarea name="body" rows="6" { (value(values, "body")) } (field_error(errors, "body")) }
                label { "To" select name="audience" {
                    option value="" { "Everyone" }
                    @for role in roles { option value=(role) selected[value(values, "audience") == role] { "Role: " (role) } }
                } (field_error(errors, "audience")) }
                p.muted { "Users who turned announcements off are left out; every mail has a one-click unsubscribe link." }
                div.actions { button.primary type="submit" { "Send announcement" } }
            }
            table {
                thead { tr { th { "When" } th { "Subject" } th { "To" } th { "By" } th { "Status" } th.num { "Recipients" } th.num { "Sent" } th.num { "Failed" } } }
                tbody {
                    @for item in list {
                        tr {
                            td.nowrap { (moment(&item.created, Precision::Minute)) }
                            td { (item.subject) }
                            td { (item.audience_role.as_deref().unwrap_or("everyone")) }
                            td { (item.created_by_email) }
                            td { (item.status) }
                            td.num { (item.recipients) }
                            td.num { (item.sent) }
                            td.num { (item.failed) }
                        }
                    }
                    @if list.is_empty() { tr { td colspan="8" .muted { "No announcements yet." } } }
                }
            }
        },
    )
}

/// The impersonation token the admin holds, with its claims (`act` names the admin).
pub fn impersonation_page(chrome: &Chrome, token: &str, claims: &serde_json::Value) -> Markup {
    let pretty = serde_json::to_string_pretty(claims).unwrap_or_default();
    layout(
        chrome,
        Section::Users,
        "Impersonation",
        html! {
            p { "This access token acts as user " strong { (claims["sub"].as_str().unwrap_or("?")) }
                " on behalf of admin " strong #act { (claims["act"]["sub"].as_str().unwrap_or("?")) }
                ". It cannot be refreshed and ends when it expires or when you end it." }
            h2 { "Claims" }
            pre #claims { (pretty) }
            h2 { "Token" }
            textarea #token readonly rows="4" { (token) }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Moments show UTC to their precision without microseconds, and carry the instant
    /// (to the millisecond) for the page's script to show in local time.
    #[test]
    fn moments_show_utc_without_microseconds_and_carry_the_instant() {
        let at = "2026-12-02T21:50:25.123456Z";
        assert_eq!(
            moment(at, Precision::Second).into_string(),
            r#"<time datetime="2026-12-02T21:50:25.123Z" data-precision="second">2026-12-02 21:50:25 UTC</time>"#
        );
        assert_eq!(
            moment(at, Precision::Minute).into_string(),
            r#"<time datetime="2026-12-02T21:50:25.123Z" data-precision="minute">2026-12-02 21:50 UTC</time>"#
        );
        assert_eq!(
            moment(at, Precision::Day).into_string(),
            r#"<time datetime="2026-12-02T21:50:25.123Z" data-precision="day">2026-12-02</time>"#
        );
        // Something else than expected is shown as it came, never cut mid-character.
        assert_eq!(
            moment("yesterday", Precision::Second).into_string(),
            r#"<time datetime="yesterday" data-precision="second">yesterday UTC</time>"#
        );
    }

    /// The diff lists only the keys that changed, with both sides.
    #[test]
    fn diff_lists_changed_keys_only() {
        let before = json!({"title": "A", "rating": 7.5, "type": "movie"});
        let after = json!({"title": "B", "rating": 7.5, "type": "movie", "access": "free"});
        assert_eq!(
            diff(Some(&before), Some(&after)),
            vec![
                ("access".to_owned(), "—".to_owned(), "free".to_owned()),
                ("title".to_owned(), "A".to_owned(), "B".to_owned()),
            ]
        );
        assert_eq!(diff(None, Some(&json!({"name": "Drama"}))).len(), 1);
    }

    /// User text is escaped in pages.
    #[test]
    fn pages_escape_user_text() {
        let page = error_page(StatusCode::NOT_FOUND, "<script>alert(1)</script>");
        let html = page.into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
