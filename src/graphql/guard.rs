//! Role checks, as guards on the fields themselves: a field is protected
//! wherever it appears in a query.

use async_graphql::{Context, Guard};

use crate::auth::{Credentials, Principal};
use crate::domain::Role;
use crate::error::Error;

pub const ADMIN: &[Role] = &[Role::Admin];
pub const READERS: &[Role] = &[Role::Admin, Role::Analyst];
pub const INGESTERS: &[Role] = &[Role::Admin, Role::Analyst, Role::Sensor];
pub const ANYONE_SIGNED_IN: &[Role] = &[Role::Admin, Role::Analyst, Role::Sensor];

pub struct RoleGuard(&'static [Role]);

impl RoleGuard {
    pub fn new(roles: &'static [Role]) -> Self {
        Self(roles)
    }
}

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let principal = principal(ctx)?;
        if self.0.contains(&principal.role()) {
            Ok(())
        } else {
            Err(
                Error::forbidden(format!("role {} may not use this field", principal.role()))
                    .into(),
            )
        }
    }
}

/// ADMIN, or the person whose account the field belongs to.
pub struct AdminOrSelf(pub i64);

impl Guard for AdminOrSelf {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match principal(ctx)? {
            Principal::User { id, .. } if *id == self.0 => Ok(()),
            p if p.role() == Role::Admin => Ok(()),
            p => Err(Error::forbidden(format!(
                "role {} may read this only on its own account",
                p.role()
            ))
            .into()),
        }
    }
}

/// The request's principal, or why there is none.
pub fn principal<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal, Error> {
    match ctx.data_opt::<Credentials>() {
        Some(Credentials::Valid(p)) => Ok(p),
        Some(Credentials::Invalid(why)) => Err(Error::unauthenticated(why.clone())),
        Some(Credentials::None) | None => Err(Error::unauthenticated(
            "authentication required: send Authorization: Bearer <accessToken> or X-API-Key",
        )),
    }
}
