//! `--public-tls custom`: the admin's own certificate and key, looked at
//! before Caddy trips over them. They must exist, parse, belong together,
//! cover the external host and, where a `caddy` user exists, be readable by
//! it. The wizard asks again on a problem; `init`/`regenerate` warn (a
//! certificate may legitimately arrive after the render); `check` fails.

use crate::answers::{AbsPath, Answers, Host, PublicTls};
use crate::root::{inspect_following, under_root, Found};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Certificate chains and keys are small; anything bigger is not one.
const LIMIT: u64 = 1 << 20;

/// The admin's file, through links they may have made, but not waiting on
/// a FIFO and not past the size cap.
fn read(root: &Path, path: &AbsPath, what: &str) -> Result<Vec<u8>, String> {
    let on_disk = under_root(root, path.as_str());
    let bytes = match inspect_following(&on_disk, LIMIT) {
        Ok(Found::Regular(r)) => r.bytes,
        Ok(Found::Missing) => {
            let e = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
            return Err(format!("the {what} {}: {e}", on_disk.display()));
        }
        Ok(Found::Unusual(kind)) => {
            return Err(format!("the {what} {} is {kind}", on_disk.display()))
        }
        Err(e) => return Err(format!("the {what}: {e}")),
    };
    if let Some(why) = caddy_cannot_read(&on_disk) {
        return Err(format!("the {what} {}: {why}", on_disk.display()));
    }
    Ok(bytes)
}

/// The first certificate of a PEM chain: its names and its public key (SPKI, DER).
fn leaf(pem: &[u8]) -> Result<(Vec<String>, Vec<u8>), String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| format!("is not a PEM certificate ({e})"))?;
    let cert = block
        .parse_x509()
        .map_err(|e| format!("does not parse ({e})"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    names.push(d.to_ascii_lowercase())
                }
                x509_parser::extensions::GeneralName::IPAddress(raw) => {
                    let ip = match raw.len() {
                        4 => <[u8; 4]>::try_from(*raw).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*raw).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok((names, cert.public_key().raw.to_vec()))
}

/// Whether a certificate name covers the host (`*.example.org` covers one label).
fn covers(name: &str, host: &Host) -> bool {
    match host {
        Host::Ip(ip) => name == ip.to_string(),
        Host::Dns(dns) => match name.strip_prefix("*.") {
            Some(parent) => dns
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => name == dns,
        },
    }
}

/// What is wrong with the certificate file, if anything.
pub fn cert_problem(root: &Path, cert: &AbsPath, host: &Host) -> Option<String> {
    let bytes = match read(root, cert, "certificate") {
        Ok(b) => b,
        Err(why) => return Some(why),
    };
    match leaf(&bytes) {
        Err(why) => Some(format!("the certificate {cert} {why}")),
        Ok((names, _)) if !names.iter().any(|n| covers(n, host)) => Some(format!(
            "the certificate {cert} does not cover {host} (it names {})",
            if names.is_empty() {
                "nothing".to_string()
            } else {
                names.join(", ")
            }
        )),
        Ok(_) => None,
    }
}

/// What is wrong with the key file, or with it next to the certificate.
pub fn key_problem(root: &Path, key: &AbsPath, cert: &AbsPath) -> Option<String> {
    use rustls::pki_types::{pem::PemObject, PrivateKeyDer};
    let bytes = match read(root, key, "key") {
        Ok(b) => b,
        Err(why) => return Some(why),
    };
    let der = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(der) => der,
        Err(e) => return Some(format!("the key {key} is not a PEM private key ({e})")),
    };
    let signing = match rustls::crypto::ring::sign::any_supported_type(&der) {
        Ok(s) => s,
        Err(e) => return Some(format!("the key {key} cannot be used ({e})")),
    };
    // The certificate's own problems are reported on their own.
    let (_, cert_key) = read(root, cert, "certificate")
        .ok()
        .and_then(|pem| leaf(&pem).ok())?;
    match signing.public_key() {
        Some(public) if public.as_ref() != cert_key.as_slice() => Some(format!(
            "the key {key} does not belong to the certificate {cert}"
        )),
        _ => None,
    }
}

/// Every problem with the pair.
pub fn problems(root: &Path, cert: &AbsPath, key: &AbsPath, host: &Host) -> Vec<String> {
    cert_problem(root, cert, host)
        .into_iter()
        .chain(key_problem(root, key, cert))
        .collect()
}

/// For `init`/`regenerate`: a warning when the custom certificate cannot be served yet.
pub fn warning(root: &Path, a: &Answers) -> Option<String> {
    let PublicTls::Custom { cert, key } = &a.public_tls else {
        return None;
    };
    let found = problems(root, cert, key, &a.external_url.host);
    (!found.is_empty()).then(|| {
        format!(
            "Caddy cannot serve the custom certificate yet: {}; put the files in place before Caddy reloads (`cellsctl check` reports this until then)",
            found.join("; ")
        )
    })
}

/// Why the `caddy` user could not read this file, when that user exists.
/// Mode bits only: ACLs are not considered.
fn caddy_cannot_read(path: &Path) -> Option<String> {
    let user = nix::unistd::User::from_name("caddy").ok().flatten()?;
    let name = std::ffi::CString::new(user.name.clone()).ok()?;
    let groups: Vec<u32> = nix::unistd::getgrouplist(&name, user.gid)
        .unwrap_or_else(|_| vec![user.gid])
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    let uid = user.uid.as_raw();
    let may = |p: &Path, bit: u32| {
        p.metadata().is_ok_and(|m| {
            let mode = m.mode();
            let bits = if uid == 0 || m.uid() == uid {
                mode >> 6
            } else if groups.contains(&m.gid()) {
                mode >> 3
            } else {
                mode
            };
            uid == 0 || bits & bit != 0
        })
    };
    for dir in path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
    {
        if !may(dir, 0o1) {
            return Some(format!(
                "the caddy user cannot enter {} (chmod o+x, or give it to caddy's group)",
                dir.display()
            ));
        }
    }
    (!may(path, 0o4)).then(|| {
        "the caddy user cannot read it (make it readable by caddy's group, e.g. chgrp caddy and chmod g+r)"
            .to_string()
    })
}

#[cfg(test)]
mod public_cert_tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        let host = Host::Dns("files.example.org".into());
        assert!(covers("files.example.org", &host));
        assert!(covers("*.example.org", &host));
        assert!(!covers("*.org", &host));
        assert!(!covers("example.org", &host));
        assert!(!covers("*.files.example.org", &host));
        assert!(covers("192.0.2.1", &Host::Ip("192.0.2.1".parse().unwrap())));
    }

    #[test]
    fn a_pair_is_checked_for_names_and_belonging() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("certs");
        std::fs::create_dir(&dir).unwrap();
        // Readable by a `caddy` user, as on a server where one exists.
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(root.path(), open.clone()).unwrap();
        std::fs::set_permissions(&dir, open).unwrap();
        let issue = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.to_string()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert, key) = issue("*.example.org");
        let (_, other_key) = issue("other.example.org");
        for (file, text) in [("c.pem", &cert), ("k.pem", &key), ("o.pem", &other_key)] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let path = |f: &str| -> AbsPath { format!("/certs/{f}").parse().unwrap() };
        let host = Host::Dns("files.example.org".into());
        assert!(problems(root.path(), &path("c.pem"), &path("k.pem"), &host).is_empty());
        let wrong = problems(root.path(), &path("c.pem"), &path("o.pem"), &host);
        assert!(wrong[0].contains("does not belong"), "{wrong:?}");
        let elsewhere = Host::Dns("files.example.com".into());
        let names = cert_problem(root.path(), &path("c.pem"), &elsewhere).unwrap();
        assert!(
            names.contains("does not cover files.example.com"),
            "{names}"
        );
        let missing = cert_problem(root.path(), &path("none.pem"), &host).unwrap();
        assert!(missing.contains("No such file"), "{missing}");
    }
}
