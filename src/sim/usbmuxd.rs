//! The usbmuxd side: ListDevices, Listen (with Attached/Detached events on
//! the same socket), ReadBUID, ReadPairRecord, and Connect, after which the
//! socket is a raw pipe to a device port — lockdownd or a started service.

use std::io;
use std::sync::Arc;

use plist::{Dictionary, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::conn::Conn;
use super::{LOCKDOWN_PORT, Link, Pairing, Shared, SimEvent, lock};
use crate::wire::{self, MuxRequest};

/// usbmuxd's result codes.
const OK: u64 = 0;
const BAD_COMMAND: u64 = 1;
const BAD_DEVICE: u64 = 2;
const CONNECTION_REFUSED: u64 = 3;

/// Accepts clients until `stop` turns true (or its sender is dropped).
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut task_stop = stop.clone();
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            result = serve(stream, &shared) => {
                                if let Err(e) = result {
                                    tracing::debug!(error = %e, "sim usbmuxd client ended");
                                }
                            }
                            _ = task_stop.wait_for(|s| *s) => {}
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "sim accept failed"),
            },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn serve(mut stream: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    while let Some(request) = wire::read_mux(&mut stream).await? {
        let kind = request
            .body
            .get("MessageType")
            .and_then(Value::as_string)
            .unwrap_or("")
            .to_owned();
        shared.log(SimEvent::Mux(kind.clone()));
        match kind.as_str() {
            "ListDevices" => {
                let list: Vec<Value> = shared
                    .device_id()
                    .map(|id| Value::Dictionary(attached_entry(shared, id)))
                    .into_iter()
                    .collect();
                let mut reply = Dictionary::new();
                reply.insert("DeviceList".into(), Value::Array(list));
                send(&mut stream, request.tag, &reply).await?;
            }
            "Listen" => {
                send(&mut stream, request.tag, &result(OK)).await?;
                return listen(stream, shared).await;
            }
            "ReadBUID" => {
                let mut reply = Dictionary::new();
                reply.insert("BUID".into(), shared.identity.system_buid.clone().into());
                send(&mut stream, request.tag, &reply).await?;
            }
            "ReadPairRecord" => {
                let config = shared.config();
                let asked = request.body.get("PairRecordID").and_then(Value::as_string);
                // A record a host saved after pairing comes first, as in
                // usbmuxd's store; else the simulator's own, while the
                // scenario has one.
                let saved = asked.and_then(|udid| lock(&shared.saved_records).get(udid).cloned());
                let bytes = match saved {
                    Some(bytes) => Some(bytes),
                    None if asked == Some(config.udid.as_str())
                        && config.pairing != Pairing::Unpaired =>
                    {
                        let mut bytes = Vec::new();
                        let record = Value::Dictionary(shared.identity.pair_record(&config.udid));
                        let _ = record.to_writer_xml(&mut bytes);
                        Some(bytes)
                    }
                    None => None,
                };
                if let Some(bytes) = bytes {
                    let mut reply = Dictionary::new();
                    reply.insert("PairRecordData".into(), Value::Data(bytes));
                    send(&mut stream, request.tag, &reply).await?;
                } else {
                    send(&mut stream, request.tag, &result(BAD_DEVICE)).await?;
                }
            }
            "SavePairRecord" => {
                let udid = request.body.get("PairRecordID").and_then(Value::as_string);
                let data = request.body.get("PairRecordData").and_then(Value::as_data);
                let code = match (udid, data) {
                    // Kept within a bound: a pair record is a few kilobytes.
                    (Some(udid), Some(data))
                        if data.len() <= 64 * 1024
                            && (lock(&shared.saved_records).len() < 16
                                || lock(&shared.saved_records).contains_key(udid)) =>
                    {
                        lock(&shared.saved_records).insert(udid.to_owned(), data.to_vec());
                        OK
                    }
                    _ => BAD_COMMAND,
                };
                send(&mut stream, request.tag, &result(code)).await?;
            }
            "DeletePairRecord" => {
                if let Some(udid) = request.body.get("PairRecordID").and_then(Value::as_string) {
                    lock(&shared.saved_records).remove(udid);
                }
                send(&mut stream, request.tag, &result(OK)).await?;
            }
            "Connect" => return connect(stream, request, shared).await,
            _ => send(&mut stream, request.tag, &result(BAD_COMMAND)).await?,
        }
    }
    Ok(())
}

async fn connect(
    mut stream: TcpStream,
    request: MuxRequest,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let wanted = request
        .body
        .get("DeviceID")
        .and_then(Value::as_unsigned_integer);
    // The port travels in network byte order inside a host-order integer.
    let port = request
        .body
        .get("PortNumber")
        .and_then(Value::as_unsigned_integer)
        .map(|n| u16::from_be(n as u16));
    let Some(id) = shared
        .device_id()
        .filter(|id| Some(u64::from(*id)) == wanted)
    else {
        return send(&mut stream, request.tag, &result(BAD_DEVICE)).await;
    };
    let service = match port {
        Some(LOCKDOWN_PORT) => None,
        Some(p) => match take_service(shared, p) {
            Some(service) => Some(service),
            None => return send(&mut stream, request.tag, &result(CONNECTION_REFUSED)).await,
        },
        None => return send(&mut stream, request.tag, &result(BAD_COMMAND)).await,
    };
    send(&mut stream, request.tag, &result(OK)).await?;
    let conn = Conn::Plain(stream);
    // Every device-side connection ends when the phone goes away.
    tokio::select! {
        result = async {
            match service {
                None => super::lockdown::serve(conn, shared).await,
                Some(service) => super::lockdown::serve_service(conn, service, shared).await,
            }
        } => result,
        _ = shared.gone(id) => Ok(()),
    }
}

fn take_service(shared: &Shared, port: u16) -> Option<super::lockdown::Service> {
    lock(&shared.services).remove(&port)
}

/// After a successful Listen, the socket carries Attached and Detached events
/// until the client closes it.
async fn listen(mut stream: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let mut notices = shared.notices.subscribe();
    let mut current = shared.device_id();
    if let Some(id) = current {
        send(&mut stream, 0, &attached_entry(shared, id)).await?;
    }
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            notice = notices.recv() => {
                let now = match notice {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => shared.device_id(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                };
                if now == current {
                    continue;
                }
                if let Some(old) = current {
                    let mut detached = Dictionary::new();
                    detached.insert("MessageType".into(), "Detached".into());
                    detached.insert("DeviceID".into(), u64::from(old).into());
                    send(&mut stream, 0, &detached).await?;
                }
                if let Some(new) = now {
                    send(&mut stream, 0, &attached_entry(shared, new)).await?;
                }
                current = now;
            }
            // A Listen client sends nothing more; a read returns only when it
            // closes the socket.
            read = tokio::io::AsyncReadExt::read(&mut stream, &mut probe) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return Ok(());
                }
            }
        }
    }
}

fn attached_entry(shared: &Shared, id: u32) -> Dictionary {
    let config = shared.config();
    let mut props = Dictionary::new();
    props.insert("DeviceID".into(), u64::from(id).into());
    props.insert("SerialNumber".into(), config.udid.clone().into());
    match config.link {
        Link::Usb => {
            props.insert("ConnectionType".into(), "USB".into());
            props.insert("ConnectionSpeed".into(), 480_000_000u64.into());
            props.insert("LocationID".into(), 0x1410_0000u64.into());
            props.insert("ProductID".into(), 0x12a8u64.into());
            props.insert("USBSerialNumber".into(), config.udid.clone().into());
        }
        Link::Wifi => {
            // A sockaddr_in: length, AF_INET, port, 127.0.0.1, padding.
            let mut addr = vec![0x10, 0x02, 0, 0, 127, 0, 0, 1];
            addr.resize(16, 0);
            props.insert("ConnectionType".into(), "Network".into());
            props.insert("NetworkAddress".into(), Value::Data(addr));
            props.insert("InterfaceIndex".into(), 2u64.into());
            props.insert(
                "EscapedFullServiceName".into(),
                format!(
                    "{}@fe80::1._apple-mobdev2._tcp.local.",
                    shared.identity.wifi_mac
                )
                .into(),
            );
        }
    }
    let mut entry = Dictionary::new();
    entry.insert("DeviceID".into(), u64::from(id).into());
    entry.insert("MessageType".into(), "Attached".into());
    entry.insert("Properties".into(), Value::Dictionary(props));
    entry
}

fn result(number: u64) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("MessageType".into(), "Result".into());
    d.insert("Number".into(), number.into());
    d
}

/// Writes one frame in one call.
async fn send(stream: &mut TcpStream, tag: u32, body: &Dictionary) -> io::Result<()> {
    stream.write_all(&wire::mux_frame(tag, body)).await
}
