//! Account input rules shared by the auth component and the host CLI: email
//! normalization and password strength.

/// Why account input was refused; `field` names the offending input for 422 bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: &'static str,
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (bounds hashing work).
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Trims and lower-cases an email and checks its shape (`local@domain.tld`, no spaces,
/// at most 254 characters).
pub fn normalize_email(raw: &str) -> Result<String, InvalidField> {
    let invalid = |message| InvalidField {
        field: "email",
        message,
    };
    let email = raw.trim().to_lowercase();
    if email.is_empty() || email.len() > 254 {
        return Err(invalid(
            "must be an email address of at most 254 characters",
        ));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("must contain @"));
    };
    let valid = !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(invalid("is not a valid email address"))
    }
}

/// Checks a new password: 8+ characters, at most 256 bytes, not all one kind of
/// character (letters only or digits only).
pub fn validate_password(password: &str) -> Result<(), InvalidField> {
    let invalid = |message| InvalidField {
        field: "password",
        message,
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(invalid("must be at least 8 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid("must be at most 256 bytes"));
    }
    let has_letter = password.chars().any(char::is_alphabetic);
    let has_other = password.chars().any(|c| !c.is_alphabetic());
    if !(has_letter && has_other) {
        return Err(invalid("must mix letters with digits or symbols"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Emails are trimmed and lower-cased, so one address maps to one account.
    #[test]
    fn normalizes_email() {
        assert_eq!(
            normalize_email("  Ivan.Petrov@Example.RU ").as_deref(),
            Ok("ivan.petrov@example.ru")
        );
    }

    /// Malformed addresses are refused with the field named.
    #[test]
    fn refuses_malformed_email() {
        for raw in [
            "",
            "plain",
            "a@b",
            "@example.com",
            "a@.com",
            "a b@example.com",
            "a@b@example.com",
        ] {
            let error = normalize_email(raw).expect_err(raw);
            assert_eq!(error.field, "email");
        }
    }

    /// Weak passwords are refused with the field named; decent ones pass.
    #[test]
    fn checks_password_strength() {
        for weak in ["short1", "onlyletters", "1234567890", &"x1".repeat(200)] {
            assert_eq!(validate_password(weak).expect_err(weak).field, "password");
        }
        assert!(validate_password("пароль-2024").is_ok());
        assert!(validate_password("correct horse 9").is_ok());
    }
}
