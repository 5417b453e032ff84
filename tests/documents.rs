//! Documents an attacker builds, generated up to the size limit, are each
//! answered within 100 ms. Its own test binary: it times requests, so it
//! must not share the machine with the other integration tests.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use helpers::{fan_out, Backend, TestApp};

/// The kinds of document an attacker builds, up to the size limit.
fn hostile_document() -> impl Strategy<Value = String> {
    let cycles = (
        2usize..40,
        prop::collection::vec((0usize..40, 0usize..40), 1..200),
    )
        .prop_map(|(n, edges)| {
            let mut q = String::from("{ ...G0 }");
            for i in 0..n {
                q.push_str(&format!(" fragment G{i} on Query {{ __typename"));
                for (from, to) in &edges {
                    if from % n == i {
                        q.push_str(&format!(" ...G{}", to % n));
                    }
                }
                q.push_str(" }");
            }
            q
        });
    let fans = (1usize..60, 1usize..30).prop_map(|(levels, fan)| fan_out(levels, fan));
    let inline = (1usize..3_000, 1usize..40).prop_map(|(count, nest)| {
        let mut q = String::from("{");
        for i in 0..count {
            let open = if i % 7 == 0 { nest } else { 1 };
            q.push_str(&" ... on Query {".repeat(open));
            q.push_str(" __typename");
            q.push_str(&" }".repeat(open));
        }
        q.push('}');
        q
    });
    let wide_fragments = (1usize..500, 1usize..500).prop_map(|(fields, spreads)| {
        let mut q = String::from("{ me { ");
        q.push_str(&"...U ".repeat(spreads));
        q.push_str("} } fragment U on User { ");
        for i in 0..fields {
            q.push_str(&format!("a{i}: id "));
        }
        q.push('}');
        q
    });
    let nested = (1usize..8_000).prop_map(|depth| {
        let mut q = "{ alerts { nodes { event { alert ".repeat(depth / 40 + 1);
        q.push_str(&"{ id } } } } }".repeat(depth / 40 + 1));
        q
    });
    prop_oneof![cycles, fans, inline, wide_fragments, nested].prop_map(|mut q| {
        q.truncate(15_000);
        q
    })
}

/// Every generated document is answered within 100 ms. A budget of work
/// must hold on a shared, noisy machine too, so each document gets up to
/// three tries and the fastest counts: one slow try is the machine, three
/// are the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_answered_quickly() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin().await;
    let handle = tokio::runtime::Handle::current();
    let app = std::sync::Arc::new(app);
    let (app2, admin2) = (app.clone(), admin.clone());
    tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&hostile_document(), |doc| {
                let fastest = handle.block_on(async {
                    let mut fastest = Duration::MAX;
                    for _ in 0..3 {
                        let started = Instant::now();
                        let body = app2.gql(Some(&admin2), &doc, json!({})).await;
                        fastest = fastest.min(started.elapsed());
                        assert!(
                            body["data"].is_object() || body["errors"].is_array(),
                            "{body}"
                        );
                        if fastest < Duration::from_millis(100) {
                            break;
                        }
                    }
                    fastest
                });
                prop_assert!(
                    fastest < Duration::from_millis(100),
                    "{} characters took {fastest:?}: {}",
                    doc.len(),
                    &doc[..doc.len().min(200)]
                );
                Ok(())
            })
            .unwrap();
    })
    .await
    .unwrap();
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
