//! The device layer against the simulated iPhone, over the real wire.

use std::time::Duration;

use tokio::sync::mpsc;
use unstuck::device::{self, DeviceError, DeviceEvent, Link, MuxAddress};
use unstuck::sim::{Pairing, RequestFault, Sim, SimConfig};

use super::sim::{UDID, config};

fn addr(sim: &Sim) -> MuxAddress {
    MuxAddress::Tcp(sim.addr())
}

const D: Duration = device::DEADLINE;

#[tokio::test]
async fn facts_equal_what_the_phone_was_scripted_with() {
    let mut c = config();
    c.device_name = "Ann's iPhone".into();
    c.ios_version = "26.1".into();
    c.build_version = "23B85".into();
    c.disk_capacity = 256_000_000_000;
    c.disk_free = 1_500_000_000;
    c.will_encrypt = true;
    c.cloud_backup = true;
    c.wifi_sync = true;
    c.battery_percent = 17;
    let sim = Sim::start(c).await.unwrap();
    let facts = device::facts(&addr(&sim), Some(UDID), D).await.unwrap();
    assert_eq!(facts.udid, UDID);
    assert_eq!(facts.link, Link::Usb);
    assert_eq!(facts.name.as_deref(), Some("Ann's iPhone"));
    assert_eq!(facts.product_type.as_deref(), Some("iPhone15,2"));
    assert_eq!(facts.ios_version.as_deref(), Some("26.1"));
    assert_eq!(facts.build_version.as_deref(), Some("23B85"));
    let storage = facts.storage.unwrap();
    assert_eq!(storage.capacity, 256_000_000_000);
    assert_eq!(storage.free, 1_500_000_000);
    assert_eq!(facts.backup.will_encrypt, Some(true));
    assert_eq!(facts.backup.cloud_backup, Some(true));
    assert!(facts.backup.last_computer_backup.is_some());
    assert!(facts.backup.last_cloud_backup.is_some());
    assert_eq!(facts.wifi_sync, Some(true));
    let battery = facts.battery.unwrap();
    assert_eq!(battery.percent, 17);
}

#[tokio::test]
async fn wifi_attached_phones_say_so() {
    let mut c = config();
    c.link = unstuck::sim::Link::Wifi;
    let sim = Sim::start(c).await.unwrap();
    let listed = device::list(&addr(&sim), D).await.unwrap();
    assert_eq!(listed[0].link, Link::Wifi);
    assert_eq!(
        device::facts(&addr(&sim), None, D).await.unwrap().link,
        Link::Wifi
    );
}

#[tokio::test]
async fn the_wifi_sync_switch_reaches_the_phone() {
    let sim = Sim::start(config()).await.unwrap();
    device::set_wifi_sync(&addr(&sim), Some(UDID), true, D)
        .await
        .unwrap();
    assert!(sim.config().wifi_sync);
    let facts = device::facts(&addr(&sim), Some(UDID), D).await.unwrap();
    assert_eq!(facts.wifi_sync, Some(true));
    device::set_wifi_sync(&addr(&sim), Some(UDID), false, D)
        .await
        .unwrap();
    assert!(!sim.config().wifi_sync);
}

async fn facts_error(c: SimConfig, deadline: Duration) -> DeviceError {
    let sim = Sim::start(c).await.unwrap();
    device::facts(&addr(&sim), Some(UDID), deadline)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn usbmuxd_not_running() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = device::list(&MuxAddress::Tcp(port), D).await.unwrap_err();
    assert!(
        matches!(err, DeviceError::UsbmuxdNotRunning { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(err.to_string().contains("usbmuxd"), "{err}");
}

#[tokio::test]
async fn no_device_attached() {
    let mut c = config();
    c.attached = false;
    let sim = Sim::start(c).await.unwrap();
    assert!(device::list(&addr(&sim), D).await.unwrap().is_empty());
    let err = device::facts(&addr(&sim), None, D).await.unwrap_err();
    assert_eq!(err, DeviceError::NoDevice { udid: None });
    let err = device::facts(&addr(&sim), Some(UDID), D).await.unwrap_err();
    assert_eq!(
        err,
        DeviceError::NoDevice {
            udid: Some(UDID.into())
        }
    );
}

#[tokio::test]
async fn never_trusted() {
    let mut c = config();
    c.pairing = Pairing::Unpaired;
    let err = facts_error(c, D).await;
    assert_eq!(err, DeviceError::NotPaired);
    assert!(err.to_string().contains("Trust This Computer"));
}

#[tokio::test]
async fn trust_revoked() {
    let mut c = config();
    c.pairing = Pairing::Revoked;
    assert_eq!(facts_error(c, D).await, DeviceError::PairingRevoked);
}

#[tokio::test]
async fn locked() {
    let mut c = config();
    c.pairing = Pairing::Locked;
    assert_eq!(facts_error(c, D).await, DeviceError::Locked);
}

#[tokio::test]
async fn tls_failure() {
    let mut c = config();
    c.tls_fault = true;
    let err = facts_error(c, D).await;
    assert!(matches!(err, DeviceError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("Trust This Computer"), "{err}");
}

#[tokio::test]
async fn detached_mid_request() {
    let mut c = config();
    c.request_fault = Some(("GetValue com.apple.disk_usage".into(), RequestFault::Unplug));
    assert_eq!(facts_error(c, D).await, DeviceError::Detached);
}

/// A real wait: the phone holds a real socket open without answering, and
/// only a real deadline can end that. 300 ms keeps it short.
#[tokio::test]
async fn a_phone_that_stops_answering_hits_the_deadline() {
    let mut c = config();
    c.request_fault = Some(("GetValue com.apple.disk_usage".into(), RequestFault::Hang));
    let started = std::time::Instant::now();
    let err = facts_error(c, Duration::from_millis(300)).await;
    assert!(
        matches!(
            err,
            DeviceError::Timeout {
                what: "GetValue",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A phone that answers lockdownd with a plist built to explode, or a length
/// that claims 4 GiB, before TLS (StartSession) and inside it (GetValue): an
/// error, or that one value unknown, never an abort (which would end this
/// test binary) or gigabytes reserved.
#[tokio::test]
async fn hostile_lockdown_answers_are_errors_not_crashes() {
    for fault in [RequestFault::Bomb, RequestFault::HugeFrame] {
        let mut c = config();
        c.request_fault = Some(("StartSession".into(), fault));
        let err = facts_error(c, Duration::from_secs(5)).await;
        assert!(
            matches!(err, DeviceError::Protocol(_)),
            "{fault:?}: {err:?}"
        );

        let mut c = config();
        c.request_fault = Some(("GetValue com.apple.disk_usage".into(), fault));
        let sim = Sim::start(c).await.unwrap();
        match device::facts(&addr(&sim), Some(UDID), Duration::from_secs(5)).await {
            Ok(facts) => assert!(facts.storage.is_none(), "{fault:?}: {facts:?}"),
            Err(err) => assert!(
                matches!(err, DeviceError::Protocol(_)),
                "{fault:?}: {err:?}"
            ),
        }
    }
}

async fn next(rx: &mut mpsc::Receiver<DeviceEvent>) -> DeviceEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event within 10 s")
        .expect("the watcher is running")
}

#[tokio::test]
async fn the_watcher_sees_attach_and_detach() {
    let sim = Sim::start(config()).await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(device::watch(addr(&sim), tx));
    let DeviceEvent::Attached(first) = next(&mut rx).await else {
        panic!("expected Attached");
    };
    assert_eq!(first.udid, UDID);
    sim.detach();
    assert_eq!(next(&mut rx).await, DeviceEvent::Detached(first.clone()));
    sim.attach();
    let DeviceEvent::Attached(again) = next(&mut rx).await else {
        panic!("expected Attached");
    };
    assert_eq!(again.udid, UDID);
    assert_ne!(again.device_id, first.device_id);
    drop(rx);
    // The watcher ends by itself once nobody listens.
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .unwrap()
        .unwrap();
}

/// A real wait of about a second: the watcher's first retry after usbmuxd
/// goes away is 1 s later.
#[tokio::test]
async fn the_watcher_survives_usbmuxd_restarting() {
    let sim = Sim::start(config()).await.unwrap();
    let port = sim.addr();
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(device::watch(MuxAddress::Tcp(port), tx));
    let DeviceEvent::Attached(first) = next(&mut rx).await else {
        panic!("expected Attached");
    };
    drop(sim);
    assert_eq!(next(&mut rx).await, DeviceEvent::Detached(first));
    assert!(matches!(
        next(&mut rx).await,
        DeviceEvent::MuxUnavailable(DeviceError::UsbmuxdNotRunning { .. })
    ));
    let mut restarted = None;
    for _ in 0..50 {
        if let Ok(sim) = Sim::start_on(port, config()).await {
            restarted = Some(sim);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _sim = restarted.expect("the port is free again");
    assert_eq!(next(&mut rx).await, DeviceEvent::MuxAvailable);
    assert!(matches!(next(&mut rx).await, DeviceEvent::Attached(d) if d.udid == UDID));
}

/// On a paused clock: five minutes without usbmuxd bring one report, not one
/// per retry.
#[tokio::test(start_paused = true)]
async fn usbmuxd_missing_is_reported_once() {
    let (tx, mut rx) = mpsc::channel(16);
    let addr = MuxAddress::Unix("/nonexistent/unstuck-test-usbmuxd".into());
    tokio::spawn(device::watch(addr, tx));
    tokio::time::sleep(Duration::from_secs(300)).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(
        events[0],
        DeviceEvent::MuxUnavailable(DeviceError::UsbmuxdNotRunning { .. })
    ));
}

#[tokio::test]
async fn hostile_usbmuxd_frames_are_errors_not_panics() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for reply in [
        // Shorter than its own header.
        [
            5u32.to_le_bytes(),
            1u32.to_le_bytes(),
            8u32.to_le_bytes(),
            1u32.to_le_bytes(),
        ]
        .concat(),
        // Four gigabytes.
        [
            u32::MAX.to_le_bytes(),
            1u32.to_le_bytes(),
            8u32.to_le_bytes(),
            1u32.to_le_bytes(),
        ]
        .concat(),
        b"garbage garbage garbage".to_vec(),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&reply).await;
            // Hold the socket open: the client must not wait forever.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let err = device::list(&MuxAddress::Tcp(port), Duration::from_secs(2))
            .await
            .unwrap_err();
        // usbmuxd's fault, named as such: not "the iPhone did not answer".
        assert!(
            matches!(
                err,
                DeviceError::NotUsbmuxd { .. } | DeviceError::UsbmuxdTimeout { .. }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("iPhone did not"), "{err}");
    }
}

/// A listener that takes the connection and never answers: usbmuxd is
/// named, not the phone.
#[tokio::test]
async fn a_usbmuxd_that_never_answers_is_named() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (_s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    // A real wait: only a real deadline ends a socket that says nothing.
    let err = device::list(&MuxAddress::Tcp(port), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::UsbmuxdTimeout { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("usbmuxd at 127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn the_devices_command() {
    let (_runtime, sim) = crate::util::sim_on_runtime(config());
    let home = crate::util::Home::new();
    let run = |args: &[&str], addr: &str| {
        crate::util::Run(
            home.command(args)
                .env("USBMUXD_SOCKET_ADDRESS", addr)
                .output()
                .unwrap(),
        )
    };
    let text = run(&["devices"], &sim.usbmuxd_address());
    text.success();
    let out = text.stdout();
    assert!(
        out.contains(&format!("Simulated iPhone ({UDID}), USB")),
        "{out}"
    );
    assert!(out.contains("iOS 18.1 (22B83)"), "{out}");
    assert!(out.contains("114 GB free of 128 GB"), "{out}");

    let json = run(&["devices", "--json"], &sim.usbmuxd_address());
    json.success();
    let doc = json.json();
    assert_eq!(doc["devices"][0]["udid"], UDID);
    assert_eq!(doc["devices"][0]["link"], "usb");
    assert_eq!(
        doc["devices"][0]["facts"]["storage"]["free"],
        114_000_000_000u64
    );
    assert_eq!(doc["devices"][0]["error"], serde_json::Value::Null);

    sim.detach();
    let none = run(&["devices"], &sim.usbmuxd_address());
    none.success();
    assert!(
        none.stdout().contains("No iPhone attached"),
        "{}",
        none.stdout()
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = run(&["devices"], &closed.to_string());
    assert_eq!(
        down.code(),
        Some(4),
        "the phone cannot be reached: as backup says"
    );
    assert!(
        down.stderr().contains("usbmuxd is not running"),
        "{}",
        down.stderr()
    );

    let bad = run(&["devices"], "not an address");
    assert_eq!(bad.code(), Some(1));
    assert!(bad.stderr().contains("HOST:PORT"), "{}", bad.stderr());
}
