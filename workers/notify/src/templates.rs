//! Mail templates: one subject, plain-text and HTML template per mail kind and locale
//! (`ru`, `en`; `ru` when the user's locale is anything else), rendered with minijinja
//! (HTML auto-escaped). The templates live in `workers/notify/templates/`.

use minijinja::{AutoEscape, Environment};
use serde_json::Value;

/// Locales mails are written in; the first is the default.
pub const LOCALES: [&str; 2] = ["ru", "en"];

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

const TEMPLATES: [(&str, &str); 30] = templates![
    "announcement.ru.subject",
    "announcement.ru.txt",
    "announcement.ru.html",
    "announcement.en.subject",
    "announcement.en.txt",
    "announcement.en.html",
    "welcome.ru.subject",
    "welcome.ru.txt",
    "welcome.ru.html",
    "welcome.en.subject",
    "welcome.en.txt",
    "welcome.en.html",
    "security.ru.subject",
    "security.ru.txt",
    "security.ru.html",
    "security.en.subject",
    "security.en.txt",
    "security.en.html",
    "email_change.ru.subject",
    "email_change.ru.txt",
    "email_change.ru.html",
    "email_change.en.subject",
    "email_change.en.txt",
    "email_change.en.html",
    "film_digest.ru.subject",
    "film_digest.ru.txt",
    "film_digest.ru.html",
    "film_digest.en.subject",
    "film_digest.en.txt",
    "film_digest.en.html",
];

/// Every template, parsed once.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Parses every template; a broken one is a bug caught at start-up.
    pub fn load() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        Ok(Self { env })
    }

    /// Renders mail `kind` (`welcome`, `email_change`, `security`, ...) in `locale` with
    /// `context`.
    pub fn render(
        &self,
        kind: &str,
        locale: &str,
        context: &Value,
    ) -> Result<Rendered, minijinja::Error> {
        let locale = if LOCALES.contains(&locale) {
            locale
        } else {
            LOCALES[0]
        };
        let part = |extension: &str| -> Result<String, minijinja::Error> {
            self.env
                .get_template(&format!("{kind}.{locale}.{extension}"))?
                .render(context)
        };
        Ok(Rendered {
            subject: part("subject")?.trim().to_owned(),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The welcome mail is in the user's locale (Russian by default), carries the link
    /// in both parts, and escapes names in HTML.
    #[test]
    fn welcome_mail_follows_the_locale_and_escapes_html() {
        let templates = Templates::load().expect("templates parse");
        let context = json!({"first_name": "<Anna>", "confirm_url": "http://x/confirm?token=t", "confirm_hours": 48});
        let ru = templates.render("welcome", "ru", &context).expect("ru");
        assert_eq!(ru.subject, "Добро пожаловать в cinema, <Anna>");
        assert!(ru.text.contains("http://x/confirm?token=t"));
        // HTML escapes `/` too (`&#x2f;`), which browsers decode in attributes.
        assert!(ru.html.contains("&lt;Anna&gt;") && ru.html.contains("confirm?token=t"));
        let en = templates.render("welcome", "en", &context).expect("en");
        assert!(en.subject.starts_with("Welcome to cinema"));
        let fallback = templates
            .render("welcome", "de", &context)
            .expect("fallback");
        assert_eq!(fallback.subject, ru.subject);
        // Already confirmed (social sign-up): no link at all.
        let social = templates
            .render("welcome", "en", &json!({"first_name": "Anna"}))
            .expect("social");
        assert!(!social.text.contains("confirm") && !social.html.contains("href"));
    }

    /// Announcements keep the admin's text, split into paragraphs in HTML, with the
    /// unsubscribe link in both parts.
    #[test]
    fn announcements_carry_the_text_and_the_unsubscribe_link() {
        let templates = Templates::load().expect("templates parse");
        let context = json!({"subject": "Maintenance", "body": "Tonight.\n\nBack by 3 am.", "unsubscribe_url": "http://x/u?token=t"});
        let mail = templates
            .render("announcement", "en", &context)
            .expect("render");
        assert_eq!(mail.subject, "Maintenance");
        assert!(mail.text.starts_with("Tonight.\n\nBack by 3 am."));
        assert!(mail.text.contains("http://x/u?token=t"));
        assert!(
            mail.html.contains("<p>Tonight.</p>") && mail.html.contains("<p>Back by 3 am.</p>")
        );
    }

    /// A digest names one film in its subject and counts several; each film says why
    /// it was picked; HTML escapes titles; the unsubscribe link is in both parts.
    #[test]
    fn film_digest_counts_films_and_says_why_each_was_picked() {
        let templates = Templates::load().expect("templates parse");
        let one = json!({"films": [{"title": "Heat", "year": 1995, "access": "free",
                          "reason": {"kind": "director", "name": "Michael Mann"}}],
                          "unsubscribe_url": "http://x/u?token=t"});
        let mail = templates.render("film_digest", "en", &one).expect("render");
        assert_eq!(mail.subject, "New for you: Heat");
        assert!(mail.text.contains("- Heat (1995)"));
        assert!(mail.text.contains("Directed by Michael Mann"));
        assert!(mail.text.contains("http://x/u?token=t") && mail.html.contains("u?token=t"));
        let many: Vec<_> = (0..23)
            .map(|n| {
                json!({"title": format!("<Film {n}>"), "year": null, "access": "subscription",
                            "reason": {"kind": "genre", "name": "Drama"}})
            })
            .collect();
        let context = json!({"films": many, "unsubscribe_url": "http://x/u?token=t"});
        let ru = templates
            .render("film_digest", "ru", &context)
            .expect("render");
        assert_eq!(ru.subject, "Новые фильмы для вас: 23");
        assert!(ru.text.contains("- <Film 0>, по подписке"));
        assert!(ru.text.contains("Drama: вы высоко оценили"));
        assert!(ru.text.contains("…и ещё 3 в каталоге."));
        assert!(!ru.text.contains("<Film 20>"));
        assert!(ru.html.contains("&lt;Film 0&gt;") && !ru.html.contains("<Film 0>"));
    }

    /// Security notices say what happened.
    #[test]
    fn security_notices_say_what_happened() {
        let templates = Templates::load().expect("templates parse");
        let changed = templates
            .render(
                "security",
                "en",
                &json!({"reason": "password_changed", "email": "a@example.com"}),
            )
            .expect("render");
        assert_eq!(changed.subject, "Your cinema password was changed");
        let blocked = templates
            .render(
                "security",
                "ru",
                &json!({"reason": "blocked", "email": "a@example.com"}),
            )
            .expect("render");
        assert_eq!(blocked.subject, "Аккаунт cinema заблокирован");
        let moving = json!({"reason": "email_change_requested", "email": "a@example.com",
                            "new_email": "<b@example.com>"});
        let asked = templates.render("security", "en", &moving).expect("render");
        assert_eq!(asked.subject, "Someone asked to change your cinema email");
        assert!(asked.text.contains("a@example.com") && asked.text.contains("<b@example.com>"));
        assert!(asked.text.contains("change your password"));
        assert!(asked.html.contains("&lt;b@example.com&gt;"));
        let asked = templates.render("security", "ru", &moving).expect("render");
        assert_eq!(asked.subject, "Запрошена смена почты аккаунта cinema");
        assert!(asked.text.contains("смените пароль"));
    }

    /// The email-change mail names the new address and carries the link in both parts,
    /// in the user's locale.
    #[test]
    fn email_change_mail_carries_the_link_to_the_new_address() {
        let templates = Templates::load().expect("templates parse");
        let context = json!({"new_email": "new@example.com",
                             "confirm_url": "http://x/confirm?token=t", "confirm_hours": 48});
        let en = templates
            .render("email_change", "en", &context)
            .expect("en");
        assert_eq!(en.subject, "Confirm your new cinema email address");
        assert!(en.text.contains("http://x/confirm?token=t") && en.text.contains("48 hours"));
        assert!(en.text.contains("new@example.com"));
        assert!(en.html.contains("confirm?token=t") && en.html.contains("href"));
        let ru = templates
            .render("email_change", "ru", &context)
            .expect("ru");
        assert_eq!(ru.subject, "Подтвердите новый адрес почты cinema");
        assert!(ru.text.contains("http://x/confirm?token=t"));
    }

    /// Every kind of mail has a subject, a text and an HTML part in every locale, so a
    /// template left out of the list fails here rather than at sending.
    #[test]
    fn every_kind_has_every_part_in_every_locale() {
        let names: Vec<&str> = TEMPLATES.iter().map(|(name, _)| *name).collect();
        let kinds: std::collections::BTreeSet<&str> = names
            .iter()
            .filter_map(|name| name.split('.').next())
            .collect();
        for kind in kinds {
            for locale in LOCALES {
                for part in ["subject", "txt", "html"] {
                    let name = format!("{kind}.{locale}.{part}");
                    assert!(names.contains(&name.as_str()), "{name} is not listed");
                }
            }
        }
    }
}
