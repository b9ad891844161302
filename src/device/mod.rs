//! Talks to phones through usbmuxd with the `idevice` crate: which phones are
//! attached (and a watcher for them coming and going), the facts a diagnosis
//! needs, and the Wi-Fi sync switch. It decides nothing; it reports facts and
//! typed errors ([`DeviceError`]) whose messages say what to do. Every
//! request has a deadline, because `idevice`'s reads have none.

mod error;
mod facts;
mod guard;
mod watch;

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use idevice::IdeviceService;
use idevice::lockdown::LockdownClient;
use idevice::mobilebackup2::MobileBackup2Client;
use idevice::pairing_file::PairingFile;
use idevice::usbmuxd::{Connection, UsbmuxdConnection, UsbmuxdDevice};
use idevice::{Idevice, ReadWrite};
use jiff::Timestamp;
use plist::Value;
use serde::Serialize;

pub use error::{DeviceError, translate, usbmuxd_hint};
pub use facts::{BackupSettings, Battery, DeviceFacts, Link, Storage};
pub use watch::{DeviceEvent, watch};

/// How long one request to usbmuxd or a phone may take before it is given up.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Where usbmuxd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuxAddress {
    Tcp(SocketAddr),
    /// A Unix socket (Linux, macOS).
    Unix(PathBuf),
}

impl fmt::Display for MuxAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MuxAddress::Tcp(a) => write!(f, "{a}"),
            MuxAddress::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

impl MuxAddress {
    /// Parses `HOST:PORT`, `UNIX:/path` or `/path`.
    pub fn parse(value: &str) -> Result<MuxAddress, DeviceError> {
        let bad = |why: &str| DeviceError::BadAddress {
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let value = value.trim();
        if let Some(path) = value
            .strip_prefix("UNIX:")
            .or_else(|| value.starts_with('/').then_some(value))
        {
            if cfg!(unix) {
                return Ok(MuxAddress::Unix(PathBuf::from(path)));
            }
            return Err(bad("socket paths work only on Linux and macOS"));
        }
        let mut addrs = value.to_socket_addrs().map_err(|e| bad(&e.to_string()))?;
        addrs
            .next()
            .map(MuxAddress::Tcp)
            .ok_or_else(|| bad("it names no address"))
    }

    /// The platform's usbmuxd.
    ///
    /// # Platform specific behavior
    /// `/var/run/usbmuxd` on Linux and macOS; `127.0.0.1:27015` on Windows.
    pub fn platform_default() -> MuxAddress {
        if cfg!(windows) {
            MuxAddress::Tcp(SocketAddr::from(([127, 0, 0, 1], 27015)))
        } else {
            MuxAddress::Unix(PathBuf::from("/var/run/usbmuxd"))
        }
    }

    /// `USBMUXD_SOCKET_ADDRESS` when set, else the config file's
    /// `usbmuxd_address`, else the platform's.
    pub fn resolve(env: Option<&str>, config: Option<&str>) -> Result<MuxAddress, DeviceError> {
        match env.filter(|v| !v.trim().is_empty()).or(config) {
            Some(value) => MuxAddress::parse(value),
            None => Ok(MuxAddress::platform_default()),
        }
    }

    /// Opens a guarded connection to usbmuxd.
    /// Connects to usbmuxd within `deadline`: nothing listening is
    /// `UsbmuxdNotRunning`, no answer in time a time-out.
    pub(crate) async fn connect(
        &self,
        deadline: Duration,
    ) -> Result<Box<dyn ReadWrite>, DeviceError> {
        let connected = tokio::time::timeout(deadline, async {
            match self {
                MuxAddress::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.map(|s| {
                    let _ = s.set_nodelay(true);
                    Box::new(s) as Box<dyn ReadWrite>
                }),
                #[cfg(unix)]
                MuxAddress::Unix(path) => tokio::net::UnixStream::connect(path)
                    .await
                    .map(|s| Box::new(s) as Box<dyn ReadWrite>),
                #[cfg(not(unix))]
                MuxAddress::Unix(_) => Err(std::io::Error::from(std::io::ErrorKind::Unsupported)),
            }
        })
        .await;
        match connected {
            Err(_) => Err(DeviceError::Timeout {
                what: "the usbmuxd connection",
                after: deadline,
            }),
            Ok(Err(_)) => Err(DeviceError::not_running(self.to_string())),
            Ok(Ok(socket)) => Ok(socket),
        }
    }

    /// Opens a guarded connection to usbmuxd for idevice.
    async fn open(
        &self,
        deadline: Duration,
    ) -> Result<(UsbmuxdConnection, GuardSwitch), DeviceError> {
        let (guard, raw) = guard::MuxGuard::new(self.connect(deadline).await?);
        Ok((UsbmuxdConnection::new(Box::new(guard), 1), GuardSwitch(raw)))
    }
}

/// Marks a guarded socket as a raw pipe once usbmuxd connected it to a phone.
struct GuardSwitch(std::sync::Arc<std::sync::atomic::AtomicBool>);

/// Puts a guard over a connection to a phone that hands idevice each plist
/// frame only once its length and its plist are within bounds. Call it on
/// the plain connection (the guard steps aside when TLS starts) and again
/// once TLS has started, to check the frames inside it.
fn guarded(idevice: Idevice) -> Result<Idevice, DeviceError> {
    let udid = idevice.udid().map(str::to_owned);
    let socket = idevice.get_socket().ok_or(DeviceError::Detached)?;
    let guard = guard::PlistGuard::new(socket);
    let mut idevice = Idevice::new(Box::new(guard), "unstuck");
    if let Some(udid) = udid {
        idevice.set_udid(udid);
    }
    Ok(idevice)
}

/// Runs `fut` within `deadline`, naming `what` if it runs out.
async fn within<T>(
    deadline: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, idevice::IdeviceError>>,
) -> Result<T, DeviceError> {
    match tokio::time::timeout(deadline, fut).await {
        Ok(result) => result.map_err(error::translate),
        Err(_) => Err(DeviceError::Timeout {
            what,
            after: deadline,
        }),
    }
}

/// A phone usbmuxd knows about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachedDevice {
    pub udid: String,
    /// usbmuxd's number for this attachment; a new one on every attach.
    pub device_id: u32,
    pub link: Link,
}

/// Whether `udid` is a UDID Unstuck will build a path from: the two forms
/// Apple uses (40 hex digits, or 8 hex digits, `-`, 16 hex digits), and
/// nothing that could name another place. usbmuxd's list is filtered
/// through it, so no other UDID leaves this module.
pub fn valid_udid(udid: &str) -> bool {
    (1..=64).contains(&udid.len())
        && udid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && udid.bytes().any(|b| b.is_ascii_hexdigit())
}

fn attached(device: &UsbmuxdDevice) -> AttachedDevice {
    AttachedDevice {
        udid: device.udid.clone(),
        device_id: device.device_id,
        link: match device.connection_type {
            Connection::Usb => Link::Usb,
            _ => Link::Wifi,
        },
    }
}

/// The phones attached now.
pub async fn list(
    addr: &MuxAddress,
    deadline: Duration,
) -> Result<Vec<AttachedDevice>, DeviceError> {
    let (mut mux, _) = addr.open(deadline).await?;
    let devices = device_list(addr, deadline, &mut mux).await?;
    Ok(usable(&devices).map(attached).collect())
}

/// The first request of every talk with usbmuxd. Its failures are usbmuxd's
/// (no phone has been reached yet), and say so.
async fn device_list(
    addr: &MuxAddress,
    deadline: Duration,
    mux: &mut UsbmuxdConnection,
) -> Result<Vec<UsbmuxdDevice>, DeviceError> {
    within(deadline, "the device list", mux.get_devices())
        .await
        .map_err(|e| match e {
            DeviceError::Timeout { after, .. } => DeviceError::UsbmuxdTimeout {
                address: addr.to_string(),
                after,
            },
            DeviceError::Protocol(detail) | DeviceError::Tls { detail } => {
                DeviceError::NotUsbmuxd {
                    address: addr.to_string(),
                    detail,
                }
            }
            other => other,
        })
}

/// The devices whose UDID can be trusted to name a folder; any other is
/// logged and passed over.
fn usable(devices: &[UsbmuxdDevice]) -> impl Iterator<Item = &UsbmuxdDevice> {
    devices.iter().filter(|d| {
        let ok = valid_udid(&d.udid);
        if !ok {
            tracing::warn!(udid = %d.udid.escape_debug(), "usbmuxd lists a device whose UDID is not one; passed over");
        }
        ok
    })
}

/// A lockdownd session with one phone.
struct Session {
    lockdown: LockdownClient,
    device: AttachedDevice,
}

async fn session(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<Session, DeviceError> {
    let (mut mux, _) = addr.open(deadline).await?;
    let devices = device_list(addr, deadline, &mut mux).await?;
    let mut usable = usable(&devices);
    let device = match udid {
        Some(udid) => usable.find(|d| d.udid == udid),
        None => usable.next(),
    }
    .map(attached)
    .ok_or_else(|| DeviceError::NoDevice {
        udid: udid.map(str::to_owned),
    })?;
    let record = within(deadline, "the pair record", async {
        mux.get_pair_record(&device.udid).await
    })
    .await
    .map_err(|e| match e {
        DeviceError::Timeout { .. } | DeviceError::UsbmuxdNotRunning { .. } => e,
        _ => DeviceError::NotPaired,
    })?;
    let (mux, switch) = addr.open(deadline).await?;
    let idevice: Idevice = within(
        deadline,
        "the connection to lockdownd",
        mux.connect_to_device(device.device_id, LockdownClient::LOCKDOWND_PORT, "unstuck"),
    )
    .await?;
    switch.0.store(true, Ordering::Release);
    let mut lockdown = LockdownClient::new(guarded(idevice)?);
    within(deadline, "StartSession", lockdown.start_session(&record)).await?;
    // The session is TLS now: check the frames inside it too.
    let plain = std::mem::replace(
        &mut lockdown.idevice,
        Idevice::new(Box::new(tokio::io::duplex(1).0), "none"),
    );
    lockdown.idevice = guarded(plain)?;
    Ok(Session { lockdown, device })
}

/// Reads every fact of one phone (the first attached one when `udid` is
/// `None`) in one lockdownd session.
pub async fn facts(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<DeviceFacts, DeviceError> {
    let Session {
        mut lockdown,
        device,
    } = session(addr, udid, deadline).await?;
    let root = within(deadline, "GetValue", lockdown.get_value(None, None)).await?;
    let mut domains = facts::Domains {
        root: root.into_dictionary().unwrap_or_default(),
        ..facts::Domains::default()
    };
    for (name, slot) in [
        ("com.apple.disk_usage", &mut domains.disk_usage),
        ("com.apple.mobile.backup", &mut domains.backup),
        ("com.apple.mobile.wireless_lockdown", &mut domains.wireless),
        ("com.apple.mobile.battery", &mut domains.battery),
        ("com.apple.mobile.iTunes", &mut domains.itunes),
    ] {
        // A domain the phone does not have is unknown, not a failure; a
        // dropped connection or a time-out is.
        match within(deadline, "GetValue", lockdown.get_value(None, Some(name))).await {
            Ok(value) => *slot = value.into_dictionary(),
            Err(
                e @ (DeviceError::Detached | DeviceError::Timeout { .. } | DeviceError::Locked),
            ) => {
                return Err(e);
            }
            Err(e) => tracing::debug!(domain = name, error = %e, "domain not read"),
        }
    }
    Ok(facts::parse(
        &device.udid,
        device.link,
        &domains,
        Timestamp::now(),
    ))
}

/// Turns the phone's "Sync with this iPhone over Wi-Fi" switch on or off.
pub async fn set_wifi_sync(
    addr: &MuxAddress,
    udid: Option<&str>,
    on: bool,
    deadline: Duration,
) -> Result<(), DeviceError> {
    let Session { mut lockdown, .. } = session(addr, udid, deadline).await?;
    within(
        deadline,
        "SetValue",
        lockdown.set_value(
            "EnableWifiConnections",
            Value::Boolean(on),
            Some("com.apple.mobile.wireless_lockdown"),
        ),
    )
    .await
}

/// Starts a service on the phone through lockdownd (with the pair record's
/// escrow bag when `escrow` is set) and connects to it, over TLS when the
/// phone asks for it.
async fn connect_service(
    addr: &MuxAddress,
    udid: Option<&str>,
    service: &'static str,
    escrow: bool,
    deadline: Duration,
) -> Result<(Idevice, AttachedDevice), DeviceError> {
    let Session {
        mut lockdown,
        device,
    } = session(addr, udid, deadline).await?;
    let record = pair_record(addr, &device.udid, deadline).await?;
    let bag = escrow.then(|| record.escrow_bag.clone()).flatten();
    let (port, ssl) = within(
        deadline,
        "StartService",
        lockdown.start_service_with_escrow(service, bag),
    )
    .await
    .map_err(|e| match e {
        DeviceError::Protocol(reason) => DeviceError::ServiceRefused {
            service: service.into(),
            reason,
        },
        other => other,
    })?;
    let (mux, switch) = addr.open(deadline).await?;
    let mut idevice = within(
        deadline,
        "the connection to a service",
        mux.connect_to_device(device.device_id, port, "unstuck"),
    )
    .await?;
    switch.0.store(true, Ordering::Release);
    if ssl {
        within(
            deadline,
            "the TLS handshake",
            idevice.start_session(&record, false),
        )
        .await?;
    }
    idevice.set_udid(&device.udid);
    Ok((idevice, device))
}

/// Starts mobilebackup2 on a phone the way Apple's tools do: with the pair
/// record's escrow bag (without it a phone with a passcode refuses), over
/// TLS when the phone asks for it, and through the DeviceLink and protocol
/// version exchanges.
pub async fn mobilebackup2(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<MobileBackup2Client, DeviceError> {
    let (idevice, _) =
        connect_service(addr, udid, "com.apple.mobilebackup2", true, deadline).await?;
    within(
        deadline,
        "the mobilebackup2 handshake",
        // Not guarded: the DeviceLink stream carries file data between its
        // plists. The engine reads it itself, with its bounds (engine::link).
        MobileBackup2Client::from_stream(idevice),
    )
    .await
}

/// The mobilebackup2 service's connection (over TLS when the phone asks for
/// it), before DeviceLink's handshake, and the phone's UDID as usbmuxd named
/// it: the engine speaks DeviceLink itself, with its bounds.
pub async fn mobilebackup2_stream(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<(Box<dyn ReadWrite>, String), DeviceError> {
    let (idevice, device) =
        connect_service(addr, udid, "com.apple.mobilebackup2", true, deadline).await?;
    let socket = idevice.get_socket().ok_or(DeviceError::Detached)?;
    Ok((socket, device.udid))
}

/// Restarts the phone through its diagnostics service. It answers, then goes
/// away for the time a restart takes.
pub async fn restart_phone(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<(), DeviceError> {
    let (idevice, _) = connect_service(
        addr,
        udid,
        "com.apple.mobile.diagnostics_relay",
        false,
        deadline,
    )
    .await?;
    let mut relay = idevice::diagnostics_relay::DiagnosticsRelayClient::new(guarded(idevice)?);
    within(deadline, "Restart", relay.restart()).await
}

/// An app on the phone, as a backup's Info.plist lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub bundle_id: String,
    /// The App Store licence (`ApplicationSINF`), opaque.
    pub sinf: Option<Vec<u8>>,
    /// `iTunesMetadata`, a plist the App Store wrote.
    pub metadata: Option<Vec<u8>>,
    /// The home-screen icon, PNG.
    pub icon: Option<Vec<u8>>,
}

/// More apps than this is not a phone's list; the rest are left out.
const MAX_APPS: usize = 2_000;
/// Bytes of licences, metadata and icons kept for Info.plist, whatever the
/// phone sends: icons are left out first, then licences and metadata, so
/// Info.plist stays far inside what a reader accepts (`Budget::FILE`).
const MAX_APP_BYTES: usize = 24 * 1024 * 1024;

/// The phone's user apps from installation_proxy's `Browse`, with each
/// licensed app's icon from springboardservices, as Finder and
/// idevicebackup2 gather them for Info.plist. The whole takes at most
/// `deadline`; icons that cannot be had (a failure, time running out) are
/// left out and the list is kept. Every reply is a bounded, budgeted plist
/// frame (`wire`).
pub async fn apps(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<Vec<AppRecord>, DeviceError> {
    let end = tokio::time::Instant::now() + deadline;
    let mut apps = tokio::time::timeout_at(end, browse_apps(addr, udid, deadline))
        .await
        .map_err(|_| DeviceError::Timeout {
            what: "the list of apps",
            after: deadline,
        })??;
    match tokio::time::timeout_at(end, add_icons(addr, udid, deadline, &mut apps)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "app icons left out"),
        Err(_) => tracing::debug!("app icons left out: out of time"),
    }
    Ok(apps)
}

fn app_bytes(app: &AppRecord) -> usize {
    [&app.sinf, &app.metadata, &app.icon]
        .iter()
        .map(|d| d.as_ref().map_or(0, Vec::len))
        .sum()
}

async fn browse_apps(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
) -> Result<Vec<AppRecord>, DeviceError> {
    use plist::Dictionary;
    let (idevice, _) = connect_service(
        addr,
        udid,
        "com.apple.mobile.installation_proxy",
        false,
        deadline,
    )
    .await?;
    let mut socket = idevice.get_socket().ok_or(DeviceError::Detached)?;
    let mut options = Dictionary::new();
    options.insert("ApplicationType".into(), "User".into());
    options.insert(
        "ReturnAttributes".into(),
        Value::Array(
            ["CFBundleIdentifier", "ApplicationSINF", "iTunesMetadata"]
                .map(Value::from)
                .to_vec(),
        ),
    );
    let mut browse = Dictionary::new();
    browse.insert("Command".into(), "Browse".into());
    browse.insert("ClientOptions".into(), Value::Dictionary(options));
    let protocol = |e: std::io::Error| DeviceError::Protocol(format!("installation_proxy: {e}"));
    crate::wire::write_plist(&mut socket, &Value::Dictionary(browse), false)
        .await
        .map_err(protocol)?;
    let mut apps = Vec::new();
    let mut used = 0usize;
    while let Some(reply) = crate::wire::read_plist(&mut socket)
        .await
        .map_err(protocol)?
    {
        let reply = reply.into_dictionary().unwrap_or_default();
        if let Some(error) = reply.get("Error").and_then(Value::as_string) {
            return Err(DeviceError::Protocol(format!(
                "installation_proxy answered {error}"
            )));
        }
        let list = reply.get("CurrentList").and_then(Value::as_array);
        for app in list.into_iter().flatten().filter_map(Value::as_dictionary) {
            let Some(id) = app.get("CFBundleIdentifier").and_then(Value::as_string) else {
                continue;
            };
            if apps.len() == MAX_APPS {
                break;
            }
            let data = |k: &str| app.get(k).and_then(Value::as_data).map(<[u8]>::to_vec);
            let mut record = AppRecord {
                bundle_id: id.to_owned(),
                sinf: data("ApplicationSINF"),
                metadata: data("iTunesMetadata"),
                icon: None,
            };
            if used + app_bytes(&record) > MAX_APP_BYTES {
                (record.sinf, record.metadata) = (None, None);
            }
            used += app_bytes(&record);
            apps.push(record);
        }
        if reply.get("Status").and_then(Value::as_string) == Some("Complete") {
            return Ok(apps);
        }
    }
    Err(DeviceError::Protocol(
        "installation_proxy: the list of apps ended early".into(),
    ))
}

/// Adds each licensed app's icon while the byte budget lasts.
async fn add_icons(
    addr: &MuxAddress,
    udid: Option<&str>,
    deadline: Duration,
    apps: &mut [AppRecord],
) -> Result<(), DeviceError> {
    use plist::Dictionary;
    let licensed = |a: &AppRecord| a.sinf.is_some() && a.metadata.is_some();
    if !apps.iter().any(licensed) {
        return Ok(());
    }
    let mut used: usize = apps.iter().map(app_bytes).sum();
    let (idevice, _) =
        connect_service(addr, udid, "com.apple.springboardservices", false, deadline).await?;
    let mut socket = idevice.get_socket().ok_or(DeviceError::Detached)?;
    let protocol = |e: std::io::Error| DeviceError::Protocol(format!("springboardservices: {e}"));
    for app in apps.iter_mut().filter(|a| licensed(a)) {
        let mut ask = Dictionary::new();
        ask.insert("command".into(), "getIconPNGData".into());
        ask.insert("bundleId".into(), app.bundle_id.clone().into());
        crate::wire::write_plist(&mut socket, &Value::Dictionary(ask), false)
            .await
            .map_err(protocol)?;
        let reply = crate::wire::read_plist(&mut socket)
            .await
            .map_err(protocol)?;
        let icon = reply
            .as_ref()
            .and_then(Value::as_dictionary)
            .and_then(|d| d.get("pngData"))
            .and_then(Value::as_data);
        if let Some(icon) = icon {
            if used + icon.len() > MAX_APP_BYTES {
                return Ok(());
            }
            used += icon.len();
            app.icon = Some(icon.to_vec());
        }
    }
    Ok(())
}

/// The pair record usbmuxd keeps for a phone.
pub async fn pair_record(
    addr: &MuxAddress,
    udid: &str,
    deadline: Duration,
) -> Result<PairingFile, DeviceError> {
    let (mut mux, _) = addr.open(deadline).await?;
    within(deadline, "the pair record", mux.get_pair_record(udid))
        .await
        .map_err(|e| match e {
            DeviceError::Timeout { .. } => e,
            _ => DeviceError::NotPaired,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            MuxAddress::parse("127.0.0.1:27015").unwrap(),
            MuxAddress::Tcp("127.0.0.1:27015".parse().unwrap())
        );
        if cfg!(unix) {
            assert_eq!(
                MuxAddress::parse("UNIX:/var/run/usbmuxd").unwrap(),
                MuxAddress::Unix("/var/run/usbmuxd".into())
            );
            assert_eq!(
                MuxAddress::parse("/tmp/mux").unwrap(),
                MuxAddress::Unix("/tmp/mux".into())
            );
        }
        let err = MuxAddress::parse("nonsense").unwrap_err();
        assert!(err.to_string().contains("\"nonsense\""), "{err}");
        assert_eq!(
            MuxAddress::resolve(Some("127.0.0.1:1"), Some("127.0.0.1:2")).unwrap(),
            MuxAddress::parse("127.0.0.1:1").unwrap()
        );
        assert_eq!(
            MuxAddress::resolve(Some(" "), Some("127.0.0.1:2")).unwrap(),
            MuxAddress::parse("127.0.0.1:2").unwrap()
        );
        assert_eq!(
            MuxAddress::resolve(None, None).unwrap(),
            MuxAddress::platform_default()
        );
    }
}
