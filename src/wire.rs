//! The frames of the device protocols: usbmuxd's 16-byte little-endian
//! header with an XML plist, and the 4-byte big-endian length before each
//! lockdownd and DeviceLink plist. Lengths are checked against a bound before
//! anything is allocated, so a hostile peer — a broken usbmuxd, or a client
//! of the simulated iPhone — cannot make Unstuck reserve gigabytes.

use std::io;

use plist::{Dictionary, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::plist_budget::{self, Budget};

/// The largest plist frame accepted. Real messages are kilobytes; Info.plist
/// with app icons reaches a few megabytes.
pub const MAX_FRAME: u32 = 32 * 1024 * 1024;

/// usbmuxd's plist message type and protocol version.
const USBMUX_PLIST: u32 = 8;
const USBMUX_VERSION: u32 = 1;

/// A usbmuxd request: its tag (echoed in the reply) and its plist.
#[derive(Debug, Clone, PartialEq)]
pub struct MuxRequest {
    pub tag: u32,
    pub message_type: u32,
    pub body: Dictionary,
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Checks a usbmuxd header and returns (body length, message type, tag).
pub fn parse_mux_header(header: &[u8; 16]) -> io::Result<(u32, u32, u32)> {
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (len, message_type, tag) = (word(0), word(8), word(12));
    if len < 16 {
        return Err(invalid(format!(
            "usbmuxd frame length {len} is shorter than its header"
        )));
    }
    let body = len - 16;
    if body > MAX_FRAME {
        return Err(invalid(format!(
            "usbmuxd frame of {body} bytes is over the bound"
        )));
    }
    Ok((body, message_type, tag))
}

/// Encodes a usbmuxd frame: header and XML plist in one buffer, so that it is
/// written in one call (clients read the header and body separately, but some
/// break when the two arrive in different segments).
pub fn mux_frame(tag: u32, body: &Dictionary) -> Vec<u8> {
    let mut xml = Vec::new();
    // Writing a dictionary of plain values into a Vec cannot fail.
    let _ = Value::Dictionary(body.clone()).to_writer_xml(&mut xml);
    let len = 16 + xml.len() as u32;
    let mut out = Vec::with_capacity(len as usize);
    for word in [len, USBMUX_VERSION, USBMUX_PLIST, tag] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&xml);
    out
}

/// Reads a frame's fixed-size prefix; `Ok(None)` when the stream ends first.
async fn read_prefix<const N: usize, R: AsyncRead + Unpin>(
    r: &mut R,
) -> io::Result<Option<[u8; N]>> {
    let mut prefix = [0u8; N];
    match r.read_exact(&mut prefix).await {
        Ok(_) => Ok(Some(prefix)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads one usbmuxd request; `Ok(None)` at a clean end of stream.
pub async fn read_mux<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<MuxRequest>> {
    let Some(header) = read_prefix::<16, _>(r).await? else {
        return Ok(None);
    };
    let (len, message_type, tag) = parse_mux_header(&header)?;
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    let body = if message_type == USBMUX_PLIST {
        parse_dict(&body)?
    } else {
        // The old binary protocol: answered with an error, never parsed.
        Dictionary::new()
    };
    Ok(Some(MuxRequest {
        tag,
        message_type,
        body,
    }))
}

/// Parses a plist (XML or binary) whose root must be a dictionary.
pub fn parse_dict(bytes: &[u8]) -> io::Result<Dictionary> {
    match parse_value(bytes)? {
        Value::Dictionary(d) => Ok(d),
        _ => Err(invalid("the plist's root is not a dictionary")),
    }
}

/// Parses a plist (XML or binary) within `Budget::MESSAGE`: a peer's shared
/// references or deep nesting cannot exhaust memory or the stack.
pub fn parse_value(bytes: &[u8]) -> io::Result<Value> {
    plist_budget::parse(bytes, Budget::MESSAGE)
        .map_err(|e| invalid(format!("the plist is refused: {e}")))
}

/// Encodes a length-prefixed plist, XML (lockdownd) or binary (DeviceLink).
pub fn plist_frame(value: &Value, binary: bool) -> Vec<u8> {
    let mut body = Vec::new();
    let _ = if binary {
        value.to_writer_binary(&mut body)
    } else {
        value.to_writer_xml(&mut body)
    };
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads one length-prefixed plist; `Ok(None)` at a clean end of stream.
pub async fn read_plist<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<Value>> {
    let Some(len) = read_prefix::<4, _>(r).await? else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(invalid(format!(
            "plist frame of {len} bytes is over the bound"
        )));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    parse_value(&body).map(Some)
}

pub async fn write_plist<W: AsyncWrite + Unpin>(
    w: &mut W,
    value: &Value,
    binary: bool,
) -> io::Result<()> {
    w.write_all(&plist_frame(value, binary)).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mux_frame_round_trip() {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), "Result".into());
        d.insert("Number".into(), 0u64.into());
        let frame = mux_frame(7, &d);
        let header: [u8; 16] = frame[..16].try_into().unwrap();
        let (len, kind, tag) = parse_mux_header(&header).unwrap();
        assert_eq!((len as usize, kind, tag), (frame.len() - 16, 8, 7));
        assert_eq!(parse_dict(&frame[16..]).unwrap(), d);
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocating() {
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_mux_header(&header).is_err());
        header[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(parse_mux_header(&header).is_err());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut bytes: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(rt.block_on(read_plist(&mut bytes)).is_err());
        let mut empty: &[u8] = &[];
        assert!(rt.block_on(read_plist(&mut empty)).unwrap().is_none());
    }

    #[test]
    fn hostile_plists_in_frames_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let laughs = plist_budget::tests::laughs(30, 4);
        let mut frame = (laughs.len() as u32).to_be_bytes().to_vec();
        frame.extend(&laughs);
        let err = rt.block_on(read_plist(&mut &frame[..])).unwrap_err();
        assert!(
            err.to_string().contains("more than 4000000 values"),
            "{err}"
        );
        let deep = format!("<plist>{}</plist>", "<array>".repeat(100_000));
        let err = parse_dict(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nests deeper than 64"), "{err}");
    }

    proptest! {
        #[test]
        fn garbage_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut a: &[u8] = &bytes;
            let _ = rt.block_on(read_mux(&mut a));
            let mut b: &[u8] = &bytes;
            let _ = rt.block_on(read_plist(&mut b));
        }
    }
}
