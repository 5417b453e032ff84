//! Micro-benchmarks of the pieces every request runs through: the access
//! token check (every authenticated request), event validation (every
//! ingested event), cursor coding (every page), and parsing a 1,000-event
//! `ingestEvents` body (the first thing a batch costs). `bench/run.sh`
//! measures the service as a whole; these say where its time goes.
//!
//!   cargo bench --bench hot

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use threatwatch::auth::token::{TokenKeys, TokenSubject, TokenType};
use threatwatch::domain::event::{NewEvent, RawEvent};
use threatwatch::domain::page::{decode_cursor, encode_cursor};
use threatwatch::domain::{Role, Severity};

fn token(c: &mut Criterion) {
    let keys = TokenKeys::new(
        "a-benchmark-secret-of-decent-length-0123456789",
        Duration::from_secs(900),
        Duration::from_secs(86_400),
    );
    let subject = TokenSubject {
        id: 1,
        username: "analyst",
        role: Role::Analyst,
        session: "session-1",
    };
    let pair = keys
        .issue(&subject, &keys.next_refresh())
        .expect("a token is issued");
    c.bench_function("token/verify access token", |b| {
        b.iter(|| keys.verify(black_box(&pair.access_token), TokenType::Access))
    });
}

fn validation(c: &mut Criterion) {
    let raw = RawEvent {
        source: "fw-edge-01".into(),
        event_type: "Intrusion".into(),
        severity: Some(Severity::High),
        description: "Blocked inbound connection from 203.0.113.7 to port 22".into(),
        external_id: Some("fw-edge-01:884412".into()),
        dedup_key: None,
        occurred_at: None,
    };
    c.bench_function("validation/one event", |b| {
        b.iter(|| NewEvent::parse(black_box(raw.clone()), "input."))
    });
}

fn cursor(c: &mut Criterion) {
    let cursor = encode_cursor(1_234_567);
    c.bench_function("cursor/encode", |b| {
        b.iter(|| encode_cursor(black_box(1_234_567)))
    });
    c.bench_function("cursor/decode", |b| {
        b.iter(|| decode_cursor("after", black_box(&cursor)))
    });
}

fn batch_body(c: &mut Criterion) {
    // The body bench/batch.lua sends.
    let items: Vec<String> = (1..=1000)
        .map(|i| {
            format!(
                r#"{{"source":"bench-{}","eventType":"Intrusion","severity":"{}","description":"benchmark event"}}"#,
                i % 50,
                if i % 4 == 0 { "HIGH" } else { "LOW" }
            )
        })
        .collect();
    let body = format!(
        r#"{{"query":"mutation($i: [IngestEventInput!]!){{ingestEvents(inputs:$i){{event{{id}}}}}}","variables":{{"i":[{}]}}}}"#,
        items.join(",")
    );
    let mut group = c.benchmark_group("request");
    group.throughput(criterion::Throughput::Elements(1000));
    group.bench_function("parse 1000-event ingestEvents body", |b| {
        b.iter(|| serde_json::from_str::<async_graphql::Request>(black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, token, validation, cursor, batch_body);
criterion_main!(benches);
