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

/// Text of about `MAX_DESCRIPTION_CHARS` characters: a random head and
/// tail (multi-byte characters and blanks among them) around a run of one
/// character, so that lengths on both sides of the limit come up cheaply.
fn near_the_limit() -> impl Strategy<Value = String> {
    (
        "[a-z\u{e9}\u{1f600} \n]{0,10}",
        9_980usize..=10_000,
        prop::sample::select(vec!['x', '\u{e9}', '\u{1f600}', ' ']),
        "[a-z\u{e9}\u{1f600} \n]{0,10}",
    )
        .prop_map(|(head, n, c, tail)| {
            let mut s = head;
            s.extend(std::iter::repeat_n(c, n));
            s + &tail
        })
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

    /// Cursors built the way the format is written (URL-safe base64 of
    /// `k1:<number>`) around the edges of the id range: accepted exactly
    /// when the number is a positive i64, refused with the argument's name
    /// otherwise. Compared with an oracle that does its arithmetic in i128.
    #[test]
    fn cursors_accept_exactly_the_positive_ids(
        digits in "-?[0-9]{1,21}",
        prefix in prop::sample::select(vec!["k1:", "k2:", "", "K1:", "k1"]),
    ) {
        use base64::Engine;
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{prefix}{digits}"));
        let expected = digits
            .parse::<i128>()
            .ok()
            .filter(|n| prefix == "k1:" && (1..=i128::from(i64::MAX)).contains(n));
        match decode_cursor("after", &cursor) {
            Ok(n) => prop_assert_eq!(Some(i128::from(n)), expected, "{}", cursor),
            Err(e) => {
                prop_assert_eq!(expected, None, "{} refused", cursor);
                prop_assert_eq!(e.code(), "BAD_USER_INPUT");
                prop_assert!(e.to_string().starts_with("after:"), "{}", e);
            }
        }
    }

    /// Any text: accepted only when it is, apart from surrounding blanks, a
    /// decimal number in 1..=i64::MAX (checked in i128, not with the parser
    /// under test), and then the id printed is that number.
    #[test]
    fn ids_accept_exactly_positive_numbers(s in "[ \t]{0,2}[+-]?[0-9]{0,21}[ \t]{0,2}|.{0,40}") {
        let trimmed = s.trim();
        let unsigned = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let oracle = (!unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()))
            .then(|| {
                unsigned.bytes().try_fold(0i128, |acc, b| {
                    acc.checked_mul(10)?.checked_add(i128::from(b - b'0'))
                })
            })
            .flatten()
            .filter(|n| (1..=i128::from(i64::MAX)).contains(n));
        match id::parse("id", &s) {
            Ok(n) => {
                prop_assert_eq!(Some(i128::from(n)), oracle, "{:?}", s);
                let printed = id::format(n).0;
                prop_assert_eq!(printed.as_str(), unsigned.trim_start_matches('0'));
            }
            Err(e) => {
                prop_assert_eq!(oracle, None, "{:?} refused", s);
                prop_assert_eq!(e.code(), "BAD_USER_INPUT");
            }
        }
    }

    #[test]
    fn ids_round_trip(n in 1i64..=i64::MAX) {
        prop_assert_eq!(id::parse("id", &id::format(n).0).unwrap(), n);
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
        description in prop_oneof!["(?s).{0,200}", near_the_limit()],
        external_id in prop::option::of("\\PC{0,210}"),
        dedup_key in prop::option::of("\\PC{0,210}"),
        severity in severity(),
    ) {
        let raw = RawEvent { source, event_type, severity, description, external_id, dedup_key, occurred_at: None };
        match NewEvent::parse(raw, "input.") {
            Ok(e) => {
                for label in [&e.source, &e.event_type] {
                    let n = label.chars().count();
                    prop_assert!((1..=100).contains(&n));
                    prop_assert!(!label.chars().any(char::is_control));
                    prop_assert_eq!(label.trim(), label.as_str());
                }
                prop_assert!(!e.description.trim().is_empty());
                prop_assert!(e.description.chars().count() <= 10_000);
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

    /// At the description limit: accepted exactly when it has at most
    /// 10,000 characters (counted as characters, not bytes) and is not blank.
    #[test]
    fn descriptions_are_cut_at_the_limit(description in near_the_limit()) {
        let chars = description.chars().count();
        let raw = RawEvent {
            source: "Firewall-1".into(),
            event_type: "Intrusion".into(),
            severity: Some(Severity::High),
            description: description.clone(),
            external_id: None,
            dedup_key: None,
            occurred_at: None,
        };
        match NewEvent::parse(raw, "input.") {
            Ok(e) => {
                prop_assert!(chars <= 10_000, "{} characters accepted", chars);
                prop_assert_eq!(e.description, description);
            }
            Err(err) => {
                prop_assert!(chars > 10_000 || description.trim().is_empty(), "{}", err);
                prop_assert!(err.to_string().starts_with("input.description:"), "{}", err);
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
