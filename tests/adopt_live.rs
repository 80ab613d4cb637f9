//! `cellsctl adopt` on a live set-up, for Caddy 2.6.2 and 2.11.7. Pydio's
//! tutorial Caddyfile with Prometheus and `basicauth`, changed only where a
//! machine without public DNS needs it, is served by real Caddy in front of
//! the Cells stand-in and a real Prometheus; `cellsctl verify` records what
//! passes. Then `adopt` takes it over, Caddy serves the adopted Caddyfile on
//! the same ports (Prometheus restarted from cellsctl's drop-in, as the next
//! steps say), and every check that passed passes again, Prometheus' login
//! included. Loopback only; every process is stopped by its guard.

use crate::common::*;
use crate::standin;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tutorial's Caddyfile with Prometheus, as printed there.
const TUTORIAL: &str = include_str!("fixtures/tutorial-prometheus.Caddyfile");

/// What `verify --url` can check on a set-up without cellsctl's state.
const HAND_MADE_CHECKS: [&str; 7] = [
    "dns",
    "https",
    "http2",
    "redirect",
    "upstream",
    "grpc",
    "websocket",
];

/// Loopback ports of one run: the site, Caddy's HTTP and admin, Cells, Prometheus.
struct Ports {
    site: u16,
    http: u16,
    admin: u16,
    cells: u16,
    prom: u16,
}

impl Ports {
    fn url(&self) -> String {
        format!("https://cells.localhost:{}", self.site)
    }
}

/// The tutorial's Caddyfile for this machine: the site on a loopback port
/// with Caddy's internal CA (ACME cannot work offline), Cells and Prometheus
/// on test ports, and a hash of our password, base64-encoded as there.
fn tutorial_for_this_machine(p: &Ports, hash_base64: &str) -> String {
    [
        ("https://cells.example.com", p.url()),
        ("tls tls@example.com", "tls internal".to_string()),
        ("localhost:9090", format!("localhost:{}", p.prom)),
        (
            "JDJhJDE0JGZad2Y0VHF5OWtHb2NaV3BnMC9jak9jRTkzUi9pSnMxWUM0cmxMWVhJSFguaWtCYnYxdEZt",
            hash_base64.to_string(),
        ),
        ("localhost:8080", format!("localhost:{}", p.cells)),
    ]
    .into_iter()
    .fold(TUTORIAL.to_string(), |text, (from, to)| {
        assert_eq!(text.matches(from).count(), 1, "{from} once in the tutorial");
        text.replace(from, &to)
    })
}

/// A bcrypt hash of the Prometheus password made by `cellsctl hash-password`.
fn hash_password() -> String {
    let out = cellsctl()
        .args(["hash-password", "--cost", "4"])
        .write_stdin(format!("{PROM_PASSWORD}\n"))
        .output()
        .expect("run hash-password");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A started command, as `user` when the tests run as root.
fn spawn(mut cmd: Command, user: &str, owned: &[&Path], log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    cmd.stdout(Stdio::null()).stderr(log);
    if let Some((uid, gid)) = run_as(user) {
        for dir in owned {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown");
        }
        cmd.uid(uid).gid(gid);
    }
    Child(cmd.spawn().expect("start"))
}

/// The last lines of a log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Waits until `ready`; fails if the process exits first, showing its log.
fn wait_for(what: &str, child: &mut Child, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("{what} exited: {status}\n{}", tail(log));
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} not ready after 30 s\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `curl`'s status code for a path on the site (or a full http:// URL).
fn status(curl: &Path, p: &Ports, ca: &Path, path: &str, auth: Option<&str>) -> String {
    let mut cmd = Command::new(curl);
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
    ])
    .arg("--resolve")
    .arg(format!("cells.localhost:{}:127.0.0.1", p.site))
    .arg("--cacert")
    .arg(ca);
    if let Some(a) = auth {
        cmd.arg("-u").arg(a);
    }
    let out = cmd
        .arg(format!("{}{path}", p.url()))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Real Caddy on the Caddyfile at /etc/caddy/Caddyfile below the root, with
/// the test machine's global options added (as e2e does), ready once the
/// stand-in answers through it.
fn serve(caddy: &Path, d: &Deployment, p: &Ports, xdg: &Path, curl: &Path, what: &str) -> Child {
    let file = d.root().join(format!("Caddyfile.{what}"));
    std::fs::write(
        &file,
        for_test_machine(&caddyfile_below_root(d), p.admin, p.http),
    )
    .expect("write");
    let log = d.root().join(format!("caddy.{what}.log"));
    let mut cmd = Command::new(caddy);
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("XDG_DATA_HOME", xdg)
        .env("XDG_CONFIG_HOME", xdg)
        .env("HOME", xdg);
    let mut child = spawn(cmd, "caddy", &[xdg], &log);
    let ca = caddy_root(xdg);
    wait_for(&format!("Caddy ({what})"), &mut child, &log, || {
        ca.exists() && status(curl, p, &ca, "/", None) == "200"
    });
    child
}

fn caddy_root(xdg: &Path) -> PathBuf {
    xdg.join("caddy/pki/authorities/local/root.crt")
}

/// A running Prometheus and its temp storage, removed once it is stopped.
struct Prometheus {
    _process: Child,
    _storage: tempfile::TempDir,
}

/// Real Prometheus with these flags (and temp storage), ready on its path.
fn prometheus(bin: &Path, flags: &[String], p: &Ports, curl: &Path, log: &Path) -> Prometheus {
    let tsdb = tempfile::tempdir().expect("tsdb");
    open_up(tsdb.path());
    let mut cmd = Command::new(bin);
    cmd.args(flags)
        .arg(format!("--storage.tsdb.path={}", tsdb.path().display()));
    let mut child = spawn(cmd, "prometheus", &[tsdb.path()], log);
    let ready = format!("http://127.0.0.1:{}/prometheus/-/ready", p.prom);
    wait_for("Prometheus", &mut child, log, || {
        Command::new(curl)
            .args(["-fs", "--max-time", "2", "-o", "/dev/null", &ready])
            .status()
            .is_ok_and(|s| s.success())
    });
    Prometheus {
        _process: child,
        _storage: tsdb,
    }
}

/// `cellsctl verify`: exit code, output, the checks that passed.
fn verify(d: &Deployment, p: &Ports, ca: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = cellsctl()
        .arg("verify")
        .arg("--root")
        .arg(d.root())
        .args(["--connect", &format!("127.0.0.1:{}", p.site)])
        .args(["--connect-http", &format!("127.0.0.1:{}", p.http)])
        .arg("--ca")
        .arg(ca)
        .args(extra)
        .output()
        .expect("run verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn passed(verify_output: &str) -> BTreeSet<String> {
    verify_output
        .lines()
        .filter_map(|l| l.strip_prefix("ok    "))
        .filter_map(|l| l.split_once(": ").map(|(check, _)| check.to_string()))
        .collect()
}

/// The flags of cellsctl's Prometheus drop-in, as systemd would run it
/// (paths below the root; no /etc/default/prometheus, so `$ARGS` is empty).
fn dropin_flags(d: &Deployment) -> Vec<String> {
    let dropin = d.read("/etc/systemd/system/prometheus.service.d/cellsctl.conf");
    let exec = dropin
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .find(|l| !l.is_empty())
        .expect("ExecStart line");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/prometheus"), "{dropin}");
    words
        .filter(|w| *w != "$ARGS")
        .map(|w| {
            w.replace(
                "=/etc/prometheus/",
                &format!("={}/etc/prometheus/", d.root().display()),
            )
        })
        .collect()
}

#[test]
fn adopting_keeps_what_the_hand_made_set_up_passed() {
    let caddies = caddy_binaries();
    let Some(curl) = require_tool("curl", None) else {
        return;
    };
    let Some(prometheus_bin) = require_tool("prometheus", Some("/usr/bin/prometheus".into()))
    else {
        return;
    };
    // The stand-in's own threads serve while this one runs the tools.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let hash = hash_password();
    let hash_base64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &hash);
    for (version, caddy) in caddies {
        let started = Instant::now();
        let [site, http, admin, cells, prom] = free_ports::<5>();
        let p = Ports {
            site,
            http,
            admin,
            cells,
            prom,
        };
        let d = Deployment::new();
        open_up(d.root());
        std::fs::create_dir_all(d.path("/etc/caddy")).expect("mkdir");
        std::fs::create_dir_all(d.path("/etc/prometheus")).expect("mkdir");
        let hand_made = tutorial_for_this_machine(&p, &hash_base64);
        std::fs::write(d.path("/etc/caddy/Caddyfile"), &hand_made).expect("write");
        // Debian's prometheus.yml, and the flags the tutorial asks for.
        std::fs::write(
            d.path("/etc/prometheus/prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: prometheus\n    metrics_path: /prometheus/metrics\n    static_configs:\n      - targets: ['localhost:{prom}']\n"
            ),
        )
        .expect("write");
        let hand_made_flags = [
            format!(
                "--config.file={}",
                d.path("/etc/prometheus/prometheus.yml").display()
            ),
            format!("--web.listen-address=127.0.0.1:{prom}"),
            format!("--web.external-url={}/prometheus", p.url()),
        ];

        // Cells' own self-signed certificate, which Caddy does not verify.
        let own = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("self-signed");
        let _standin = runtime.block_on(standin::start(
            format!("127.0.0.1:{cells}").parse().expect("addr"),
            &own.cert.pem(),
            &own.signing_key.serialize_pem(),
        ));
        let mut prom_proc = prometheus(
            &prometheus_bin,
            &hand_made_flags,
            &p,
            &curl,
            &d.root().join("prometheus.hand-made.log"),
        );
        let xdg = tempfile::tempdir().expect("xdg");
        open_up(xdg.path());
        let ca = caddy_root(xdg.path());
        let what = format!("Caddy {version}");

        // 1. The hand-made set-up.
        let mut caddy_proc = serve(&caddy, &d, &p, xdg.path(), &curl, "hand-made");
        let up = started.elapsed();
        let (code, out) = verify(&d, &p, &ca, &["--url", &p.url()]);
        let before = passed(&out);
        assert_eq!(code, Some(0), "{what}, hand-made:\n{out}");
        assert_eq!(
            before,
            HAND_MADE_CHECKS.map(String::from).into(),
            "{what}, hand-made:\n{out}"
        );
        // Without the state, verify knows no Prometheus: probed here, as it would.
        let good = format!("sysadminUser:{PROM_PASSWORD}");
        let ready = "/prometheus/-/ready";
        assert_eq!(status(&curl, &p, &ca, ready, None), "401", "{what}");
        assert_eq!(status(&curl, &p, &ca, ready, Some(&good)), "200", "{what}");
        assert_eq!(
            status(&curl, &p, &ca, "/prometheusX", None),
            "401",
            "{what}: the tutorial's `/prometheus*` also covers /prometheusX"
        );
        drop(caddy_proc);
        let hand_made_done = started.elapsed();

        // 2. Adopt, with nothing but the root: the hand-made files tell it all.
        let bin = tempfile::tempdir().expect("bin");
        std::os::unix::fs::symlink(&caddy, bin.path().join("caddy")).expect("symlink");
        let adopted = d
            .cmd("adopt", &[])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
            .output()
            .expect("run adopt");
        let adopt_out = String::from_utf8_lossy(&adopted.stdout).to_string()
            + &String::from_utf8_lossy(&adopted.stderr);
        assert_eq!(adopted.status.code(), Some(0), "{what}: adopt\n{adopt_out}");
        assert!(!adopt_out.contains("Dropped"), "{what}:\n{adopt_out}");
        let state: serde_yaml::Value =
            serde_yaml::from_str(&d.read("/etc/cellsctl/cellsctl.yaml")).expect("state");
        let a = &state["answers"];
        for (value, want) in [
            (&a["external_url"], p.url()),
            (&a["public_tls"]["mode"], "internal".into()),
            (&a["upstream_tls"], "skip-verify".into()),
            (&a["bind"], format!("127.0.0.1:{cells}")),
            (&a["prometheus"]["listen"], format!("127.0.0.1:{prom}")),
            (&a["prometheus"]["user"], "sysadminUser".into()),
            (&a["prometheus"]["password_hash"], hash.clone()),
        ] {
            assert_eq!(value.as_str(), Some(want.as_str()), "{what}:\n{adopt_out}");
        }
        let adopt_done = started.elapsed();

        // 3. The adopted set-up on the same ports: Prometheus as cellsctl's
        // drop-in starts it, Caddy on the adopted Caddyfile.
        drop(prom_proc);
        prom_proc = prometheus(
            &prometheus_bin,
            &dropin_flags(&d),
            &p,
            &curl,
            &d.root().join("prometheus.adopted.log"),
        );
        caddy_proc = serve(&caddy, &d, &p, xdg.path(), &curl, "adopted");
        let (code, out) = verify(
            &d,
            &p,
            &ca,
            &["--prometheus-password-file", &d.secret_file("prom")],
        );
        let after = passed(&out);
        let log = tail(&d.root().join("caddy.adopted.log"));
        assert_eq!(code, Some(0), "{what}, adopted:\n{out}\nCaddy:\n{log}");
        let lost: Vec<&String> = before.difference(&after).collect();
        assert!(lost.is_empty(), "{what}: {lost:?} no longer pass:\n{out}");
        for check in [
            "prometheus auth",
            "prometheus login",
            "upstream certificate",
        ] {
            assert!(after.contains(check), "{what}: {check}:\n{out}");
        }
        assert_eq!(
            status(&curl, &p, &ca, "/prometheusX", None),
            "200",
            "{what}: /prometheusX now reaches Cells, as adopt said it would"
        );
        eprintln!(
            "{what}: hand-made up {:.1?}, verified {:.1?}, adopted {:.1?}, adopted verified {:.1?}",
            up,
            hand_made_done,
            adopt_done,
            started.elapsed()
        );
        drop(caddy_proc);
        drop(prom_proc);
    }
}
