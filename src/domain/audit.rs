//! The audit log's entries: one to append, and one as stored.

use chrono::NaiveDateTime;

use super::AuditAction;

/// An audit entry to append.
#[derive(Clone, Debug)]
pub struct NewAudit {
    pub at: NaiveDateTime,
    pub action: String,
    pub actor: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
}

/// One entry of the append-only audit log, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at: NaiveDateTime,
    pub action: AuditAction,
    pub actor: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
}
