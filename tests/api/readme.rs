//! Runs the README's examples against a real server, in order, so that no
//! example can rot: every fenced block marked `sh example` is read as the
//! small shell dialect the README describes (`gql '…'`, `sensor '…'`,
//! `NAME=$(… | jq -r .path)`, `NAME=value`, comments, `# expect: CODE`),
//! and a call that fails names its README line. A `json ws-example` block
//! holds WebSocket messages, sent in order on one socket; the test then
//! raises the alert they subscribe to and waits for it.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{TestApp, ADMIN_PASSWORD};
use crate::live::{connect, recv, send};

/// A call of `gql` or `sensor`, with the README line it starts on.
struct Call {
    line: usize,
    sensor: bool,
    body: String,
}

/// What one statement of an example block does.
enum Step {
    Call(Call, Option<Capture>),
    /// `NAME=$(echo "$FROM" | jq -r PATH)`
    Extract {
        name: String,
        from: String,
        path: String,
    },
    Set {
        name: String,
        value: String,
    },
    Expect(String),
}

/// Where a call's answer goes: a variable, whole or one value of it.
struct Capture {
    name: String,
    path: Option<String>,
}

/// An example block: shell calls, or WebSocket messages.
struct Block {
    socket: bool,
    lines: Vec<(usize, String)>,
}

/// The example blocks of `text`, each line with its number.
fn example_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut other_fence = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let fence = line.trim_start().starts_with("```");
        let start = |socket| {
            Some(Block {
                socket,
                lines: Vec::new(),
            })
        };
        match (&mut current, fence) {
            (Some(_), true) => blocks.extend(current.take()),
            (Some(block), false) => block.lines.push((n, line.to_string())),
            (None, true) if line.trim() == "```sh example" => current = start(false),
            (None, true) if line.trim() == "```json ws-example" => current = start(true),
            (None, true) => other_fence = !other_fence,
            (None, false) => {
                assert!(
                    !(other_fence && (line.contains("gql '") || line.contains("sensor '"))),
                    "README.md line {n}: an API example outside a ```sh example block is never run; mark the block"
                );
            }
        }
    }
    assert!(
        current.is_none(),
        "README.md: an example block is not closed"
    );
    blocks
}

/// The single-quoted argument at the start of `rest` (after `gql `), with
/// the shell's `'"$NAME"'` splices replaced by the variables' values; and
/// what follows it.
fn quoted<'a>(rest: &'a str, vars: &HashMap<String, String>, line: usize) -> (String, &'a str) {
    let mut rest = rest
        .strip_prefix('\'')
        .unwrap_or_else(|| panic!("README.md line {line}: expected '…' after the function"));
    let mut out = String::new();
    loop {
        let end = rest
            .find('\'')
            .unwrap_or_else(|| panic!("README.md line {line}: unclosed '"));
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        let Some(spliced) = rest.strip_prefix("\"$") else {
            return (out, rest);
        };
        let close = spliced
            .find("\"'")
            .unwrap_or_else(|| panic!("README.md line {line}: a splice is '\"$NAME\"'"));
        let name = &spliced[..close];
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("README.md line {line}: ${name} is not set before its use"));
        out.push_str(value);
        rest = &spliced[close + 2..];
    }
}

/// `| jq -r PATH)` or `)` after a captured call.
fn capture_tail(tail: &str, name: &str, line: usize) -> Capture {
    let tail = tail.trim();
    if tail == ")" {
        return Capture {
            name: name.to_string(),
            path: None,
        };
    }
    let path = tail
        .strip_prefix("| jq -r ")
        .and_then(|p| p.strip_suffix(')'))
        .unwrap_or_else(|| {
            panic!("README.md line {line}: expected `| jq -r .path)`, got {tail:?}")
        });
    Capture {
        name: name.to_string(),
        path: Some(path.trim().to_string()),
    }
}

/// Reads the next statement of `lines` from `at`; returns it and where
/// the next one starts. Calls may run over several lines.
fn statement(
    lines: &[(usize, String)],
    at: usize,
    vars: &HashMap<String, String>,
) -> (Option<Step>, usize) {
    let (n, first) = &lines[at];
    let line = *n;
    let text = first.trim();
    if text.is_empty() {
        return (None, at + 1);
    }
    if let Some(code) = text.strip_prefix("# expect: ") {
        return (Some(Step::Expect(code.trim().to_string())), at + 1);
    }
    if text.starts_with('#') {
        return (None, at + 1);
    }
    if text.starts_with("gql() {") || text.starts_with("sensor() {") {
        return (None, at + 1);
    }
    // A call may go on over the following lines until its quote closes.
    let mut joined = first.clone();
    let mut next = at + 1;
    while joined.matches('\'').count() % 2 == 1 && next < lines.len() {
        joined.push('\n');
        joined.push_str(&lines[next].1);
        next += 1;
    }
    let text = joined.trim();
    let call = |rest: &str, sensor: bool| {
        let (body, tail) = quoted(rest, vars, line);
        (Call { line, sensor, body }, tail.to_string())
    };
    if let Some(rest) = text.strip_prefix("gql ") {
        let (c, tail) = call(rest, false);
        assert!(
            tail.trim().is_empty(),
            "README.md line {line}: {tail:?} after the call"
        );
        return (Some(Step::Call(c, None)), next);
    }
    if let Some(rest) = text.strip_prefix("sensor ") {
        let (c, tail) = call(rest, true);
        assert!(
            tail.trim().is_empty(),
            "README.md line {line}: {tail:?} after the call"
        );
        return (Some(Step::Call(c, None)), next);
    }
    let (name, value) = text.split_once('=').unwrap_or_else(|| {
        panic!("README.md line {line}: not a step the README test can run: {text}")
    });
    assert!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
        "README.md line {line}: not a step the README test can run: {text}"
    );
    let name = name.to_string();
    if let Some(rest) = value.strip_prefix("$(gql ") {
        let (c, tail) = call(rest, false);
        return (
            Some(Step::Call(c, Some(capture_tail(&tail, &name, line)))),
            next,
        );
    }
    if let Some(rest) = value.strip_prefix("$(sensor ") {
        let (c, tail) = call(rest, true);
        return (
            Some(Step::Call(c, Some(capture_tail(&tail, &name, line)))),
            next,
        );
    }
    if let Some(rest) = value.strip_prefix("$(echo \"$") {
        let (from, tail) = rest
            .split_once('"')
            .unwrap_or_else(|| panic!("README.md line {line}: expected echo \"$NAME\""));
        let path = tail
            .trim()
            .strip_prefix("| jq -r ")
            .and_then(|p| p.strip_suffix(')'))
            .unwrap_or_else(|| panic!("README.md line {line}: expected | jq -r .path)"));
        return (
            Some(Step::Extract {
                name,
                from: from.to_string(),
                path: path.trim().to_string(),
            }),
            next,
        );
    }
    if let Some(from) = value.strip_prefix('$') {
        let value = vars
            .get(from)
            .unwrap_or_else(|| panic!("README.md line {line}: ${from} is not set"))
            .clone();
        return (Some(Step::Set { name, value }), next);
    }
    assert!(
        !value.contains('$') && !value.contains('`'),
        "README.md line {line}: not a step the README test can run: {text}"
    );
    (
        Some(Step::Set {
            name,
            value: value.to_string(),
        }),
        next,
    )
}

/// `jq -r PATH` for the paths the README uses: `.a.b[0].c`.
fn jq(value: &Value, path: &str, line: usize) -> String {
    let mut at = value;
    for part in path.trim_start_matches('.').split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, index)) => (key, index.strip_suffix(']')),
            None => (part, None),
        };
        if !key.is_empty() {
            at = &at[key];
        }
        if let Some(i) = index {
            let i: usize = i
                .parse()
                .unwrap_or_else(|_| panic!("README.md line {line}: bad index in {path}"));
            at = &at[i];
        }
    }
    match at {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn run_call(app: &TestApp, vars: &HashMap<String, String>, call: &Call) -> Value {
    let body: Value = serde_json::from_str(&call.body).unwrap_or_else(|e| {
        panic!(
            "README.md line {}: the body is not JSON ({e}): {}",
            call.line, call.body
        )
    });
    let mut request = app.client.post(app.url("/graphql")).json(&body);
    let credential = |name: &str| vars.get(name).filter(|v| !v.is_empty());
    if call.sensor {
        if let Some(key) = credential("KEY") {
            request = request.header("x-api-key", key);
        }
    } else if let Some(token) = credential("TOKEN") {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request sent");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("README.md line {}: not a JSON answer: {e}", call.line))
}

/// Sends a `ws-example` block's messages (with `$NAME` replaced) on one
/// socket, then raises a CRITICAL alert and waits for the subscription.
async fn run_socket(app: &TestApp, vars: &HashMap<String, String>, lines: &[(usize, String)]) {
    let mut socket = connect(app.addr).await;
    let mut subscribed = false;
    for (line, text) in lines {
        // Longest names first, so that $TOKEN is never read as $TOK + "EN".
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut text = text.clone();
        for name in names {
            text = text.replace(&format!("${name}"), &vars[name]);
        }
        let message: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("README.md line {line}: not a JSON message ({e})"));
        let kind = message["type"].as_str().unwrap_or_default().to_string();
        send(&mut socket, message).await;
        if kind == "connection_init" {
            let ack = recv(&mut socket).await;
            assert_eq!(
                ack.as_ref().ok().map(|a| a["type"].clone()),
                Some(Value::from("connection_ack")),
                "README.md line {line}: {ack:?}"
            );
        }
        subscribed |= kind == "subscribe";
    }
    assert!(
        subscribed,
        "README.md: a ws-example block subscribes to nothing"
    );
    // Give the subscription a moment to be in place before the alert.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let token = vars.get("TOKEN").map(String::as_str);
    app.ok(
        token,
        "mutation { ingestEvent(input: { source: \"README\", eventType: \"Check\", severity: CRITICAL, description: \"for the live example\" }) { alert { id } } }",
        json!({}),
    )
    .await;
    let next = recv(&mut socket).await;
    let line = lines.first().map_or(0, |l| l.0);
    let next = next.unwrap_or_else(|code| panic!("README.md line {line}: closed with {code:?}"));
    assert_eq!(next["type"], "next", "README.md line {line}: {next}");
    assert_eq!(
        next["payload"]["data"]["alertCreated"]["severity"], "CRITICAL",
        "README.md line {line}: {next}"
    );
}

async fn readme_examples_run(app: TestApp) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("THREATWATCH_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into());
    let mut expect: Option<String> = None;
    let mut calls = 0;
    for Block {
        socket,
        lines: block,
    } in example_blocks(&text)
    {
        if socket {
            run_socket(&app, &vars, &block).await;
            calls += 1;
            continue;
        }
        let mut at = 0;
        while at < block.len() {
            let (step, next) = statement(&block, at, &vars);
            at = next;
            match step {
                None => {}
                Some(Step::Expect(code)) => expect = Some(code),
                Some(Step::Set { name, value }) => {
                    vars.insert(name, value);
                }
                Some(Step::Extract { name, from, path }) => {
                    let line = block[at - 1].0;
                    let raw = vars
                        .get(&from)
                        .unwrap_or_else(|| panic!("README.md line {line}: ${from} is not set"));
                    let value: Value = serde_json::from_str(raw)
                        .unwrap_or_else(|_| panic!("README.md line {line}: ${from} is not JSON"));
                    vars.insert(name, jq(&value, &path, line));
                }
                Some(Step::Call(call, capture)) => {
                    calls += 1;
                    let answer = run_call(&app, &vars, &call).await;
                    match expect.take() {
                        Some(code) => assert_eq!(
                            answer["errors"][0]["extensions"]["code"], code,
                            "README.md line {}: expected {code}, got {answer}",
                            call.line
                        ),
                        None => assert!(
                            answer.get("errors").is_none(),
                            "README.md line {}: the example failed: {answer}",
                            call.line
                        ),
                    }
                    if let Some(Capture { name, path }) = capture {
                        let value = match path {
                            Some(path) => jq(&answer, &path, call.line),
                            None => answer.to_string(),
                        };
                        assert_ne!(
                            value, "null",
                            "README.md line {}: {name} would be null: {answer}",
                            call.line
                        );
                        vars.insert(name, value);
                    }
                }
            }
        }
        assert!(
            expect.is_none(),
            "README.md: `# expect:` ends a block without a call"
        );
    }
    assert!(
        calls >= 30,
        "only {calls} README examples were found and run"
    );
}

both!(readme_examples_run);

#[test]
fn the_dialect_is_read_as_the_shell_reads_it() {
    let mut vars = HashMap::new();
    vars.insert("T".to_string(), "abc".to_string());
    let (body, tail) = quoted(r#"'{"t":"'"$T"'","u":1}' | jq -r .a)"#, &vars, 1);
    assert_eq!(body, r#"{"t":"abc","u":1}"#);
    assert_eq!(tail, " | jq -r .a)");
    let v: Value = serde_json::json!({ "a": { "b": [ { "c": "x" } ], "n": null } });
    assert_eq!(jq(&v, ".a.b[0].c", 1), "x");
    assert_eq!(jq(&v, ".a.n", 1), "null");
    let lines: Vec<(usize, String)> = vec![
        (10, "X=$(gql '{\"query\":".into()),
        (11, "  \"{ me { id } }\"}' | jq -r .data.me.id)".into()),
    ];
    match statement(&lines, 0, &vars) {
        (Some(Step::Call(call, Some(capture))), 2) => {
            assert_eq!(call.line, 10);
            assert_eq!(capture.name, "X");
            assert_eq!(capture.path.as_deref(), Some(".data.me.id"));
        }
        _ => panic!("a call over two lines"),
    }
}

#[test]
#[should_panic(expected = "README.md line 1: not a step")]
fn anything_else_in_an_example_fails() {
    let lines = vec![(1, "curl -s http://example/ -d '{}'".to_string())];
    let _ = statement(&lines, 0, &HashMap::new());
}

/// The lines of the README's receiver example.
fn receiver_example() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "```python receiver-example")
        .skip(1);
    let script: Vec<&str> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(
        script.len() > 5,
        "README.md: no ```python receiver-example block"
    );
    script.join("\n") + "\n"
}

/// The README's Python receiver against real deliveries: a ping signed
/// with its secret is taken (204) and printed; one signed with another
/// endpoint's secret is refused (401) and stays pending.
async fn the_receiver_example_verifies_deliveries(app: TestApp) {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is needed to run the README's receiver example"
        );
        eprintln!("SKIPPED: no python3, so the README's receiver example is not run");
        return;
    }
    let admin = app.admin().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let create = |name: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let d = app
                .ok(
                    Some(admin),
                    "mutation($i: WebhookInput!) { createWebhook(input: $i) { secret webhook { id } } }",
                    json!({ "i": { "name": name, "url": format!("http://127.0.0.1:{port}/{name}"), "triggers": ["ALERT_RAISED"] } }),
                )
                .await;
            (
                d["createWebhook"]["webhook"]["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d["createWebhook"]["secret"].as_str().unwrap().to_string(),
            )
        }
    };
    let (ours, secret) = create("ours").await;
    let (theirs, _) = create("theirs").await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("receiver.py");
    std::fs::write(&script, receiver_example()).unwrap();
    let child = std::process::Command::new("python3")
        .arg(&script)
        .env("WEBHOOK_SECRET", &secret)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ping = "mutation($id: ID!) { testWebhook(id: $id) { id } }";
    app.ok(Some(&admin), ping, json!({ "id": ours })).await;
    app.ok(Some(&admin), ping, json!({ "id": theirs })).await;
    let last = |id: String| {
        let (app, admin) = (&app, &admin);
        async move {
            let d = app
                .ok(
                    Some(admin),
                    "query($id: ID!) { webhook(id: $id) { deliveries(first: 1) { nodes { status lastStatusCode } } } }",
                    json!({ "id": id }),
                )
                .await;
            d["webhook"]["deliveries"]["nodes"][0].clone()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (a, b) = loop {
        let (a, b) = (last(ours.clone()).await, last(theirs.clone()).await);
        if (a["status"] == "DELIVERED" && b["lastStatusCode"] == 401)
            || std::time::Instant::now() > deadline
        {
            break (a, b);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut child = child;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(a["status"], "DELIVERED", "{a} {printed}");
    assert_eq!(a["lastStatusCode"], 204, "{a}");
    assert!(printed.starts_with("ping msg_"), "{printed}");
    assert_eq!(printed.lines().count(), 1, "{printed}");
    assert_eq!(b["status"], "PENDING", "{b}");
    assert_eq!(b["lastStatusCode"], 401, "{b}");
}

crate::both_with!(
    the_receiver_example_verifies_deliveries => |s| {
        s.webhook_allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
    },
);
