//! The TLS the device speaks after StartSession (and on services started
//! with `EnableServiceSSL`): the device is the server, with its device
//! certificate. Clients present different certificates — idevice and
//! pymobiledevice3 the HostCertificate, libimobiledevice 1.3.0 the
//! RootCertificate — so either is accepted when it equals the pair record's,
//! and the handshake signature is still verified against it. A host that
//! paired while the simulator ran (the user tapped Trust) is accepted with
//! the certificates of the pair record it sent.

use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use super::identity::Identity;

/// Which pair-record certificate a client presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    Host,
    Root,
    /// A certificate of a host that paired while the simulator ran.
    Paired,
}

/// Certificates of hosts the simulated user trusted while it ran.
pub type Trusted = Arc<Mutex<Vec<CertificateDer<'static>>>>;

#[derive(Debug)]
struct PairRecordVerifier {
    host: CertificateDer<'static>,
    root: CertificateDer<'static>,
    trusted: Trusted,
    algorithms: WebPkiSupportedAlgorithms,
    /// Refuse every certificate (a scripted TLS fault).
    refuse: bool,
}

impl ClientCertVerifier for PairRecordVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let known = end_entity.as_ref() == self.host.as_ref()
            || end_entity.as_ref() == self.root.as_ref()
            || super::lock(&self.trusted)
                .iter()
                .any(|c| c.as_ref() == end_entity.as_ref());
        if known && !self.refuse {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The device's server configuration, TLS 1.2 and 1.3; with `refuse`, one
/// that turns every client away.
pub fn server_config(identity: &Identity, trusted: Trusted, refuse: bool) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PairRecordVerifier {
        host: identity.host_cert_der.clone(),
        root: identity.root_cert_der.clone(),
        trusted,
        algorithms: provider.signature_verification_algorithms,
        refuse,
    });
    let config = ServerConfig::builder_with_provider(provider.clone() as Arc<CryptoProvider>)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![identity.device_cert_der.clone()],
            identity.device_key(),
        )
        .expect("the device key matches its certificate");
    Arc::new(config)
}

/// Which certificate the client of a finished handshake presented.
pub fn client_cert(
    identity: &Identity,
    presented: Option<&[CertificateDer<'_>]>,
) -> Option<ClientCert> {
    let first = presented?.first()?;
    if first.as_ref() == identity.host_cert_der.as_ref() {
        Some(ClientCert::Host)
    } else if first.as_ref() == identity.root_cert_der.as_ref() {
        Some(ClientCert::Root)
    } else if !first.as_ref().is_empty() {
        Some(ClientCert::Paired)
    } else {
        None
    }
}
