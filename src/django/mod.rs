//! Bringing a team over from the Django/DRF "Threat Alert System": its
//! accounts, events and alerts (`threatwatch import-django`).
//!
//! Rows are taken as that system stored them (original times, statuses,
//! even an empty event type, which its API let through); a row is skipped,
//! with the reason reported, only where threatwatch could not represent it
//! faithfully. What was imported is remembered per source database, so a
//! second run adds only what is new.

pub mod import;
pub mod source;

use chrono::NaiveDateTime;

pub use source::{DjangoAlert, DjangoEvent, DjangoUser, Source};

use crate::domain::{AlertStatus, Role, Severity};

/// How many source rows are read and written at a time.
pub const CHUNK: i64 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Event,
    Alert,
}

impl Kind {
    /// The spelling in `imported_rows.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Event => "event",
            Kind::Alert => "alert",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Kind::User => "auth_user",
            Kind::Event => "core_event",
            Kind::Alert => "core_alert",
        }
    }
}

/// What became of one kind of row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub imported: u64,
    /// Imported by an earlier run from the same database.
    pub already: u64,
    pub skipped: u64,
}

#[derive(Clone, Debug)]
pub struct Skip {
    pub kind: Kind,
    pub id: i64,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub users: Tally,
    pub events: Tally,
    pub alerts: Tally,
    pub skips: Vec<Skip>,
    /// Accounts imported without their password hash, and why.
    pub unusable: Vec<Skip>,
}

/// How much of a reason the report keeps, in characters. Reasons quote the
/// old database's values, which nothing there bounded; one line of the
/// report stays readable and the report's memory stays small.
pub const MAX_REASON_CHARS: usize = 300;

/// What an account whose hash was not kept gets instead: Django's mark of
/// an unusable password, which no password matches.
pub const UNUSABLE_PASSWORD: &str = "!imported-without-a-usable-password";

/// `reason`, cut to `MAX_REASON_CHARS` with a mark saying so.
fn cut(mut reason: String) -> String {
    if let Some((at, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
        let total = reason.chars().count();
        reason.truncate(at);
        reason += &format!("... ({} more characters)", total - MAX_REASON_CHARS);
    }
    reason
}

impl Report {
    pub fn tally(&mut self, kind: Kind) -> &mut Tally {
        match kind {
            Kind::User => &mut self.users,
            Kind::Event => &mut self.events,
            Kind::Alert => &mut self.alerts,
        }
    }

    pub fn skip(&mut self, kind: Kind, id: i64, reason: String) {
        self.tally(kind).skipped += 1;
        let reason = cut(reason);
        self.skips.push(Skip { kind, id, reason });
    }

    /// An account imported with no usable password: its hash was not kept.
    pub fn unusable_password(&mut self, id: i64, reason: String) {
        let reason = cut(reason);
        self.unusable.push(Skip {
            kind: Kind::User,
            id,
            reason,
        });
    }

    /// The summary the command prints: totals, then every skipped row with
    /// its reason (a few hundred at most; the rest are counted).
    pub fn render(&self, origin: &str) -> String {
        const SHOWN: usize = 200;
        let mut out = format!("imported from {origin}:\n");
        for (name, t) in [
            ("users", self.users),
            ("events", self.events),
            ("alerts", self.alerts),
        ] {
            out += &format!(
                "  {name:<7} {} imported, {} already imported earlier, {} skipped\n",
                t.imported, t.already, t.skipped
            );
        }
        for s in self.skips.iter().take(SHOWN) {
            out += &format!("  skipped {} id {}: {}\n", s.kind.table(), s.id, s.reason);
        }
        if self.skips.len() > SHOWN {
            out += &format!("  ... and {} more skipped rows\n", self.skips.len() - SHOWN);
        }
        for s in self.unusable.iter().take(SHOWN) {
            out += &format!(
                "  no usable password for {} id {}: {}\n",
                s.kind.table(),
                s.id,
                s.reason
            );
        }
        if self.unusable.len() > SHOWN {
            out += &format!(
                "  ... and {} more accounts without a usable password\n",
                self.unusable.len() - SHOWN
            );
        }
        out
    }
}

/// `is_superuser` or `is_staff` could change alerts there (DRF's
/// `IsAdminUser` checks `is_staff`), so both become ADMIN.
pub fn role(user: &DjangoUser) -> Role {
    if user.is_superuser || user.is_staff {
        Role::Admin
    } else {
        Role::Analyst
    }
}

/// Django keeps UTC times as `YYYY-MM-DD HH:MM:SS[.ffffff]` in SQLite (the
/// source query formats PostgreSQL's the same way); an offset form is
/// accepted too, for databases that went through other tools.
pub fn time(field: &str, raw: &str) -> Result<NaiveDateTime, String> {
    let raw = raw.trim();
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f"))
        .or_else(|_| {
            chrono::DateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f%:z")
                .or_else(|_| chrono::DateTime::parse_from_rfc3339(raw))
                .map(|t| t.naive_utc())
        })
        .map_err(|_| format!("{field} {raw:?} is not a date and time"))
}

/// The old model's choices were the same four words; they are matched
/// without regard to case, since nothing in that database enforced them.
pub fn severity(raw: &str) -> Result<Severity, String> {
    raw.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("severity {raw:?} is not LOW, MEDIUM, HIGH or CRITICAL"))
}

pub fn status(raw: &str) -> Result<AlertStatus, String> {
    raw.trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("status {raw:?} is not OPEN, ACKNOWLEDGED or RESOLVED"))
}

/// The API's own size limits hold for imported values too: a longer one
/// would be a row no client could have written, and that other code need
/// not expect.
pub fn fits(field: &str, value: &str, max: usize) -> Result<(), String> {
    let chars = value.chars().count();
    if chars > max {
        return Err(format!(
            "{field} has {chars} characters; threatwatch keeps at most {max}"
        ));
    }
    Ok(())
}

/// PostgreSQL cannot store NUL in text, so neither backend takes it.
pub fn storable(field: &str, value: &str) -> Result<(), String> {
    if value.contains('\0') {
        return Err(format!("{field} contains a NUL character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_forms_django_writes() {
        let t = time("timestamp", "2025-12-25 07:05:00.123456").unwrap();
        assert_eq!(t.to_string(), "2025-12-25 07:05:00.123456");
        assert_eq!(
            time("timestamp", "2025-12-25 07:05:00")
                .unwrap()
                .to_string(),
            "2025-12-25 07:05:00"
        );
        assert_eq!(
            time("timestamp", "2025-12-25 09:05:00+02:00")
                .unwrap()
                .to_string(),
            "2025-12-25 07:05:00"
        );
        let err = time("timestamp", "yesterday").unwrap_err();
        assert!(err.contains("timestamp \"yesterday\""), "{err}");
    }

    #[test]
    fn choices() {
        assert_eq!(severity("high").unwrap(), Severity::High);
        assert!(severity("URGENT").unwrap_err().contains("URGENT"));
        assert_eq!(status("RESOLVED").unwrap(), AlertStatus::Resolved);
        assert!(status("CLOSED").is_err());
    }

    #[test]
    fn reasons_are_cut() {
        let mut r = Report::default();
        r.skip(
            Kind::Event,
            7,
            format!("severity {:?} is not known", "X".repeat(1 << 20)),
        );
        let reason = &r.skips[0].reason;
        assert!(
            reason.chars().count() < MAX_REASON_CHARS + 40,
            "{}",
            reason.len()
        );
        assert!(reason.ends_with("more characters)"), "{reason}");
        let out = r.render("django:test");
        assert!(
            out.lines().all(|l| l.len() < 4 * MAX_REASON_CHARS),
            "{}",
            out.len()
        );
        r.skip(Kind::Event, 8, "short".into());
        assert_eq!(r.skips[1].reason, "short");
        assert!(fits("source", &"s".repeat(100), 100).is_ok());
        assert!(fits("source", &"s".repeat(101), 100)
            .unwrap_err()
            .contains("101 characters"));
    }

    #[test]
    fn roles() {
        let mut u = DjangoUser {
            id: 1,
            username: "a".into(),
            password: String::new(),
            is_superuser: false,
            is_staff: false,
            is_active: true,
            date_joined: String::new(),
        };
        assert_eq!(role(&u), Role::Analyst);
        u.is_staff = true;
        assert_eq!(role(&u), Role::Admin);
        u.is_staff = false;
        u.is_superuser = true;
        assert_eq!(role(&u), Role::Admin);
    }
}
