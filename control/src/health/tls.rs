//! The TLS client of HTTPS checks: rustls with ring's primitives (no system OpenSSL).
//!
//! By default the server's certificate is not verified, as keepalived's SSL_GET: a health
//! check asks whether the server answers, and real servers often have self-signed or
//! internal certificates. The handshake itself is still checked (the server must hold the
//! key of the certificate it shows). With `ca_file` the certificate must chain to one of the
//! file's certificates and name the virtualhost (or, without one, the dest's address).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::sync::Arc;

/// The largest CA file read (4 MiB: a system bundle is about 200 KiB).
pub const MAX_CA_FILE: u64 = 4 << 20;

/// Why an HTTPS check's TLS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds a malformed PEM block.
    #[error("ca_file '{path}': {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the setup.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// ring's provider. rustls 0.23.48 deprecates it for its lack of post-quantum key exchange,
/// which a health check (secret neither way) does not need; aws-lc-rs, which has it, would
/// need cmake and a C toolchain's assembler in every build.
#[allow(deprecated)]
pub(crate) fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The TLS settings of an HTTPS check, ready to connect with.
#[derive(Clone)]
pub struct Tls {
    ca_file: Option<String>,
    config: Arc<ClientConfig>,
}

impl Tls {
    /// A TLS client that verifies the server's certificate against the CA certificates (PEM)
    /// in `ca_file`, or that does not verify it (None).
    ///
    /// # Errors
    /// An unreadable CA file, one without certificates, a certificate rustls refuses.
    pub fn new(ca_file: Option<&str>) -> Result<Tls, TlsError> {
        let provider = Arc::new(provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match ca_file {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            Some(path) => {
                let bad = |reason: String| TlsError::CaFile {
                    path: path.to_string(),
                    reason,
                };
                let mut roots = RootCertStore::empty();
                // A regular file of bounded size: never a device or a pipe that reads forever.
                let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
                if !meta.is_file() {
                    return Err(bad("not a regular file".into()));
                }
                if meta.len() > MAX_CA_FILE {
                    return Err(bad(format!("larger than {MAX_CA_FILE} bytes")));
                }
                let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(e.to_string()))?;
                if certs.is_empty() {
                    return Err(bad("no PEM certificate in it".into()));
                }
                for c in certs {
                    roots.add(c).map_err(|e| bad(e.to_string()))?;
                }
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad(e.to_string()))?;
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
        };
        Ok(Tls {
            ca_file: ca_file.map(str::to_string),
            config: Arc::new(config),
        })
    }

    /// The CA file certificates are verified against (None: not verified).
    pub fn ca_file(&self) -> Option<&str> {
        self.ca_file.as_deref()
    }

    /// The client configuration to connect with.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

/// Two TLS settings are the same if they verify against the same file (or neither does).
impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.ca_file == other.ca_file
    }
}

impl Eq for Tls {}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// Takes any certificate (keepalived's SSL_GET), but still checks the handshake's signatures
/// with it: the server must hold the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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
