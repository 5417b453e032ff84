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
    password_in("password", raw)
}

/// `password`, for an argument named `field` (`changePassword`'s `new`).
pub fn password_in(field: &str, raw: &str) -> Result<String> {
    if raw.len() > 72 {
        return Err(Error::invalid(field, "must be at most 72 bytes"));
    }
    if raw.chars().count() < 8 {
        return Err(Error::invalid(field, "must be at least 8 characters"));
    }
    if raw.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(raw.to_string())
}

/// The roles a person's account may have. SENSOR belongs to API keys: an
/// account with it could neither ingest as a key does (bound to sources,
/// revocable) nor be told apart from a person in the audit log.
pub fn person_role(role: Role) -> Result<Role> {
    match role {
        Role::Admin | Role::Analyst => Ok(role),
        Role::Sensor => Err(Error::invalid(
            "role",
            "must be ADMIN or ANALYST; sensors use API keys (createApiKey)",
        )),
    }
}

/// A change an admin (or an operator at the command line) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    pub active: Option<bool>,
}

impl UserChange {
    /// At least one of the two, and a role a person may have.
    pub fn parse(role: Option<Role>, active: Option<bool>) -> Result<Self> {
        if role.is_none() && active.is_none() {
            return Err(Error::invalid(
                "input",
                "give at least one of role and active",
            ));
        }
        let role = role.map(person_role).transpose()?;
        Ok(Self { role, active })
    }
}

/// Who asks for a change: the account acting, if a person is (the command
/// line acts as no account).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    pub user_id: Option<i64>,
}

/// What a change does to one account, decided on the account as it stands
/// inside the transaction that makes it.
#[derive(Clone, Debug, PartialEq)]
pub struct UserUpdate {
    pub role: Role,
    pub active: bool,
    /// Whether either differs from what the account has.
    pub changes: bool,
    /// Why the account's sessions end, if they do: disabling it, and any
    /// change of role, for a token must not outlive the trust it was
    /// issued under.
    pub ends_sessions: Option<&'static str>,
    /// For the audit entry: what moved, from and to.
    pub detail: serde_json::Value,
}

/// Decides `change` to `target`. `active_admins` counts the active ADMIN
/// accounts, `target` included if it is one; the caller counts them under
/// a lock that holds until the change commits, so that two changes at once
/// cannot each leave the other's admin as the last and then remove it.
pub fn plan_update(
    who: Requester,
    target: &UserRecord,
    change: UserChange,
    active_admins: i64,
) -> Result<UserUpdate> {
    let role = change.role.unwrap_or(target.role);
    let active = change.active.unwrap_or(target.is_active);
    let was_admin = target.role == Role::Admin && target.is_active;
    let stays_admin = role == Role::Admin && active;
    let field = if active { "role" } else { "active" };
    if was_admin && !stays_admin {
        if who.user_id == Some(target.id) {
            return Err(Error::invalid(
                field,
                "an admin cannot disable or demote themselves; ask another admin",
            ));
        }
        if active_admins <= 1 {
            return Err(Error::invalid(
                field,
                "this is the last active ADMIN; make another account ADMIN first",
            ));
        }
    }
    let mut detail = serde_json::Map::new();
    detail.insert("username".into(), target.username.clone().into());
    if role != target.role {
        detail.insert(
            "role".into(),
            serde_json::json!({ "from": target.role.as_str(), "to": role.as_str() }),
        );
    }
    if active != target.is_active {
        detail.insert(
            "active".into(),
            serde_json::json!({ "from": target.is_active, "to": active }),
        );
    }
    let ends_sessions = if target.is_active && !active {
        Some("account disabled")
    } else if role != target.role {
        Some("role changed")
    } else {
        None
    };
    Ok(UserUpdate {
        role,
        active,
        changes: role != target.role || active != target.is_active,
        ends_sessions,
        detail: detail.into(),
    })
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
    pub last_login_at: Option<NaiveDateTime>,
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
        assert!(password("correct\0horse").is_err());
        let e = password_in("new", "short").unwrap_err().to_string();
        assert!(e.starts_with("new: "), "{e}");
    }

    #[test]
    fn people_are_never_sensors() {
        assert_eq!(person_role(Role::Admin).unwrap(), Role::Admin);
        assert_eq!(person_role(Role::Analyst).unwrap(), Role::Analyst);
        let e = person_role(Role::Sensor).unwrap_err().to_string();
        assert!(e.starts_with("role: "), "{e}");
        assert!(UserChange::parse(Some(Role::Sensor), None).is_err());
        assert!(UserChange::parse(None, None).is_err());
        assert!(UserChange::parse(None, Some(false)).is_ok());
    }

    fn account(id: i64, role: Role, active: bool) -> UserRecord {
        UserRecord {
            id,
            username: format!("u{id}"),
            password_hash: String::new(),
            role,
            is_active: active,
            created_at: NaiveDateTime::default(),
            last_login_at: None,
        }
    }

    const ADMIN_1: Requester = Requester { user_id: Some(1) };
    const CLI: Requester = Requester { user_id: None };

    fn change(role: Option<Role>, active: Option<bool>) -> UserChange {
        UserChange { role, active }
    }

    #[test]
    fn the_last_active_admin_stays() {
        let last = account(2, Role::Admin, true);
        for c in [
            change(None, Some(false)),
            change(Some(Role::Analyst), None),
            change(Some(Role::Analyst), Some(false)),
        ] {
            for who in [ADMIN_1, CLI] {
                let e = plan_update(who, &last, c, 1).unwrap_err().to_string();
                assert!(e.contains("last active ADMIN"), "{e}");
            }
            assert!(plan_update(ADMIN_1, &last, c, 2).is_ok());
        }
        // Keeping the last admin an admin is no removal.
        assert!(plan_update(CLI, &last, change(Some(Role::Admin), Some(true)), 1).is_ok());
    }

    #[test]
    fn admins_do_not_remove_themselves() {
        let me = account(1, Role::Admin, true);
        let e = plan_update(ADMIN_1, &me, change(None, Some(false)), 5)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("active: "), "{e}");
        let e = plan_update(ADMIN_1, &me, change(Some(Role::Analyst), None), 5)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("role: "), "{e}");
        // The command line is nobody's account.
        assert!(plan_update(CLI, &me, change(None, Some(false)), 2).is_ok());
    }

    #[test]
    fn what_ends_sessions() {
        let ana = account(3, Role::Analyst, true);
        let promote = plan_update(ADMIN_1, &ana, change(Some(Role::Admin), None), 1).unwrap();
        assert_eq!(promote.ends_sessions, Some("role changed"));
        assert_eq!(promote.detail["role"]["from"], "ANALYST");
        assert_eq!(promote.detail["role"]["to"], "ADMIN");
        assert!(promote.detail.get("active").is_none());
        let disable = plan_update(ADMIN_1, &ana, change(None, Some(false)), 1).unwrap();
        assert_eq!(disable.ends_sessions, Some("account disabled"));
        assert_eq!(disable.detail["active"]["to"], false);
        let same = plan_update(ADMIN_1, &ana, change(Some(Role::Analyst), Some(true)), 1).unwrap();
        assert!(same.ends_sessions.is_none() && !same.changes);
        let off = account(4, Role::Analyst, false);
        let enable = plan_update(ADMIN_1, &off, change(None, Some(true)), 1).unwrap();
        assert!(enable.ends_sessions.is_none() && enable.changes);
    }
}
