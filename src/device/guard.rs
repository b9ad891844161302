//! A socket wrapper that checks usbmuxd's frame headers as bytes arrive, so
//! that a broken or hostile usbmuxd gets an error instead of making the
//! client allocate gigabytes (idevice sizes its buffer from the header) or
//! underflow on a header shorter than itself. After a successful Connect the
//! socket is a raw pipe to the phone and the wrapper steps aside.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::wire;

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

impl<S: AsyncWrite + Unpin> AsyncWrite for MuxGuard<S> {
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

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (mut guard, _) = MuxGuard::new(());
            let _ = guard.check(&bytes);
        }
    }
}
