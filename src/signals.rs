//! The requests to stop that reach a process from outside: Ctrl-C, the
//! SIGTERM a session or service manager sends, the SIGHUP of a closed
//! terminal, and on Windows a closed console, a logoff or a shutdown. Once a
//! handler is installed the process no longer dies of them: whoever awaits
//! [`stopped`] ends its work in order (a backup puts the last complete one
//! back first).

/// Completes when the process is asked to stop, with what asked, in words.
///
/// # Platform specific behavior
/// Unix: SIGINT, SIGTERM, SIGHUP. Windows: Ctrl-C, Ctrl-Break, the console
/// window closed, logoff, shutdown (the console control events; see
/// Microsoft Learn, "SetConsoleCtrlHandler"). Where a handler cannot be
/// installed, that signal keeps its default action.
pub async fn stopped() -> &'static str {
    // Waits on one kind of signal; one that cannot be listened for never
    // completes (it keeps its default action).
    macro_rules! next {
        ($stream:expr, $name:expr) => {
            async {
                match $stream {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::warn!(signal = $name, error = %e, "cannot listen for a signal");
                        std::future::pending::<()>().await
                    }
                }
            }
        };
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        tokio::select! {
            _ = next!(signal(SignalKind::interrupt()), "SIGINT") => "Ctrl-C",
            _ = next!(signal(SignalKind::terminate()), "SIGTERM") => "SIGTERM",
            _ = next!(signal(SignalKind::hangup()), "SIGHUP") => "SIGHUP: the terminal closed",
        }
    }
    #[cfg(windows)]
    {
        use tokio::signal::windows;
        tokio::select! {
            _ = next!(windows::ctrl_c(), "Ctrl-C") => "Ctrl-C",
            _ = next!(windows::ctrl_break(), "Ctrl-Break") => "Ctrl-Break",
            _ = next!(windows::ctrl_close(), "close") => "the console window closed",
            _ = next!(windows::ctrl_logoff(), "logoff") => "logoff",
            _ = next!(windows::ctrl_shutdown(), "shutdown") => "shutdown",
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
