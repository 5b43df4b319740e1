//! The links' TLS: each role's identity (the session's CA, its certificate and key), test
//! certificates per role, the handshake, and the role a verified certificate names.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use mpc_core::transport::{ErrorKind, PartyId};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, Connection, RootCertStore, ServerConfig};

use super::{TcpError, io_error};

/// A party's TLS identity: the session's CA and its own certificate and key.
#[derive(Debug)]
pub struct Identity {
    pub(super) role: PartyId,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Reads `ca.pem`, `<role>.pem` and `<role>.key` from `dir` (as written by [`make_certs`]).
    pub fn load(dir: &Path, role: PartyId) -> Result<Self, TcpError> {
        let file = |name: String| dir.join(name);
        let bad = |what: &Path, e: &dyn std::fmt::Display| {
            io_error(ErrorKind::Unauthenticated, format!("{}: {e}", what.display()))
        };
        let ca_path = file("ca.pem".into());
        let ca = CertificateDer::from_pem_file(&ca_path).map_err(|e| bad(&ca_path, &e))?;
        let cert_path = file(format!("{}.pem", role.name()));
        let chain = CertificateDer::pem_file_iter(&cert_path)
            .map_err(|e| bad(&cert_path, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(&cert_path, &e))?;
        let key_path = file(format!("{}.key", role.name()));
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(&key_path, &e))?;
        Ok(Self { role, ca, chain, key })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TcpError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(|e| io_error(ErrorKind::Unauthenticated, format!("CA certificate: {e}")))?;
        Ok(Arc::new(roots))
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    pub(super) fn client_config(&self) -> Result<Arc<ClientConfig>, TcpError> {
        let config = ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io_error(ErrorKind::Other, e.to_string()))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| io_error(ErrorKind::Unauthenticated, format!("own certificate: {e}")))?;
        Ok(Arc::new(config))
    }

    pub(super) fn server_config(&self) -> Result<Arc<ServerConfig>, TcpError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots()?, Self::provider())
            .build()
            .map_err(|e| io_error(ErrorKind::Unauthenticated, e.to_string()))?;
        let config = ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| io_error(ErrorKind::Other, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| io_error(ErrorKind::Unauthenticated, format!("own certificate: {e}")))?;
        Ok(Arc::new(config))
    }
}

/// Writes a test CA and a certificate and key per role (`p0`, `p1`, `dealer`, each naming its
/// role as DNS name) into `dir`: `ca.pem`, `<role>.pem`, `<role>.key`. The CA's key is not kept.
pub fn make_certs(dir: &Path) -> Result<(), TcpError> {
    make_certs_with(dir, |_| Validity::default())
}

/// Creates `dir` if needed and makes it readable by its owner only (0700 on Unix).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes a private key readable by its owner only (created 0600 on Unix, never wider first).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode through open: narrow it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    options.open(path)?.write_all(bytes)
}

/// When a certificate is valid: from `not_before` to `not_after`, each (year, month, day) UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// The first day.
    pub not_before: (i32, u8, u8),
    /// The last day.
    pub not_after: (i32, u8, u8),
}

impl Default for Validity {
    /// 2024-01-01 to 2124-01-01: test certificates that do not expire during a test.
    fn default() -> Self {
        Self { not_before: (2024, 1, 1), not_after: (2124, 1, 1) }
    }
}

/// [`make_certs`] with each role's certificate valid over `validity(role)` (an expired one, to
/// test that it is refused).
pub fn make_certs_with(dir: &Path, validity: impl Fn(PartyId) -> Validity) -> Result<(), TcpError> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, date_time_ymd};
    let fail = |e: &dyn std::fmt::Display| io_error(ErrorKind::Other, e.to_string());
    private_dir(dir).map_err(|e| fail(&e))?;
    let ca_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "mpcformer test CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(|e| fail(&e))?;
    let issuer = Issuer::new(ca_params, ca_key);
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).map_err(|e| fail(&e))?;
    for role in [PartyId::P0, PartyId::P1, PartyId::Dealer] {
        let key = KeyPair::generate().map_err(|e| fail(&e))?;
        let mut params = CertificateParams::new(vec![role.name().to_string()]).map_err(|e| fail(&e))?;
        params.distinguished_name.push(rcgen::DnType::CommonName, role.name());
        let Validity { not_before: (y0, m0, d0), not_after: (y1, m1, d1) } = validity(role);
        params.not_before = date_time_ymd(y0, m0, d0);
        params.not_after = date_time_ymd(y1, m1, d1);
        let cert = params.signed_by(&key, &issuer).map_err(|e| fail(&e))?;
        std::fs::write(dir.join(format!("{}.pem", role.name())), cert.pem()).map_err(|e| fail(&e))?;
        write_private(&dir.join(format!("{}.key", role.name())), key.serialize_pem().as_bytes())
            .map_err(|e| fail(&e))?;
    }
    Ok(())
}

pub(super) fn handshake(conn: &mut Connection, tcp: &mut TcpStream, peer: Option<PartyId>) -> Result<(), TcpError> {
    while conn.is_handshaking() {
        conn.complete_io(tcp).map_err(|e| {
            let kind = match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ErrorKind::TimedOut,
                std::io::ErrorKind::InvalidData => ErrorKind::Unauthenticated,
                _ => ErrorKind::Disconnected,
            };
            TcpError::new(kind, peer, format!("TLS handshake: {e}"))
        })?;
    }
    Ok(())
}

/// The role a verified peer certificate names (its DNS name).
pub(super) fn certified_role(conn: &Connection) -> Option<PartyId> {
    let cert = conn.peer_certificates()?.first()?;
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    [PartyId::P0, PartyId::P1, PartyId::Dealer].into_iter().find(|role| {
        ServerName::try_from(role.name()).is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
    })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn private_keys_are_owner_only_in_an_owner_only_directory() {
        let dir = std::env::temp_dir().join(format!("mpcformer-certs-mode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        make_certs(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for role in ["p0", "p1", "dealer"] {
            assert_eq!(mode(&dir.join(format!("{role}.key"))), 0o600, "{role}.key");
        }
        // Written again over a key someone widened: narrowed back.
        std::fs::set_permissions(dir.join("p0.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        make_certs(&dir).unwrap();
        assert_eq!(mode(&dir.join("p0.key")), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
