//! The simulated iPhone driven by the real `idevice` client over the wire.

use std::time::Duration;

use idevice::IdeviceService;
use idevice::lockdown::LockdownClient;
use idevice::mobilebackup2::{FsBackupDelegate, MobileBackup2Client};
use idevice::provider::IdeviceProvider;
use idevice::usbmuxd::{Connection, UsbmuxdAddr, UsbmuxdConnection, UsbmuxdListenEvent};
use plist::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use unstuck::backup_folder::BackupState;
use unstuck::sim::{ClientCert, Pairing, Sim, SimConfig, SimEvent, Stall};
use unstuck::wire;

pub const UDID: &str = "00008110-000C1D2E3F405162";

/// A fast phone with a small backup.
pub fn config() -> SimConfig {
    let mut c = SimConfig::new(UDID);
    c.content.files = 40;
    c.content.file_size = 3000;
    c.content.changed_files = 5;
    c
}

fn addr(sim: &Sim) -> UsbmuxdAddr {
    UsbmuxdAddr::TcpSocket(sim.addr())
}

async fn provider(sim: &Sim) -> impl IdeviceProvider {
    let mut mux = UsbmuxdConnection::new(addr(sim).to_socket().await.unwrap(), 1);
    let device = mux.get_device(UDID).await.unwrap();
    device.to_provider(addr(sim), "unstuck-test")
}

/// Starts mobilebackup2 through the device layer, as Unstuck does.
async fn backup_client(sim: &Sim) -> MobileBackup2Client {
    unstuck::device::mobilebackup2(
        &unstuck::device::MuxAddress::Tcp(sim.addr()),
        Some(UDID),
        unstuck::device::DEADLINE,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn usbmuxd_lists_the_phone_and_its_pair_record() {
    let sim = Sim::start(config()).await.unwrap();
    let mut mux = UsbmuxdConnection::new(addr(&sim).to_socket().await.unwrap(), 1);
    let devices = mux.get_devices().await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].udid, UDID);
    assert_eq!(devices[0].connection_type, Connection::Usb);
    let pairing = mux.get_pair_record(UDID).await.unwrap();
    assert_eq!(pairing.host_id, unstuck::sim::Identity::shared().host_id);
    assert!(!mux.get_buid().await.unwrap().is_empty());
}

#[tokio::test]
async fn wifi_phones_are_network_attached() {
    let mut c = config();
    c.link = unstuck::sim::Link::Wifi;
    let sim = Sim::start(c).await.unwrap();
    let mut mux = UsbmuxdConnection::new(addr(&sim).to_socket().await.unwrap(), 1);
    let devices = mux.get_devices().await.unwrap();
    assert!(
        matches!(devices[0].connection_type, Connection::Network(_)),
        "{:?}",
        devices[0]
    );
}

#[tokio::test]
async fn lockdown_values_over_tls_match_the_script() {
    let mut c = config();
    c.disk_free = 1_234_567_890;
    c.will_encrypt = true;
    c.wifi_sync = true;
    let sim = Sim::start(c).await.unwrap();
    let provider = provider(&sim).await;
    let mut lockdown = LockdownClient::connect(&provider).await.unwrap();
    // Root keys answer before a session, as clients expect.
    let version = lockdown
        .get_value(Some("ProductVersion"), None)
        .await
        .unwrap();
    assert_eq!(version.as_string(), Some("18.1"));
    lockdown
        .start_session(&provider.get_pairing_file().await.unwrap())
        .await
        .unwrap();
    let disk = lockdown
        .get_value(None, Some("com.apple.disk_usage"))
        .await
        .unwrap();
    let disk = disk.as_dictionary().unwrap();
    assert_eq!(
        disk["TotalDataAvailable"].as_unsigned_integer(),
        Some(1_234_567_890)
    );
    assert_eq!(
        disk["TotalDiskCapacity"].as_unsigned_integer(),
        Some(128_000_000_000)
    );
    let encrypt = lockdown
        .get_value(Some("WillEncrypt"), Some("com.apple.mobile.backup"))
        .await
        .unwrap();
    assert_eq!(encrypt.as_boolean(), Some(true));
    lockdown
        .set_value(
            "EnableWifiConnections",
            false.into(),
            Some("com.apple.mobile.wireless_lockdown"),
        )
        .await
        .unwrap();
    assert!(!sim.config().wifi_sync);
    let events = sim.events();
    assert!(
        events.contains(&SimEvent::SessionStarted(Some(ClientCert::Host))),
        "{events:?}"
    );
    assert!(events.contains(&SimEvent::WifiSyncSet(false)));
}

#[tokio::test]
async fn revoked_and_locked_phones_refuse_a_session() {
    for (pairing, expected) in [
        (Pairing::Revoked, "InvalidHostID"),
        (Pairing::Locked, "PasswordProtected"),
    ] {
        let mut c = config();
        c.pairing = pairing;
        let sim = Sim::start(c).await.unwrap();
        let mut mux = UsbmuxdConnection::new(addr(&sim).to_socket().await.unwrap(), 1);
        let device = mux.get_device(UDID).await.unwrap();
        let provider = device.to_provider(addr(&sim), "unstuck-test");
        let pairing_file = idevice::pairing_file::PairingFile::from_value(&Value::Dictionary(
            unstuck::sim::Identity::shared().pair_record(UDID),
        ))
        .unwrap();
        let mut lockdown = LockdownClient::connect(&provider).await.unwrap();
        let err = lockdown.start_session(&pairing_file).await.unwrap_err();
        assert!(format!("{err:?}").contains(expected), "{err:?}");
    }
}

#[tokio::test]
async fn listen_reports_detach_and_attach() {
    let sim = Sim::start(config()).await.unwrap();
    let mut mux = UsbmuxdConnection::new(addr(&sim).to_socket().await.unwrap(), 1);
    let mut events = mux.listen().await.unwrap();
    use futures_util::StreamExt;
    macro_rules! next {
        () => {
            tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .expect("an event within 5 s")
                .unwrap()
                .unwrap()
        };
    }
    let first = next!();
    let UsbmuxdListenEvent::Connected(device) = first else {
        panic!("{first:?}");
    };
    sim.detach();
    match next!() {
        UsbmuxdListenEvent::Disconnected(id) => assert_eq!(id, device.device_id),
        other => panic!("{other:?}"),
    }
    sim.attach();
    match next!() {
        UsbmuxdListenEvent::Connected(again) => assert_ne!(again.device_id, device.device_id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_messages_get_result_1_and_the_socket_stays_open() {
    let sim = Sim::start(config()).await.unwrap();
    let mut socket = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let mut bogus = plist::Dictionary::new();
    bogus.insert("MessageType".into(), "Bogus".into());
    socket.write_all(&wire::mux_frame(9, &bogus)).await.unwrap();
    let reply = wire::read_mux(&mut socket).await.unwrap().unwrap();
    assert_eq!(reply.tag, 9);
    assert_eq!(reply.body["Number"].as_unsigned_integer(), Some(1));
    let mut list = plist::Dictionary::new();
    list.insert("MessageType".into(), "ListDevices".into());
    socket.write_all(&wire::mux_frame(10, &list)).await.unwrap();
    let reply = wire::read_mux(&mut socket).await.unwrap().unwrap();
    assert_eq!(reply.tag, 10);
    assert_eq!(reply.body["DeviceList"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn garbage_and_huge_frames_end_only_that_connection() {
    let sim = Sim::start(config()).await.unwrap();
    for bytes in [
        vec![0xffu8; 64],
        // A header that claims 4 GB.
        [
            u32::MAX.to_le_bytes(),
            1u32.to_le_bytes(),
            8u32.to_le_bytes(),
            1u32.to_le_bytes(),
        ]
        .concat(),
        // A whole frame whose plist is cut short.
        [
            39u32.to_le_bytes(),
            1u32.to_le_bytes(),
            8u32.to_le_bytes(),
            1u32.to_le_bytes(),
        ]
        .concat()
        .into_iter()
        .chain(*b"<plist><dict><key>x</ke")
        .collect(),
    ] {
        let mut socket = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
        socket.write_all(&bytes).await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf))
            .await
            .expect("the simulator closes a connection that sends garbage");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // Still serving.
    let mut mux = UsbmuxdConnection::new(addr(&sim).to_socket().await.unwrap(), 1);
    assert_eq!(mux.get_devices().await.unwrap().len(), 1);
}

#[tokio::test]
async fn full_then_incremental_backup_through_idevice() {
    let sim = Sim::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = backup_client(&sim).await;
    let result = client
        .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(0));
    let folder = dir.path().join(UDID);
    let backup = crate::util::read(&folder);
    assert_eq!(backup.state, BackupState::Complete, "{backup:?}");
    assert_eq!(backup.file_count, Some(40));
    assert_eq!(backup.udid.as_deref(), Some(UDID));
    // Content is byte-identical to what the simulated phone holds.
    let template = unstuck::synthetic::SyntheticBackup::new(UDID, jiff::Timestamp::now());
    let (domain, path) = template.file_name(39);
    let id = unstuck::synthetic::file_id(&domain, &path);
    let on_disk = std::fs::read(folder.join(&id[..2]).join(&id)).unwrap();
    assert!(
        on_disk == unstuck::synthetic::file_content(7, 39, 3000),
        "file 39 differs"
    );

    // The second backup sends only the files that changed.
    let mut client = backup_client(&sim).await;
    let result = client
        .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(0));
    assert_eq!(crate::util::read(&folder).state, BackupState::Complete);
    let finished: Vec<_> = sim
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                SimEvent::BackupFinished { .. } | SimEvent::BackupStarted { .. }
            )
        })
        .collect();
    assert_eq!(
        finished,
        [
            SimEvent::BackupStarted { incremental: false },
            SimEvent::BackupFinished {
                error_code: 0,
                files: 40
            },
            SimEvent::BackupStarted { incremental: true },
            SimEvent::BackupFinished {
                error_code: 0,
                files: 5
            },
        ]
    );
}

#[tokio::test]
async fn mobilebackup2_without_the_escrow_bag_is_refused() {
    let sim = Sim::start(config()).await.unwrap();
    let provider = provider(&sim).await;
    let err = MobileBackup2Client::connect(&provider).await.err().unwrap();
    assert!(format!("{err:?}").contains("Escrow"), "{err:?}");
}

#[tokio::test]
async fn service_ssl_backups_work_too() {
    let mut c = config();
    c.service_ssl = true;
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = backup_client(&sim).await;
    let result = client
        .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(0));
    assert_eq!(
        crate::util::read(&dir.path().join(UDID)).state,
        BackupState::Complete
    );
}

#[tokio::test]
async fn scripted_error_codes_come_back_as_ok_dicts() {
    let mut c = config();
    c.final_error = Some((211, "Backup failed".into()));
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = backup_client(&sim).await;
    let result = client
        .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(211));
    assert_eq!(
        result["ErrorDescription"].as_string(),
        Some("Backup failed")
    );
    // Status.plist was never finished, so the folder is not complete.
    assert!(matches!(
        crate::util::read(&dir.path().join(UDID)).state,
        BackupState::InProgress { .. }
    ));
}

#[tokio::test]
async fn host_disk_full_ends_in_error_105() {
    let mut c = config();
    c.claimed_backup_bytes = Some(1 << 50);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = backup_client(&sim).await;
    let result = client
        .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(105));
}

#[tokio::test]
async fn unplug_drops_the_connection_and_detaches() {
    let mut c = config();
    c.unplug_at_percent = Some(50.0);
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = backup_client(&sim).await;
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client.backup_from_path(dir.path(), None, None, &FsBackupDelegate),
    )
    .await
    .expect("the client sees the connection drop");
    assert!(result.is_err(), "{result:?}");
    let events = sim.events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            SimEvent::Unplugged {
                at_percent: 50..=55
            }
        )),
        "{events:?}"
    );
    assert!(events.contains(&SimEvent::Detached));
    let mut mux = UsbmuxdConnection::new(addr(&sim).to_socket().await.unwrap(), 1);
    assert!(mux.get_devices().await.unwrap().is_empty());
}

/// A real wait: the stall is the phone holding still on a real socket.
/// Kept to 300 ms.
#[tokio::test]
async fn stall_pauses_the_transfer_then_goes_on() {
    let mut c = config();
    c.stall = Some(Stall {
        at_percent: 40.0,
        duration: Duration::from_millis(300),
    });
    let sim = Sim::start(c).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = backup_client(&sim).await;
    let started = std::time::Instant::now();
    let result = client
        .backup_from_path(dir.path(), None, None, &FsBackupDelegate)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result["ErrorCode"].as_unsigned_integer(), Some(0));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(sim.events().iter().any(|e| matches!(
        e,
        SimEvent::Stalled {
            at_percent: 40..=45
        }
    )));
}

/// ChangePassword through the engine; the phone's ErrorCode (0 when done).
async fn change_password(sim: &Sim, old: Option<&str>, new: Option<&str>) -> u64 {
    let addr = unstuck::device::MuxAddress::Tcp(sim.addr());
    match unstuck::engine::change_password(&addr, Some(UDID), old, new, unstuck::device::DEADLINE)
        .await
    {
        Ok(()) => 0,
        Err(unstuck::engine::EngineError::Phone { code, .. }) => code,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn change_password_checks_the_old_one() {
    let mut c = config();
    c.will_encrypt = true;
    c.password = Some("right".into());
    let sim = Sim::start(c).await.unwrap();
    assert_eq!(change_password(&sim, Some("wrong"), Some("new")).await, 207);
    assert!(sim.config().will_encrypt);
    assert_eq!(change_password(&sim, Some("right"), None).await, 0);
    assert!(!sim.config().will_encrypt);
    assert_eq!(change_password(&sim, None, Some("fresh")).await, 0);
    assert_eq!(sim.config().password.as_deref(), Some("fresh"));
    assert_eq!(
        sim.events()
            .iter()
            .filter(|e| matches!(e, SimEvent::PasswordChange { .. }))
            .count(),
        3
    );
}

/// A client limited to one TLS version, presenting the pair record's host
/// certificate (the device's certificate is not checked, as real clients
/// don't).
async fn session_with(
    sim: &Sim,
    version: &'static rustls::SupportedProtocolVersion,
    stranger: bool,
) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
    #[derive(Debug)]
    struct AnyServer(std::sync::Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let identity = unstuck::sim::Identity::shared();
    let (cert, key) = if stranger {
        // A certificate the phone never saw in a pair record.
        let other = rcgen::generate_simple_self_signed(vec!["stranger".to_owned()]).unwrap();
        (
            other.cert.der().clone(),
            PrivateKeyDer::from_pem_slice(other.signing_key.serialize_pem().as_bytes()).unwrap(),
        )
    } else {
        (
            identity.host_cert_der.clone(),
            PrivateKeyDer::from_pem_slice(identity.host_key_pem.as_bytes()).unwrap(),
        )
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(AnyServer(provider)))
        .with_client_auth_cert(vec![cert], key)
        .unwrap();

    // usbmuxd Connect to lockdownd, StartSession in plaintext, then TLS.
    let mut socket = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let mut connect = plist::Dictionary::new();
    connect.insert("MessageType".into(), "Connect".into());
    connect.insert("DeviceID".into(), 1u64.into());
    connect.insert("PortNumber".into(), u64::from(62078u16.to_be()).into());
    socket
        .write_all(&wire::mux_frame(1, &connect))
        .await
        .unwrap();
    let reply = wire::read_mux(&mut socket).await.unwrap().unwrap();
    assert_eq!(reply.body["Number"].as_unsigned_integer(), Some(0));
    let mut start = plist::Dictionary::new();
    start.insert("Request".into(), "StartSession".into());
    start.insert("HostID".into(), identity.host_id.clone().into());
    start.insert("SystemBUID".into(), identity.system_buid.clone().into());
    wire::write_plist(&mut socket, &Value::Dictionary(start), false)
        .await
        .unwrap();
    let reply = wire::read_plist(&mut socket).await.unwrap().unwrap();
    assert_eq!(
        reply.as_dictionary().unwrap()["EnableSessionSSL"].as_boolean(),
        Some(true)
    );
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("Device").unwrap(), socket)
        .await
        .map_err(|e| e.to_string())?;
    // With TLS 1.3 the server's verdict on the client certificate arrives
    // after the client's handshake ends: the first exchange shows it.
    assert_eq!(tls.get_ref().1.protocol_version(), Some(version.version));
    let mut get = plist::Dictionary::new();
    get.insert("Request".into(), "GetValue".into());
    get.insert("Key".into(), "ProductVersion".into());
    wire::write_plist(&mut tls, &Value::Dictionary(get), false)
        .await
        .map_err(|e| e.to_string())?;
    let reply = wire::read_plist(&mut tls)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the phone closed the session")?;
    assert_eq!(
        reply.as_dictionary().unwrap()["Value"].as_string(),
        Some("18.1")
    );
    Ok(())
}

#[tokio::test]
async fn lockdown_tls_speaks_1_2_and_1_3() {
    let sim = Sim::start(config()).await.unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        session_with(&sim, version, false).await.unwrap();
        let err = session_with(&sim, version, true).await.unwrap_err();
        assert!(!err.is_empty());
    }
}
