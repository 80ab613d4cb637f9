//! `cellsctl init` and `cellsctl regenerate`: the pipeline end to end.
//! Inputs (flags, env, the wizard) -> Answers -> Plan (`prepare`) ->
//! decide -> review -> execute -> restart -> report.

use crate::apply::{self, ApplyOptions, Decision, Refusal};
use crate::cli::{CommonArgs, GenerateArgs};
use crate::error::Error;
use crate::inputs::install::{self, InstallPlan};
use crate::inputs::{Combine, Given};
use crate::lock;
use crate::prepare::{prepare, Prepared};
use crate::provision::Provisioner;
use crate::render::paths;
use crate::report::{self, Context, HostFacts, Run, Setup};
use crate::root::under_root;
use crate::secrets::SecretKind;
use crate::services::{self, Step};
use crate::state::{self, State};
use crate::ui;
use crate::wizard::{self, Prompter, TerminalPrompter};
use std::io::IsTerminal;
use std::path::Path;
use time::OffsetDateTime;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Init,
    Regenerate,
    /// Take over a deployment made by hand (see `crate::adopt`).
    Adopt,
}

pub fn run(args: &GenerateArgs, mode: Mode, now: OffsetDateTime) -> Result<(), Error> {
    let common = &args.common;
    ui::configure(common.quiet, common.verbose);
    let root = common.root.as_path();
    flags_fit_the_root(common, root)?;
    // One writing run at a time, from before the state is read; with
    // questions, from their end (a person may take their time). On a fresh
    // root the lock is taken just before the first write (a cancelled run
    // leaves no trace).
    let asks = asks_questions(common, mode);
    let locks_now = !common.dry_run && lock::has_place(root);
    let mut lock = (locks_now && !asks)
        .then(|| lock::acquire(root))
        .transpose()?;
    let saved = match mode {
        Mode::Init => state::load(root)?,
        Mode::Regenerate => Some(state::require(root)?),
        Mode::Adopt => already_managed(root)?,
    };
    let mut prompter = asks.then(TerminalPrompter::new);
    let (given, adopted) = match mode {
        Mode::Adopt => adopt_given(args, root, prompter.as_mut()).map(|(g, a)| (g, Some(a)))?,
        _ => (gather(args, root, saved.as_ref(), prompter.as_mut())?, None),
    };
    if locks_now && asks {
        lock = Some(lock_after_questions(root, saved.as_ref())?);
    }
    let mut prepared = prepare(root, &given, saved.as_ref(), common.force, now)?;
    let blocked = prepared.blocked.take();
    let timestamp = backup_timestamp(now);
    let options = ApplyOptions {
        fault: fault_from_env()?,
        // Adopting replaces the hand-made files it read, each kept as a backup.
        force: common.force || mode == Mode::Adopt,
        ..apply_options(common, &timestamp)
    };
    let previous = saved.as_ref().map(|s| s.files.clone()).unwrap_or_default();
    if let (Some(p), false) = (prompter.as_mut(), common.dry_run) {
        review(p, &prepared, &previous, &options)?;
    }
    let session = Session {
        common,
        adopted: adopted.as_ref(),
        given: &given,
        saved: saved.as_ref(),
        previous: &previous,
        options: &options,
    };
    carry_out(&session, &prepared, lock, blocked)
}

/// What a run was given, for the steps after the answers are settled.
struct Session<'a> {
    common: &'a CommonArgs,
    adopted: Option<&'a crate::adopt::Adopted>,
    given: &'a Given,
    saved: Option<&'a State>,
    previous: &'a std::collections::BTreeMap<String, state::FileRecord>,
    options: &'a ApplyOptions<'a>,
}

/// Decide, (provision,) write, restart, report: the steps after the review.
fn carry_out(
    session: &Session,
    prepared: &Prepared,
    mut lock: Option<lock::Lock>,
    blocked: Option<Error>,
) -> Result<(), Error> {
    let Session {
        common,
        adopted,
        given,
        saved,
        previous,
        options,
    } = *session;
    let root = options.root;
    let caddy_upgraded =
        saved.is_some_and(|s| s.answers.caddy_version != prepared.resolved.answers.caddy_version);
    if let (true, Some(e)) = (common.provision, &blocked) {
        // install.yml cannot be read: provisioning would work on half a plan.
        return Err(Error::runtime(format!("--provision: {e}")));
    }
    if common.provision && prepared.resolved.answers.cluster.is_some() {
        return Err(Error::usage(
            "--provision: not in cluster mode (yet): set up each node with its `cellsctl node-bundle`, as the printed next steps say",
        ));
    }
    let mut provisioner = provisioner(common, given, prepared)?;
    if let Some(p) = provisioner.as_mut() {
        before_files(common, p, prepared, previous, options)?;
    }
    ui::step(if common.dry_run {
        "comparing with the files on disk (dry run)"
    } else {
        "writing the files that changed"
    });
    let mut decision = apply::decide(&prepared.plan, previous, options)?;
    let refusal = decision.refusal(root);
    if refusal.is_none() && !common.dry_run {
        if common.restart_services && provisioner.is_none() {
            restart_guard(prepared, &decision)?;
        }
        write(prepared, &mut decision, options, &mut lock, saved.is_some())?;
    }
    let provisioned = match (provisioner.as_mut(), &refusal) {
        (Some(p), None) => p
            .files(&decision)
            .and_then(|()| p.after_files(&decision, caddy_upgraded))
            .err(),
        _ => None,
    };
    let host = host_facts(root, prepared);
    let restarts = match provisioner {
        Some(_) => (Vec::new(), None),
        None => restart(common, &decision, refusal.is_some(), host, caddy_upgraded),
    };
    let outcome = Outcome {
        prepared,
        decision: &decision,
        refusal: refusal.as_ref(),
        restarted: &restarts.0,
        setup: if saved.is_some() {
            Setup::Again
        } else {
            Setup::First
        },
        host,
        provision: provisioner.as_ref(),
        previous_nodes: saved
            .and_then(|s| s.answers.cluster.as_ref())
            .map(|c| c.nodes.iter().map(|n| n.name.to_string()).collect())
            .unwrap_or_default(),
    };
    match (adopted, &refusal) {
        // With --json, stdout is the JSON: what was read goes to stderr.
        (Some(a), None) if common.json => eprint!("{}", crate::adopt::render(a, common.force)),
        (Some(a), None) if !common.quiet => super::print(&crate::adopt::render(a, common.force))?,
        _ => {}
    }
    tell(common, root, &outcome)?;
    if let Some(refusal) = refusal {
        return Err(Error::Refused(refusal));
    }
    if let Some(e) = blocked.or(provisioned) {
        return Err(e);
    }
    ui::step("done");
    drop(lock);
    restarts.1.map_or(Ok(()), Err)
}

/// With `--provision`: the steps' runner, knowing the Prometheus password
/// when it was given (verify then logs in).
fn provisioner<'a>(
    common: &CommonArgs,
    given: &Given,
    prepared: &'a Prepared,
) -> Result<Option<Provisioner<'a>>, Error> {
    if !common.provision {
        return Ok(None);
    }
    Ok(Some(Provisioner::new(
        &prepared.resolved.answers,
        &prepared.install,
        &prepared.plan,
        common.dry_run,
        given.secrets.read(SecretKind::Prometheus)?,
    )))
}

/// Preflight, the Cells user and the database, unless the files would be
/// refused (that refusal is reported as usual, before anything is done).
/// A failed step is reported with the steps before it.
fn before_files(
    common: &CommonArgs,
    p: &mut Provisioner,
    prepared: &Prepared,
    previous: &std::collections::BTreeMap<String, state::FileRecord>,
    options: &ApplyOptions,
) -> Result<(), Error> {
    let preview = apply::decide(&prepared.plan, previous, options)?;
    if preview.refusal(options.root).is_some() {
        return Ok(());
    }
    p.before_files().inspect_err(|_| {
        let text = if common.json {
            report::provision_json(common.dry_run, &p.steps)
        } else if common.quiet {
            String::new()
        } else {
            crate::provision::render(&p.steps, &[])
        };
        let _ = super::print(&text);
    })
}

/// `--restart-services` reloads Caddy: the new Caddyfile must pass the
/// installed caddy first, or nothing is written (a running Caddy and its
/// file on disk never disagree).
fn restart_guard(prepared: &Prepared, decision: &Decision) -> Result<(), Error> {
    let Ok(caddy) = which::which("caddy") else {
        return Ok(());
    };
    if !decision.changes() {
        return Ok(());
    }
    crate::provision::caddyfile_guard(&caddy, &prepared.plan).map_err(|why| {
        Error::runtime(format!(
            "--restart-services: {why}
  nothing was written; Caddy keeps serving its current site"
        ))
    })
}

/// `adopt` takes over a deployment no cellsctl manages yet.
fn already_managed(root: &Path) -> Result<Option<State>, Error> {
    match state::load(root)? {
        Some(_) => Err(Error::usage(format!(
            "adopt: {} is already managed by cellsctl: use `cellsctl regenerate`",
            root.display()
        ))),
        None => Ok(None),
    }
}

/// `adopt`: the flags over what was read; what the rendering would drop
/// stops the run (exit 3) unless --force.
/// On a terminal, what could not be read is asked (the rest is offered as
/// read); install.yml's passwords never are.
fn adopt_given(
    args: &GenerateArgs,
    root: &Path,
    prompter: Option<&mut TerminalPrompter>,
) -> Result<(Given, crate::adopt::Adopted), Error> {
    let flags = Given::from_args(&args.answers).answers;
    let adopted = crate::adopt::read(root, &flags)?;
    if !adopted.dropped.is_empty() && !args.common.force {
        return Err(Error::WouldDrop(adopted.dropped));
    }
    let mut given = Given::from_args(&args.answers);
    given.answers = given.answers.combine(adopted.answers.clone());
    given.adopting = true;
    if let Some(p) = prompter {
        eprint!("{}", crate::adopt::render(&adopted, args.common.force));
        given = wizard::run(
            p,
            given,
            &wizard::Context {
                root,
                saved: None,
                needs_install_secrets: false,
                caddy_known: true,
            },
        )?;
        given.adopting = true;
    }
    Ok((given, adopted))
}

/// `--root` is a directory (or not there yet); `--restart-services` only
/// with the root whose files this host's services run.
fn flags_fit_the_root(common: &CommonArgs, root: &Path) -> Result<(), Error> {
    if root.exists() && !root.is_dir() {
        return Err(Error::usage(format!(
            "--root: {} is not a directory",
            root.display()
        )));
    }
    if common.provision && !is_system_root(root) {
        return Err(Error::usage(format!(
            "--provision: only with --root / (it creates users, databases and services on this host, not below {}); use --root to render files only",
            root.display()
        )));
    }
    if common.provision {
        crate::provision::caddy_on_path()?;
    }
    if common.restart_services && !is_system_root(root) {
        return Err(Error::usage(format!(
            "--restart-services: only with --root / (the services of this host run the files below /, not those below {}); copy the files into place, then restart",
            root.display()
        )));
    }
    Ok(())
}

fn apply_options<'a>(common: &'a CommonArgs, timestamp: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        root: common.root.as_path(),
        force: common.force,
        restore: common.restore,
        timestamp,
        intent: paths::INTENT,
        fault: None,
    }
}

/// Writes what was decided, under the lock. A missing root is created only
/// now: a refused, cancelled or dry run leaves no trace.
fn write(
    prepared: &Prepared,
    decision: &mut Decision,
    options: &ApplyOptions,
    lock: &mut Option<lock::Lock>,
    had_state: bool,
) -> Result<(), Error> {
    let root = options.root;
    if !root.exists() {
        crate::root::create_dirs(root, 0o755)?;
    }
    if lock.is_none() {
        *lock = Some(lock::acquire(root)?);
        if !had_state && state::load(root)?.is_some() {
            return Err(Error::runtime(
                "another cellsctl run set this root up meanwhile; nothing was written, run again",
            ));
        }
    }
    ui::writing_started();
    apply::execute(&prepared.plan, decision, options)
}

/// The lock, taken once the questions are answered: the state they were
/// asked from must still be the one on disk.
fn lock_after_questions(root: &Path, asked_from: Option<&State>) -> Result<lock::Lock, Error> {
    let lock = lock::acquire(root)?;
    if state::load(root)?.as_ref() != asked_from {
        return Err(Error::runtime(
            "another cellsctl run changed the saved state while the questions were answered; nothing was written, run again",
        ));
    }
    Ok(lock)
}

/// Whether `root` is this host's `/`.
fn is_system_root(root: &Path) -> bool {
    std::fs::canonicalize(root).is_ok_and(|r| r == Path::new("/"))
}

/// `init` on a terminal asks for what flags, env and state left open.
fn asks_questions(common: &CommonArgs, mode: Mode) -> bool {
    mode != Mode::Regenerate
        && !common.non_interactive
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// The flags and secrets given, and with a prompter, what the wizard adds.
fn gather(
    args: &GenerateArgs,
    root: &Path,
    saved: Option<&State>,
    prompter: Option<&mut TerminalPrompter>,
) -> Result<Given, Error> {
    let mut given = Given::from_args(&args.answers);
    given.reconfigure = args.common.provision;
    let Some(prompter) = prompter else {
        return Ok(given);
    };
    wizard::run(
        prompter,
        given,
        &wizard::Context {
            root,
            saved,
            needs_install_secrets: install::needs_secrets(root, saved),
            caddy_known: args.answers.caddy_version.is_some()
                || saved.is_some()
                || which::which("caddy").is_ok(),
        },
    )
}

/// The answers and what would happen to each file, then "Write these files?".
fn review(
    p: &mut dyn Prompter,
    prepared: &Prepared,
    previous: &std::collections::BTreeMap<String, state::FileRecord>,
    options: &ApplyOptions,
) -> Result<(), Error> {
    let preview = apply::decide(&prepared.plan, previous, options)?;
    if let Some(refusal) = preview.refusal(options.root) {
        return Err(Error::Refused(refusal));
    }
    eprint!(
        "{}",
        report::review(
            &prepared.resolved.answers,
            &preview,
            options.root,
            matches!(prepared.install, InstallPlan::Write(_))
        )
    );
    if p.confirm("Write these files?", true)? {
        Ok(())
    } else {
        Err(Error::Cancelled("declined at the review".into()))
    }
}

fn host_facts(root: &Path, prepared: &Prepared) -> HostFacts {
    let user = prepared.resolved.answers.cells.user.to_string();
    HostFacts {
        cells_user_exists: matches!(nix::unistd::User::from_name(&user), Ok(Some(_))),
        // Cells is restarted only once `cells configure` has used install.yml.
        cells_configured: !under_root(root, paths::INSTALL_YML).exists(),
    }
}

/// With `--restart-services` and nothing refused: the systemctl steps run,
/// and the error that stopped them.
fn restart(
    common: &CommonArgs,
    decision: &Decision,
    refused: bool,
    host: HostFacts,
    caddy_upgraded: bool,
) -> (Vec<Step>, Option<Error>) {
    if !common.restart_services || refused {
        return (Vec::new(), None);
    }
    match services::run(&services::commands(
        &decision.services(),
        host.cells_configured,
        caddy_upgraded,
    )) {
        Ok(steps) => (steps, None),
        Err((steps, e)) => (steps, Some(e)),
    }
}

/// What a run did, for the report.
struct Outcome<'a> {
    prepared: &'a Prepared,
    decision: &'a Decision,
    refusal: Option<&'a Refusal>,
    restarted: &'a [Step],
    setup: Setup,
    host: HostFacts,
    provision: Option<&'a Provisioner<'a>>,
    /// Cluster mode: the saved state's nodes before this run.
    previous_nodes: Vec<String>,
}

/// The report on stdout: JSON, text, or (quiet, or refused) nothing.
fn tell(common: &CommonArgs, root: &Path, o: &Outcome) -> Result<(), Error> {
    let resolved = &o.prepared.resolved;
    let ctx = Context {
        root,
        answers: &resolved.answers,
        caddy: &resolved.caddy,
        notes: &resolved.notes,
        pki: o.prepared.pki.as_ref(),
        install: &o.prepared.install,
        run: match (common.dry_run, common.restart_services, common.provision) {
            (true, _, _) => Run::DryRun,
            (false, _, true) => Run::Provision,
            (false, false, false) => Run::Write,
            (false, true, false) => Run::WriteAndRestart,
        },
        setup: o.setup,
        host: o.host,
        provision: o
            .provision
            .map(|p| (p.steps.as_slice(), p.verified.as_slice())),
        previous_nodes: o.previous_nodes.clone(),
    };
    let text = if common.json {
        report::json(o.decision, o.refusal, &ctx, o.restarted)
    } else if common.quiet || o.refusal.is_some() {
        String::new()
    } else {
        report::render(o.decision, &ctx, o.restarted, ui::stdout_colours())
    };
    super::print(&text)
}

/// For backup names: `20261127T054603Z`.
fn backup_timestamp(now: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
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
