//! `unstuck sim`: serves a simulated iPhone on loopback until Ctrl-C, for
//! trying Unstuck and other tools without a phone.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::print;
use crate::sim::{SCENARIOS, Sim, scenario};

pub fn run(
    port: u16,
    name: &str,
    (files, file_size, rate): (Option<usize>, Option<usize>, Option<u64>),
) -> Result<ExitCode> {
    let mut config = scenario(name).with_context(|| format!("there is no scenario {name:?}"))?;
    if let Some(files) = files {
        config.content.files = files;
    }
    if let Some(size) = file_size {
        config.content.file_size = size;
    }
    if files.is_some() || file_size.is_some() {
        config.fit_storage_to_content();
    }
    if let Some(rate) = rate {
        config.throughput = (rate > 0).then_some(rate);
    }
    let what = SCENARIOS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, what)| *what)
        .unwrap_or("");
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let sim = Sim::start_on(addr, config).await.with_context(|| {
            format!("cannot listen on {addr}: is another simulator running there?")
        })?;
        print(|out| {
            let c = sim.config();
            writeln!(out, "Simulated iPhone {} ({name}: {what}).", sim.udid())?;
            writeln!(
                out,
                "Its backup: {} files, {}{}.",
                c.content.files,
                crate::humanize::bytes(c.content.total_bytes()),
                c.throughput
                    .map(|r| format!(" at {}/s", crate::humanize::bytes(r)))
                    .unwrap_or_default()
            )?;
            writeln!(out, "Point clients at it with:")?;
            writeln!(out, "USBMUXD_SOCKET_ADDRESS={}", sim.usbmuxd_address())?;
            writeln!(out, "Press Ctrl-C to stop.")
        })?;
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
        Ok(ExitCode::SUCCESS)
    })
}
