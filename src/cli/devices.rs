//! `unstuck devices`: the attached phones and the facts a diagnosis uses.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::{Context, print};
use crate::device::{self, AttachedDevice, DeviceFacts, Link, MuxAddress};
use crate::humanize;

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    device: AttachedDevice,
    facts: Option<DeviceFacts>,
    error: Option<String>,
}

pub fn run(ctx: &Context, json: bool) -> Result<ExitCode> {
    let addr = mux_address(ctx)?;
    let runtime = super::runtime()?;
    let rows = runtime.block_on(async {
        let attached = device::list(&addr, device::DEADLINE).await?;
        let mut rows = Vec::new();
        for device in attached {
            let read = device::facts(&addr, Some(&device.udid), device::DEADLINE).await;
            let (facts, error) = match read {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(e.to_string())),
            };
            rows.push(Row {
                device,
                facts,
                error,
            });
        }
        Ok::<_, device::DeviceError>(rows)
    })?;
    if json {
        return print(|out| {
            let doc = serde_json::json!({
                "schema_version": 1,
                "usbmuxd": addr.to_string(),
                "devices": rows,
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)
        });
    }
    print(|out| {
        if rows.is_empty() {
            return writeln!(
                out,
                "No iPhone attached (usbmuxd at {addr}). Plug one in and unlock it."
            );
        }
        for row in &rows {
            let link = match row.device.link {
                Link::Usb => "USB",
                Link::Wifi => "Wi-Fi",
            };
            match (&row.facts, &row.error) {
                (Some(f), _) => {
                    let name = f.name.as_deref().unwrap_or("iPhone");
                    writeln!(out, "{name} ({}), {link}", f.udid)?;
                    let model = f.product_type.as_deref().unwrap_or("?");
                    let ios = f.ios_version.as_deref().unwrap_or("?");
                    let build = f.build_version.as_deref().unwrap_or("?");
                    writeln!(out, "  model {model}, iOS {ios} ({build})")?;
                    if let Some(s) = f.storage {
                        writeln!(
                            out,
                            "  storage: {} free of {}",
                            humanize::bytes(s.free),
                            humanize::bytes(s.capacity)
                        )?;
                    }
                    let yes_no = |b: Option<bool>| match b {
                        Some(true) => "on",
                        Some(false) => "off",
                        None => "unknown",
                    };
                    writeln!(
                        out,
                        "  backups: encrypted {}, iCloud Backup {}, Wi-Fi sync {}",
                        yes_no(f.backup.will_encrypt),
                        yes_no(f.backup.cloud_backup),
                        yes_no(f.wifi_sync)
                    )?;
                    if let Some(t) = f.backup.last_computer_backup {
                        writeln!(
                            out,
                            "  last backup to a computer: {}",
                            humanize::ago(ctx.now, t)
                        )?;
                    }
                    if let Some(b) = f.battery {
                        let charging = if b.charging == Some(true) {
                            ", charging"
                        } else {
                            ""
                        };
                        writeln!(out, "  battery {}%{charging}", b.percent)?;
                    }
                }
                (None, error) => {
                    writeln!(out, "{} ({link})", row.device.udid)?;
                    writeln!(out, "  {}", error.as_deref().unwrap_or("no facts"))?;
                }
            }
        }
        Ok(())
    })
}

/// `USBMUXD_SOCKET_ADDRESS`, else the config's `usbmuxd_address`, else the
/// platform's.
pub fn mux_address(ctx: &Context) -> Result<MuxAddress> {
    let env = std::env::var("USBMUXD_SOCKET_ADDRESS").ok();
    Ok(MuxAddress::resolve(
        env.as_deref(),
        ctx.config.usbmuxd_address.as_deref(),
    )?)
}
