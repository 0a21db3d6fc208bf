//! A test CA and its leaf certificates, made with rcgen. Clients in the tests
//! trust only this CA.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Every host name the tests use for the gateway's main certificate. Listed
/// one by one (no `*.test` wildcard) so that `second.test` is covered only by
/// the second certificate and SNI selection is unambiguous.
pub const MAIN_HOSTS: &[&str] = &[
    "portal.test",
    "app.test",
    "other.test",
    "basic.test",
    "bypass.test",
    "deny.test",
    "two.test",
    "offsite.test",
    "lon.test",
    "nowhere.test",
    "new.test",
    "ws.test",
    "wsauth.test",
    "down.test",
    "tls-up.test",
    "notls-up.test",
    "localhost",
    "127.0.0.1",
];

/// Host of the second certificate.
pub const SECOND_HOST: &str = "second.test";

/// Host of the certificate a second gateway uses when it plays an HTTPS upstream.
pub const UPSTREAM_HOST: &str = "upstream.test";

/// One leaf certificate with its key.
pub struct Leaf {
    /// File stem under `certs/`: `main`, `second` or `upstream`.
    pub name: &'static str,
    pub cert_pem: String,
    pub key_pem: String,
    /// DER of the leaf, to recognise it in a TLS handshake.
    pub der: Vec<u8>,
}

struct Inner {
    ca_pem: String,
    leaves: Vec<Leaf>,
}

/// The test CA and three leaves: `main` (all [`MAIN_HOSTS`]), `second`
/// (`second.test`) and `upstream` (`upstream.test`).
#[derive(Clone)]
pub struct Pki(Arc<Inner>);

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pki(test CA)")
    }
}

impl Pki {
    /// One PKI for the whole test process (generating is cheap, but not free).
    pub fn shared() -> Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(Pki::generate).clone()
    }

    /// A fresh CA and leaves.
    pub fn generate() -> Pki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "portvakt test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

        let leaf = |name: &'static str, hosts: &[&str]| {
            let key = KeyPair::generate().expect("leaf key");
            let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
            let mut params = CertificateParams::new(names).expect("leaf params");
            params.distinguished_name.push(DnType::CommonName, hosts[0]);
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &ca, &ca_key).expect("sign leaf");
            Leaf {
                name,
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
            }
        };
        let leaves = vec![
            leaf("main", MAIN_HOSTS),
            leaf("second", &[SECOND_HOST]),
            leaf("upstream", &[UPSTREAM_HOST]),
        ];
        Pki(Arc::new(Inner {
            ca_pem: ca.pem(),
            leaves,
        }))
    }

    /// The CA certificate (PEM), the only root clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.0.ca_pem
    }

    /// The leaf called `name`.
    pub fn leaf(&self, name: &str) -> &Leaf {
        self.0
            .leaves
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no test certificate called {name}"))
    }

    /// Write `ca.pem` and `certs/<name>.pem` + `certs/<name>.key` for every leaf.
    pub fn write_to(&self, dir: &Path) {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).expect("create certs dir");
        std::fs::write(dir.join("ca.pem"), &self.0.ca_pem).expect("write ca.pem");
        for leaf in &self.0.leaves {
            std::fs::write(certs.join(format!("{}.pem", leaf.name)), &leaf.cert_pem)
                .expect("write cert");
            std::fs::write(certs.join(format!("{}.key", leaf.name)), &leaf.key_pem)
                .expect("write key");
        }
    }
}
