//! Diesel's view of the tables, shared by both backends: every column uses
//! a type that SQLite and PostgreSQL both map the same way (BigInt ids,
//! Text enums, Timestamp in UTC). Keep in step with `migrations/*`.

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        source -> Text,
        event_type -> Text,
        severity -> Text,
        description -> Text,
        created_at -> Timestamp,
        external_id -> Nullable<Text>,
        alert_id -> Nullable<BigInt>,
        dedup_key -> Nullable<Text>,
        silenced_by -> Nullable<BigInt>,
        occurred_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    alerts (id) {
        id -> BigInt,
        event_id -> BigInt,
        severity -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        assignee_id -> Nullable<BigInt>,
        acknowledged_at -> Nullable<Timestamp>,
        resolved_at -> Nullable<Timestamp>,
        seconds_to_acknowledge -> Nullable<Double>,
        seconds_to_resolve -> Nullable<Double>,
        source -> Nullable<Text>,
        dedup_key -> Nullable<Text>,
        occurrences -> BigInt,
        last_seen_at -> Nullable<Timestamp>,
        event_type -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        action -> Text,
        actor -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Text>,
        detail -> Nullable<Text>,
        ip -> Nullable<Text>,
    }
}

diesel::joinable!(alerts -> events (event_id));
diesel::allow_tables_to_appear_in_same_query!(settings, users, events, alerts, audit_log);

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (jti) {
        jti -> Text,
        session_id -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        name -> Text,
        key_hash -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        sources -> Nullable<Text>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::allow_tables_to_appear_in_same_query!(sessions, refresh_tokens, api_keys, users);

diesel::table! {
    alert_counts (status, severity) {
        status -> Text,
        severity -> Text,
        count -> BigInt,
    }
}

diesel::table! {
    alert_comments (id) {
        id -> BigInt,
        alert_id -> BigInt,
        author -> Text,
        body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    alert_lifecycle (id) {
        id -> Integer,
        acknowledged -> BigInt,
        seconds_to_acknowledge -> Double,
        resolved -> BigInt,
        seconds_to_resolve -> Double,
    }
}

diesel::table! {
    silences (id) {
        id -> BigInt,
        source -> Nullable<Text>,
        event_type -> Nullable<Text>,
        severity -> Nullable<Text>,
        dedup_key -> Nullable<Text>,
        comment -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        ends_at -> Timestamp,
        expired_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    imported_rows (origin, kind, source_id) {
        origin -> Text,
        kind -> Text,
        source_id -> BigInt,
        target_id -> BigInt,
        imported_at -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> BigInt,
        name -> Text,
        url -> Text,
        triggers -> Text,
        min_severity -> Nullable<Text>,
        sources -> Nullable<Text>,
        format -> Text,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        webhook_id -> BigInt,
        trigger -> Nullable<Text>,
        alert_id -> Nullable<BigInt>,
        status -> Text,
        message_id -> Text,
        body -> Text,
        attempts -> Integer,
        created_at -> Timestamp,
        last_attempt_at -> Nullable<Timestamp>,
        next_attempt_at -> Nullable<Timestamp>,
        delivered_at -> Nullable<Timestamp>,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        locked_until -> Nullable<Timestamp>,
    }
}

// Changes waiting for the delivery worker to turn them into deliveries
// (db::outbox).
diesel::table! {
    webhook_outbox (id) {
        id -> BigInt,
        trigger -> Text,
        alert_id -> BigInt,
        webhooks -> Text,
        standard -> Nullable<Text>,
        slack -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::allow_tables_to_appear_in_same_query!(webhooks, webhook_deliveries);

// SQLite's FTS5 word indexes, keyed by the id of the event or alert they
// index, in the word file beside the database (`db::words`), which every
// pooled connection attaches. PostgreSQL has none: its GIN index is on
// `events` itself.
diesel::table! {
    events_fts (rowid) {
        rowid -> BigInt,
    }
}

diesel::table! {
    alerts_fts (rowid) {
        rowid -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(events_fts, events);
diesel::allow_tables_to_appear_in_same_query!(events_fts, alerts);
diesel::allow_tables_to_appear_in_same_query!(alerts_fts, alerts);
diesel::allow_tables_to_appear_in_same_query!(alerts_fts, events);
