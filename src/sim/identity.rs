//! The simulated iPhone's pairing identity: a root CA, a host certificate and
//! a device certificate, RSA-2048 like Apple's, and the pair record a host
//! keeps (the one usbmuxd hands out with ReadPairRecord). Generated once per
//! process: RSA key generation is the slow part of starting a simulator.

use std::sync::{Arc, OnceLock};

use plist::{Dictionary, Value};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::pkcs8::EncodePrivateKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Certificates and keys of one pairing between a host and the simulator.
pub struct Identity {
    pub root_cert_pem: String,
    pub root_key_pem: String,
    pub host_cert_pem: String,
    pub host_key_pem: String,
    pub device_cert_pem: String,
    /// lockdownd's `DevicePublicKey`: the device key's public half, PKCS#1
    /// PEM, which a host signs into the DeviceCertificate when it pairs.
    pub device_public_key_pem: String,
    pub root_cert_der: CertificateDer<'static>,
    pub host_cert_der: CertificateDer<'static>,
    pub device_cert_der: CertificateDer<'static>,
    device_key_pkcs8: Vec<u8>,
    pub host_id: String,
    pub system_buid: String,
    pub escrow_bag: Vec<u8>,
    pub wifi_mac: String,
}

impl Identity {
    /// The process's identity, made on first use.
    pub fn shared() -> Arc<Identity> {
        static SHARED: OnceLock<Arc<Identity>> = OnceLock::new();
        SHARED
            .get_or_init(|| Arc::new(Identity::generate()))
            .clone()
    }

    fn generate() -> Identity {
        // Three RSA-2048 keys, made side by side.
        let [root_key, host_key, device_key] = std::thread::scope(|s| {
            let spawn = || {
                s.spawn(|| {
                    rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                        .expect("RSA key generation with the OS random source")
                })
            };
            let handles = [spawn(), spawn(), spawn()];
            handles.map(|h| h.join().expect("key generation thread"))
        });
        let signer = |key: &rsa::RsaPrivateKey| {
            let der = key.to_pkcs8_der().expect("encode a fresh RSA key");
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .expect("load a fresh RSA key for signing")
        };
        let (root_signer, host_signer, device_signer) =
            (signer(&root_key), signer(&host_key), signer(&device_key));

        let mut root_params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(DnType::CommonName, "Unstuck Simulated Root");
        let root_cert = root_params
            .self_signed(&root_signer)
            .expect("self-sign the root");
        let issuer = Issuer::new(root_params, &root_signer);
        let leaf = |name: &str, key: &KeyPair| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
            params.distinguished_name.push(DnType::CommonName, name);
            params.signed_by(key, &issuer).expect("sign a leaf")
        };
        let host_cert = leaf("Unstuck Simulated Host", &host_signer);
        let device_cert = leaf("Unstuck Simulated iPhone", &device_signer);

        let pkcs1 = |key: &rsa::RsaPrivateKey| {
            key.to_pkcs1_pem(LineEnding::LF)
                .expect("encode a fresh RSA key")
                .to_string()
        };
        Identity {
            root_cert_pem: root_cert.pem(),
            root_key_pem: pkcs1(&root_key),
            host_cert_pem: host_cert.pem(),
            host_key_pem: pkcs1(&host_key),
            device_cert_pem: device_cert.pem(),
            device_public_key_pem: rsa::RsaPublicKey::from(&device_key)
                .to_pkcs1_pem(LineEnding::LF)
                .expect("encode a fresh RSA public key"),
            root_cert_der: root_cert.der().clone(),
            host_cert_der: host_cert.der().clone(),
            device_cert_der: device_cert.der().clone(),
            device_key_pkcs8: device_key
                .to_pkcs8_der()
                .expect("encode a fresh RSA key")
                .as_bytes()
                .to_vec(),
            host_id: "5E1A7B8C-2D3F-4A5B-8C6D-7E8F9A0B1C2D".to_owned(),
            system_buid: "0B4D6F8A-1C3E-4F5A-9B7C-2D4E6F8A0B1C".to_owned(),
            escrow_bag: crate::synthetic::file_content(0xE5C, 0, 48),
            wifi_mac: "f0:99:b6:12:34:56".to_owned(),
        }
    }

    pub fn device_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.device_key_pkcs8.clone()))
    }

    /// The pair record a host stores for `udid`, as usbmuxd returns it.
    pub fn pair_record(&self, udid: &str) -> Dictionary {
        let data = |s: &str| Value::Data(s.as_bytes().to_vec());
        let mut d = Dictionary::new();
        d.insert("DeviceCertificate".into(), data(&self.device_cert_pem));
        d.insert("EscrowBag".into(), Value::Data(self.escrow_bag.clone()));
        d.insert("HostCertificate".into(), data(&self.host_cert_pem));
        d.insert("HostID".into(), self.host_id.clone().into());
        d.insert("HostPrivateKey".into(), data(&self.host_key_pem));
        d.insert("RootCertificate".into(), data(&self.root_cert_pem));
        d.insert("RootPrivateKey".into(), data(&self.root_key_pem));
        d.insert("SystemBUID".into(), self.system_buid.clone().into());
        d.insert("UDID".into(), udid.into());
        d.insert("WiFiMACAddress".into(), self.wifi_mac.clone().into());
        d
    }
}
