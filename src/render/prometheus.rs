//! cellsctl's own Prometheus config (the distro's prometheus.yml is left
//! alone) and the drop-in that starts Debian's prometheus.service with it.

use super::{paths, render_template, templates};
use crate::answers::{Answers, Prometheus};
use crate::error::Error;
use serde::Serialize;

#[derive(Serialize)]
struct Config {
    global: Global,
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Serialize)]
struct Global {
    scrape_interval: &'static str,
    evaluation_interval: &'static str,
}

#[derive(Serialize)]
struct ScrapeConfig {
    job_name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_path: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    static_configs: Vec<StaticConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    file_sd_configs: Vec<FileSdConfig>,
}

#[derive(Serialize)]
struct StaticConfig {
    targets: Vec<String>,
}

#[derive(Serialize)]
struct FileSdConfig {
    files: Vec<String>,
}

/// The flags the drop-in sets; Prometheus refuses any of them twice.
pub const DROPIN_FLAGS: [&str; 3] = [
    "--config.file",
    "--web.listen-address",
    "--web.external-url",
];

/// `--web.external-url`: the public URL plus the path Caddy serves Prometheus under.
pub fn external_url(a: &Answers, p: &Prometheus) -> String {
    format!("{}{}", a.external_url, p.path)
}

pub fn render_config(a: &Answers, p: &Prometheus) -> Result<String, Error> {
    let config = Config {
        global: Global {
            scrape_interval: "15s",
            evaluation_interval: "15s",
        },
        scrape_configs: vec![
            ScrapeConfig {
                job_name: "prometheus",
                // --web.external-url with a path moves every endpoint under it.
                metrics_path: Some(format!("{}/metrics", p.path)),
                static_configs: vec![StaticConfig {
                    targets: vec![p.listen.dial().to_string()],
                }],
                file_sd_configs: vec![],
            },
            ScrapeConfig {
                job_name: "cells",
                metrics_path: None,
                static_configs: vec![],
                file_sd_configs: vec![FileSdConfig {
                    files: vec![a.prometheus_targets_file(p).to_string()],
                }],
            },
        ],
    };
    let body = serde_yaml::to_string(&config)
        .map_err(|e| Error::runtime(format!("serializing the Prometheus config: {e}")))?;
    // The public URL is deliberately absent here: it lives in the drop-in's
    // --web.external-url, so a URL change does not touch this file.
    Ok(super::normalise(&format!(
        "# Managed by cellsctl: Prometheus scraping itself and Pydio Cells.\n{body}"
    )))
}

#[derive(Serialize)]
struct DropinContext {
    config_file: &'static str,
    listen: String,
    external_url: String,
}

pub fn render_dropin(a: &Answers, p: &Prometheus) -> Result<String, Error> {
    render_template(
        templates::PROMETHEUS_DROPIN,
        DropinContext {
            config_file: paths::PROMETHEUS_CONFIG,
            listen: p.listen.to_string(),
            external_url: external_url(a, p),
        },
    )
}

/// The drop-in flags that `/etc/default/prometheus` already sets in `ARGS`.
pub fn conflicting_default_args(defaults_file: &str) -> Vec<&'static str> {
    // Debian's file tells admins to continue long ARGS with a backslash.
    let joined = defaults_file.replace("\\\n", " ");
    let args: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("ARGS="))
        .collect();
    DROPIN_FLAGS
        .into_iter()
        .filter(|flag| {
            args.iter().any(|a| {
                a.split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                    .any(|tok| tok == *flag || tok.starts_with(&format!("{flag}=")))
            })
        })
        .collect()
}

#[cfg(test)]
mod debian_defaults_tests {
    use super::*;

    #[test]
    fn finds_repeated_flags_in_debian_defaults() {
        assert!(
            conflicting_default_args("# ARGS=\"--web.listen-address=:9\"\nARGS=\"\"\n").is_empty()
        );
        assert_eq!(
            conflicting_default_args(
                "ARGS=\"--storage.tsdb.retention.time=30d --web.listen-address=:9091\"\n"
            ),
            vec!["--web.listen-address"]
        );
        assert_eq!(
            conflicting_default_args("ARGS='--config.file /x --web.external-url=http://a'"),
            vec!["--config.file", "--web.external-url"]
        );
        assert_eq!(
            conflicting_default_args(
                "ARGS=\"--storage.tsdb.retention.time=30d \\\n  --web.listen-address=:9091\"\n"
            ),
            vec!["--web.listen-address"]
        );
    }
}
