//! TLS termination: certificates chosen by SNI (exact names, then wildcards,
//! then the first certificate), swappable on reload without dropping
//! connections.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::model::CertFiles;

/// Failures loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// File unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// No certificate or key in the file, or they do not fit together.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

/// A set of certificates indexed by the names they cover.
struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.org` stored as `example.org`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    /// Names per certificate, for start-up messages.
    names: Vec<Vec<String>>,
}

/// rustls resolver choosing a certificate by SNI.
pub struct SniResolver {
    set: ArcSwap<CertSet>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SniResolver({:?})", self.set.load().names)
    }
}

impl SniResolver {
    /// Load every certificate.
    pub fn load(files: &[CertFiles]) -> Result<SniResolver, TlsError> {
        Ok(SniResolver {
            set: ArcSwap::from_pointee(load_set(files)?),
        })
    }

    /// Replace the certificates (reload); on error the old ones stay.
    pub fn reload(&self, files: &[CertFiles]) -> Result<(), TlsError> {
        self.set.store(Arc::new(load_set(files)?));
        Ok(())
    }

    /// The names each certificate covers.
    pub fn names(&self) -> Vec<Vec<String>> {
        self.set.load().names.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        let Some(name) = hello.server_name() else {
            return Some(set.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(c) = set.exact.get(&name) {
            return Some(c.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(c) = set.wildcard.get(parent) {
                return Some(c.clone());
            }
        }
        Some(set.default.clone())
    }
}

fn load_set(files: &[CertFiles]) -> Result<CertSet, TlsError> {
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    let mut default = None;
    let mut all_names = Vec::new();
    for f in files {
        let (key, names) = load_pair(&f.cert, &f.key)?;
        let key = Arc::new(key);
        for n in &names {
            match n.strip_prefix("*.") {
                Some(parent) => {
                    wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| key.clone());
                }
                None => {
                    exact.entry(n.clone()).or_insert_with(|| key.clone());
                }
            }
        }
        default.get_or_insert_with(|| key.clone());
        all_names.push(names);
    }
    let default = default.ok_or_else(|| TlsError::Invalid {
        path: String::new(),
        what: "no certificate configured".into(),
    })?;
    Ok(CertSet {
        exact,
        wildcard,
        default,
        names: all_names,
    })
}

/// Load one PEM chain and key; returns the key and the DNS names of the leaf.
pub fn load_pair(cert: &Path, key: &Path) -> Result<(CertifiedKey, Vec<String>), TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let invalid = |p: &Path, what: &str| TlsError::Invalid {
        path: p.display().to_string(),
        what: what.to_owned(),
    };
    let cert_pem = read(cert)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(cert, &format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert, "no certificate in the file"));
    }
    let key_pem = read(key)?;
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| invalid(key, &format!("bad PEM: {e}")))?
        .ok_or_else(|| invalid(key, "no private key in the file"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| invalid(key, &format!("unsupported key: {e}")))?;
    let names = cert_names(&chain[0]).map_err(|e| invalid(cert, &e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        invalid(
            key,
            &format!("key does not belong to {}: {e}", cert.display()),
        )
    })?;
    Ok((certified, names))
}

/// DNS names (SAN, else CN) of a DER certificate, lower case.
pub fn cert_names(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(b) if b.len() == 4 => {
                    names.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
                }
                _ => {}
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    Ok(names)
}

/// Whether DER bytes parse as a certificate (pingora panics on ones that do not).
pub fn is_certificate(der: &[u8]) -> bool {
    cert_names(der).is_ok()
}
