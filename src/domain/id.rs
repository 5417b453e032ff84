//! Opaque ids. Clients treat them as strings; inside they are row ids.

use crate::error::{Error, Result};

/// Parses an id a client sent back; `field` names the argument in the error.
pub fn parse(field: &str, raw: &str) -> Result<i64> {
    match raw.trim().parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::invalid(field, format!("{raw:?} is not a valid id"))),
    }
}

pub fn format(id: i64) -> async_graphql::ID {
    async_graphql::ID(id.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids() {
        assert_eq!(super::parse("id", "42").unwrap(), 42);
        for bad in ["", "0", "-1", "abc", "1.5", "99999999999999999999"] {
            assert!(super::parse("id", bad).is_err(), "{bad}");
        }
    }
}
