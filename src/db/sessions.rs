//! Login sessions and their chains of single-use refresh tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{columns, NewAudit, UserRow};
use super::schema::{refresh_tokens, sessions, users};
use super::{audit, Conn, Db};
use crate::domain::auth::{Issued, Rotation, SessionState};
use crate::error::Result;

/// Marks a live session revoked; `Ok(true)` when it was live.
async fn revoke(
    conn: &mut Conn<'_>,
    session_id: &str,
    reason: &str,
    now: NaiveDateTime,
) -> Result<bool> {
    let update = diesel::update(
        sessions::table
            .filter(sessions::id.eq(session_id.to_owned()))
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason.to_owned()),
    ));
    Ok(conn.execute(update).await? > 0)
}

/// Revokes every live session of account `user_id` but `except`; how many.
pub(super) async fn revoke_all(
    conn: &mut Conn<'_>,
    user_id: i64,
    except: Option<&str>,
    reason: &str,
) -> Result<usize> {
    let live = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::id.ne(except.unwrap_or_default().to_owned()));
    let update = diesel::update(live).set((
        sessions::revoked_at.eq(crate::domain::now()),
        sessions::revoked_reason.eq(reason.to_owned()),
    ));
    Ok(conn.execute(update).await?)
}

/// Records refresh token `token` as issued for `session_id`.
async fn issue(
    conn: &mut Conn<'_>,
    session_id: &str,
    token: Issued,
    now: NaiveDateTime,
) -> Result<()> {
    let insert = diesel::insert_into(refresh_tokens::table).values((
        refresh_tokens::jti.eq(token.jti),
        refresh_tokens::session_id.eq(session_id.to_owned()),
        refresh_tokens::issued_at.eq(now),
        refresh_tokens::expires_at.eq(token.expires_at),
    ));
    conn.execute(insert).await?;
    Ok(())
}

impl Db {
    /// Records a new session with its first refresh token, together with the
    /// login's audit entry and the account's last login time. `Ok(false)`,
    /// and nothing written, when the account is no longer active or its
    /// password hash is no longer `checked`: it was disabled or its password
    /// reset while the password was being checked, and a session started
    /// now would escape the revocation that came with that.
    pub async fn start_session(
        &self,
        session_id: String,
        user_id: i64,
        checked: String,
        first: Issued,
        entry: NewAudit,
    ) -> Result<bool> {
        let logged = entry.clone();
        let started = self
            .transaction(async move |mut conn| {
                let now = crate::domain::now();
                let account = users::table
                    .filter(users::id.eq(user_id))
                    .filter(users::is_active.eq(true))
                    .filter(users::password_hash.eq(checked));
                let stamp = diesel::update(account).set(users::last_login_at.eq(now));
                if conn.execute(stamp).await? == 0 {
                    return Ok(false);
                }
                let insert = diesel::insert_into(sessions::table).values((
                    sessions::id.eq(session_id.clone()),
                    sessions::user_id.eq(user_id),
                    sessions::created_at.eq(now),
                ));
                conn.execute(insert).await?;
                issue(&mut conn, &session_id, first, now).await?;
                audit::append(&mut conn, &entry).await?;
                Ok(true)
            })
            .await?;
        if started {
            audit::log(&logged);
        }
        Ok(started)
    }

    /// Retires refresh token `jti` and records `next` in its place, or, if
    /// `jti` was already retired, revokes its session (reuse means theft).
    /// Of several concurrent presentations of one token at most one
    /// rotates. `entry` is written when the session is revoked.
    pub async fn rotate_refresh(
        &self,
        jti: String,
        next: Issued,
        entry: NewAudit,
    ) -> Result<Rotation> {
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let query = refresh_tokens::table
                .inner_join(sessions::table.inner_join(users::table))
                .filter(refresh_tokens::jti.eq(jti.clone()))
                .select((
                    refresh_tokens::used_at,
                    sessions::id,
                    sessions::revoked_at,
                    columns::<UserRow>(),
                ))
                .limit(1);
            let found: Option<(
                Option<NaiveDateTime>,
                String,
                Option<NaiveDateTime>,
                UserRow,
            )> = conn.first(query).await.optional()?;
            let Some((used_at, session_id, revoked_at, user)) = found else {
                return Ok(Rotation::Unknown);
            };
            if revoked_at.is_some() {
                return Ok(Rotation::Revoked);
            }
            let retired = if used_at.is_some() {
                false
            } else if !user.is_active {
                return Ok(Rotation::Inactive);
            } else {
                // Retired only if nobody retired it since the read above: on
                // PostgreSQL several presentations can all have read it
                // unused; the others wait here for the first and then update
                // nothing, which makes them reuse like any later copy.
                let update = diesel::update(
                    refresh_tokens::table
                        .filter(refresh_tokens::jti.eq(jti))
                        .filter(refresh_tokens::used_at.is_null()),
                )
                .set(refresh_tokens::used_at.eq(now));
                conn.execute(update).await? == 1
            };
            if !retired {
                // Only the presentation that ends the session writes the
                // entry, so a burst of copies leaves one TOKEN_REVOKED.
                if revoke(&mut conn, &session_id, "refresh token reused", now).await? {
                    let entry = NewAudit {
                        target_type: Some("Session".into()),
                        target_id: Some(session_id.clone()),
                        actor: user.username.clone(),
                        ..entry
                    };
                    audit::append(&mut conn, &entry).await?;
                    audit::log(&entry);
                }
                return Ok(Rotation::Reused);
            }
            issue(&mut conn, &session_id, next, now).await?;
            Ok(Rotation::Rotated(user))
        })
        .await
    }

    /// Revokes a session (logout). Returns false when it was not live.
    pub async fn revoke_session(
        &self,
        session_id: String,
        reason: &'static str,
        entry: NewAudit,
    ) -> Result<bool> {
        let logged = entry.clone();
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let changed = revoke(&mut conn, &session_id, reason, now).await?;
            if changed {
                audit::append(&mut conn, &entry).await?;
            }
            Ok(changed)
        })
        .await
        .inspect(|changed| {
            if *changed {
                audit::log(&logged);
            }
        })
    }

    /// The state behind an access token: whether its session is still live
    /// and its user active, and the user's current name and role.
    pub async fn session_state(
        &self,
        session_id: &str,
        user_id: i64,
    ) -> Result<Option<SessionState>> {
        let session_id = session_id.to_owned();
        self.read(async move |mut conn| {
            let query = sessions::table
                .inner_join(users::table)
                .filter(sessions::id.eq(session_id))
                .filter(sessions::user_id.eq(user_id))
                .select((sessions::revoked_at, columns::<UserRow>()))
                .limit(1);
            let row: Option<(Option<NaiveDateTime>, UserRow)> =
                conn.first(query).await.optional()?;
            Ok(row.map(|(revoked_at, user)| SessionState {
                live: revoked_at.is_none() && user.is_active,
                username: user.username,
                role: user.role,
            }))
        })
        .await
    }
}
