//! People's accounts: what a username and a password may be.

use chrono::NaiveDateTime;

use super::Role;
use crate::error::{Error, Result};

/// The longest username, Django's limit, so that accounts brought over
/// from the system threatwatch replaces fit.
pub const MAX_USERNAME_CHARS: usize = 150;

fn username_char(c: char) -> bool {
    c.is_alphanumeric() || "@.+-_".contains(c)
}

/// Whether some account could have this name, as a login presents it.
/// Looks at no more of a hostile value than a name may hold: a 16 MiB
/// "username" is refused from its length in bytes.
pub fn could_be_username(raw: &str) -> bool {
    raw.len() <= MAX_USERNAME_CHARS * 4
        && !raw.is_empty()
        && raw.chars().count() <= MAX_USERNAME_CHARS
        && raw.chars().all(username_char)
}

/// Usernames follow Django's rules (letters, digits and @.+-_, at most 150),
/// so that accounts brought over from the system threatwatch replaces fit.
pub fn username(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::invalid("username", "must not be empty"));
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(Error::invalid(
            "username",
            format!("must be at most {MAX_USERNAME_CHARS} characters"),
        ));
    }
    if !name.chars().all(username_char) {
        return Err(Error::invalid(
            "username",
            "may contain only letters, digits and @ . + - _",
        ));
    }
    Ok(name.to_string())
}

/// bcrypt reads at most 72 bytes; a longer password would be silently cut,
/// so it is refused instead.
pub fn password(raw: &str) -> Result<String> {
    if raw.chars().count() < 8 {
        return Err(Error::invalid("password", "must be at least 8 characters"));
    }
    if raw.len() > 72 {
        return Err(Error::invalid("password", "must be at most 72 bytes"));
    }
    if raw.contains('\0') {
        return Err(Error::invalid(
            "password",
            "must not contain NUL characters",
        ));
    }
    Ok(raw.to_string())
}

/// An account as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
}

/// A user to create, with the password already hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username(" alice ").unwrap(), "alice");
        assert!(username("a b").is_err());
        assert!(username("").is_err());
        assert!(username(&"a".repeat(151)).is_err());
    }

    #[test]
    fn names_a_login_may_look_up() {
        assert!(could_be_username("soc-lead@example.org"));
        assert!(could_be_username(&"é".repeat(MAX_USERNAME_CHARS)));
        assert!(!could_be_username(&"a".repeat(MAX_USERNAME_CHARS + 1)));
        assert!(!could_be_username(&"a".repeat(16 << 20)));
        assert!(!could_be_username(""));
        assert!(!could_be_username("a b"));
        assert!(!could_be_username("a\0b"));
    }

    #[test]
    fn passwords() {
        assert!(password("short").is_err());
        assert!(password(&"x".repeat(73)).is_err());
        assert!(password("correct horse").is_ok());
    }
}
