//! The `threatwatch` command line.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::{shutdown_signal, Server};
use crate::config::{DatabaseUrl, Settings};
use crate::domain::Role;
use crate::service::{self, ClientIp, Service};

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
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    role,
                    password_stdin,
                },
        } => {
            let password = read_password(password_stdin)?;
            service::migrate(&settings.database_url).await?;
            let (service, writer) = Service::open(settings, 2).await?;
            let user = service
                .create_user(
                    "system",
                    &username,
                    &password,
                    role.into(),
                    &ClientIp::default(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            drop(service);
            writer.shutdown().await;
            println!(
                "created user {} ({}) with id {}",
                user.username, user.role, user.id
            );
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
