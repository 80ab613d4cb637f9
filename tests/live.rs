//! The tutorial scenario served by real Caddy (2.6.2 and 2.11.7) in front of
//! real Prometheus, on loopback only: /prometheus is closed without
//! credentials and open with them.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `curl` status code for a URL on the loopback site.
fn status(curl: &Path, ca: &Path, site_port: u16, url: &str, auth: Option<&str>) -> String {
    let mut cmd = Command::new(curl);
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "--max-time",
        "5",
    ])
    .arg("--resolve")
    .arg(format!("cells.localhost:{site_port}:127.0.0.1"))
    .arg("--cacert")
    .arg(ca);
    if let Some(a) = auth {
        cmd.arg("-u").arg(a);
    }
    let out = cmd.arg(url).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if ready() {
            return;
        }
        if let Ok(Some(exit)) = child.0.try_wait() {
            panic!("{what} exited early: {exit}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} not ready after 30 s");
}

#[test]
fn prometheus_behind_real_caddy_needs_the_password() {
    let caddies = caddy_binaries();
    let Some(curl) = require_tool("curl", None) else {
        return;
    };
    let Some(prometheus) = require_tool("prometheus", Some("/usr/bin/prometheus".into())) else {
        return;
    };
    for (version, caddy) in caddies {
        let d = Deployment::new();
        open_up(d.root());
        let [site, http, admin, prom, cells] = free_ports::<5>();
        let url = format!("https://cells.localhost:{site}");
        let args = [
            "--external-url",
            &url,
            "--bind",
            &format!("127.0.0.1:{cells}"),
            "--public-tls",
            "internal",
            "--prometheus",
            "--prometheus-listen",
            &format!("127.0.0.1:{prom}"),
            "--prometheus-user",
            "sysadminUser",
            "--bcrypt-cost",
            "4",
            "--caddy-version",
            version,
            "--admin-password-file",
            &d.secret_file("admin"),
            "--db-password-file",
            &d.secret_file("db"),
        ]
        .map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(
            d.cmd("init", &args)
                .env("CELLSCTL_PROMETHEUS_PASSWORD", PROM_PASSWORD),
        );

        // Prometheus with exactly the drop-in's flags (config path below the root, temp storage).
        let dropin = d.read("/etc/systemd/system/prometheus.service.d/cellsctl.conf");
        let exec = dropin
            .lines()
            .filter_map(|l| l.strip_prefix("ExecStart="))
            .find(|l| !l.is_empty())
            .expect("ExecStart line");
        let mut words = exec.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/prometheus"));
        let tsdb = tempfile::tempdir().expect("tsdb");
        // As root (CI), Prometheus runs as `prometheus`, as on a server: the
        // rendered config must be readable by it.
        let prom_user = run_as("prometheus");
        if let Some((uid, gid)) = prom_user {
            std::os::unix::fs::chown(tsdb.path(), Some(uid), Some(gid)).expect("chown tsdb");
        }
        let flags: Vec<String> = words
            .filter(|w| *w != "$ARGS")
            .map(|w| {
                w.replace(
                    "=/etc/prometheus/",
                    &format!("={}/etc/prometheus/", d.root().display()),
                )
            })
            .chain([format!("--storage.tsdb.path={}", tsdb.path().display())])
            .collect();
        let mut prom_cmd = Command::new(&prometheus);
        prom_cmd
            .args(&flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = prom_user {
            std::os::unix::process::CommandExt::uid(&mut prom_cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut prom_cmd, gid);
        }
        let mut prom_proc = Child(prom_cmd.spawn().expect("start prometheus"));
        let ready_url = format!("http://127.0.0.1:{prom}/prometheus/-/ready");
        wait_for(
            "prometheus",
            || {
                Command::new(&curl)
                    .args(["-fsS", "-o", "/dev/null", &ready_url])
                    .status()
                    .is_ok_and(|s| s.success())
            },
            &mut prom_proc,
        );

        // Caddy with the rendered Caddyfile, changed only where a temp root and a shared machine need it.
        // Prometheus listens on loopback only (read from the listening sockets).
        if let Some(ss) = require_tool("ss", None) {
            let out = Command::new(ss).args(["-ltnH"]).output().expect("ss");
            let listening: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
                .filter(|local| local.ends_with(&format!(":{prom}")))
                .collect();
            assert_eq!(
                listening,
                [format!("127.0.0.1:{prom}")],
                "Prometheus must listen on loopback only"
            );
        }

        let xdg = tempfile::tempdir().expect("xdg");
        open_up(xdg.path());
        let caddy_user = run_as("caddy");
        if let Some((uid, gid)) = caddy_user {
            std::os::unix::fs::chown(xdg.path(), Some(uid), Some(gid)).expect("chown xdg");
        }
        let file = d.root().join("Caddyfile.live");
        std::fs::write(
            &file,
            for_test_machine(&caddyfile_below_root(&d), admin, http),
        )
        .expect("write");
        let mut caddy_cmd = Command::new(&caddy);
        caddy_cmd
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("XDG_DATA_HOME", xdg.path())
            .env("XDG_CONFIG_HOME", xdg.path())
            .env("HOME", xdg.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = caddy_user {
            std::os::unix::process::CommandExt::uid(&mut caddy_cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut caddy_cmd, gid);
        }
        let mut caddy_proc = Child(caddy_cmd.spawn().expect("start caddy"));
        let ca = xdg.path().join("caddy/pki/authorities/local/root.crt");
        let ready = format!("{url}/prometheus/-/ready");
        wait_for(
            &format!("caddy {version}"),
            || ca.exists() && status(&curl, &ca, site, &ready, None).starts_with("401"),
            &mut caddy_proc,
        );

        let what = format!("Caddy {version}");
        assert!(
            status(&curl, &ca, site, &format!("{url}/prometheus/"), None).starts_with("401"),
            "{what}: /prometheus/ open without credentials"
        );
        assert!(
            status(&curl, &ca, site, &ready, Some("sysadminUser:wrong")).starts_with("401"),
            "{what}: wrong password accepted"
        );
        assert!(
            status(
                &curl,
                &ca,
                site,
                &ready,
                Some(&format!("sysadmin:{PROM_PASSWORD}"))
            )
            .starts_with("401"),
            "{what}: wrong user accepted"
        );
        let good = format!("sysadminUser:{PROM_PASSWORD}");
        assert_eq!(
            status(&curl, &ca, site, &ready, Some(&good)),
            "200",
            "{what}: right password refused"
        );
        let root = status(&curl, &ca, site, &format!("{url}/prometheus/"), Some(&good));
        assert!(
            root.starts_with("302"),
            "{what}: /prometheus/ with credentials: {root}"
        );
        // /prometheusX is not Prometheus: it goes to Cells (not running here: 502), not to basic auth.
        assert!(
            status(&curl, &ca, site, &format!("{url}/prometheusX"), None).starts_with("502"),
            "{what}: matcher too wide"
        );
        // Port 80 (here: the test's http_port) redirects to HTTPS, keeping the port.
        let redirect = status(
            &curl,
            &ca,
            site,
            &format!("http://cells.localhost:{http}/x"),
            None,
        );
        assert_eq!(redirect, format!("308 {url}/x"), "{what}: HTTP redirect");
        drop(caddy_proc);
        drop(prom_proc);
    }
}
