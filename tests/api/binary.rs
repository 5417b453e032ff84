//! The real binary as a child process, for tests that start, kill and
//! restart it: its output gathered as it comes, the address it serves on.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `threatwatch serve` process, its output gathered as it comes.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) stdout: Arc<Mutex<String>>,
    pub(crate) stderr: Arc<Mutex<String>>,
}

pub(crate) fn gather(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let into = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// The binary with a clean environment of settings plus `env`.
pub(crate) fn command(db_url: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_threatwatch"));
    for (name, _) in std::env::vars() {
        if name.starts_with("THREATWATCH_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("DATABASE_URL", db_url)
        .env("THREATWATCH_BCRYPT_COST", "4")
        .env("THREATWATCH_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

pub(crate) fn start(db_url: &str, env: &[(&str, &str)]) -> Running {
    let mut child = command(db_url, env)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let stdout = gather(child.stdout.take().unwrap());
    let stderr = gather(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    pub(crate) fn out(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn err(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything it wrote, standard output first.
    pub(crate) fn log(&self) -> String {
        format!("{}{}", self.out(), self.err())
    }

    /// Waits for the "serving" line and returns the address in it.
    pub(crate) fn serving(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = served_at(&self.out()) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited with {status}: {}{}", self.out(), self.err());
            }
            assert!(Instant::now() < deadline, "{}{}", self.out(), self.err());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to end on its own.
    pub(crate) fn exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers take the last of the output.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            assert!(Instant::now() < deadline, "{}{}", self.out(), self.err());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in the "serving" log line, text or JSON.
pub(crate) fn served_at(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("threatwatch serving"))?;
    let at = line.find("127.0.0.1:")?;
    let addr: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    Some(addr)
}
