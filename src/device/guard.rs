//! A socket wrapper that checks frame headers as bytes arrive, so that a
//! broken or hostile peer gets an error instead of making the client
//! allocate gigabytes (idevice sizes its buffer from the header) or
//! underflow on a header shorter than itself. Two framings: usbmuxd's
//! 16-byte header (until a successful Connect makes the socket a raw pipe to
//! the phone), and lockdownd's 4-byte length before each plist (until TLS
//! starts; inside TLS a second guard checks the decrypted frames).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::wire;

/// A TLS record of type handshake begins with this byte, then 3 (the major
/// version).
const TLS_HANDSHAKE: u8 = 0x16;

/// How the frames read through a guard begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// usbmuxd: 16 bytes, the first four the frame's length (little-endian).
    Mux,
    /// lockdownd and DeviceLink: 4 bytes, the plist's length (big-endian).
    Plist,
}

impl Framing {
    fn header_len(self) -> usize {
        match self {
            Framing::Mux => 16,
            Framing::Plist => 4,
        }
    }

    /// The length of the body that follows a complete header.
    fn body(self, header: &[u8; 16]) -> io::Result<u32> {
        match self {
            Framing::Mux => wire::parse_mux_header(header).map(|(body, _, _)| body),
            Framing::Plist => {
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                if len > wire::MAX_FRAME {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a plist frame of {len} bytes is over the bound"),
                    ));
                }
                Ok(len)
            }
        }
    }
}

/// Checks the frames read through it until told to step aside.
#[derive(Debug)]
pub(crate) struct FrameGuard<S> {
    inner: S,
    framing: Framing,
    /// Set when the stream stops being frames of this kind (usbmuxd's
    /// Connect succeeded; lockdownd's TLS starts).
    aside: Arc<AtomicBool>,
    header: [u8; 16],
    header_len: usize,
    body_left: u64,
}

impl<S> FrameGuard<S> {
    pub(crate) fn new(inner: S, framing: Framing) -> (FrameGuard<S>, Arc<AtomicBool>) {
        let aside = Arc::new(AtomicBool::new(false));
        (
            FrameGuard {
                inner,
                framing,
                aside: aside.clone(),
                header: [0; 16],
                header_len: 0,
                body_left: 0,
            },
            aside,
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
            if self.framing == Framing::Plist
                && self.header_len == 0
                && bytes.len() >= 2
                && bytes[0] == TLS_HANDSHAKE
                && bytes[1] == 3
            {
                // The phone's TLS ServerHello after StartSession: from here
                // the bytes are ciphertext, checked by a guard inside TLS.
                // No frame can start so (0x1603… is far over the bound).
                self.aside.store(true, Ordering::Release);
                return Ok(());
            }
            let full = self.framing.header_len();
            let n = (full - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == full {
                self.body_left = u64::from(self.framing.body(&self.header)?);
                self.header_len = 0;
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !this.aside.load(Ordering::Acquire) {
                    this.check(&buf.filled()[before..])?;
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use plist::Dictionary;
    use proptest::prelude::*;

    fn frame() -> Vec<u8> {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), "Result".into());
        wire::mux_frame(1, &d)
    }

    #[test]
    fn good_frames_pass_in_any_split() {
        let bytes = [frame(), frame()].concat();
        for split in 0..bytes.len() {
            let (mut guard, _) = FrameGuard::new((), Framing::Mux);
            guard.check(&bytes[..split]).unwrap();
            guard.check(&bytes[split..]).unwrap();
        }
    }

    #[test]
    fn hostile_headers_are_errors() {
        let (mut guard, _) = FrameGuard::new((), Framing::Mux);
        let mut huge = frame();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(guard.check(&huge).is_err());
        let (mut guard, _) = FrameGuard::new((), Framing::Mux);
        let mut short = frame();
        short[..4].copy_from_slice(&5u32.to_le_bytes());
        assert!(guard.check(&short).is_err());
    }

    #[test]
    fn lockdown_frames_are_checked_until_told_to_step_aside() {
        let body = b"<plist/>";
        let mut good = (body.len() as u32).to_be_bytes().to_vec();
        good.extend_from_slice(body);
        let (mut guard, _) = FrameGuard::new((), Framing::Plist);
        for split in 0..good.len() {
            guard.check(&good[..split]).unwrap();
            guard.check(&good[split..]).unwrap();
        }
        assert!(guard.check(&u32::MAX.to_be_bytes()).is_err());

        // A ServerHello at a frame boundary: the guard steps aside.
        let (mut guard, aside) = FrameGuard::new((), Framing::Plist);
        guard.check(&good).unwrap();
        guard.check(&[0x16, 0x03, 0x03, 0x00, 0x7a]).unwrap();
        assert!(aside.load(Ordering::Acquire));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for framing in [Framing::Mux, Framing::Plist] {
                let (mut guard, _) = FrameGuard::new((), framing);
                let _ = guard.check(&bytes);
            }
        }
    }
}
