//! The layering rule, read from the source: the service is the only door.
//! Front ends (GraphQL, REST, the WebSocket, the HTTP edge, the command
//! line and start-up) call service functions and speak `domain` types;
//! none of them names storage (`db`). `domain` names neither storage nor
//! the service above it.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The front ends' files and folders, from the crate root.
const FRONT_ENDS: &[&str] = &[
    "src/graphql",
    "src/rest.rs",
    "src/ws.rs",
    "src/http.rs",
    "src/web.rs",
    "src/cli.rs",
    "src/app.rs",
    "src/main.rs",
];

/// Every `.rs` file at or under `path`, in a stable order.
fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Whether `line` names the module `module` as a path: `module::` or
/// `crate::module` where `module` is a whole word (so `sqlite_db::` and
/// `service_db` do not count).
fn names(line: &str, module: &str) -> bool {
    let word_before = |at: usize| {
        line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    let path = format!("{module}::");
    let from_root = format!("crate::{module}");
    line.match_indices(&path).any(|(at, _)| !word_before(at))
        || line.match_indices(&from_root).any(|(at, _)| {
            let end = at + from_root.len();
            !word_before(at)
                && !line[end..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
}

/// "file:line: text" for every line of the files under `paths` that names
/// one of `modules`.
fn offences(paths: &[&str], modules: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        for file in sources(&Path::new(ROOT).join(path)) {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let shown = file
                .strip_prefix(ROOT)
                .unwrap_or(&file)
                .display()
                .to_string();
            for (n, line) in text.lines().enumerate() {
                if modules.iter().any(|m| names(line, m)) {
                    out.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    out
}

#[test]
fn front_ends_reach_storage_only_through_the_service() {
    let found = offences(FRONT_ENDS, &["db"]);
    assert!(
        found.is_empty(),
        "front ends must call the service, not storage (`db`):\n{}",
        found.join("\n")
    );
}

#[test]
fn domain_names_neither_storage_nor_the_service() {
    let found = offences(&["src/domain"], &["db", "service"]);
    assert!(
        found.is_empty(),
        "`domain` must not name storage (`db`) or the service:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_is_meant_to() {
    assert!(names("use crate::db::models::UserRow;", "db"));
    assert!(names("use crate::db;", "db"));
    assert!(names("    let rows = db::audit::log(&e);", "db"));
    assert!(names("use threatwatch::db::Db;", "db"));
    assert!(names("use crate::service::Service;", "service"));
    assert!(!names("use crate::database::x;", "db"));
    assert!(!names("sqlite_db::open()", "db"));
    assert!(!names("use crate::dbx;", "db"));
    assert!(!names("\"sqlite://threatwatch.db\"", "db"));
    assert!(!names(
        "let service = ctx.data_unchecked::<Service>();",
        "service"
    ));
}

#[test]
fn every_front_end_path_exists() {
    for path in FRONT_ENDS {
        assert!(Path::new(ROOT).join(path).exists(), "{path} is gone");
    }
}
