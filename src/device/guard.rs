//! Socket wrappers that check what a peer sends before idevice reads it, so
//! that a broken or hostile peer gets an error instead of making the client
//! allocate gigabytes (idevice sizes its buffer from each header), underflow
//! on a header shorter than itself, or expand a plist built to explode.
//! `MuxGuard` checks usbmuxd's 16-byte headers as bytes pass, until a
//! successful Connect makes the socket a raw pipe to the phone. `PlistGuard`
//! holds back each of lockdownd's length-prefixed plists until the whole of
//! it has been measured against `plist_budget`; it steps aside when the
//! phone starts TLS, and a second one checks the frames inside TLS.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::plist_budget::{self, Budget};
use crate::wire;

/// A TLS record of type handshake begins with this byte, then 3 (the major
/// version). No plist frame can begin so: 0x1603… is far over the bound.
const TLS_HANDSHAKE: u8 = 0x16;

/// Checks the usbmuxd frames read through it until told the socket is raw.
#[derive(Debug)]
pub(crate) struct MuxGuard<S> {
    inner: S,
    /// Set once usbmuxd has answered a Connect with success.
    raw: Arc<AtomicBool>,
    header: [u8; 16],
    header_len: usize,
    body_left: u64,
}

impl<S> MuxGuard<S> {
    pub(crate) fn new(inner: S) -> (MuxGuard<S>, Arc<AtomicBool>) {
        let raw = Arc::new(AtomicBool::new(false));
        (
            MuxGuard {
                inner,
                raw: raw.clone(),
                header: [0; 16],
                header_len: 0,
                body_left: 0,
            },
            raw,
        )
    }

    /// Walks bytes just read, checking each header as it completes.
    fn check(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len() as u64);
                self.body_left -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let n = (16 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == 16 {
                let (body, _, _) = wire::parse_mux_header(&self.header)?;
                self.body_left = u64::from(body);
                self.header_len = 0;
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MuxGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !this.raw.load(Ordering::Acquire) {
                    this.check(&buf.filled()[before..])?;
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Hands on lockdownd's frames (a 4-byte big-endian length, then a plist)
/// only once each is whole and within `Budget::MESSAGE`. Holds at most one
/// frame (`wire::MAX_FRAME`) at a time.
#[derive(Debug)]
pub(crate) struct PlistGuard<S> {
    inner: S,
    /// Bytes read from `inner` and not yet handed on.
    held: Vec<u8>,
    /// Of `held`, how many are checked and may be handed on.
    checked: usize,
    /// Of the checked bytes, how many were handed on.
    given: usize,
    /// The phone has answered StartSession with EnableSessionSSL: TLS may
    /// begin with its next bytes.
    tls_next: bool,
    /// The phone started TLS: from here bytes pass as they come.
    aside: bool,
}

impl<S> PlistGuard<S> {
    pub(crate) fn new(inner: S) -> PlistGuard<S> {
        PlistGuard {
            inner,
            held: Vec::new(),
            checked: 0,
            given: 0,
            tls_next: false,
            aside: false,
        }
    }

    /// Decides on the bytes held: `Ok(true)` when some can be handed on.
    fn decide(&mut self) -> io::Result<bool> {
        if self.aside {
            self.checked = self.held.len();
            return Ok(self.checked > 0);
        }
        let held = &self.held;
        if self.tls_next && held.len() >= 2 && held[0] == TLS_HANDSHAKE && held[1] == 3 {
            // The phone's ServerHello after StartSession: ciphertext from
            // here, checked by a guard over the TLS stream. Only then: a
            // phone that sent these bytes as a length would claim 369 MB.
            self.aside = true;
            self.checked = held.len();
            return Ok(true);
        }
        if held.len() < 4 {
            return Ok(false);
        }
        let len = u32::from_be_bytes([held[0], held[1], held[2], held[3]]);
        if len > wire::MAX_FRAME {
            return Err(invalid(format!(
                "a plist frame of {len} bytes is over the bound"
            )));
        }
        let end = 4 + len as usize;
        if held.len() < end {
            return Ok(false);
        }
        let message = plist_budget::parse(&held[4..end], Budget::MESSAGE)
            .map_err(|e| invalid(format!("the iPhone sent a plist Unstuck refuses: {e}")))?;
        self.tls_next = starts_tls(&message);
        self.checked = end;
        Ok(true)
    }
}

/// Whether `message` is lockdownd's answer to StartSession asking for TLS.
fn starts_tls(message: &plist::Value) -> bool {
    let Some(d) = message.as_dictionary() else {
        return false;
    };
    d.get("Request").and_then(plist::Value::as_string) == Some("StartSession")
        && d.get("EnableSessionSSL").and_then(plist::Value::as_boolean) == Some(true)
}

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl<S: AsyncRead + Unpin> AsyncRead for PlistGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.given < this.checked {
                let n = (this.checked - this.given).min(out.remaining());
                out.put_slice(&this.held[this.given..this.given + n]);
                this.given += n;
                if this.given == this.checked {
                    this.held.drain(..this.checked);
                    this.checked = 0;
                    this.given = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.aside && this.held.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            if this.decide()? {
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    // The end of the stream: clean between frames, broken
                    // inside one.
                    return Poll::Ready(if this.held.is_empty() {
                        Ok(())
                    } else {
                        Err(io::ErrorKind::UnexpectedEof.into())
                    });
                }
                Poll::Ready(Ok(())) => this.held.extend_from_slice(read.filled()),
            }
        }
    }
}

/// Writes pass straight through both guards.
macro_rules! write_through {
    ($guard:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $guard<S> {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }
        }
    };
}
write_through!(MuxGuard);
write_through!(PlistGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use plist::{Dictionary, Value};
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    fn frame() -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), "Result".into());
        wire::mux_frame(1, &d)
    }

    #[test]
    fn good_frames_pass_in_any_split() {
        let bytes = [frame(), frame()].concat();
        for split in 0..bytes.len() {
            let (mut guard, _) = MuxGuard::new(());
            guard.check(&bytes[..split]).unwrap();
            guard.check(&bytes[split..]).unwrap();
        }
    }

    #[test]
    fn hostile_headers_are_errors() {
        let (mut guard, _) = MuxGuard::new(());
        let mut huge = frame();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(guard.check(&huge).is_err());
        let (mut guard, _) = MuxGuard::new(());
        let mut short = frame();
        short[..4].copy_from_slice(&5u32.to_le_bytes());
        assert!(guard.check(&short).is_err());
    }

    /// Everything a reader gets through a `PlistGuard` over `bytes`.
    fn through(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut guard = PlistGuard::new(&bytes[..]);
            let mut out = Vec::new();
            guard.read_to_end(&mut out).await?;
            Ok(out)
        })
    }

    fn plist_frame(value: &Value) -> Vec<u8> {
        wire::plist_frame(value, false)
    }

    #[test]
    fn lockdown_frames_pass_whole_then_tls_passes_as_it_comes() {
        let mut query = Dictionary::new();
        query.insert("Request".into(), "QueryType".into());
        let mut session = Dictionary::new();
        session.insert("Request".into(), "StartSession".into());
        session.insert("EnableSessionSSL".into(), true.into());
        let frames = [
            plist_frame(&Value::Dictionary(query.clone())),
            plist_frame(&Value::Dictionary(session)),
        ]
        .concat();
        assert_eq!(through(frames.clone()).unwrap(), frames);
        let mut with_tls = frames.clone();
        with_tls.extend_from_slice(&[0x16, 0x03, 0x03, 0x00, 0x7a, 1, 2, 3]);
        assert_eq!(through(with_tls.clone()).unwrap(), with_tls);

        // Before StartSession the same bytes are a length of 369 MB.
        let mut early = plist_frame(&Value::Dictionary(query));
        early.extend_from_slice(&[0x16, 0x03, 0xff, 0xff, 0x7a, 1, 2, 3]);
        assert!(through(early).is_err());
    }

    #[test]
    fn hostile_lockdown_frames_are_errors_before_the_reader_sees_them() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // A length over the bound.
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(b"<plist/>");
        assert!(through(huge).is_err());
        // A plist built to explode: the reader gets none of its bytes.
        let bomb = crate::sim::billion_laughs();
        let mut frame = (bomb.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&bomb);
        let mut guard = PlistGuard::new(&frame[..]);
        let mut first = [0u8; 4];
        let read = rt.block_on(guard.read(&mut first));
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Cut short inside a frame.
        let mut cut = plist_frame(&Value::Boolean(true));
        cut.pop();
        assert!(through(cut).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (mut guard, _) = MuxGuard::new(());
            let _ = guard.check(&bytes);
            let _ = through(bytes);
        }
    }
}
