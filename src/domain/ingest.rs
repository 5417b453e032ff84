//! The ingest rule, apart from storage: what each event of a batch becomes,
//! given what storage found for the batch before writing anything.
//!
//! - An event whose (source, externalId) was stored before returns that
//!   earlier event; a later event of the batch with the same pair as an
//!   earlier one of the batch returns what that one became.
//! - Every other event is stored. A HIGH or CRITICAL one that a live
//!   silence matches is stored silenced (by the first silence that
//!   matches) and raises nothing.
//! - Any other HIGH or CRITICAL event raises a new alert, unless it carries
//!   a dedupKey: then it folds into the alert not yet RESOLVED for its
//!   (source, dedupKey) if storage has one, else the first such event of
//!   the batch raises the alert and the later ones fold into it.
//!
//! - A repeat of a (source, externalId) pair must be the same event: the
//!   same eventType, severity and description (`conflict`). Otherwise the
//!   batch is refused, so a sensor's CRITICAL event never hides behind an
//!   earlier, different event that claimed its id.
//!
//! Storage reads the earlier events of `external_ids`, plans on that, asks
//! the plan whether silences matter (`Plan::stores_a_raising_event`) and
//! which open alerts to look up (`Plan::raised_keys`), then plans on all it
//! read and writes what the `Plan` says.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use super::event::{EventRecord, NewEvent};
use super::silence::Silence;
use super::Severity;
use crate::error::Error;

/// Values keyed by (source, key): earlier events by their externalId, open
/// alerts by their dedupKey. Looked up with borrowed strings, so planning
/// a batch copies none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairMap<V> {
    by_source: HashMap<String, HashMap<String, V>>,
}

impl<V> Default for PairMap<V> {
    fn default() -> Self {
        Self {
            by_source: HashMap::new(),
        }
    }
}

impl<V> PairMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value for (source, key), returning the one it replaces.
    pub fn insert(
        &mut self,
        source: impl Into<String>,
        key: impl Into<String>,
        value: V,
    ) -> Option<V> {
        self.by_source
            .entry(source.into())
            .or_default()
            .insert(key.into(), value)
    }

    pub fn get(&self, source: &str, key: &str) -> Option<&V> {
        self.by_source.get(source)?.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_source.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_source.values().all(HashMap::is_empty)
    }
}

impl<V, S: Into<String>, K: Into<String>> FromIterator<(S, K, V)> for PairMap<V> {
    fn from_iter<I: IntoIterator<Item = (S, K, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (source, key, value) in iter {
            map.insert(source, key, value);
        }
        map
    }
}

/// What storage found for a batch, before anything is written.
#[derive(Clone, Debug, Default)]
pub struct Found {
    /// (source, externalId) -> the id of the event stored earlier with it.
    pub earlier: PairMap<i64>,
    /// The live silences, in the order storage read them: the first that
    /// matches an event is the one recorded as silencing it.
    pub silences: Vec<Silence>,
    /// (source, dedupKey) -> the id of the alert not yet RESOLVED for it.
    /// Pairs the batch does not ask for are ignored.
    pub open: PairMap<i64>,
}

/// What one event of the batch becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Its (source, externalId) was stored before as this event id: that
    /// event is the answer again (created = false, raised = false).
    Earlier(i64),
    /// It repeats the (source, externalId) of the event at this earlier
    /// index of the batch, which is always a `Store`: the answer is what
    /// that one became (created = false, raised = false).
    SameAs(usize),
    /// It is stored.
    Store(Stored),
}

/// How an event that is stored is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The silence that holds it back; then `alert` is `AlertPlan::None`.
    pub silenced_by: Option<i64>,
    pub alert: AlertPlan,
}

/// The alert a stored event raises or belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertPlan {
    /// None: LOW or MEDIUM, or silenced.
    None,
    /// It raises a new OPEN alert with this many occurrences: itself and
    /// every later event of the batch folding into it (`FoldIntoNew`).
    Raise { occurrences: i64 },
    /// It folds into this alert stored before the batch; `Plan::folds`
    /// counts how many do.
    FoldInto(i64),
    /// It folds into the alert raised by the event at this earlier index of
    /// the batch, whose `Raise` counts it.
    FoldIntoNew(usize),
}

/// Where an event's alert comes from, once the batch is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The new alert raised by the event at this index of the batch.
    New(usize),
    /// An alert stored before the batch.
    Existing(i64),
}

/// What to write for a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// One per event, in the caller's order.
    pub fates: Vec<Fate>,
    /// Alerts stored before the batch that events fold into: alert id ->
    /// how many (its occurrences grow by that, its lastSeenAt moves).
    /// Ordered by id, so storage updates those rows in one order.
    pub folds: BTreeMap<i64, i64>,
}

impl Plan {
    /// Whether any event this plan stores could raise an alert. On a plan
    /// made before the silences were read, this says whether they must be.
    pub fn stores_a_raising_event(&self, batch: &[impl Borrow<NewEvent>]) -> bool {
        self.stored()
            .any(|(i, _)| batch[i].borrow().severity.raises_alert())
    }

    /// The distinct (source, dedupKey) pairs of the alerts this plan
    /// raises, sorted. On a plan made before the open alerts were read,
    /// these are the pairs whose open alert must be looked up.
    pub fn raised_keys<'a>(&self, batch: &'a [impl Borrow<NewEvent>]) -> Vec<(&'a str, &'a str)> {
        let mut pairs: Vec<(&str, &str)> = self
            .raised()
            .filter_map(|(i, _)| {
                let e: &NewEvent = batch[i].borrow();
                Some((e.source.as_str(), e.dedup_key.as_deref()?))
            })
            .collect();
        pairs.sort_unstable();
        pairs
    }

    /// The events to store, in the caller's order, with their index.
    pub fn stored(&self) -> impl Iterator<Item = (usize, &Stored)> + '_ {
        self.fates.iter().enumerate().filter_map(|(i, f)| match f {
            Fate::Store(s) => Some((i, s)),
            _ => None,
        })
    }

    /// The events that raise a new alert, in the caller's order, with their
    /// index and the new alert's occurrences.
    pub fn raised(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.stored().filter_map(|(i, s)| match s.alert {
            AlertPlan::Raise { occurrences } => Some((i, occurrences)),
            _ => None,
        })
    }

    /// The alert the event at `index` belongs to once the batch is written;
    /// a `SameAs` event answers for the one it repeats. `None` for events
    /// without an alert, for an `Earlier` event (its alert is whatever
    /// storage holds for it) and for an index past the batch.
    pub fn alert_of(&self, index: usize) -> Option<Target> {
        match self.fates.get(index)? {
            Fate::Earlier(_) => None,
            Fate::SameAs(first) if *first < index => self.alert_of(*first),
            Fate::SameAs(_) => None,
            Fate::Store(s) => match s.alert {
                AlertPlan::None => None,
                AlertPlan::Raise { .. } => Some(Target::New(index)),
                AlertPlan::FoldInto(id) => Some(Target::Existing(id)),
                AlertPlan::FoldIntoNew(raiser) => Some(Target::New(raiser)),
            },
        }
    }
}

/// What each event of `batch` becomes, given what storage found. Pure: the
/// same batch and findings always give the same plan.
pub fn plan(batch: &[impl Borrow<NewEvent>], found: &Found) -> Plan {
    decide(batch, &found.earlier, &found.silences, &found.open)
}

/// The distinct (source, externalId) pairs of the batch, sorted: the keys
/// of `Found::earlier`.
pub fn external_ids(batch: &[impl Borrow<NewEvent>]) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = batch
        .iter()
        .map(Borrow::borrow)
        .filter_map(|e: &NewEvent| Some((e.source.as_str(), e.external_id.as_deref()?)))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The distinct sources and the distinct keys of `pairs`, each sorted: the
/// two lists of a `source IN (..) AND key IN (..)` query. That query may
/// also find pairs that were not asked for; `plan` ignores those.
pub fn sources_and_keys<'a>(pairs: &[(&'a str, &'a str)]) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut sources: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let mut keys: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    sources.sort_unstable();
    sources.dedup();
    keys.sort_unstable();
    keys.dedup();
    (sources, keys)
}

/// What must match for a repeat of a (source, externalId) pair to be the
/// same event. The time it was sent and its dedupKey may differ: a sensor
/// resending after a timeout sends the same event again, perhaps with a
/// later time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Content<'a> {
    pub event_type: &'a str,
    pub severity: Severity,
    pub description: &'a str,
}

impl<'a> Content<'a> {
    pub fn of(e: &'a NewEvent) -> Self {
        Self {
            event_type: &e.event_type,
            severity: e.severity,
            description: &e.description,
        }
    }

    pub fn of_stored(e: &'a EventRecord) -> Self {
        Self {
            event_type: &e.event_type,
            severity: e.severity,
            description: &e.description,
        }
    }

    /// The fields (by their API names) in which `other` differs.
    fn differences(&self, other: &Content<'_>) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if self.event_type != other.event_type {
            differ.push("eventType");
        }
        if self.severity != other.severity {
            differ.push("severity");
        }
        if self.description != other.description {
            differ.push("description");
        }
        differ
    }
}

/// The event a conflicting repeat collides with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claimed {
    /// Stored before the batch, as this event id.
    Stored(i64),
    /// The event at this earlier index of the same batch.
    InBatch(usize),
}

/// An event of a batch that repeats a (source, externalId) pair with other
/// content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The repeating event's index in the batch.
    pub index: usize,
    pub source: String,
    pub external_id: String,
    pub claimed: Claimed,
    /// The fields that differ, by their API names.
    pub differs: Vec<&'static str>,
}

/// The first event of `batch` that repeats a (source, externalId) pair,
/// stored before (`stored` finds that event) or earlier in the batch, with
/// a different eventType, severity or description.
pub fn conflict<'s>(
    batch: &[impl Borrow<NewEvent>],
    stored: impl Fn(&str, &str) -> Option<(i64, Content<'s>)>,
) -> Option<Conflict> {
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, e) in batch.iter().map(Borrow::borrow).enumerate() {
        let e: &NewEvent = e;
        let Some(external_id) = e.external_id.as_deref() else {
            continue;
        };
        let source = e.source.as_str();
        let (claimed, differs) = if let Some((id, earlier)) = stored(source, external_id) {
            (Claimed::Stored(id), earlier.differences(&Content::of(e)))
        } else {
            match first_of.entry((source, external_id)) {
                Entry::Occupied(first) => {
                    let first = *first.get();
                    let earlier = Content::of(batch[first].borrow());
                    (
                        Claimed::InBatch(first),
                        earlier.differences(&Content::of(e)),
                    )
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    continue;
                }
            }
        };
        if !differs.is_empty() {
            return Some(Conflict {
                index: i,
                source: source.to_owned(),
                external_id: external_id.to_owned(),
                claimed,
                differs,
            });
        }
    }
    None
}

impl From<Conflict> for Error {
    /// The client is told that the pair is taken by another event, not how
    /// that event differs: the caller may not be the sensor that sent it.
    /// The audit log, which only admins read, gets the whole story.
    fn from(c: Conflict) -> Self {
        let rule = format!(
            "{:?} was already used by {:?} for a different event (another eventType, \
             severity or description); a repeat must be the same event, and a new \
             event needs a new externalId",
            c.external_id, c.source
        );
        let with = match c.claimed {
            Claimed::Stored(id) => serde_json::json!({ "storedEvent": id.to_string() }),
            Claimed::InBatch(i) => serde_json::json!({ "sameBatchIndex": i }),
        };
        let detail = serde_json::json!({
            "source": c.source,
            "externalId": c.external_id,
            "differs": c.differs,
            "claimedBy": with,
        })
        .to_string();
        Error::EventConflict {
            index: c.index,
            rule,
            detail,
        }
    }
}

/// The rule itself, over the parts of `Found`.
fn decide(
    batch: &[impl Borrow<NewEvent>],
    earlier: &PairMap<i64>,
    silences: &[Silence],
    open: &PairMap<i64>,
) -> Plan {
    let mut fates: Vec<Fate> = Vec::with_capacity(batch.len());
    let mut folds: BTreeMap<i64, i64> = BTreeMap::new();
    // (source, externalId) -> the first event of the batch stored with it.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    // (source, dedupKey) -> the event of the batch raising its new alert.
    let mut raiser_of: HashMap<(&str, &str), usize> = HashMap::new();

    for (i, e) in batch.iter().map(Borrow::borrow).enumerate() {
        let e: &NewEvent = e;
        let source = e.source.as_str();
        if let Some(external_id) = e.external_id.as_deref() {
            if let Some(&id) = earlier.get(source, external_id) {
                fates.push(Fate::Earlier(id));
                continue;
            }
            match first_of.entry((source, external_id)) {
                Entry::Occupied(first) => {
                    fates.push(Fate::SameAs(*first.get()));
                    continue;
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }

        let silenced_by = if e.severity.raises_alert() {
            silences.iter().find(|s| s.matches(e)).map(|s| s.id)
        } else {
            None
        };
        let alert = if !e.severity.raises_alert() || silenced_by.is_some() {
            AlertPlan::None
        } else if let Some(key) = e.dedup_key.as_deref() {
            if let Some(&id) = open.get(source, key) {
                *folds.entry(id).or_default() += 1;
                AlertPlan::FoldInto(id)
            } else {
                match raiser_of.entry((source, key)) {
                    Entry::Occupied(raiser) => {
                        let raiser = *raiser.get();
                        if let Some(Fate::Store(Stored {
                            alert: AlertPlan::Raise { occurrences },
                            ..
                        })) = fates.get_mut(raiser)
                        {
                            *occurrences += 1;
                        }
                        AlertPlan::FoldIntoNew(raiser)
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        AlertPlan::Raise { occurrences: 1 }
                    }
                }
            }
        } else {
            AlertPlan::Raise { occurrences: 1 }
        };
        fates.push(Fate::Store(Stored { silenced_by, alert }));
    }
    Plan { fates, folds }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Severity;
    use proptest::prelude::*;

    fn event(
        source: &str,
        severity: Severity,
        external_id: Option<&str>,
        dedup_key: Option<&str>,
    ) -> NewEvent {
        NewEvent {
            source: source.into(),
            event_type: "scan".into(),
            severity,
            description: "d".into(),
            external_id: external_id.map(str::to_string),
            dedup_key: dedup_key.map(str::to_string),
            occurred_at: None,
        }
    }

    fn high(source: &str, dedup_key: Option<&str>) -> NewEvent {
        event(source, Severity::High, None, dedup_key)
    }

    fn store(silenced_by: Option<i64>, alert: AlertPlan) -> Fate {
        Fate::Store(Stored { silenced_by, alert })
    }

    fn silence(id: i64, source: Option<&str>, severity: Option<Severity>) -> Silence {
        Silence {
            id,
            source: source.map(str::to_string),
            event_type: None,
            severity,
            dedup_key: None,
        }
    }

    const RAISE: AlertPlan = AlertPlan::Raise { occurrences: 1 };

    #[test]
    fn a_repeat_with_other_content_conflicts() {
        let first = event("fw", Severity::Low, Some("x"), None);
        let stored = EventRecord {
            id: 42,
            source: "fw".into(),
            event_type: "scan".into(),
            severity: Severity::Low,
            description: "d".into(),
            created_at: crate::domain::now(),
            external_id: Some("x".into()),
            alert_id: None,
            dedup_key: None,
            silenced_by: None,
            occurred_at: None,
        };
        let none = |_: &str, _: &str| None;
        let found =
            |s: &str, x: &str| (s == "fw" && x == "x").then(|| (42, Content::of_stored(&stored)));
        // The same event again, stored or in the batch, is no conflict; nor
        // is the same externalId under another source.
        assert_eq!(conflict(std::slice::from_ref(&first), found), None);
        assert_eq!(conflict(&[first.clone(), first.clone()], none), None);
        assert_eq!(
            conflict(
                &[first.clone(), event("ids", Severity::High, Some("x"), None)],
                none
            ),
            None
        );
        let critical = event("fw", Severity::Critical, Some("x"), None);
        let c = conflict(
            &[
                event("fw", Severity::Low, Some("y"), None),
                critical.clone(),
            ],
            found,
        )
        .unwrap();
        assert_eq!(
            (c.index, c.claimed, c.differs),
            (1, Claimed::Stored(42), vec!["severity"])
        );
        let other = NewEvent {
            event_type: "malware".into(),
            description: "other".into(),
            ..first.clone()
        };
        let c = conflict(&[first.clone(), other], none).unwrap();
        assert_eq!(
            (c.index, c.claimed, c.differs),
            (1, Claimed::InBatch(0), vec!["eventType", "description"])
        );
        let err = Error::from(conflict(&[critical], found).unwrap());
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert!(!err.to_string().contains("LOW"), "{err}");
    }

    #[test]
    fn an_external_id_stored_before_returns_that_event() {
        let batch = [
            event("fw", Severity::High, Some("x"), None),
            event("fw", Severity::High, Some("x"), None),
            event("ids", Severity::High, Some("x"), None),
        ];
        let found = Found {
            earlier: [("fw", "x", 7)].into_iter().collect(),
            ..Found::default()
        };
        let p = plan(&batch, &found);
        // The same externalId under another source is another event.
        assert_eq!(
            p.fates,
            [Fate::Earlier(7), Fate::Earlier(7), store(None, RAISE)]
        );
    }

    #[test]
    fn a_repeat_within_the_batch_returns_what_the_first_became() {
        let batch = [
            event("fw", Severity::Low, Some("x"), None),
            event("fw", Severity::Critical, Some("y"), None),
            event("fw", Severity::High, Some("x"), None),
            event("fw", Severity::Low, Some("y"), None),
        ];
        let p = plan(&batch, &Found::default());
        assert_eq!(
            p.fates,
            [
                store(None, AlertPlan::None),
                store(None, RAISE),
                Fate::SameAs(0),
                Fate::SameAs(1),
            ]
        );
        assert_eq!(p.alert_of(3), Some(Target::New(1)));
        assert_eq!(p.alert_of(2), None);
    }

    #[test]
    fn the_first_matching_silence_holds_back_raising_events_only() {
        let batch = [
            high("fw", None),
            event("fw", Severity::Medium, None, None),
            high("ids", Some("k")),
        ];
        let found = Found {
            silences: vec![
                silence(3, Some("ids"), Some(Severity::Critical)),
                silence(4, Some("fw"), None),
                silence(5, None, None),
            ],
            ..Found::default()
        };
        let p = plan(&batch, &found);
        assert_eq!(
            p.fates,
            [
                store(Some(4), AlertPlan::None),
                store(None, AlertPlan::None),
                store(Some(5), AlertPlan::None),
            ]
        );
        assert_eq!(p.raised().count(), 0);
    }

    #[test]
    fn events_without_a_key_each_raise() {
        let batch = [high("fw", None), high("fw", None)];
        let p = plan(&batch, &Found::default());
        assert_eq!(p.fates, [store(None, RAISE), store(None, RAISE)]);
        assert!(p.folds.is_empty());
    }

    #[test]
    fn repeats_of_a_key_fold_into_the_first_of_the_batch() {
        let batch = [
            high("fw", Some("k")),
            high("fw", Some("k")),
            high("ids", Some("k")),
            event("fw", Severity::Critical, None, Some("k")),
        ];
        let p = plan(&batch, &Found::default());
        assert_eq!(
            p.fates,
            [
                store(None, AlertPlan::Raise { occurrences: 3 }),
                store(None, AlertPlan::FoldIntoNew(0)),
                store(None, RAISE),
                store(None, AlertPlan::FoldIntoNew(0)),
            ]
        );
        assert_eq!(p.raised().collect::<Vec<_>>(), [(0, 3), (2, 1)]);
        assert_eq!(p.alert_of(3), Some(Target::New(0)));
    }

    #[test]
    fn repeats_of_an_open_alert_fold_into_it() {
        let batch = [
            high("fw", Some("k")),
            high("fw", Some("k")),
            high("fw", Some("j")),
        ];
        let found = Found {
            open: [("fw", "k", 40)].into_iter().collect(),
            ..Found::default()
        };
        let p = plan(&batch, &found);
        assert_eq!(
            p.fates,
            [
                store(None, AlertPlan::FoldInto(40)),
                store(None, AlertPlan::FoldInto(40)),
                store(None, RAISE),
            ]
        );
        assert_eq!(p.folds, BTreeMap::from([(40, 2)]));
        assert_eq!(p.alert_of(1), Some(Target::Existing(40)));
    }

    #[test]
    fn lookups_ask_only_for_what_the_rule_reads() {
        let batch = [
            event("fw", Severity::High, Some("x"), Some("k")),
            event("fw", Severity::Low, Some("y"), Some("j")),
            event("ids", Severity::High, None, Some("k")),
            event("ids", Severity::High, None, Some("k")),
            event("fw", Severity::High, Some("x"), Some("m")),
        ];
        assert_eq!(external_ids(&batch), [("fw", "x"), ("fw", "y")]);

        // What storage asks a plan made on what it has read so far.
        fn asks<'a>(
            earlier: &PairMap<i64>,
            silences: &[Silence],
            batch: &'a [NewEvent],
        ) -> (bool, Vec<(&'a str, &'a str)>) {
            let read = Found {
                earlier: earlier.clone(),
                silences: silences.to_vec(),
                open: PairMap::new(),
            };
            let draft = plan(batch, &read);
            (
                draft.stores_a_raising_event(batch),
                draft.raised_keys(batch),
            )
        }
        let mut earlier = PairMap::new();
        let (needs_silences, open_keys) = asks(&earlier, &[], &batch);
        assert!(needs_silences);
        assert_eq!(open_keys, [("fw", "k"), ("ids", "k")]);
        // The event silenced and the one returned again need no alert.
        earlier.insert("fw", "x", 1);
        let silences = [silence(2, Some("ids"), None)];
        assert!(asks(&earlier, &silences, &batch).1.is_empty());

        let only_low = [event("fw", Severity::Low, None, Some("k"))];
        assert!(!asks(&PairMap::new(), &[], &only_low).0);
        let stored_before = [event("fw", Severity::High, Some("x"), None)];
        assert!(!asks(&earlier, &[], &stored_before).0);

        let pairs = [("fw", "k"), ("ids", "k"), ("ids", "m")];
        assert_eq!(
            sources_and_keys(&pairs),
            (vec!["fw", "ids"], vec!["k", "m"])
        );
    }

    #[test]
    fn pair_maps_key_by_both_halves() {
        let mut m: PairMap<i64> = PairMap::new();
        assert!(m.is_empty());
        assert_eq!(m.insert("a", "b", 1), None);
        assert_eq!(m.insert("a", "b", 2), Some(1));
        m.insert("ab", "", 3);
        assert_eq!(m.get("a", "b"), Some(&2));
        assert_eq!(m.get("ab", ""), Some(&3));
        assert_eq!(m.get("a", ""), None);
        assert_eq!(m.len(), 2);
    }

    // Small alphabets, so that repeats of sources, keys and externalIds,
    // earlier events, open alerts and matching silences all come up often.
    const SOURCES: [&str; 2] = ["fw", "ids"];
    const TYPES: [&str; 2] = ["scan", "login"];
    const EXTERNAL_IDS: [&str; 3] = ["x1", "x2", "x3"];
    const KEYS: [&str; 2] = ["k1", "k2"];

    fn pick(of: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::sample::select(of).prop_map(str::to_string)
    }

    fn severity() -> impl Strategy<Value = Severity> {
        prop::sample::select(Severity::ALL)
    }

    fn any_event() -> impl Strategy<Value = NewEvent> {
        (
            pick(&SOURCES),
            pick(&TYPES),
            severity(),
            prop::option::of(pick(&EXTERNAL_IDS)),
            prop::option::of(pick(&KEYS)),
        )
            .prop_map(
                |(source, event_type, severity, external_id, dedup_key)| NewEvent {
                    source,
                    event_type,
                    severity,
                    description: "d".into(),
                    external_id,
                    dedup_key,
                    occurred_at: None,
                },
            )
    }

    fn pairs(
        keys: &'static [&'static str],
        ids: std::ops::Range<i64>,
    ) -> impl Strategy<Value = PairMap<i64>> {
        prop::collection::vec((pick(&SOURCES), pick(keys), ids), 0..4)
            .prop_map(|entries| entries.into_iter().collect())
    }

    fn any_silence() -> impl Strategy<Value = Silence> {
        (
            1i64..1_000,
            prop::option::weighted(0.7, pick(&SOURCES)),
            prop::option::weighted(0.5, pick(&TYPES)),
            prop::option::weighted(0.5, severity()),
            prop::option::weighted(0.3, pick(&KEYS)),
        )
            .prop_map(|(id, source, event_type, severity, dedup_key)| Silence {
                id,
                source,
                event_type,
                severity,
                dedup_key,
            })
    }

    fn any_found() -> impl Strategy<Value = Found> {
        (
            pairs(&EXTERNAL_IDS, 1..1_000),
            prop::collection::vec(any_silence(), 0..3),
            pairs(&KEYS, 1..5),
        )
            .prop_map(|(earlier, silences, open)| Found {
                earlier,
                silences,
                open,
            })
    }

    fn case() -> impl Strategy<Value = (Vec<NewEvent>, Found)> {
        (prop::collection::vec(any_event(), 0..24), any_found())
    }

    fn stored(p: &Plan, i: usize) -> Option<&Stored> {
        match &p.fates[i] {
            Fate::Store(s) => Some(s),
            _ => None,
        }
    }

    fn key_of(e: &NewEvent) -> Option<(&str, &str)> {
        Some((e.source.as_str(), e.dedup_key.as_deref()?))
    }

    proptest! {
        // Default case count; no regression files written into the tree.
        #![proptest_config(ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn fates_answer_each_event_in_the_callers_order((batch, found) in case()) {
            let p = plan(&batch, &found);
            prop_assert_eq!(p.fates.len(), batch.len());
            for (i, e) in batch.iter().enumerate() {
                let ext = e.external_id.as_deref();
                let before = ext.and_then(|x| found.earlier.get(&e.source, x));
                let first = (0..i).find(|&j| {
                    batch[j].source == e.source && ext.is_some() && batch[j].external_id.as_deref() == ext
                });
                match (&p.fates[i], before, first) {
                    (Fate::Earlier(id), Some(b), _) => prop_assert_eq!(id, b),
                    (Fate::SameAs(j), None, Some(f)) => {
                        prop_assert_eq!(*j, f);
                        prop_assert!(stored(&p, f).is_some());
                    }
                    (Fate::Store(_), None, None) => {}
                    (fate, _, _) => prop_assert!(false, "event {} became {:?}", i, fate),
                }
            }
        }

        #[test]
        fn a_batch_raises_at_most_one_alert_per_source_and_key((batch, found) in case()) {
            let p = plan(&batch, &found);
            let mut raised = std::collections::HashSet::new();
            for (i, _) in p.raised() {
                if let Some((source, key)) = key_of(&batch[i]) {
                    prop_assert!(raised.insert((source, key)), "two alerts for {}/{}", source, key);
                    prop_assert!(found.open.get(source, key).is_none(), "{} has an open alert", key);
                }
            }
        }

        #[test]
        fn silenced_events_plan_no_alert_and_others_that_raise_do((batch, found) in case()) {
            let p = plan(&batch, &found);
            for (i, s) in p.stored() {
                let e = &batch[i];
                let first_match = found.silences.iter().find(|s| s.matches(e)).map(|s| s.id);
                if !e.severity.raises_alert() {
                    prop_assert_eq!(s, &Stored { silenced_by: None, alert: AlertPlan::None });
                } else if s.silenced_by.is_some() {
                    prop_assert_eq!(s.silenced_by, first_match);
                    prop_assert_eq!(&s.alert, &AlertPlan::None);
                } else {
                    prop_assert_eq!(first_match, None);
                    prop_assert_ne!(&s.alert, &AlertPlan::None);
                }
            }
        }

        #[test]
        fn folds_point_at_an_alert_of_the_same_source_and_key((batch, found) in case()) {
            let p = plan(&batch, &found);
            let mut into_new: HashMap<usize, i64> = HashMap::new();
            let mut into_existing: BTreeMap<i64, i64> = BTreeMap::new();
            for (i, s) in p.stored() {
                match s.alert {
                    AlertPlan::FoldIntoNew(r) => {
                        prop_assert!(r < i);
                        let raises = matches!(
                            stored(&p, r).map(|s| &s.alert),
                            Some(AlertPlan::Raise { .. })
                        );
                        prop_assert!(raises, "{} folds into {}, which raises nothing", i, r);
                        prop_assert!(key_of(&batch[i]).is_some());
                        prop_assert_eq!(key_of(&batch[r]), key_of(&batch[i]));
                        *into_new.entry(r).or_default() += 1;
                    }
                    AlertPlan::FoldInto(id) => {
                        let (source, key) = key_of(&batch[i]).unwrap_or_default();
                        prop_assert_eq!(found.open.get(source, key), Some(&id));
                        *into_existing.entry(id).or_default() += 1;
                    }
                    AlertPlan::Raise { .. } | AlertPlan::None => {}
                }
                prop_assert_eq!(
                    p.alert_of(i),
                    match s.alert {
                        AlertPlan::None => None,
                        AlertPlan::Raise { .. } => Some(Target::New(i)),
                        AlertPlan::FoldInto(id) => Some(Target::Existing(id)),
                        AlertPlan::FoldIntoNew(r) => Some(Target::New(r)),
                    }
                );
            }
            for (r, occurrences) in p.raised() {
                prop_assert_eq!(occurrences, 1 + into_new.get(&r).copied().unwrap_or(0));
            }
            prop_assert_eq!(&p.folds, &into_existing);
        }

        /// A LOW or MEDIUM event that is stored has no alert. (One that
        /// repeats the externalId of a HIGH one answers with what that one
        /// became, alert included, as it always did.)
        #[test]
        fn low_and_medium_never_plan_alerts((batch, found) in case()) {
            let p = plan(&batch, &found);
            for (i, s) in p.stored() {
                if !batch[i].severity.raises_alert() {
                    prop_assert_eq!(p.alert_of(i), None);
                    prop_assert_eq!(&s.alert, &AlertPlan::None);
                    prop_assert_eq!(s.silenced_by, None);
                }
            }
        }

        /// Storage that reads only what its partial plans ask for gets the
        /// plan it would get by reading everything.
        #[test]
        fn the_lookups_read_all_the_plan_needs((batch, found) in case()) {
            let full = plan(&batch, &found);
            let asked = external_ids(&batch);
            let earlier: PairMap<i64> = asked
                .iter()
                .filter_map(|&(s, x)| Some((s, x, *found.earlier.get(s, x)?)))
                .collect();
            // As storage does: plan on what was read, ask the plan what to
            // read next.
            let mut read = Found { earlier, ..Found::default() };
            if plan(&batch, &read).stores_a_raising_event(&batch) {
                read.silences = found.silences.clone();
            }
            read.open = plan(&batch, &read)
                .raised_keys(&batch)
                .iter()
                .filter_map(|&(s, k)| Some((s, k, *found.open.get(s, k)?)))
                .collect();
            prop_assert_eq!(plan(&batch, &read), full);
        }
    }
}
