//! The rustls client configuration for `ldaps://` and StartTLS.
//!
//! We always hand ldap3 our own configuration instead of letting it build
//! one: ldap3's default calls `ClientConfig::builder()`, which panics when
//! more than one rustls crypto provider is compiled in and none is installed
//! process-wide (the test build has both ring and aws-lc-rs). Ours names
//! ring explicitly.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where distributions keep the system's CA bundle (the paths openssl-probe
/// and so rustls-native-certs look at, most common first).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A client configuration trusting the certificates in `ca_file`, or the
/// system's roots when there is none; with `verify` false, trusting anything.
pub(super) fn client_config(
    ca_file: Option<&Path>,
    verify: bool,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    if !verify {
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth();
        return Ok(Arc::new(config));
    }
    let roots = match ca_file {
        Some(path) => roots_from(path)?,
        None => system_roots()?,
    };
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// Every certificate in a PEM file.
fn roots_from(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE in it", path.display()));
    }
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "{}: no usable CA certificate in it",
            path.display()
        ));
    }
    Ok(store)
}

/// The system's roots: `SSL_CERT_FILE` if set, else the first bundle found.
fn system_roots() -> Result<RootCertStore, String> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return roots_from(Path::new(&file));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(roots_from)
        .unwrap_or_else(|| {
            Err("no system CA bundle found; name the CA that issued the LDAP server's certificate in ca_file".into())
        })
}

/// Accepts any certificate, for `verify: false`. The handshake signature
/// is still checked, so at least the server holds the key it presents.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_configs_from_a_ca_file_or_without_verification() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        assert!(client_config(Some(&path), true).is_ok());
        assert!(client_config(None, false).is_ok());
        let err = client_config(Some(&dir.path().join("nope.pem")), true).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::write(&path, "").unwrap();
        let err = client_config(Some(&path), true).unwrap_err();
        assert!(err.contains("no CERTIFICATE"), "{err}");
    }
}
