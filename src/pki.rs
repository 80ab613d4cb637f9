//! The private CA and the Cells server certificate (upstream TLS `ca`).
//!
//! Certificates are inputs of rendering, not outputs: ECDSA signatures are
//! randomised, so a certificate is issued once and then kept until its SANs
//! change or it nears expiry. Time is passed in; nothing here reads a clock
//! or the filesystem.

use crate::answers::{Answers, CertDays, Host};
use crate::error::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use time::{Duration, OffsetDateTime};

/// How long the private CA lives.
pub const CA_DAYS: i64 = 3650;

/// The CA is renewed when fewer days than this remain.
pub const CA_RENEW_BEFORE_DAYS: i64 = 60;

/// PEM text of a certificate and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA and the Cells leaf, ready to be written.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca: CertAndKey,
    pub leaf: CertAndKey,
    /// Why the leaf was (re-)issued in this run, if it was.
    pub leaf_issued: Option<String>,
    pub ca_issued: bool,
}

/// The SANs the Cells certificate must carry: how Caddy dials it, and the public host.
pub fn wanted_sans(answers: &Answers) -> BTreeSet<String> {
    let mut sans: BTreeSet<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(ip) = answers.bind.specific_ip() {
        sans.insert(ip.to_string());
    }
    sans.insert(answers.external_url.host.san_form());
    sans
}

/// Keeps the CA and leaf found on disk when they are still right, and issues what is missing or stale.
pub fn ensure(
    existing_ca: Option<CertAndKey>,
    existing_leaf: Option<CertAndKey>,
    external_host: &Host,
    sans: &BTreeSet<String>,
    cert_days: CertDays,
    now: OffsetDateTime,
) -> Result<Pki, Error> {
    // The CA is replaced shortly before it expires (after ~10 years), which
    // re-issues the leaf too.
    let (ca, ca_issued) = match existing_ca {
        Some(ca) if check_ca(&ca)? - now > Duration::days(CA_RENEW_BEFORE_DAYS) => (ca, false),
        _ => (issue_ca(external_host, now)?, true),
    };
    let reason = match &existing_leaf {
        _ if ca_issued => Some("new CA".to_string()),
        None => Some("no certificate yet".to_string()),
        Some(leaf) => leaf_needs_reissue(leaf, &ca, sans, now),
    };
    match (reason, existing_leaf) {
        (None, Some(leaf)) => Ok(Pki {
            ca,
            leaf,
            leaf_issued: None,
            ca_issued,
        }),
        (reason, _) => {
            let leaf = issue_leaf(&ca, sans, cert_days, now)?;
            Ok(Pki {
                ca,
                leaf,
                leaf_issued: reason,
                ca_issued,
            })
        }
    }
}

/// Cluster mode: the CA and one certificate per node.
#[derive(Clone, Debug)]
pub struct ClusterPki {
    pub ca: CertAndKey,
    pub ca_issued: bool,
    pub nodes: Vec<NodeCert>,
}

/// A node's certificate and key, and why it was issued in this run.
#[derive(Clone, Debug)]
pub struct NodeCert {
    pub name: crate::cluster::NodeName,
    pub pair: CertAndKey,
    pub issued: Option<String>,
}

/// The SANs of a node's certificate: how the proxy dials it (its IP),
/// localhost, and the public host.
pub fn node_sans(ip: IpAddr, external_host: &Host) -> BTreeSet<String> {
    [
        ip.to_string(),
        "localhost".to_string(),
        external_host.san_form(),
    ]
    .into_iter()
    .collect()
}

/// Each node: (name, the pair on disk, its SANs). The CA is kept or
/// renewed once; each node's certificate is kept while it is still right.
pub fn ensure_cluster(
    existing_ca: Option<CertAndKey>,
    nodes: Vec<(
        crate::cluster::NodeName,
        Option<CertAndKey>,
        BTreeSet<String>,
    )>,
    external_host: &Host,
    cert_days: CertDays,
    now: OffsetDateTime,
) -> Result<ClusterPki, Error> {
    let mut ca = existing_ca;
    let mut ca_issued = false;
    let mut out = Vec::new();
    for (name, existing, sans) in nodes {
        let pki = ensure(ca.take(), existing, external_host, &sans, cert_days, now)?;
        ca_issued |= pki.ca_issued;
        out.push(NodeCert {
            name,
            pair: pki.leaf,
            issued: pki.leaf_issued,
        });
        ca = Some(pki.ca);
    }
    let ca = ca.ok_or_else(|| Error::runtime("internal: a cluster without nodes"))?;
    Ok(ClusterPki {
        ca,
        ca_issued,
        nodes: out,
    })
}

fn pki_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::runtime(format!("{what}: {e}"))
}

fn issue_ca(external_host: &Host, now: OffsetDateTime) -> Result<CertAndKey, Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| pki_err("generating the CA key", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("cellsctl private CA for {}", external_host.san_form()),
    );
    dn.push(DnType::OrganizationName, "cellsctl");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(|e| pki_err("signing the CA certificate", e))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn issue_leaf(
    ca: &CertAndKey,
    sans: &BTreeSet<String>,
    cert_days: CertDays,
    now: OffsetDateTime,
) -> Result<CertAndKey, Error> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| pki_err("reading the CA key", e))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .map_err(|e| pki_err("reading the CA certificate", e))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| pki_err("generating the Cells key", e))?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s.clone().try_into().map(SanType::DnsName),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| pki_err("building the certificate names", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Pydio Cells (cellsctl)");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    // Never outlive the CA: Caddy would stop trusting the leaf when the CA expires.
    let ca_not_after = cert_facts(&ca.cert_pem, None)
        .map_err(|e| pki_err("reading the CA certificate", e))?
        .not_after;
    params.not_after = (now + Duration::days(i64::from(cert_days.0))).min(ca_not_after);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| pki_err("signing the Cells certificate", e))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Checks the CA pair parses and belongs together; returns its expiry.
fn check_ca(ca: &CertAndKey) -> Result<OffsetDateTime, Error> {
    let key =
        KeyPair::from_pem(&ca.key_pem).map_err(|e| pki_err("reading the existing CA key", e))?;
    let facts = cert_facts(&ca.cert_pem, None)
        .map_err(|e| pki_err("reading the existing CA certificate", e))?;
    if key.public_key_raw() != facts.public_key.as_slice() {
        return Err(Error::runtime(
            "the existing CA key does not match the CA certificate (etc/cellsctl/pki); restore the pair from a backup, or remove both to issue a new CA".to_string(),
        ));
    }
    Issuer::from_ca_cert_pem(&ca.cert_pem, key)
        .map_err(|e| pki_err("reading the existing CA certificate", e))?;
    Ok(facts.not_after)
}

/// Facts read back from a certificate.
#[derive(Debug)]
pub struct CertFacts {
    pub sans: BTreeSet<String>,
    /// The subject public key, raw (for EC: the uncompressed point).
    pub public_key: Vec<u8>,
    pub not_after: OffsetDateTime,
    pub signed_by_ca: bool,
}

/// Parses a PEM certificate and, if `ca_pem` is given, checks it was signed by that CA.
pub fn cert_facts(cert_pem: &str, ca_pem: Option<&str>) -> Result<CertFacts, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    sans.insert(d.to_string());
                }
                x509_parser::extensions::GeneralName::IPAddress(raw) => {
                    let ip = match raw.len() {
                        4 => <[u8; 4]>::try_from(*raw)
                            .ok()
                            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
                        16 => <[u8; 16]>::try_from(*raw)
                            .ok()
                            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let not_after = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        .map_err(|e| e.to_string())?;
    let signed_by_ca = match ca_pem {
        Some(ca_pem) => {
            let (_, ca_block) =
                x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
            let ca = ca_block.parse_x509().map_err(|e| e.to_string())?;
            cert.verify_signature(Some(ca.public_key())).is_ok()
        }
        None => false,
    };
    let public_key = cert.public_key().subject_public_key.data.to_vec();
    Ok(CertFacts {
        sans,
        public_key,
        not_after,
        signed_by_ca,
    })
}

/// Why the leaf on disk must be replaced, or `None` to keep it.
fn leaf_needs_reissue(
    leaf: &CertAndKey,
    ca: &CertAndKey,
    sans: &BTreeSet<String>,
    now: OffsetDateTime,
) -> Option<String> {
    let facts = match cert_facts(&leaf.cert_pem, Some(&ca.cert_pem)) {
        Ok(f) => f,
        Err(e) => return Some(format!("the existing certificate does not parse ({e})")),
    };
    match KeyPair::from_pem(&leaf.key_pem) {
        Err(_) => return Some("the existing key does not parse".into()),
        // An interrupted run may have replaced one of the pair but not the other.
        Ok(key) if key.public_key_raw() != facts.public_key.as_slice() => {
            return Some("the existing key does not match the certificate".into())
        }
        Ok(_) => {}
    }
    if !facts.signed_by_ca {
        return Some("the existing certificate is not signed by the CA".into());
    }
    if &facts.sans != sans {
        return Some("its names changed".into());
    }
    let left = facts.not_after - now;
    if left < Duration::days(i64::from(CertDays::RENEW_BEFORE_DAYS)) {
        return Some(format!("it expires in {} days", left.whole_days()));
    }
    None
}

#[cfg(test)]
mod issuance_tests {
    use super::*;

    fn sans(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn issues_then_keeps_then_renews() {
        let host = Host::Dns("cells.example.com".into());
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let want = sans(&["localhost", "127.0.0.1", "::1", "cells.example.com"]);
        let first = ensure(None, None, &host, &want, CertDays(825), now).unwrap();
        // The first CA kept; this leaf (if any), these names, this moment.
        let again_with = |leaf: Option<CertAndKey>, sans: &BTreeSet<String>, at| {
            ensure(Some(first.ca.clone()), leaf, &host, sans, CertDays(825), at).unwrap()
        };
        assert!(first.ca_issued && first.leaf_issued.is_some());
        let facts = cert_facts(&first.leaf.cert_pem, Some(&first.ca.cert_pem)).unwrap();
        assert_eq!(facts.sans, want);
        assert!(facts.signed_by_ca);

        let again = again_with(Some(first.leaf.clone()), &want, now);
        assert!(!again.ca_issued && again.leaf_issued.is_none());
        assert_eq!(again.leaf, first.leaf);

        let other = sans(&["localhost", "127.0.0.1", "::1", "files.example.org"]);
        let moved = again_with(Some(first.leaf.clone()), &other, now);
        assert_eq!(moved.ca, first.ca);
        assert_eq!(moved.leaf_issued.as_deref(), Some("its names changed"));

        let mismatched = CertAndKey {
            cert_pem: first.leaf.cert_pem.clone(),
            key_pem: moved.leaf.key_pem.clone(),
        };
        let fixed = again_with(Some(mismatched), &want, now);
        assert_eq!(
            fixed.leaf_issued.as_deref(),
            Some("the existing key does not match the certificate")
        );

        // A CA near its end is replaced, and the leaf never outlives the CA.
        let ca_end = now + Duration::days(CA_DAYS - 30);
        let renewed_ca = again_with(Some(first.leaf.clone()), &want, ca_end);
        assert!(renewed_ca.ca_issued && renewed_ca.ca != first.ca);
        let near_end = now + Duration::days(CA_DAYS - 100);
        let capped = again_with(None, &want, near_end);
        let ca_facts = cert_facts(&first.ca.cert_pem, None).unwrap();
        assert_eq!(
            cert_facts(&capped.leaf.cert_pem, None).unwrap().not_after,
            ca_facts.not_after
        );

        let late = now + Duration::days(800);
        let renewed = again_with(Some(first.leaf.clone()), &want, late);
        assert!(renewed.leaf_issued.unwrap().starts_with("it expires in"));
    }
}
