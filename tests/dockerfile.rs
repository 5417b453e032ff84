//! The container image, as far as a machine without a container engine can
//! try it: the build stage's context is laid out from its `COPY` lines alone
//! and its build command is run there; the binary it makes is then started
//! as the runtime stage starts it, and the image's `HEALTHCHECK` command is
//! run against it.
//!
//! Its own test binary, so that the build it runs does not share the
//! machine with the other integration tests (some of them time requests).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Lines of the Dockerfile with continuations joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The stages, each a list of instructions, split at `FROM`.
fn stages(text: &str) -> Vec<Vec<String>> {
    let mut stages: Vec<Vec<String>> = Vec::new();
    for ins in instructions(text) {
        if ins.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(ins);
        }
    }
    stages
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
}

/// Lays out what the build stage's `COPY` lines bring into `context`.
fn lay_out_context(build: &[String], context: &Path) {
    for ins in build {
        let Some(args) = ins.strip_prefix("COPY ") else {
            continue;
        };
        let parts: Vec<&str> = args.split_whitespace().collect();
        assert!(
            !parts.iter().any(|p| p.starts_with("--")),
            "the build stage copies with flags this test does not read: {ins}"
        );
        let (dest, sources) = parts.split_last().expect("COPY has a destination");
        let dest = dest.trim_start_matches("./");
        for source in sources {
            let from = Path::new(ROOT).join(source);
            assert!(
                from.exists(),
                "COPY names {source}, which is not in the repository"
            );
            let to = if dest.is_empty() || dest.ends_with('/') || sources.len() > 1 {
                context.join(dest).join(source)
            } else {
                context.join(dest)
            };
            copy_tree(&from, &to);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dockerignore_keeps_output_databases_and_secrets_out() {
    let ignore = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore"))
        .expect(".dockerignore exists");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", "**/*.db", "**/*.db-wal", ".env", ".git/"] {
        assert!(patterns.contains(&needed), ".dockerignore lacks {needed}");
    }
}

#[test]
fn compose_checks_health_with_the_binary() {
    let compose = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap();
    assert!(compose.contains(r#"test: ["CMD", "threatwatch", "healthcheck"]"#));
    assert!(compose.contains("condition: service_healthy"));
    // Every file the compose file mounts from the repository is there.
    let mounts: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- ./"))
        .map(|m| m.split(':').next().unwrap_or(m))
        .collect();
    assert!(!mounts.is_empty());
    for path in mounts {
        assert!(
            Path::new(ROOT).join(path).exists(),
            "compose mounts ./{path}"
        );
    }
}

#[test]
fn image_builds_from_its_context_and_checks_its_own_health() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    let stages = stages(&dockerfile);
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);

    let context = tempfile::tempdir().unwrap();
    lay_out_context(build, context.path());
    let run = build
        .iter()
        .find_map(|i| i.strip_prefix("RUN "))
        .expect("the build stage runs the build");
    let command = run.split("&&").next().unwrap().trim();
    assert!(command.starts_with("cargo build"), "{command}");

    // The target directory lives beside the test's own, so that a second
    // run only checks what changed. Code generation is cheapened through
    // the environment (the release profile's optimisation and LTO): what is
    // tried is the manifest and the context, not the optimiser.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docker-build");
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(context.path())
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_TERM_COLOR", "never")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "`{command}` fails in the image's build context:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binary = target.join("release/threatwatch");
    assert!(binary.exists());

    // The runtime stage: its environment, with the paths and port of this
    // machine, its entrypoint and command.
    let mut env: Vec<(String, String)> = Vec::new();
    for ins in runtime {
        if let Some(vars) = ins.strip_prefix("ENV ") {
            for pair in vars.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                env.push((k.into(), v.into()));
            }
        }
    }
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let arg_list = |prefix: &str| -> Vec<String> {
        let ins = runtime
            .iter()
            .find_map(|i| i.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("the runtime stage has {prefix}"));
        serde_json::from_str(ins.trim()).expect("exec form")
    };
    let entrypoint = arg_list("ENTRYPOINT ");
    let cmd = arg_list("CMD ");
    assert_eq!(entrypoint, ["threatwatch"]);
    let healthcheck = runtime
        .iter()
        .find_map(|i| i.strip_prefix("HEALTHCHECK "))
        .expect("the runtime stage has a HEALTHCHECK");
    let probe: Vec<String> = serde_json::from_str(
        healthcheck
            .split_once("CMD ")
            .expect("HEALTHCHECK ... CMD [...]")
            .1
            .trim(),
    )
    .unwrap();
    assert_eq!(probe[0], "threatwatch");

    let with_env = |c: &mut Command| {
        for (k, v) in &env {
            let v = match k.as_str() {
                "DATABASE_URL" => format!("sqlite://{}/threatwatch.db", data.path().display()),
                "THREATWATCH_BIND" => format!("0.0.0.0:{port}"),
                _ => v.clone(),
            };
            c.env(k, v);
        }
        c.env("THREATWATCH_ADMIN_PASSWORD", "image-admin-password")
            .env_remove("THREATWATCH_JWT_SECRET")
            .current_dir(data.path());
    };
    let probe_once = || {
        let mut c = Command::new(&binary);
        c.args(&probe[1..]);
        with_env(&mut c);
        c.output().unwrap()
    };
    // Nothing listens yet: the check fails, and says why.
    let down = probe_once();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("/readyz"));

    let mut serve = Command::new(&binary);
    serve.args(&cmd).stdout(Stdio::null()).stderr(Stdio::null());
    with_env(&mut serve);
    let _server = Killed(serve.spawn().unwrap());
    let started = Instant::now();
    loop {
        let up = probe_once();
        if up.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the image's HEALTHCHECK never passed: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
