//! The `threatwatch` command line.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{shutdown_signal, Server};
use crate::config::{DatabaseUrl, Settings};
use crate::domain::user::UserRecord;
use crate::domain::Role;
use crate::service::{self, Actor, ClientIp, Service};

#[derive(Parser)]
#[command(
    name = "threatwatch",
    version,
    about = "GraphQL threat monitoring and alert management"
)]
struct Cli {
    /// Overrides DATABASE_URL (sqlite://PATH or postgres://USER@HOST/DB).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve (the default).
    Serve {
        /// Overrides THREATWATCH_BIND.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Only migrate the database to the latest schema.
    Migrate {
        /// Apply nothing: list the pending migrations and exit with status 1
        /// while there are any (for deploy pipelines).
        #[arg(long)]
        check: bool,
    },
    /// Exit 0 when the instance at THREATWATCH_BIND answers /readyz with 200,
    /// 1 otherwise (the container image's HEALTHCHECK; it has no curl).
    Healthcheck {
        /// Ask this HOST:PORT instead of THREATWATCH_BIND.
        #[arg(long)]
        addr: Option<String>,
    },
    /// Write a consistent copy of the SQLite database while the service
    /// keeps serving (PostgreSQL: use pg_dump).
    Backup {
        /// The new file; an existing one is never overwritten.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Manage people's accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the GraphQL schema (SDL), as schema.graphql holds it.
    Schema,
    /// Bring over the users, events and alerts of the Django "Threat Alert
    /// System" (run it again later to add what is new there).
    ImportDjango {
        /// That system's database: sqlite:///path/db.sqlite3 or postgres://...
        #[arg(long)]
        from: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a person (like Django's createsuperuser).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: CliRole,
        /// Read the password from the first line of standard input instead
        /// of prompting for it.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List every account: id, username, role, whether active, last login.
    List,
    /// Stop a person signing in, and end their sessions.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Let a disabled person sign in again.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Give a person a new password, and end their sessions.
    SetPassword {
        #[arg(long)]
        username: String,
        /// Read the password from the first line of standard input instead
        /// of prompting for it.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a person's role, and end their sessions.
    SetRole {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: CliRole,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliRole {
    Admin,
    Analyst,
}

impl From<CliRole> for Role {
    fn from(r: CliRole) -> Self {
        match r {
            CliRole::Admin => Role::Admin,
            CliRole::Analyst => Role::Analyst,
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Schema) = cli.command {
        print!("{}", crate::graphql::sdl());
        return ExitCode::SUCCESS;
    }
    let settings = match settings(&cli) {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("threatwatch: {msg}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, None | Some(Command::Serve { .. }));
    crate::telemetry::init(settings.log_json, !serving);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("threatwatch: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("threatwatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli) -> Result<Settings, String> {
    let mut settings = Settings::from_env()?;
    if let Some(url) = &cli.database_url {
        settings.database_url =
            DatabaseUrl::parse(url).map_err(|e| e.replace("DATABASE_URL", "--database-url"))?;
    }
    if let Some(Command::Serve { bind: Some(bind) }) = &cli.command {
        settings.bind = bind
            .parse()
            .map_err(|_| format!("--bind: expected HOST:PORT, got {bind:?}"))?;
    }
    Ok(settings)
}

async fn run(command: Option<Command>, settings: Settings) -> anyhow::Result<ExitCode> {
    match command.unwrap_or(Command::Serve { bind: None }) {
        Command::Serve { .. } => {
            Server::build(settings)
                .await?
                .run(shutdown_signal())
                .await?;
        }
        Command::Migrate { check: false } => {
            let applied = service::migrate(&settings.database_url).await?;
            println!("applied {} migration(s)", applied.len());
        }
        Command::Migrate { check: true } => {
            let pending = service::pending_migrations(&settings.database_url).await?;
            if pending.is_empty() {
                println!("the database is up to date");
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} pending migration(s):", pending.len());
            pending.iter().for_each(|name| println!("  {name}"));
            return Ok(ExitCode::FAILURE);
        }
        Command::Healthcheck { addr } => {
            let addr = match addr {
                Some(a) => a
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--addr: expected HOST:PORT, got {a:?}"))?,
                None => settings.bind,
            };
            crate::probe::readyz(addr).await?;
            println!("ready");
        }
        Command::Backup { to } => {
            let bytes = service::backup(&settings.database_url, &to).await?;
            let live = match &settings.database_url {
                DatabaseUrl::Sqlite(path) => path.as_str(),
                DatabaseUrl::Postgres(_) => "the database file",
            };
            println!(
                "backup written to {} ({bytes} bytes)\n\
                 To restore: stop threatwatch, remove {live}-wal and {live}-shm if present,\n\
                 copy {} over {live}, and start threatwatch again.",
                to.display(),
                to.display()
            );
        }
        Command::User { command } => {
            // Read before the database is touched, so a missing password
            // changes nothing.
            let password = match &command {
                UserCommand::Create { password_stdin, .. }
                | UserCommand::SetPassword { password_stdin, .. } => {
                    Some(read_password(*password_stdin)?)
                }
                _ => None,
            };
            service::migrate(&settings.database_url).await?;
            let (service, writer) = Service::open(settings, 2).await?;
            let done = user_command(&service, command, password.as_deref()).await;
            drop(service);
            writer.shutdown().await;
            println!("{}", done.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        Command::Schema => print!("{}", crate::graphql::sdl()),
        Command::ImportDjango { from } => {
            let (source, origin) = crate::django::Source::open(&from).await?;
            service::migrate(&settings.database_url).await?;
            let report = service::import_django(&settings, source, origin.clone()).await?;
            print!("{}", report.render(&origin));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a `user` subcommand through the same service calls as its GraphQL
/// twin, so it is checked and audited alike (as actor "cli"); the line to
/// print.
async fn user_command(
    service: &Service,
    command: UserCommand,
    password: Option<&str>,
) -> crate::error::Result<String> {
    let (cli, ip) = (Actor::command_line(), ClientIp::default());
    let password = password.unwrap_or_default();
    match command {
        UserCommand::Create { username, role, .. } => {
            let user = service
                .create_user(&cli.name, &username, password, role.into(), &ip)
                .await?;
            Ok(format!(
                "created user {} ({}) with id {}",
                user.username, user.role, user.id
            ))
        }
        UserCommand::List => Ok(user_table(&service.all_users().await?)),
        UserCommand::Disable { username } => {
            let id = service.user_named(&username).await?.id;
            let user = service
                .update_user(&cli, id, None, Some(false), &ip)
                .await?;
            Ok(format!(
                "user {} disabled; its sessions ended",
                user.username
            ))
        }
        UserCommand::Enable { username } => {
            let id = service.user_named(&username).await?.id;
            let user = service.update_user(&cli, id, None, Some(true), &ip).await?;
            Ok(format!("user {} enabled", user.username))
        }
        UserCommand::SetPassword { username, .. } => {
            let id = service.user_named(&username).await?.id;
            let user = service.reset_password(&cli, id, password, &ip).await?;
            Ok(format!(
                "password of {} replaced; its sessions ended",
                user.username
            ))
        }
        UserCommand::SetRole { username, role } => {
            let id = service.user_named(&username).await?.id;
            let user = service
                .update_user(&cli, id, Some(role.into()), None, &ip)
                .await?;
            Ok(format!("user {} is now {}", user.username, user.role))
        }
    }
}

/// Accounts as a table for a terminal: one line each, columns padded to the
/// longest value.
fn user_table(users: &[UserRecord]) -> String {
    let rows: Vec<[String; 5]> = users
        .iter()
        .map(|u| {
            [
                u.id.to_string(),
                u.username.clone(),
                u.role.to_string(),
                if u.is_active { "yes" } else { "no" }.to_string(),
                u.last_login_at.map_or_else(
                    || "never".to_string(),
                    |t| t.and_utc().format("%Y-%m-%d %H:%M:%SZ").to_string(),
                ),
            ]
        })
        .collect();
    let head = ["ID", "USERNAME", "ROLE", "ACTIVE", "LAST LOGIN"].map(String::from);
    let mut widths = head.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 5]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        cells.join("  ").trim_end().to_string()
    };
    std::iter::once(&head)
        .chain(&rows)
        .map(line)
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to prompt on: pass --password-stdin and pipe the password in");
    }
    let first = rpassword::prompt_password("Password: ")?;
    let again = rpassword::prompt_password("Password (again): ")?;
    if first != again {
        anyhow::bail!("the passwords do not match");
    }
    Ok(first)
}
