//! The service's vocabulary: validated input types, the records the service
//! hands its front ends (`*Record`, plain structs that storage reads into),
//! and the rules that do not need storage (which severities raise alerts, which status moves are
//! allowed, what a page request may ask for). Everything is parsed here once,
//! at the edge; code behind it trusts these types.

pub mod alert;
pub mod audit;
pub mod auth;
pub mod event;
pub mod filter;
pub mod id;
pub mod ingest;
pub mod page;
pub mod silence;
pub mod user;
pub mod webhook;

/// An enum spelled the same in the database and the API (SCREAMING_SNAKE
/// case): strum writes and parses the text; `as_str` and `ALL` are ours.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, diesel::FromSqlRow, strum::IntoStaticStr, strum::EnumString,
                 strum::Display, Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used in the database and in the API.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

text_enum!(
    /// How bad an event is. HIGH and CRITICAL raise an alert.
    Severity { Low, Medium, High, Critical }
);
text_enum!(
    /// Where an alert is in its lifecycle: OPEN -> ACKNOWLEDGED -> RESOLVED.
    AlertStatus { Open, Acknowledged, Resolved }
);
text_enum!(
    /// What a principal may do; checked by guards on the GraphQL fields.
    Role { Admin, Analyst, Sensor }
);
text_enum!(
    /// Kinds of audit-log entries.
    AuditAction {
        AlertCreated,
        AlertStatusChanged,
        LoginSucceeded,
        LoginFailed,
        TokenRevoked,
        UserCreated,
        ApiKeyCreated,
        ApiKeyRevoked,
        AlertAssigned,
        AlertCommented,
        SilenceCreated,
        SilenceExpired,
        UserUpdated,
        PasswordReset,
        PasswordChanged,
        EventConflict,
        WebhookCreated,
        WebhookUpdated,
        WebhookDeleted,
        WebhookDisabled,
        WebhookSecretRotated,
        RetentionPurged,
    }
);

text_enum!(
    /// The alert changes a webhook may be called for.
    WebhookTrigger { AlertRaised, AlertRepeated, AlertStatusChanged, AlertAssigned, AlertCommented }
);
text_enum!(
    /// The shape of a webhook's body: Standard Webhooks JSON, or `{"text"}`
    /// for chat (Slack, Mattermost and Rocket.Chat incoming webhooks).
    WebhookFormat { Standard, Slack }
);
text_enum!(
    /// Where a webhook delivery is: FAILED once its retries are spent.
    DeliveryStatus { Pending, Delivered, Failed }
);

impl Severity {
    /// The rule at the heart of the service: these severities need a human.
    pub fn raises_alert(self) -> bool {
        matches!(self, Severity::High | Severity::Critical)
    }
}

/// The current time, cut to the microsecond that both databases store, so a
/// value read back equals the value written.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    let micros = now.and_utc().timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.naive_utc())
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_text() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>().unwrap(), *s);
        }
        for s in AlertStatus::ALL {
            assert_eq!(s.as_str().parse::<AlertStatus>().unwrap(), *s);
        }
        assert!("high".parse::<Severity>().is_err());
        // The spellings the contract and the stored rows use.
        assert_eq!(
            AuditAction::AlertStatusChanged.as_str(),
            "ALERT_STATUS_CHANGED"
        );
        assert_eq!(AuditAction::ApiKeyCreated.to_string(), "API_KEY_CREATED");
        assert_eq!(Role::Analyst.as_str(), "ANALYST");
        assert_eq!(AlertStatus::Acknowledged.as_str(), "ACKNOWLEDGED");
    }

    #[test]
    fn only_high_and_critical_raise_alerts() {
        let raising: Vec<_> = Severity::ALL.iter().filter(|s| s.raises_alert()).collect();
        assert_eq!(raising, [&Severity::High, &Severity::Critical]);
    }
}
