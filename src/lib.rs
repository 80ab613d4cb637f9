//! cellsctl: inputs -> Answers -> Plan -> Apply.
//!
//! `run` wires the pipeline: `inputs` layers flags, env and the saved state
//! into `Answers`; `pki` keeps or issues key material; `render` turns both
//! into a `Plan`; `apply` writes it below the root; `report` tells the admin.

pub mod answers;
pub mod apply;
pub mod check;
pub mod cli;
pub mod error;
pub mod inputs;
pub mod pki;
pub mod plan;
pub mod render;
pub mod report;
pub mod secrets;
pub mod services;
pub mod state;
pub mod ui;
pub mod verify;
pub mod wizard;

use crate::answers::UpstreamTls;
use crate::apply::{sha256_hex, under_root, ApplyOptions};
use crate::cli::{AnswerArgs, CheckArgs, Cli, Command, GenerateArgs, HashPasswordArgs, VerifyArgs};
use crate::error::Error;
use crate::inputs::SecretEnv;
use crate::pki::CertAndKey;
use crate::plan::{Owner, PlannedFile, Visibility};
use crate::render::{paths, InstallSecrets, RenderInputs};
use crate::secrets::{SecretRules, SecretSource};
use crate::state::{FileRecord, State, SCHEMA_VERSION};
use crate::wizard::Prompter;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use time::OffsetDateTime;

/// Runs one command. `now` is injected so that certificates and backups are reproducible in tests.
pub fn run(cli: Cli, now: OffsetDateTime) -> Result<(), Error> {
    match cli.command {
        Command::Init(args) => generate(&args, Mode::Init, now),
        Command::Regenerate(args) => generate(&args, Mode::Regenerate, now),
        Command::HashPassword(args) => hash_password(&args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "cellsctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Check(args) => check_command(&args, now),
        Command::Verify(args) => verify_command(&args),
        Command::Man => man_page(&mut std::io::stdout())
            .map_err(|e| Error::runtime(format!("cannot write the man page: {e}"))),
    }
}

/// The man page: the command, its subcommands, and every flag of
/// `init`/`regenerate` grouped as in `--help`.
pub fn man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_subcommands_section(out)?;
    if let Some(init) = cmd.find_subcommand("init") {
        writeln!(out, ".SH \"INIT AND REGENERATE\"")?;
        writeln!(out, "Both take the same flags; every answer flag can also be given as the environment variable CELLSCTL_<FLAG_NAME>.")?;
        clap_mangen::Man::new(init.clone()).render_options_section(out)?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    writeln!(out, "0 ok, 1 runtime failure or cancelled, 2 invalid input or usage, 3 refused because of hand edits or unknown existing files.")?;
    writeln!(out, ".SH FILES")?;
    writeln!(out, "/etc/cellsctl/cellsctl.yaml (the saved answers and file hashes), /etc/caddy/Caddyfile, /etc/cells/install.yml, /etc/systemd/system/cells.service, /etc/prometheus/cellsctl.yml, /etc/systemd/system/prometheus.service.d/cellsctl.conf, /etc/systemd/system/cellsctl-renew.service and .timer, /etc/cellsctl/pki/, /etc/cells/tls/.")?;
    man.render_version_section(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Init,
    Regenerate,
}

fn hash_password(args: &HashPasswordArgs) -> Result<(), Error> {
    // On a terminal: hidden, typed twice. Otherwise one line from stdin.
    let password = if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let mut prompter = wizard::TerminalPrompter::new();
        prompter.password("Password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::runtime(format!("cannot read the password from stdin: {e}")))?;
        secrets::strip_one_line(&line)
    };
    let password = secrets::Secret::for_basic_auth(password)
        .map_err(|why| Error::usage(format!("stdin: the password {why}")))?;
    let hash = ui::with_spinner(&format!("Hashing (bcrypt cost {})", args.cost), || {
        secrets::bcrypt_hash(password.expose(), args.cost)
    })?;
    writeln!(std::io::stdout(), "{hash}")
        .map_err(|e| Error::runtime(format!("cannot write to stdout: {e}")))
}

fn read_text(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Reads a certificate and key pair below the root, if both exist.
fn read_pair(root: &Path, cert: &str, key: &str) -> Result<Option<CertAndKey>, Error> {
    match (
        read_text(&under_root(root, cert))?,
        read_text(&under_root(root, key))?,
    ) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(CertAndKey { cert_pem, key_pem })),
        _ => Ok(None),
    }
}

/// Whether install.yml is written, and with which secrets.
enum InstallPlan {
    Write(InstallSecrets),
    /// Used and deleted by the admin: never re-created.
    Consumed,
}

fn install_plan(
    root: &Path,
    flags: &AnswerArgs,
    saved: Option<&State>,
    secret_env: &SecretEnv,
) -> Result<InstallPlan, Error> {
    let admin = SecretSource {
        file_flag: "--admin-password-file",
        file: flags.admin_password_file.as_deref(),
        env_var: "CELLSCTL_ADMIN_PASSWORD",
        env_value: secret_env.admin_password.clone(),
        rules: SecretRules::Install,
    };
    let db = SecretSource {
        file_flag: "--db-password-file",
        file: flags.db_password_file.as_deref(),
        env_var: "CELLSCTL_DB_PASSWORD",
        env_value: secret_env.db_password.clone(),
        rules: SecretRules::Install,
    };
    let (given_admin, given_db) = (admin.read()?, db.read()?);
    let path = under_root(root, paths::INSTALL_YML);
    let recorded = saved.is_some_and(|s| s.files.contains_key(paths::INSTALL_YML));
    match read_text(&path)? {
        Some(text) => {
            let existing = render::cells_install::secrets_from_existing(&text);
            let pick = |given: Option<secrets::Secret>,
                        from_file: Option<secrets::Secret>,
                        source: &SecretSource| {
                given.or(from_file).ok_or_else(|| {
                    Error::usage(format!(
                        "{} exists but its passwords cannot be read back; give {}",
                        path.display(),
                        source.how()
                    ))
                })
            };
            let (file_admin, file_db) = match existing {
                Ok(s) => (Some(s.admin_password), Some(s.db_password)),
                Err(_) => (None, None),
            };
            Ok(InstallPlan::Write(InstallSecrets {
                admin_password: pick(given_admin, file_admin, &admin)?,
                db_password: pick(given_db, file_db, &db)?,
            }))
        }
        None if recorded => Ok(InstallPlan::Consumed),
        None => match (given_admin, given_db) {
            (Some(admin_password), Some(db_password)) => Ok(InstallPlan::Write(InstallSecrets {
                admin_password,
                db_password,
            })),
            (a, d) => {
                let mut missing = Vec::new();
                if a.is_none() {
                    missing.push(admin.how());
                }
                if d.is_none() {
                    missing.push(db.how());
                }
                Err(Error::Missing(missing))
            }
        },
    }
}

/// Testing hook, in debug builds only: `CELLSCTL_TEST_FAULT=fail-after:N`
/// or `pause-after:N:SECONDS` interrupts the write phase, to prove that an
/// interrupted run loses nothing. Release builds ignore the variable.
#[cfg(debug_assertions)]
fn fault_from_env() -> Result<Option<apply::Fault>, Error> {
    let Ok(spec) = std::env::var("CELLSCTL_TEST_FAULT") else {
        return Ok(None);
    };
    let bad = || {
        Error::usage(format!(
            "CELLSCTL_TEST_FAULT: expected fail-after:N or pause-after:N:SECONDS, got {spec:?}"
        ))
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
    match spec.split(':').collect::<Vec<_>>()[..] {
        ["fail-after", n] => Ok(Some(apply::Fault::FailAfter(num(n)? as usize))),
        ["pause-after", n, secs] => Ok(Some(apply::Fault::PauseAfter(
            num(n)? as usize,
            std::time::Duration::from_secs(num(secs)?),
        ))),
        _ => Err(bad()),
    }
}

#[cfg(not(debug_assertions))]
fn fault_from_env() -> Result<Option<apply::Fault>, Error> {
    Ok(None)
}

/// `cellsctl check`: findings on stdout (text or JSON); the exit code says the worst.
fn check_command(args: &CheckArgs, now: OffsetDateTime) -> Result<(), Error> {
    let root = args.root.as_path();
    let state_path = under_root(root, paths::STATE);
    let Some(text) = read_text(&state_path)? else {
        return Err(Error::usage(format!(
            "no saved state at {}: run `cellsctl init` first",
            state_path.display()
        )));
    };
    let state = State::from_yaml(&text, &state_path.display().to_string())?;
    let mut findings = check::run_all(root, &state, now);
    if check::exit_code(&findings) == 3 {
        // Show what cellsctl would write instead, for each drifted file.
        if let Ok(prepared) = prepare(
            root,
            &AnswerArgs::default(),
            &SecretEnv::default(),
            Some(&state),
            now,
        ) {
            for f in findings
                .iter_mut()
                .filter(|f| f.check.starts_with("drift /"))
            {
                let path = f.check.trim_start_matches("drift ");
                if let Some(planned) = prepared.plan.files.iter().find(|p| p.path == path) {
                    let old = std::fs::read(under_root(root, path)).ok();
                    if old.as_deref() == Some(planned.contents.as_slice()) {
                        // Only values cellsctl reads back from the file differ
                        // (install.yml's passwords): regenerate keeps them.
                        f.status = check::Status::Warn;
                        f.detail = "secret values were edited by hand; `cellsctl regenerate` keeps them and records the new hash".into();
                        continue;
                    }
                    f.detail.push('\n');
                    let diff = apply::diff_text(
                        path,
                        old.as_deref(),
                        &planned.contents,
                        &planned.visibility,
                    );
                    f.detail.push_str(diff.trim_end());
                }
            }
        }
    }
    // Drift only in secret values became a warning above.
    let code = check::exit_code(&findings);
    let out = if args.json {
        serde_json::to_string_pretty(&findings)
            .map(|t| t + "\n")
            .unwrap_or_default()
    } else {
        ui::colour_diff(&check::render(&findings), ui::stdout_colours())
    };
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| Error::runtime(format!("cannot write to stdout: {e}")))?;
    match code {
        0 => Ok(()),
        3 => Err(Error::Refused(
            "check: files differ from what cellsctl wrote (see above)".into(),
        )),
        _ => Err(Error::runtime(
            "check: at least one check failed (see above)",
        )),
    }
}

/// `cellsctl verify`: live checks; exit 0 only when all pass.
fn verify_command(args: &VerifyArgs) -> Result<(), Error> {
    let state_path = under_root(&args.root, paths::STATE);
    let state = read_text(&state_path)?
        .map(|text| State::from_yaml(&text, &state_path.display().to_string()))
        .transpose()?;
    let url = match (&args.url, &state) {
        (Some(u), _) => u.clone(),
        (None, Some(s)) => s.answers.external_url.clone(),
        (None, None) => {
            return Err(Error::usage(format!(
                "--url: no saved state at {}, so give the URL to check",
                state_path.display()
            )))
        }
    };
    let extra_roots = match &args.ca {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Error::usage(format!("--ca: cannot read {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let password = SecretSource {
        file_flag: "--prometheus-password-file",
        file: args.prometheus_password_file.as_deref(),
        env_var: "CELLSCTL_PROMETHEUS_PASSWORD",
        env_value: std::env::var("CELLSCTL_PROMETHEUS_PASSWORD").ok(),
        rules: SecretRules::BasicAuth,
    }
    .read()?;
    let a = state.as_ref().map(|s| &s.answers);
    let prometheus = a.and_then(|a| a.prometheus.as_ref()).map(|p| {
        (
            p.path.to_string(),
            p.user.to_string(),
            password.as_ref().map(|s| s.expose().to_string()),
        )
    });
    let upstream = match a {
        Some(a) if a.upstream_tls == UpstreamTls::Ca => Some((
            a.bind.dial(),
            read_text(&under_root(&args.root, paths::CA_CERT))?,
        )),
        Some(a) => Some((a.bind.dial(), None)),
        None => None,
    };
    let target = verify::Target {
        host: url.host.san_form(),
        authority: url.host_port(),
        http_host: url.host.url_form(),
        plain_http: url.scheme == answers::Scheme::Http,
        port: url.port.unwrap_or(if url.scheme == answers::Scheme::Https {
            443
        } else {
            80
        }),
        connect: args.connect,
        connect_http: args.connect_http,
        extra_roots,
        prometheus,
        upstream,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the network runtime: {e}")))?;
    let findings = runtime.block_on(verify::run(&target));
    let out = if args.json {
        serde_json::to_string_pretty(&findings)
            .map(|t| t + "\n")
            .unwrap_or_default()
    } else {
        check::render(&findings)
    };
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| Error::runtime(format!("cannot write to stdout: {e}")))?;
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f.status == check::Status::Fail)
        .map(|f| f.check.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::runtime(format!(
            "verify: failed: {}",
            failed.join(", ")
        )))
    }
}

/// Everything up to the plan: answers, install secrets, key material, files.
struct Prepared {
    resolved: inputs::Resolved,
    install: InstallPlan,
    pki: Option<pki::Pki>,
    plan: plan::Plan,
}

/// Inputs -> Answers -> Plan (with the state record last). Reads, never writes.
fn prepare(
    root: &Path,
    flags: &AnswerArgs,
    secret_env: &SecretEnv,
    saved: Option<&State>,
    now: OffsetDateTime,
) -> Result<Prepared, Error> {
    // Missing answers are reported together: collect the install secrets'
    // complaint after the answers' own.
    ui::step("resolving the answers");
    let resolved = inputs::resolve(flags, secret_env, saved);
    let install = install_plan(root, flags, saved, secret_env);
    let (resolved, install) = match (resolved, install) {
        (Ok(r), Ok(i)) => (r, i),
        (Err(Error::Missing(mut a)), Err(Error::Missing(b))) => {
            a.extend(b);
            return Err(Error::Missing(a));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    let answers = &resolved.answers;

    if answers.prometheus.is_some() {
        let defaults_path = under_root(root, paths::PROMETHEUS_DEFAULTS);
        if let Some(text) = read_text(&defaults_path)? {
            let clash = render::prometheus::conflicting_default_args(&text);
            if !clash.is_empty() {
                return Err(Error::usage(format!(
                    "--prometheus: {} already sets {} in ARGS, and Prometheus refuses a flag given twice; remove {} from ARGS there (cellsctl's drop-in sets {})",
                    defaults_path.display(),
                    clash.join(", "),
                    if clash.len() == 1 { "it" } else { "them" },
                    render::prometheus::DROPIN_FLAGS.join(", ")
                )));
            }
        }
    }

    let pki = if answers.upstream_tls == UpstreamTls::Ca {
        ui::step("checking the private CA and the Cells certificate");
        Some(pki::ensure(
            read_pair(root, paths::CA_CERT, paths::CA_KEY)?,
            read_pair(root, paths::CELLS_CERT, paths::CELLS_KEY)?,
            &answers.external_url.host,
            &pki::wanted_sans(answers),
            answers.cert_days,
            now,
        )?)
    } else {
        None
    };
    let install_secrets = match &install {
        InstallPlan::Write(s) => Some(s),
        InstallPlan::Consumed => None,
    };
    ui::step(format!("rendering for Caddy {}", answers.caddy_version));
    let mut plan = render::plan(
        answers,
        &RenderInputs {
            install_secrets,
            pki: pki.as_ref(),
        },
    )?;

    // The state record: every answer plus the hash of each planned file.
    let mut files: std::collections::BTreeMap<String, FileRecord> = plan
        .files
        .iter()
        .map(|f| {
            (
                f.path.clone(),
                FileRecord {
                    sha256: sha256_hex(&f.contents),
                },
            )
        })
        .collect();
    if let (InstallPlan::Consumed, Some(rec)) = (
        &install,
        saved.and_then(|s| s.files.get(paths::INSTALL_YML)),
    ) {
        files.insert(paths::INSTALL_YML.to_string(), rec.clone());
    }
    let state = State {
        schema_version: SCHEMA_VERSION,
        answers: answers.clone(),
        caddy: resolved.caddy.clone(),
        files,
    };
    plan.files.push(PlannedFile {
        path: paths::STATE.to_string(),
        contents: state.to_yaml()?.into_bytes(),
        mode: 0o600,
        owner: Owner::root(),
        mode_without_group: None,
        visibility: Visibility::Public,
        affects: vec![],
        is_state: true,
    });
    Ok(Prepared {
        resolved,
        install,
        pki,
        plan,
    })
}

/// Set once files are being written, so an interrupt says the right thing.
static WRITING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ctrl-C during the questions: restore the cursor, say so in one line, exit.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        let _ = console::Term::stderr().show_cursor();
        if WRITING.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\ncellsctl: interrupted while writing; run `cellsctl regenerate` to finish (each file is whole, old or new)");
        } else {
            eprintln!("\ncellsctl: interrupted; nothing was written");
        }
        std::process::exit(130);
    });
}

fn generate(args: &GenerateArgs, mode: Mode, now: OffsetDateTime) -> Result<(), Error> {
    ui::configure(args.common.quiet, args.common.verbose);
    let root = args.common.root.as_path();
    if root.exists() && !root.is_dir() {
        return Err(Error::usage(format!(
            "--root: {} is not a directory",
            root.display()
        )));
    }
    let state_path = under_root(root, paths::STATE);
    ui::step(format!("reading the saved state {}", state_path.display()));
    let saved = read_text(&state_path)?
        .map(|text| State::from_yaml(&text, &state_path.display().to_string()))
        .transpose()?;
    if mode == Mode::Regenerate && saved.is_none() {
        return Err(Error::usage(format!(
            "no saved state at {}: run `cellsctl init` first",
            state_path.display()
        )));
    }
    // On a terminal, `init` asks for what flags, env and state left open;
    // the wizard hands back flags and secrets, and the rest is one code path.
    let interactive = mode == Mode::Init
        && !args.common.non_interactive
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal();
    let mut prompter = interactive.then(wizard::TerminalPrompter::new);
    let (flags, secret_env) = match prompter.as_mut() {
        Some(prompter) => {
            install_interrupt_handler();
            let recorded = saved
                .as_ref()
                .is_some_and(|s| s.files.contains_key(paths::INSTALL_YML));
            let env = SecretEnv::from_process();
            let filled = wizard::run(
                prompter,
                &wizard::Known {
                    flags: &args.answers,
                    secret_env: &env,
                    saved: saved.as_ref(),
                    needs_install_secrets: !recorded
                        && !under_root(root, paths::INSTALL_YML).exists(),
                    caddy_known: args.answers.caddy_version.is_some()
                        || saved.is_some()
                        || ui::which("caddy").is_some(),
                },
            )?;
            (filled.flags, filled.secret_env)
        }
        None => (args.answers.clone(), SecretEnv::from_process()),
    };

    let Prepared {
        resolved,
        install,
        pki,
        plan,
    } = prepare(root, &flags, &secret_env, saved.as_ref(), now)?;
    let answers = &resolved.answers;

    let previous = saved.as_ref().map(|s| s.files.clone()).unwrap_or_default();
    let timestamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let options = ApplyOptions {
        root,
        dry_run: args.common.dry_run,
        force: args.common.force,
        restore: args.common.restore,
        timestamp: &timestamp,
        intent: paths::INTENT,
        fault: fault_from_env()?,
    };
    if let (Some(prompter), false) = (prompter.as_mut(), args.common.dry_run) {
        // Review before writing: the answers and what would happen to each file.
        let preview = apply::apply(
            &plan,
            &previous,
            &ApplyOptions {
                dry_run: true,
                ..options
            },
        )?;
        if let Some(why) = preview.refused {
            return Err(Error::Refused(why));
        }
        eprint!(
            "{}",
            report::review(
                answers,
                &preview,
                root,
                matches!(install, InstallPlan::Write(_))
            )
        );
        if !prompter.confirm("Write these files?", true)? {
            return Err(Error::Cancelled("declined at the review".into()));
        }
    }
    // A missing root is created only now: a refused, cancelled or dry run
    // leaves no trace.
    if !root.exists() && !args.common.dry_run {
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io("create the --root directory", root, e))?;
    }
    WRITING.store(true, std::sync::atomic::Ordering::SeqCst);
    ui::step(if args.common.dry_run {
        "comparing with the files on disk (dry run)"
    } else {
        "writing the files that changed"
    });
    let report = apply::apply(&plan, &previous, &options)?;

    // Cells is restarted only once `cells configure` has used install.yml.
    let cells_ready = !under_root(root, paths::INSTALL_YML).exists();
    let (restarted, restart_error) = if args.common.restart_services && report.refused.is_none() {
        match services::run(&services::commands(&report.services(), cells_ready)) {
            Ok(steps) => (steps, None),
            Err((steps, e)) => (steps, Some(e)),
        }
    } else {
        (Vec::new(), None)
    };

    let context = report::Context {
        root,
        answers,
        caddy: &resolved.caddy,
        notes: &resolved.notes,
        pki: pki.as_ref(),
        install_written: matches!(install, InstallPlan::Write(_)),
        install_consumed: matches!(install, InstallPlan::Consumed),
        dry_run: args.common.dry_run,
        first_run: saved.is_none(),
        restart_requested: args.common.restart_services,
        cells_ready,
        cells_user_exists: matches!(
            nix::unistd::User::from_name(&answers.cells.user.to_string()),
            Ok(Some(_))
        ),
    };
    let text = if args.common.json {
        report::json(&report, &context, &restarted)
    } else if args.common.quiet || report.refused.is_some() {
        String::new()
    } else {
        report::render(&report, &context, &restarted, ui::stdout_colours())
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::runtime(format!("cannot write to stdout: {e}")))?;
    if let Some(why) = report.refused {
        return Err(Error::Refused(why));
    }
    ui::step("done");
    match restart_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
