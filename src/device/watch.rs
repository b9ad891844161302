//! Watches phones come and go through usbmuxd's `Listen`, and survives
//! usbmuxd itself coming and going. `idevice`'s own listen stream is not
//! `Send` (it cannot live on a multi-threaded runtime) and sizes its buffers
//! from the wire, so the few frames of `Listen` are read here with the
//! bounded codec in `wire`.

use std::collections::HashMap;
use std::time::Duration;

use plist::{Dictionary, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{AttachedDevice, DEADLINE, DeviceError, Link, MuxAddress};
use crate::wire;

/// What the watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    Attached(AttachedDevice),
    Detached(AttachedDevice),
    /// usbmuxd cannot be reached. Said once per outage, not on every retry.
    MuxUnavailable(DeviceError),
    /// usbmuxd answers again after an outage.
    MuxAvailable,
}

/// The longest wait between two attempts to reach usbmuxd.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Sends [`DeviceEvent`]s until the receiver is dropped. While usbmuxd is
/// away it retries with a back-off from 1 s to 30 s; while it is there it
/// sleeps on the socket, waking only for an event.
pub async fn watch(addr: MuxAddress, events: mpsc::Sender<DeviceEvent>) {
    let mut backoff = Duration::from_secs(1);
    let mut down = false;
    loop {
        let mut seen: HashMap<u32, AttachedDevice> = HashMap::new();
        let result = tokio::select! {
            result = listen(&addr, &events, &mut seen, &mut down) => result,
            _ = events.closed() => return,
        };
        // Whatever happened, phones seen on that connection are gone: a
        // restarted usbmuxd numbers them anew.
        for (_, device) in seen.drain() {
            if events.send(DeviceEvent::Detached(device)).await.is_err() {
                return;
            }
        }
        match result {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "usbmuxd unavailable");
                    down = true;
                    if events.send(DeviceEvent::MuxUnavailable(e)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = events.closed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One Listen connection, until usbmuxd closes it (`Ok`) or it fails.
async fn listen(
    addr: &MuxAddress,
    events: &mpsc::Sender<DeviceEvent>,
    seen: &mut HashMap<u32, AttachedDevice>,
    down: &mut bool,
) -> Result<(), DeviceError> {
    // A plain socket: the `Listen` frames are checked by `wire`.
    let mut socket = addr.connect(DEADLINE).await?;
    let mut request = Dictionary::new();
    request.insert("MessageType".into(), "Listen".into());
    request.insert("ClientVersionString".into(), "unstuck".into());
    request.insert("ProgName".into(), "unstuck".into());
    socket
        .write_all(&wire::mux_frame(1, &request))
        .await
        .map_err(|_| DeviceError::not_running(addr.to_string()))?;
    let reply = tokio::time::timeout(DEADLINE, wire::read_mux(&mut socket))
        .await
        .map_err(|_| DeviceError::Timeout {
            what: "Listen",
            after: DEADLINE,
        })?
        .map_err(|e| DeviceError::Protocol(e.to_string()))?
        .ok_or_else(|| DeviceError::not_running(addr.to_string()))?;
    if reply
        .body
        .get("Number")
        .and_then(Value::as_unsigned_integer)
        != Some(0)
    {
        return Err(DeviceError::Protocol("usbmuxd refused Listen".into()));
    }
    if std::mem::take(down) {
        tracing::info!("usbmuxd is back");
        let _ = events.send(DeviceEvent::MuxAvailable).await;
    }
    // No deadline here: a quiet usbmuxd is normal, and waiting costs nothing.
    while let Some(message) = wire::read_mux(&mut socket)
        .await
        .map_err(|e| DeviceError::Protocol(e.to_string()))?
    {
        let body = &message.body;
        let id = body
            .get("DeviceID")
            .and_then(Value::as_unsigned_integer)
            .and_then(|n| u32::try_from(n).ok());
        match (body.get("MessageType").and_then(Value::as_string), id) {
            (Some("Attached"), Some(id)) => {
                let Some(device) = attached_device(body, id) else {
                    tracing::debug!(?body, "Attached without a serial number");
                    continue;
                };
                seen.insert(id, device.clone());
                if events.send(DeviceEvent::Attached(device)).await.is_err() {
                    return Ok(());
                }
            }
            (Some("Detached"), Some(id)) => {
                if let Some(device) = seen.remove(&id)
                    && events.send(DeviceEvent::Detached(device)).await.is_err()
                {
                    return Ok(());
                }
            }
            // "Paired" and others carry nothing the watcher reports.
            _ => {}
        }
    }
    Ok(())
}

fn attached_device(body: &Dictionary, id: u32) -> Option<AttachedDevice> {
    let props = body.get("Properties")?.as_dictionary()?;
    let udid = props.get("SerialNumber")?.as_string()?.to_owned();
    if !super::valid_udid(&udid) {
        tracing::warn!(udid = %udid.escape_debug(), "usbmuxd announced a device whose UDID is not one; passed over");
        return None;
    }
    let link = match props.get("ConnectionType").and_then(Value::as_string) {
        Some("USB") => Link::Usb,
        _ => Link::Wifi,
    };
    Some(AttachedDevice {
        udid,
        device_id: id,
        link,
    })
}
