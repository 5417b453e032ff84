//! Budgets of work on documents: whatever a client sends, its analysis is
//! linear in the document's size, and what it may ask to run is bounded.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, fan_out, TestApp};

/// A request that does not come back in this long has hung the server; it
/// is a guard against a hang, not a measure of speed.
const HANG: Duration = Duration::from_secs(20);

async fn post(app: &TestApp, token: Option<&str>, query: &str) -> Value {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = tokio::time::timeout(HANG, req.send())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer within {HANG:?}: {}",
                &query[..query.len().min(120)]
            )
        })
        .expect("request sent");
    resp.json().await.expect("JSON body")
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

async fn healthy(app: &TestApp) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

async fn fragment_bombs_are_refused_at_once(app: TestApp) {
    let admin = app.admin().await;
    // The 80 bytes: a fragment that spreads itself ten times.
    let cyclic = "{...F} fragment F on Query {...F ...F ...F ...F ...F ...F ...F ...F ...F ...F}";
    for token in [None, Some(admin.as_str())] {
        for _ in 0..3 {
            let body = post(&app, token, cyclic).await;
            assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
            assert!(message(&body).contains("spreads itself"), "{body}");
        }
        let body = post(&app, token, &fan_out(20, 10)).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert!(message(&body).contains("selections"), "{body}");
    }
    // A cycle among fragments no operation uses is refused too.
    let unused = "{ __typename } fragment A on Query { ...B } fragment B on Query { ...A }";
    let body = post(&app, Some(&admin), unused).await;
    assert!(message(&body).contains("spreads itself"), "{body}");
    // A chain too deep for async-graphql's recursion limit, refused before
    // anything walks it.
    let mut chain = String::from("{ ...C0 }");
    for i in 0..200 {
        chain.push_str(&format!(" fragment C{i} on Query {{ ...C{} }}", i + 1));
    }
    chain.push_str(" fragment C200 on Query { __typename }");
    let body = post(&app, Some(&admin), &chain).await;
    assert!(message(&body).contains("nested more than 32"), "{body}");
    // Brackets nested past what the parser should recurse through.
    let body = post(&app, Some(&admin), &"{ a ".repeat(3_000)).await;
    assert!(message(&body).contains("brackets nested"), "{body}");
    healthy(&app).await;
}

async fn lists_cost_their_size(app: TestApp) {
    let admin = app.admin().await;
    // The example: events inside alerts inside events, 100 each.
    let mut q = String::from("id");
    for _ in 0..3 {
        q = format!("events(first: 100) {{ nodes {{ alert {{ {q} }} }} }}");
    }
    let body = post(&app, Some(&admin), &format!("{{ {q} }}")).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(message(&body).contains("worst case"), "{body}");
    // The same through a variable, and with the default page size.
    let body = app
        .gql(
            Some(&admin),
            "query($n: Int) { alerts(first: $n) { nodes { events(first: $n) { nodes { alert { events(first: $n) { nodes { id } } } } } } } }",
            json!({ "n": 100 }),
        )
        .await;
    assert!(message(&body).contains("worst case"), "{body}");
    let body = post(
        &app,
        Some(&admin),
        "{ alerts { nodes { events { nodes { alert { events { nodes { alert { comments { nodes { id body author createdAt } } } } } } } } } } }",
    )
    .await;
    assert!(message(&body).contains("worst case"), "{body}");
    // What the README and a console page ask for fits.
    let every_alert_field = "id status severity createdAt updatedAt occurrences lastSeenAt acknowledgedAt resolvedAt assignee { id username role createdAt } event { id source eventType severity description timestamp externalId dedupKey }";
    for fits in [
        format!("{{ alerts(first: 100) {{ totalCount edges {{ cursor node {{ {every_alert_field} }} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }} }} }}"),
        format!("{{ alerts(first: 20) {{ nodes {{ {every_alert_field} events(first: 10) {{ totalCount nodes {{ id timestamp }} }} comments(first: 10) {{ nodes {{ author body createdAt }} }} }} }} }}"),
        "{ a: alerts(severity: CRITICAL, first: 100) { totalCount } b: alerts(status: OPEN, first: 100) { totalCount nodes { id } } alertStats { total byStatus { status count } bySeverity { severity count } } }".to_string(),
        "{ auditLog(first: 100) { nodes { id at action actor targetType targetId detail ip } } users(first: 100) { nodes { id username role createdAt } } silences { id source comment endsAt } apiKeys { id name lastUsedAt revokedAt } }".to_string(),
    ] {
        let body = post(&app, Some(&admin), &fits).await;
        assert!(body["errors"].is_null(), "{fits}: {body}");
    }
    // A batch of the largest size asking for every field of its payload.
    let payload = "event { id source eventType severity description timestamp externalId dedupKey } alert { id status severity createdAt updatedAt occurrences lastSeenAt acknowledgedAt resolvedAt }";
    let inputs: Vec<Value> = (0..1_000)
        .map(|i| json!({ "source": "S", "eventType": "X", "severity": "LOW", "description": format!("e{i}") }))
        .collect();
    let body = app
        .gql(
            Some(&admin),
            &format!(
                "mutation($i: [IngestEventInput!]!) {{ ingestEvents(inputs: $i) {{ {payload} }} }}"
            ),
            json!({ "i": inputs }),
        )
        .await;
    assert!(body["errors"].is_null(), "{}", &body.to_string()[..300]);
    assert_eq!(
        body["data"]["ingestEvents"].as_array().unwrap().len(),
        1_000
    );
}

/// graphql-js 16's `getIntrospectionQuery(options)`, which GraphiQL,
/// Apollo and codegen tools send, rebuilt from its options; graphql-core's
/// `get_introspection_query` asks the same. `type_depth` is the `ofType`
/// chain: 7 in graphql-js 16 and graphql-core 3.2, 9 in graphql-js 17.
fn introspection_query(all_options: bool, type_depth: usize) -> String {
    let opt = |s: &'static str| if all_options { s } else { "" };
    let input_deprecation = opt("(includeDeprecated: true)");
    let mut of_type = String::new();
    for _ in 0..type_depth {
        of_type = format!("ofType {{ kind name {of_type} }}");
    }
    format!(
        "query IntrospectionQuery {{
          __schema {{
            {schema_description}
            queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
            types {{ ...FullType }}
            directives {{
              name description {repeatable} locations
              args{input_deprecation} {{ ...InputValue }}
            }}
          }}
        }}
        fragment FullType on __Type {{
          kind name description {specified_by}
          fields(includeDeprecated: true) {{
            name description
            args{input_deprecation} {{ ...InputValue }}
            type {{ ...TypeRef }}
            isDeprecated deprecationReason
          }}
          inputFields{input_deprecation} {{ ...InputValue }}
          interfaces {{ ...TypeRef }}
          enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
          possibleTypes {{ ...TypeRef }}
        }}
        fragment InputValue on __InputValue {{
          name description type {{ ...TypeRef }} defaultValue {value_deprecation}
        }}
        fragment TypeRef on __Type {{ kind name {of_type} }}",
        schema_description = opt("description"),
        repeatable = opt("isRepeatable"),
        specified_by = opt("specifiedByURL"),
        value_deprecation = opt("isDeprecated deprecationReason"),
    )
}

async fn tools_can_introspect(app: TestApp) {
    for (all, depth) in [(false, 7), (true, 7), (false, 9), (true, 9)] {
        let q = introspection_query(all, depth);
        // Anonymous, as GraphiQL asks before anyone signs in.
        let body = post(&app, None, &q).await;
        assert!(
            body["errors"].is_null(),
            "options {all}, depth {depth}: {body}"
        );
        let types = body["data"]["__schema"]["types"].as_array().unwrap();
        assert!(types.iter().any(|t| t["name"] == "Alert"));
    }
    // Introspection in bad faith: answers that grow with the nesting.
    for q in [
        "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }",
        "{ __type(name: \"Alert\") { fields { type { ofType { fields { name } } } } } }",
        "{ a: __schema { types { name } } b: __schema { types { name } } }",
    ] {
        let body = post(&app, None, q).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{q}: {body}");
    }
}

async fn arguments_and_errors_are_budgeted(app: TestApp) {
    let admin = app.admin().await;
    // More arguments than any field has: validation compares the arguments
    // of same-named fields pairwise.
    let args: Vec<String> = (0..17).map(|i| format!("a{i}: 1")).collect();
    let body = post(
        &app,
        Some(&admin),
        &format!("{{ me({}) {{ id }} }}", args.join(", ")),
    )
    .await;
    assert!(message(&body).contains("17 arguments"), "{body}");
    // Hundreds of operations spreading one fragment full of variables:
    // validation checks each variable of the fragment for each operation.
    let vars: Vec<String> = (0..1_000).map(|i| format!("$v{i}")).collect();
    let mut q = format!(
        "fragment F on Query {{ me(x: [{}]) {{ id }} }}",
        vars.join(" ")
    );
    let mut n = 0;
    while q.len() < 14_900 {
        q.push_str(&format!(" query q{n} {{ ...F }}"));
        n += 1;
    }
    let body = post(&app, None, &q).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(message(&body).contains("argument values"), "{body}");
    // A document within every budget can still earn an error per field:
    // the answer carries a bounded number of them.
    let unknown: String = (0..300).map(|i| format!(" f{i}")).collect();
    let body = post(&app, Some(&admin), &format!("{{{unknown} }}")).await;
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), threatwatch::graphql::errors::MAX_ERRORS + 1);
    assert!(errors.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("250 more errors"));
    healthy(&app).await;
}

both!(
    arguments_and_errors_are_budgeted,
    fragment_bombs_are_refused_at_once,
    lists_cost_their_size,
    tools_can_introspect
);
