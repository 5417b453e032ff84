//! What a SENSOR can read. Walks the schema as served (introspection) from
//! every root field and from the ingest payloads, asks for each field with
//! an API key, and fails on any field a sensor gets an answer from that is
//! not on the allow-list below: a field added later without a guard fails
//! here, whatever it is.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use serde_json::{json, Value};

use crate::both;
use crate::helpers::TestApp;

/// Fields a sensor may read: the roots it needs to sign in and ingest, and
/// of what it ingested, the event it sent and its own alert's state.
const ALLOWED: &[&str] = &[
    "Mutation.login",
    "Mutation.refreshToken",
    "Mutation.logout",
    "Mutation.ingestEvent",
    "Mutation.ingestEvents",
    "IngestEventPayload.event",
    "IngestEventPayload.alert",
    "Event.id",
    "Event.source",
    "Event.eventType",
    "Event.severity",
    "Event.description",
    "Event.timestamp",
    "Event.occurredAt",
    "Event.externalId",
    "Event.dedupKey",
    "Event.alert",
    "Alert.id",
    "Alert.status",
    "Alert.severity",
    "Alert.createdAt",
    "Alert.updatedAt",
    "Alert.occurrences",
    "Alert.lastSeenAt",
    "Alert.acknowledgedAt",
    "Alert.resolvedAt",
];

const SCHEMA: &str = "{ __schema { queryType { name } mutationType { name } types { name kind enumValues { name } inputFields { name type { ...T } } fields { name args { name type { ...T } } type { ...T } } } } } fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

struct Schema {
    types: HashMap<String, Value>,
}

impl Schema {
    fn named(t: &Value) -> &Value {
        if t["ofType"].is_null() {
            t
        } else {
            Self::named(&t["ofType"])
        }
    }

    fn fields(&self, ty: &str) -> Vec<Value> {
        self.types[ty]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn is_object(&self, t: &Value) -> bool {
        Self::named(t)["kind"] == "OBJECT"
    }

    /// A literal that passes validation for a type: enough to reach the
    /// field's guard, which runs before the resolver.
    fn literal(&self, t: &Value) -> String {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => self.literal(&t["ofType"]),
            "LIST" => format!("[{}]", self.literal(&t["ofType"])),
            "ENUM" => self.types[t["name"].as_str().unwrap()]["enumValues"][0]["name"]
                .as_str()
                .unwrap()
                .to_string(),
            "INPUT_OBJECT" => {
                let ty = &self.types[t["name"].as_str().unwrap()];
                let fields: Vec<String> = ty["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["type"]["kind"] == "NON_NULL")
                    .map(|f| {
                        format!(
                            "{}: {}",
                            f["name"].as_str().unwrap(),
                            self.literal(&f["type"])
                        )
                    })
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }
            _ => match t["name"].as_str().unwrap() {
                "Int" => "1".into(),
                "Float" => "1.5".into(),
                "Boolean" => "true".into(),
                "DateTime" => "\"2030-01-01T00:00:00Z\"".into(),
                "ID" => "\"1\"".into(),
                _ => "\"x\"".into(),
            },
        }
    }

    /// `name(required: literal, ...)`, with a selection when it is an object.
    fn call(&self, field: &Value) -> String {
        let args: Vec<String> = field["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"]["kind"] == "NON_NULL")
            .map(|a| {
                format!(
                    "{}: {}",
                    a["name"].as_str().unwrap(),
                    self.literal(&a["type"])
                )
            })
            .collect();
        let mut call = field["name"].as_str().unwrap().to_string();
        if !args.is_empty() {
            call.push_str(&format!("({})", args.join(", ")));
        }
        if self.is_object(&field["type"]) {
            call.push_str(" { __typename }");
        }
        call
    }
}

fn forbidden(body: &Value) -> bool {
    body["errors"].as_array().is_some_and(|errors| {
        errors
            .iter()
            .any(|e| e["extensions"]["code"] == "FORBIDDEN")
    })
}

async fn as_sensor(app: &TestApp, key: &str, query: &str) -> Value {
    app.client
        .post(app.url("/graphql"))
        .header("x-api-key", key)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn sensors_read_only_what_they_sent(app: TestApp) {
    let admin = app.admin().await;
    let key = app
        .ok(
            Some(&admin),
            "mutation { createApiKey(name: \"walker\") { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let introspected = app.ok(Some(&admin), SCHEMA, json!({})).await;
    let schema = Schema {
        types: introspected["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
            .collect(),
    };
    // An alert with an analyst's note on it and an owner, so that the
    // guarded fields have something to hide.
    let ingest = "ingestEvent(input: { source: \"walker\", eventType: \"Probe\", severity: HIGH, description: \"walk\", dedupKey: \"walk\", externalId: \"walk-1\" })";
    let first = as_sensor(
        &app,
        &key,
        &format!("mutation {{ {ingest} {{ alert {{ id }} }} }}"),
    )
    .await;
    let alert = first["data"]["ingestEvent"]["alert"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let me = app.ok(Some(&admin), "{ me { id } }", json!({})).await["me"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        Some(&admin),
        &format!("mutation {{ commentOnAlert(id: \"{alert}\", body: \"analyst only\") {{ id }} assignAlert(id: \"{alert}\", assignee: \"{me}\") {{ id }} }}"),
        json!({}),
    )
    .await;

    let mut reachable = BTreeSet::new();
    let mut refused = BTreeSet::new();
    // Every root field, with the least arguments validation accepts.
    for root in ["Query", "Mutation"] {
        let op = if root == "Query" { "query" } else { "mutation" };
        for field in schema.fields(root) {
            let name = format!("{root}.{}", field["name"].as_str().unwrap());
            let body = as_sensor(&app, &key, &format!("{op} {{ {} }}", schema.call(&field))).await;
            if forbidden(&body) {
                refused.insert(name);
            } else {
                reachable.insert(name);
            }
        }
    }
    // Then, breadth first, everything below what the ingest answers.
    let mut queue = VecDeque::from([(
        "IngestEventPayload".to_string(),
        format!("mutation {{ {ingest} {{ "),
        " } }".to_string(),
    )]);
    let mut seen = HashSet::from(["IngestEventPayload".to_string()]);
    while let Some((ty, open, close)) = queue.pop_front() {
        for field in schema.fields(&ty) {
            let name = format!("{ty}.{}", field["name"].as_str().unwrap());
            let body =
                as_sensor(&app, &key, &format!("{open}{}{close}", schema.call(&field))).await;
            if forbidden(&body) {
                refused.insert(name);
                continue;
            }
            assert!(body["errors"].is_null(), "{name}: {body}");
            reachable.insert(name);
            let target = Schema::named(&field["type"])["name"]
                .as_str()
                .unwrap()
                .to_string();
            if schema.is_object(&field["type"]) && seen.insert(target.clone()) {
                let f = field["name"].as_str().unwrap();
                queue.push_back((target, format!("{open}{f} {{ "), format!(" }}{close}")));
            }
        }
    }
    let allowed: BTreeSet<String> = ALLOWED.iter().map(|s| s.to_string()).collect();
    let unexpected: Vec<_> = reachable.difference(&allowed).collect();
    assert!(
        unexpected.is_empty(),
        "a SENSOR can read fields not on the allow-list: {unexpected:?}"
    );
    // The walk did reach what it should, and the fields the issue named are
    // among those refused.
    assert_eq!(reachable, allowed);
    for guarded in [
        "Alert.comments",
        "Alert.assignee",
        "Alert.events",
        "Alert.event",
        "Event.silencedBy",
        "Query.alerts",
    ] {
        assert!(refused.contains(guarded), "{guarded} not refused");
    }
}

both!(sensors_read_only_what_they_sent);
