//! The identity a request acts as.

use crate::domain::Role;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    User {
        id: i64,
        username: String,
        role: Role,
        /// The login session the access token belongs to.
        session: String,
    },
    ApiKey {
        id: i64,
        name: String,
        /// The only sources the key may ingest for; `None`: any.
        sources: Option<std::sync::Arc<[String]>>,
    },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Self::User { role, .. } => *role,
            Self::ApiKey { .. } => Role::Sensor,
        }
    }

    /// How the audit log names this principal.
    pub fn actor(&self) -> String {
        match self {
            Self::User { username, .. } => username.clone(),
            Self::ApiKey { name, .. } => format!("apikey:{name}"),
        }
    }
}

/// What the request's credentials turned out to be. A bad token does not
/// fail the whole request (the client may be calling `login` to get a new
/// one); fields that need a principal refuse with the reason.
#[derive(Clone, Debug, Default)]
pub enum Credentials {
    #[default]
    None,
    Valid(Principal),
    Invalid(String),
}
