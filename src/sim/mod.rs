//! A simulated iPhone that answers on a loopback TCP port exactly like usbmuxd
//! and a device behind it: usbmuxd's plist protocol, lockdownd with TLS, a
//! mobilebackup2 service that drives a real backup, and a stub
//! notification_proxy. Faults — a slow start, a stall, an unplug, an error
//! code, a locked phone, a revoked pairing — are scripted in [`SimConfig`].
//! Real clients (idevice, libimobiledevice's tools) are what talk to it; it
//! records what they asked in an event log that tests read.

mod afc;
mod apps;
mod backup2;
mod conn;
mod hostile;
mod identity;
mod lockdown;
mod mobilebackup2;
mod protection;
mod restore;
mod scenario;
mod tls;
mod usbmuxd;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

pub use apps::APPS;
pub use hostile::{Hostile, OTHER_UDID, billion_laughs};
pub use identity::Identity;
pub use restore::RestoreReport;
pub use scenario::{SCENARIOS, scenario};
pub use tls::ClientCert;

/// lockdownd's port on every iPhone.
pub const LOCKDOWN_PORT: u16 = 62078;

/// How the phone is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Usb,
    /// Wi-Fi sync: usbmuxd reports ConnectionType "Network".
    Wifi,
}

/// What the phone thinks of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    Paired,
    /// Never trusted this computer: usbmuxd has no pair record for it.
    Unpaired,
    /// The host still has a pair record, but the phone no longer accepts it
    /// (the user reset "Trust" or the record expired): StartSession fails with
    /// InvalidHostID.
    Revoked,
    /// Paired, but locked since it restarted: StartSession fails with
    /// PasswordProtected.
    Locked,
}

/// The content of the phone, generated on the fly from a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    pub files: usize,
    pub file_size: usize,
    pub seed: u64,
    /// Files that changed since the last backup the phone made: an
    /// incremental backup sends these again.
    pub changed_files: usize,
}

impl Content {
    pub fn total_bytes(&self) -> u64 {
        (self.files as u64).saturating_mul(self.file_size as u64)
    }
}

/// A stall: at `at_percent` of the transfer nothing moves for `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stall {
    pub at_percent: f64,
    pub duration: Duration,
}

/// Everything that makes one simulated iPhone behave as it does.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub udid: String,
    pub device_name: String,
    pub product_type: String,
    pub ios_version: String,
    pub build_version: String,
    pub serial: String,
    pub link: Link,
    pub pairing: Pairing,
    /// Whether the phone is attached when the simulator starts.
    pub attached: bool,
    pub disk_capacity: u64,
    pub disk_free: u64,
    pub battery_percent: u8,
    pub will_encrypt: bool,
    /// The backup password, when encryption is on.
    pub password: Option<String>,
    pub cloud_backup: bool,
    pub wifi_sync: bool,
    pub content: Content,
    /// Bytes per second of file data; `None` is as fast as the host reads.
    pub throughput: Option<u64>,
    /// How long the phone takes before its first DeviceLink message of a
    /// backup (real phones take up to about a minute).
    pub first_message_delay: Duration,
    pub stall: Option<Stall>,
    /// A pause after the last files, before the final answer (the phone
    /// moving its snapshot into place).
    pub finish_delay: Duration,
    /// Unplug (detach from usbmuxd, drop every connection) at this percent.
    pub unplug_at_percent: Option<f64>,
    /// End every backup with this ErrorCode and description instead of 0.
    pub final_error: Option<(u64, String)>,
    /// iOS 16.1 and later ask for the passcode before a backup; the phone
    /// gives up with error 208 after this long.
    pub passcode_wait: Option<Duration>,
    /// Claim the backup needs this many bytes on the host (host-disk-full).
    pub claimed_backup_bytes: Option<u64>,
    /// Start mobilebackup2 with `EnableServiceSSL`.
    pub service_ssl: bool,
    /// Refuse mobilebackup2 without the pair record's escrow bag.
    pub require_escrow_bag: bool,
    /// Fail every TLS handshake (a corrupt or foreign pair record).
    pub tls_fault: bool,
    /// How long a restart keeps the phone away.
    pub reboot_time: Duration,
    /// How long the simulated user takes to tap Trust once a host's Pair
    /// request shows the "Trust This Computer?" dialog; `None`: never (only
    /// [`Sim::tap_trust`] answers it).
    pub trust_after: Option<Duration>,
    /// Find My iPhone is on: a restore is refused (error 211).
    pub find_my_iphone: bool,
    /// Fault injection on a lockdownd request, by request name (and domain,
    /// as "GetValue com.apple.disk_usage").
    pub request_fault: Option<(String, RequestFault)>,
    /// Attack the host once the backup has started.
    pub hostile: Option<Hostile>,
}

/// What the phone does when it receives the request named in
/// [`SimConfig::request_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// Never answers; the connection stays open.
    Hang,
    /// Detaches from usbmuxd, as if the cable came out.
    Unplug,
    /// Answers with a billion-laughs binary plist.
    Bomb,
    /// Answers with a length that claims 4 GiB.
    HugeFrame,
}

impl SimConfig {
    /// Makes the phone's used space its content plus 10 MB of what a backup
    /// leaves out, so that estimates from used space come out right.
    pub fn fit_storage_to_content(&mut self) {
        let data = self.disk_capacity - self.disk_capacity / 10;
        self.disk_free = data
            .saturating_sub(10_000_000)
            .saturating_sub(self.content.total_bytes());
    }

    /// A healthy, paired, unlocked iPhone on iOS 18.1 over USB.
    pub fn new(udid: &str) -> SimConfig {
        SimConfig {
            udid: udid.to_owned(),
            device_name: "Simulated iPhone".to_owned(),
            product_type: "iPhone15,2".to_owned(),
            ios_version: "18.1".to_owned(),
            build_version: "22B83".to_owned(),
            serial: "SIMULATED01".to_owned(),
            link: Link::Usb,
            pairing: Pairing::Paired,
            attached: true,
            disk_capacity: 128_000_000_000,
            // About 1.2 GB in use: a phone whose backup is small, so that a
            // host needs little space to take it.
            disk_free: 114_000_000_000,
            battery_percent: 80,
            will_encrypt: false,
            password: None,
            cloud_backup: false,
            wifi_sync: false,
            content: Content {
                files: 200,
                file_size: 16 * 1024,
                seed: 7,
                changed_files: 10,
            },
            throughput: None,
            first_message_delay: Duration::ZERO,
            stall: None,
            finish_delay: Duration::ZERO,
            unplug_at_percent: None,
            final_error: None,
            passcode_wait: None,
            claimed_backup_bytes: None,
            service_ssl: false,
            require_escrow_bag: true,
            tls_fault: false,
            reboot_time: Duration::from_secs(2),
            trust_after: Some(Duration::from_secs(3)),
            find_my_iphone: false,
            request_fault: None,
            hostile: None,
        }
    }
}

/// What the simulator saw and did, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SimEvent {
    Attached,
    Detached,
    /// A usbmuxd request by MessageType.
    Mux(String),
    /// A lockdownd request by name.
    Lockdown(String),
    SessionStarted(Option<ClientCert>),
    ServiceStarted(String),
    BackupStarted {
        incremental: bool,
    },
    WaitingForPasscode,
    Stalled {
        at_percent: u32,
    },
    Unplugged {
        at_percent: u32,
    },
    /// `files` were sent of a backup's content (incremental runs send fewer).
    BackupFinished {
        error_code: u64,
        files: usize,
    },
    PasswordChange {
        ok: bool,
    },
    WifiSyncSet(bool),
    Rebooted,
    /// A restore ended: what the phone received.
    Restored(RestoreReport),
    /// A host asked to pair: the phone shows "Trust This Computer?".
    TrustDialogShown,
    /// The simulated user tapped Trust; the host's pair record is kept.
    Trusted,
    /// A hostile phone made its attack.
    Attacked(Hostile),
}

/// State shared by every connection of one simulator.
pub(crate) struct Shared {
    config: Mutex<SimConfig>,
    identity: Arc<Identity>,
    tls: Arc<rustls::ServerConfig>,
    /// A server configuration that accepts no client certificate.
    tls_refusing: Arc<rustls::ServerConfig>,
    /// The current usbmuxd DeviceID while attached, `None` while detached.
    /// Every device-side connection ends when this changes.
    attachment: watch::Sender<Option<u32>>,
    /// Attach and detach notices for usbmuxd `Listen` clients.
    notices: broadcast::Sender<Option<u32>>,
    /// Ports handed out by StartService, not yet connected to.
    services: Mutex<HashMap<u16, lockdown::Service>>,
    next_port: Mutex<u16>,
    next_device_id: Mutex<u32>,
    events: Mutex<Vec<(Instant, SimEvent)>>,
    /// Files changed on the phone since its last finished backup; reset by one.
    generation: Mutex<u64>,
    /// The "Trust This Computer?" dialog.
    dialog: Mutex<Dialog>,
    /// HostIDs of hosts that paired while the simulator ran.
    paired_hosts: Mutex<Vec<String>>,
    /// Their certificates, which the TLS server accepts.
    trusted_certs: tls::Trusted,
    /// The files AFC sees (what a restore writes there stays).
    media: Mutex<afc::MediaStore>,
    /// Pair records hosts saved through usbmuxd (SavePairRecord), by UDID.
    saved_records: Mutex<HashMap<String, Vec<u8>>>,
}

/// The phone's "Trust This Computer?" dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialog {
    Hidden,
    Shown(Instant),
    /// Trust was tapped; the next Pair succeeds.
    Tapped,
}

impl Shared {
    pub(crate) fn config(&self) -> SimConfig {
        lock(&self.config).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut SimConfig)) {
        f(&mut lock(&self.config));
    }

    pub(crate) fn log(&self, event: SimEvent) {
        tracing::debug!(?event, "sim");
        lock(&self.events).push((Instant::now(), event));
    }

    pub(crate) fn device_id(&self) -> Option<u32> {
        *self.attachment.borrow()
    }

    pub(crate) fn attach(&self) {
        if self.device_id().is_some() {
            return;
        }
        let id = {
            let mut next = lock(&self.next_device_id);
            *next += 1;
            *next
        };
        self.attachment.send_replace(Some(id));
        let _ = self.notices.send(Some(id));
        self.log(SimEvent::Attached);
    }

    pub(crate) fn detach(&self) {
        if let Some(id) = self.attachment.send_replace(None) {
            let _ = self.notices.send(None);
            lock(&self.services).clear();
            self.log(SimEvent::Detached);
            tracing::debug!(id, "sim detached");
        }
    }

    /// Resolves when the device attached as `id` goes away.
    pub(crate) async fn gone(&self, id: u32) {
        let mut rx = self.attachment.subscribe();
        let _ = rx.wait_for(|now| *now != Some(id)).await;
    }
}

pub(crate) use crate::lock;

/// A running simulator. Dropping it stops the listener and every connection.
pub struct Sim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: watch::Sender<bool>,
}

impl Sim {
    /// Starts a simulator on `127.0.0.1` at a free port, on the current tokio
    /// runtime.
    pub async fn start(config: SimConfig) -> io::Result<Sim> {
        Sim::start_on("127.0.0.1:0".parse().expect("a valid address"), config).await
    }

    /// Starts a simulator on `addr`.
    pub async fn start_on(addr: SocketAddr, config: SimConfig) -> io::Result<Sim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let identity = Identity::shared();
        let trusted_certs = tls::Trusted::default();
        let attached = config.attached;
        let (attachment, _) = watch::channel(None);
        let (notices, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            tls: tls::server_config(&identity, trusted_certs.clone(), false),
            tls_refusing: tls::server_config(&identity, trusted_certs.clone(), true),
            identity,
            config: Mutex::new(config),
            attachment,
            notices,
            services: Mutex::new(HashMap::new()),
            next_port: Mutex::new(49152),
            next_device_id: Mutex::new(0),
            events: Mutex::new(Vec::new()),
            generation: Mutex::new(0),
            dialog: Mutex::new(Dialog::Hidden),
            paired_hosts: Mutex::new(Vec::new()),
            trusted_certs,
            media: Mutex::new(afc::MediaStore::default()),
            saved_records: Mutex::new(HashMap::new()),
        });
        if attached {
            shared.attach();
        }
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(usbmuxd::run(listener, shared.clone(), stopped));
        Ok(Sim {
            addr,
            shared,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `USBMUXD_SOCKET_ADDRESS`: `127.0.0.1:PORT`, the one form
    /// idevice, libimobiledevice and pymobiledevice3 all accept.
    pub fn usbmuxd_address(&self) -> String {
        self.addr.to_string()
    }

    pub fn udid(&self) -> String {
        self.shared.config().udid
    }

    pub fn events(&self) -> Vec<SimEvent> {
        lock(&self.shared.events)
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Events with the moment each happened.
    pub fn events_at(&self) -> Vec<(Instant, SimEvent)> {
        lock(&self.shared.events).clone()
    }

    pub fn attach(&self) {
        self.shared.attach();
    }

    pub fn detach(&self) {
        self.shared.detach();
    }

    /// The simulated user taps Trust on the dialog a Pair request showed (or
    /// will show): the host's next Pair succeeds.
    pub fn tap_trust(&self) {
        *lock(&self.shared.dialog) = Dialog::Tapped;
    }

    /// A file in the phone's media folder (AFC's view), such as the
    /// `iTunesRestore/RestoreApplications.plist` a restore writes.
    pub fn media_file(&self, path: &str) -> Option<Vec<u8>> {
        lock(&self.shared.media).files.get(path).cloned()
    }

    /// Changes the script while running (a later backup sees the change).
    pub fn update(&self, f: impl FnOnce(&mut SimConfig)) {
        self.shared.update(f);
    }

    pub fn config(&self) -> SimConfig {
        self.shared.config()
    }
}
