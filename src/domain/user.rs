//! People's accounts: what a username and a password may be.

use crate::error::{Error, Result};

/// Usernames follow Django's rules (letters, digits and @.+-_, at most 150),
/// so that accounts brought over from the system threatwatch replaces fit.
pub fn username(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::bad_input("username: must not be empty"));
    }
    if name.chars().count() > 150 {
        return Err(Error::bad_input("username: must be at most 150 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c))
    {
        return Err(Error::bad_input(
            "username: may contain only letters, digits and @ . + - _",
        ));
    }
    Ok(name.to_string())
}

/// bcrypt reads at most 72 bytes; a longer password would be silently cut,
/// so it is refused instead.
pub fn password(raw: &str) -> Result<String> {
    if raw.chars().count() < 8 {
        return Err(Error::bad_input("password: must be at least 8 characters"));
    }
    if raw.len() > 72 {
        return Err(Error::bad_input("password: must be at most 72 bytes"));
    }
    if raw.contains('\0') {
        return Err(Error::bad_input(
            "password: must not contain NUL characters",
        ));
    }
    Ok(raw.to_string())
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
    fn passwords() {
        assert!(password("short").is_err());
        assert!(password(&"x".repeat(73)).is_err());
        assert!(password("correct horse").is_ok());
    }
}
