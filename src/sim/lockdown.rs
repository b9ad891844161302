//! lockdownd on port 62078: QueryType, GetValue (root keys before a session,
//! every domain after), SetValue (Wi-Fi sync), StartSession (then TLS, the
//! device as server), StartService, StopSession, Goodbye; and the small
//! services it starts besides mobilebackup2.

use std::io;
use std::sync::Arc;

use plist::{Dictionary, Value};

use tokio::io::AsyncWriteExt;

use super::conn::Conn;
use super::{Link, Pairing, RequestFault, Shared, SimConfig, SimEvent, lock};
use crate::wire;

/// A service started by StartService, waiting for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    MobileBackup2 { ssl: bool },
    NotificationProxy,
    DiagnosticsRelay,
    Afc,
    InstallationProxy,
    Springboard,
}

pub(crate) async fn serve(mut conn: Conn, shared: &Arc<Shared>) -> io::Result<()> {
    let mut session = false;
    let mut stopping = false;
    loop {
        let request = match wire::read_plist(&mut conn).await {
            Ok(Some(Value::Dictionary(d))) => d,
            Ok(Some(_)) => return reply_error(&mut conn, "", "InvalidRequest").await,
            // libimobiledevice ends TLS after StopSession and may say Goodbye
            // in plaintext on the same socket.
            Ok(None) | Err(_) if stopping && conn.is_tls() => {
                conn.stop_tls();
                stopping = false;
                continue;
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(e),
        };
        let name = request
            .get("Request")
            .and_then(Value::as_string)
            .unwrap_or("")
            .to_owned();
        shared.log(SimEvent::Lockdown(name.clone()));
        let mut reply = Dictionary::new();
        reply.insert("Request".into(), name.clone().into());
        let config = shared.config();
        if let Some((target, fault)) = &config.request_fault {
            let domain = request.get("Domain").and_then(Value::as_string);
            let full = match domain {
                Some(d) => format!("{name} {d}"),
                None => name.clone(),
            };
            if *target == full || *target == name {
                match fault {
                    RequestFault::Hang => std::future::pending::<()>().await,
                    RequestFault::Unplug => {
                        shared.detach();
                        return Ok(());
                    }
                    RequestFault::Bomb => {
                        // A plist built to explode, as the answer.
                        let bomb = super::billion_laughs();
                        conn.write_all(&(bomb.len() as u32).to_be_bytes()).await?;
                        conn.write_all(&bomb).await?;
                        conn.flush().await?;
                        continue;
                    }
                    RequestFault::HugeFrame => {
                        conn.write_all(&u32::MAX.to_be_bytes()).await?;
                        conn.flush().await?;
                        continue;
                    }
                }
            }
        }
        match name.as_str() {
            "QueryType" => {
                reply.insert("Type".into(), "com.apple.mobile.lockdown".into());
            }
            "GetValue" => {
                let domain = request.get("Domain").and_then(Value::as_string);
                let key = request.get("Key").and_then(Value::as_string);
                if let Some(d) = domain {
                    reply.insert("Domain".into(), d.into());
                }
                if let Some(k) = key {
                    reply.insert("Key".into(), k.into());
                }
                if domain.is_some() && !session {
                    reply.insert("Error".into(), "InvalidSession".into());
                } else {
                    match get_value(shared, &config, domain, key) {
                        Some(value) => {
                            reply.insert("Value".into(), value);
                        }
                        None => {
                            reply.insert("Error".into(), "MissingValue".into());
                        }
                    }
                }
            }
            "SetValue" => {
                let domain = request.get("Domain").and_then(Value::as_string);
                let key = request.get("Key").and_then(Value::as_string);
                let value = request.get("Value").and_then(Value::as_boolean);
                match (domain, key, value) {
                    _ if !session => {
                        reply.insert("Error".into(), "InvalidSession".into());
                    }
                    (
                        Some("com.apple.mobile.wireless_lockdown"),
                        Some("EnableWifiConnections"),
                        Some(on),
                    ) => {
                        shared.update(|c| c.wifi_sync = on);
                        shared.log(SimEvent::WifiSyncSet(on));
                    }
                    _ => {
                        reply.insert("Error".into(), "SetProhibited".into());
                    }
                }
            }
            "StartSession" => {
                let host_id = request.get("HostID").and_then(Value::as_string);
                let error = if !trusts(shared, &config, host_id) {
                    Some("InvalidHostID")
                } else if config.pairing == Pairing::Locked {
                    Some("PasswordProtected")
                } else {
                    None
                };
                if let Some(error) = error {
                    reply.insert("Error".into(), error.into());
                } else {
                    reply.insert("EnableSessionSSL".into(), true.into());
                    reply.insert(
                        "SessionID".into(),
                        "5A1D7C3E-0000-4000-8000-5E5510000001".into(),
                    );
                    wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
                    let cert = conn.start_tls(shared, config.tls_fault).await?;
                    shared.log(SimEvent::SessionStarted(cert));
                    session = true;
                    continue;
                }
            }
            "StopSession" => {
                session = false;
                stopping = true;
            }
            "StartService" => {
                let service = request
                    .get("Service")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                reply.insert("Service".into(), service.into());
                let escrow = request.get("EscrowBag").is_some();
                let started = match service {
                    _ if !session => Err("InvalidSession"),
                    "com.apple.mobilebackup2" if config.require_escrow_bag && !escrow => {
                        Err("EscrowLocked")
                    }
                    "com.apple.mobilebackup2" => Ok(Service::MobileBackup2 {
                        ssl: config.service_ssl,
                    }),
                    "com.apple.mobile.notification_proxy" => Ok(Service::NotificationProxy),
                    "com.apple.mobile.diagnostics_relay" => Ok(Service::DiagnosticsRelay),
                    "com.apple.afc" => Ok(Service::Afc),
                    "com.apple.mobile.installation_proxy" => Ok(Service::InstallationProxy),
                    "com.apple.springboardservices" => Ok(Service::Springboard),
                    _ => Err("InvalidService"),
                };
                match started {
                    Ok(kind) => {
                        let port = {
                            let mut next = lock(&shared.next_port);
                            *next = next.checked_add(1).unwrap_or(49152);
                            *next
                        };
                        lock(&shared.services).insert(port, kind);
                        reply.insert("Port".into(), u64::from(port).into());
                        if let Service::MobileBackup2 { ssl: true } = kind {
                            reply.insert("EnableServiceSSL".into(), true.into());
                        }
                        shared.log(SimEvent::ServiceStarted(service.to_owned()));
                    }
                    Err(error) => {
                        reply.insert("Error".into(), error.into());
                    }
                }
            }
            "Pair" => pair(shared, &config, &request, &mut reply),
            "ValidatePair" => {
                let host_id = pair_record_host(&request);
                if host_id.is_some() && !trusts(shared, &config, host_id) {
                    reply.insert("Error".into(), "InvalidHostID".into());
                }
            }
            "Unpair" => {
                if let Some(host_id) = pair_record_host(&request) {
                    lock(&shared.paired_hosts).retain(|h| h != host_id);
                    if host_id == shared.identity.host_id {
                        shared.update(|c| c.pairing = Pairing::Unpaired);
                    }
                }
            }
            "Goodbye" => {
                reply.insert("Result".into(), "Success".into());
                wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
                return Ok(());
            }
            _ => {
                reply.insert("Error".into(), "InvalidRequest".into());
            }
        }
        wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
    }
}

/// Whether the phone trusts the host that says it is `host_id`: the pair
/// record usbmuxd hands out (while the scenario keeps it), or a host that
/// paired while the simulator ran.
fn trusts(shared: &Shared, config: &SimConfig, host_id: Option<&str>) -> bool {
    let Some(host_id) = host_id else {
        return false;
    };
    let ours = host_id == shared.identity.host_id
        && matches!(config.pairing, Pairing::Paired | Pairing::Locked);
    ours || lock(&shared.paired_hosts).iter().any(|h| h == host_id)
}

/// The HostID in a request's PairRecord.
fn pair_record_host(request: &Dictionary) -> Option<&str> {
    request
        .get("PairRecord")
        .and_then(Value::as_dictionary)
        .and_then(|r| r.get("HostID"))
        .and_then(Value::as_string)
}

/// Pair, as an iPhone answers it: a locked phone refuses; otherwise the
/// first request shows "Trust This Computer?" and is answered
/// `PairingDialogResponsePending`, as is every request until the simulated
/// user taps Trust (after `SimConfig::trust_after`, or [`super::Sim::tap_trust`]).
/// Then the phone keeps the host's certificates, so a session with its
/// HostID works, and answers with its escrow bag.
fn pair(shared: &Shared, config: &SimConfig, request: &Dictionary, reply: &mut Dictionary) {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    if config.pairing == Pairing::Locked {
        reply.insert("Error".into(), "PasswordProtected".into());
        return;
    }
    let record = request.get("PairRecord").and_then(Value::as_dictionary);
    let cert = |key: &str| {
        record
            .and_then(|r| r.get(key))
            .and_then(Value::as_data)
            .and_then(|pem| CertificateDer::from_pem_slice(pem).ok())
    };
    let host_id = pair_record_host(request);
    let (Some(host_id), Some(host), Some(root), Some(_)) = (
        host_id,
        cert("HostCertificate"),
        cert("RootCertificate"),
        cert("DeviceCertificate"),
    ) else {
        reply.insert("Error".into(), "InvalidPairRecord".into());
        return;
    };
    if !trusts(shared, config, Some(host_id)) {
        let mut dialog = lock(&shared.dialog);
        let answered = match *dialog {
            super::Dialog::Hidden => {
                *dialog = super::Dialog::Shown(std::time::Instant::now());
                shared.log(SimEvent::TrustDialogShown);
                false
            }
            super::Dialog::Shown(at) => config.trust_after.is_some_and(|d| at.elapsed() >= d),
            super::Dialog::Tapped => true,
        };
        if !answered {
            reply.insert("Error".into(), "PairingDialogResponsePending".into());
            return;
        }
        *dialog = super::Dialog::Hidden;
        drop(dialog);
        lock(&shared.paired_hosts).push(host_id.to_owned());
        if host_id == shared.identity.host_id {
            shared.update(|c| c.pairing = Pairing::Paired);
        }
        shared.log(SimEvent::Trusted);
    }
    // A trusted host pairing again may bring new certificates.
    let mut trusted = lock(&shared.trusted_certs);
    for cert in [host, root] {
        if !trusted.contains(&cert) {
            trusted.push(cert);
        }
    }
    reply.insert(
        "EscrowBag".into(),
        Value::Data(shared.identity.escrow_bag.clone()),
    );
}

async fn reply_error(conn: &mut Conn, request: &str, error: &str) -> io::Result<()> {
    let mut reply = Dictionary::new();
    reply.insert("Request".into(), request.into());
    reply.insert("Error".into(), error.into());
    wire::write_plist(conn, &Value::Dictionary(reply), false).await
}

/// A lockdown value, a whole domain (no key), or the whole root domain.
fn get_value(
    shared: &Shared,
    config: &SimConfig,
    domain: Option<&str>,
    key: Option<&str>,
) -> Option<Value> {
    let domain = domain_values(shared, config, domain.unwrap_or(""))?;
    match key {
        None => Some(Value::Dictionary(domain)),
        Some(key) => domain.get(key).cloned(),
    }
}

fn domain_values(shared: &Shared, c: &SimConfig, domain: &str) -> Option<Dictionary> {
    let mut d = Dictionary::new();
    let mut put = |k: &str, v: Value| {
        d.insert(k.into(), v);
    };
    match domain {
        "" => {
            put("ActivationState", "Activated".into());
            put("BuildVersion", c.build_version.clone().into());
            put("CPUArchitecture", "arm64e".into());
            put("DeviceClass", "iPhone".into());
            put("DeviceColor", "1".into());
            put("DeviceName", c.device_name.clone().into());
            put(
                "DevicePublicKey",
                Value::Data(shared.identity.device_public_key_pem.as_bytes().to_vec()),
            );
            put("HardwareModel", "D74AP".into());
            put("HostAttached", true.into());
            // A made-up IMEI (the 35 reporting body is real; the rest is not).
            put(
                "InternationalMobileEquipmentIdentity",
                "356789012345678".into(),
            );
            put(
                "IntegratedCircuitCardIdentity",
                "8944000000000000001".into(),
            );
            put("PasswordProtected", (c.pairing == Pairing::Locked).into());
            put("ProductName", "iPhone OS".into());
            put("ProductType", c.product_type.clone().into());
            put("ProductVersion", c.ios_version.clone().into());
            put("SerialNumber", c.serial.clone().into());
            put("TimeIntervalSince1970", Value::Real(now_seconds()));
            put("TimeZone", "Europe/London".into());
            put("TimeZoneOffsetFromUTC", Value::Real(0.0));
            put(
                "TrustedHostAttached",
                trusts(shared, c, Some(&shared.identity.host_id)).into(),
            );
            put("Uses24HourClock", true.into());
            put("UniqueChipID", 0x001A_2B3C_4D5E_6F70u64.into());
            put("UniqueDeviceID", c.udid.clone().into());
            put("WiFiAddress", shared.identity.wifi_mac.clone().into());
        }
        "com.apple.disk_usage" => {
            let system = c.disk_capacity / 10;
            put("TotalDiskCapacity", c.disk_capacity.into());
            put("TotalSystemCapacity", system.into());
            put("TotalSystemAvailable", (system / 5).into());
            put("TotalDataCapacity", (c.disk_capacity - system).into());
            put("TotalDataAvailable", c.disk_free.into());
            put("AmountDataAvailable", c.disk_free.into());
            put("AmountDataReserved", 200_000_000u64.into());
            put("PhotoUsage", (c.content.total_bytes() / 2).into());
        }
        "com.apple.mobile.backup" => {
            put("WillEncrypt", c.will_encrypt.into());
            put("CloudBackupEnabled", c.cloud_backup.into());
            put("RequiresEncrypt", false.into());
            let last = crate::synthetic::plist_date(
                jiff::Timestamp::now() - jiff::SignedDuration::from_hours(3 * 24),
            );
            put("LastiTunesBackupDate", last.clone());
            if c.cloud_backup {
                put("LastCloudBackupDate", last);
            }
        }
        "com.apple.mobile.iTunes" => {
            put("MinITunesVersion", "10.0.1".into());
        }
        "com.apple.mobile.wireless_lockdown" => {
            put("EnableWifiConnections", c.wifi_sync.into());
            put("SupportsWifi", true.into());
            put("SupportsWifiSyncing", true.into());
        }
        "com.apple.mobile.battery" => {
            put(
                "BatteryCurrentCapacity",
                u64::from(c.battery_percent).into(),
            );
            put("BatteryIsCharging", (c.link == Link::Usb).into());
        }
        _ => return None,
    }
    Some(d)
}

/// The phone's clock, as lockdownd's `TimeIntervalSince1970` gives it.
fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Serves a connection to a port StartService handed out.
pub(crate) async fn serve_service(
    mut conn: Conn,
    service: Service,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    match service {
        Service::MobileBackup2 { ssl } => {
            if ssl {
                conn.start_tls(shared, shared.config().tls_fault).await?;
            }
            super::mobilebackup2::serve(conn, shared).await
        }
        Service::NotificationProxy => notification_proxy(conn).await,
        Service::DiagnosticsRelay => diagnostics_relay(conn, shared).await,
        Service::Afc => super::afc::serve(conn, shared).await,
        Service::InstallationProxy => super::apps::installation_proxy(conn).await,
        Service::Springboard => super::apps::springboard(conn).await,
    }
}

/// diagnostics_relay: Restart answers Success, then the phone goes away and
/// comes back after `SimConfig::reboot_time`, as a restarting iPhone does.
async fn diagnostics_relay(mut conn: Conn, shared: &Arc<Shared>) -> io::Result<()> {
    while let Some(message) = wire::read_plist(&mut conn).await? {
        let request = message
            .as_dictionary()
            .and_then(|d| d.get("Request"))
            .and_then(Value::as_string)
            .unwrap_or("");
        let mut reply = Dictionary::new();
        match request {
            "Restart" | "Goodbye" => {
                reply.insert("Status".into(), "Success".into());
            }
            _ => {
                reply.insert("Status".into(), "UnknownRequest".into());
            }
        }
        wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
        match request {
            "Restart" => {
                shared.log(SimEvent::Rebooted);
                let shared = shared.clone();
                let back_after = shared.config().reboot_time;
                tokio::spawn(async move {
                    // Let the answer reach the host before the phone goes.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    shared.detach();
                    tokio::time::sleep(back_after).await;
                    shared.attach();
                });
                return Ok(());
            }
            "Goodbye" => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// A notification_proxy that takes observe and post requests and stays quiet
/// until told to shut down (libimobiledevice 1.3.0's idevicebackup2 crashes
/// when the service is refused).
async fn notification_proxy(mut conn: Conn) -> io::Result<()> {
    while let Some(message) = wire::read_plist(&mut conn).await? {
        let command = message
            .as_dictionary()
            .and_then(|d| d.get("Command"))
            .and_then(Value::as_string);
        if command == Some("Shutdown") {
            let mut reply = Dictionary::new();
            reply.insert("Command".into(), "ProxyDeath".into());
            wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
            return Ok(());
        }
    }
    Ok(())
}
