//! A device-side connection that starts in plaintext and may switch to TLS
//! (after StartSession, or on a service started with SSL) and back (after
//! StopSession, when the client ends its TLS session).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::Shared;
use super::tls::{self, ClientCert};

pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between states, only while switching.
    Closed,
}

impl Conn {
    /// Runs the TLS handshake as the server and returns which pair-record
    /// certificate the client presented.
    /// With `fault`, the handshake is refused whatever the client presents.
    pub(crate) async fn start_tls(
        &mut self,
        shared: &Shared,
        fault: bool,
    ) -> io::Result<Option<ClientCert>> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Closed) else {
            return Err(io::Error::other("TLS is already on"));
        };
        let config = if fault {
            shared.tls_refusing.clone()
        } else {
            shared.tls.clone()
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let stream = acceptor.accept(tcp).await?;
        let cert = tls::client_cert(&shared.identity, stream.get_ref().1.peer_certificates());
        *self = Conn::Tls(Box::new(stream));
        Ok(cert)
    }

    /// Drops TLS and goes on in plaintext on the same socket.
    pub(crate) fn stop_tls(&mut self) {
        if let Conn::Tls(stream) = std::mem::replace(self, Conn::Closed) {
            *self = Conn::Plain(stream.into_inner().0);
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection is switching")
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Closed => Poll::Ready(Ok(())),
        }
    }
}
