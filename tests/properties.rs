//! Property tests over everything that parses client input: validation,
//! cursors and ids. Bounded (a few thousand cases each), so they run in CI
//! on every change; they look for panics and for accepted values that break
//! the rules.

use proptest::prelude::*;
use threatwatch::domain::event::{NewEvent, RawEvent};
use threatwatch::domain::page::{decode_cursor, encode_cursor, Page};
use threatwatch::domain::{id, user, Severity};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn severity() -> impl Strategy<Value = Option<Severity>> {
    prop::option::of(prop::sample::select(Severity::ALL.to_vec()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cursors_round_trip(n in 1i64..=i64::MAX) {
        prop_assert_eq!(decode_cursor("after", &encode_cursor(n)).unwrap(), n);
    }

    #[test]
    fn cursor_decoding_never_panics_and_only_yields_positive_ids(s in ".{0,80}") {
        if let Ok(n) = decode_cursor("after", &s) {
            prop_assert!(n > 0);
        }
    }

    #[test]
    fn ids_round_trip_or_refuse(s in ".{0,40}") {
        match id::parse("id", &s) {
            Ok(n) => prop_assert_eq!(id::format(n).0, n.to_string()),
            Err(e) => prop_assert_eq!(e.code(), "BAD_USER_INPUT"),
        }
    }

    #[test]
    fn page_requests_stay_in_range(
        first in prop::option::of(any::<i32>()),
        last in prop::option::of(any::<i32>()),
        after in prop::option::of(".{0,20}"),
    ) {
        if let Ok(p) = Page::parse(first, after.as_deref(), last, None) {
            prop_assert!((1..=100).contains(&p.size));
            prop_assert!(!(first.is_some() && last.is_some()));
        }
    }

    #[test]
    fn accepted_events_keep_the_rules(
        source in "\\PC{0,120}|[ \\t\\n\\x00-\\x1f]{0,5}",
        event_type in "\\PC{0,120}",
        description in "(?s).{0,200}",
        external_id in prop::option::of("\\PC{0,210}"),
        dedup_key in prop::option::of("\\PC{0,210}"),
        severity in severity(),
    ) {
        let raw = RawEvent { source, event_type, severity, description, external_id, dedup_key };
        match NewEvent::parse(raw, "input.") {
            Ok(e) => {
                for label in [&e.source, &e.event_type] {
                    let n = label.chars().count();
                    prop_assert!((1..=100).contains(&n));
                    prop_assert!(!label.chars().any(char::is_control));
                    prop_assert_eq!(label.trim(), label.as_str());
                }
                prop_assert!(!e.description.trim().is_empty());
                prop_assert!(!e.description.contains('\0'));
                for x in e.external_id.iter().chain(&e.dedup_key) {
                    prop_assert!((1..=200).contains(&x.chars().count()));
                }
            }
            Err(err) => {
                prop_assert_eq!(err.code(), "BAD_USER_INPUT");
                prop_assert!(err.to_string().starts_with("input."), "{}", err);
            }
        }
    }

    #[test]
    fn usernames_and_passwords(name in "\\PC{0,160}", password in "\\PC{0,80}") {
        if let Ok(n) = user::username(&name) {
            prop_assert!((1..=150).contains(&n.chars().count()));
        }
        if let Ok(p) = user::password(&password) {
            prop_assert!(p.chars().count() >= 8 && p.len() <= 72);
        }
    }
}
