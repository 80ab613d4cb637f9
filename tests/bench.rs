//! The benchmark script runs end to end (tiny iteration count, debug build).
//! It checks that the script works and its table is complete, not the numbers.

use crate::common::*;

#[test]
fn bench_script_runs_end_to_end() {
    for tool in ["hyperfine", "strace", "envsubst", "python3", "openssl"] {
        if require_tool(tool, None).is_none() {
            return;
        }
    }
    if require_tool("time (GNU)", Some("/usr/bin/time".into())).is_none() {
        return;
    }
    let caddies = caddy_binaries();
    let Some((_, new_caddy)) = caddies.iter().find(|(v, _)| *v == "2.11.7") else {
        return;
    };
    let out = tempfile::tempdir().expect("dir");
    let file = out.path().join("BENCHMARKS.md");
    let run = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/run"))
        .arg("--quick")
        .arg("--binary")
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"))
        .arg("--out")
        .arg(&file)
        .env("BENCH_CADDY_NEW", new_caddy)
        .output()
        .expect("bench/run");
    assert!(
        run.status.success(),
        "bench/run failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(&file).expect("the table is written");
    for row in [
        "| 1 |",
        "| 2 |",
        "| 3 |",
        "| 4 |",
        "| 5 |",
        "| 6 |",
        "### Row 6",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    assert!(
        table.contains("writes seen by strace: 0"),
        "a no-change regenerate wrote something:\n{table}"
    );
    assert!(
        table.contains("| rendering for Caddy"),
        "phase timings missing:\n{table}"
    );
    assert!(
        !table.contains("nan") && !table.contains("| 0.0 ms (0.0"),
        "empty measurements:\n{table}"
    );
}

/// The data-path benchmark runs end to end in quick mode (16 MiB, 2000
/// GETs, debug builds), so its script, the stand-in's `/download` and the
/// cluster pool set-up stay working; the numbers are not checked.
#[test]
fn datapath_script_runs_end_to_end() {
    for tool in ["h2load", "curl", "python3", "tar"] {
        if require_tool(tool, None).is_none() {
            return;
        }
    }
    let caddies = caddy_binaries();
    if caddies.len() < 2 {
        return;
    }
    let standin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/debug/examples/cells_standin");
    let Some(standin) = require_tool("the Cells stand-in (cargo builds examples)", Some(standin))
    else {
        return;
    };
    let out = tempfile::tempdir().expect("dir");
    let file = out.path().join("BENCHMARKS.md");
    let run = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/datapath"))
        .arg("--quick")
        .arg("--binary")
        .arg(assert_cmd::cargo::cargo_bin!("cellsctl"))
        .arg("--standin")
        .arg(&standin)
        .arg("--out")
        .arg(&file)
        .output()
        .expect("bench/datapath");
    assert!(
        run.status.success(),
        "bench/datapath failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(&file).expect("the section is written");
    for row in [
        "## Data path",
        "| D1 |",
        "| D4 |",
        "| D7 |",
        "| D8 |",
        "| D16 |",
    ] {
        assert!(table.contains(row), "{row} missing:\n{table}");
    }
    assert!(!table.contains("nan"), "empty measurements:\n{table}");
}
