//! The phone's apps, as two services show them: installation_proxy
//! (`Browse`: the installed user apps, in pages of `BrowsingList` then
//! `Complete`) and springboardservices (`getIconPNGData`, `getIconState`).
//! Backup clients list the apps in Info.plist (`Installed Applications`,
//! `Applications` with each app's SINF, iTunes metadata and icon). Sources:
//! libimobiledevice `src/installation_proxy.c`, `src/sbservices.c` and
//! `tools/idevicebackup2.c`; pymobiledevice3 `services/installation_proxy.py`
//! and `services/springboard.py`.

use std::io;

use plist::{Dictionary, Value};

use super::conn::Conn;
use crate::wire;

/// The simulated iPhone's user apps: bundle ID, name, version. Their data
/// is what the backup's `AppDomain-<bundle ID>` files hold.
pub const APPS: &[(&str, &str, &str)] = &[
    ("com.example.app0", "Notes Plus", "3.1"),
    ("com.example.app1", "Trail Maps", "12.0.4"),
    ("com.example.app2", "Puzzle Garden", "1.9"),
    ("com.example.app3", "Budget Book", "7.2"),
    ("com.example.app4", "Recipe Box", "2.0.1"),
    ("com.example.app5", "Sky Watch", "5.5"),
    ("com.example.app6", "Word Hunt", "4.0"),
];

/// Apps sent per `BrowsingList` reply (real phones page by 20 or so).
const PAGE: usize = 3;

/// Every attribute of an app this phone knows.
fn app(bundle_id: &str, name: &str, version: &str) -> Dictionary {
    let mut metadata = Dictionary::new();
    metadata.insert("itemName".into(), name.into());
    metadata.insert("softwareVersionBundleId".into(), bundle_id.into());
    metadata.insert("bundleShortVersionString".into(), version.into());
    metadata.insert("artistName".into(), "Example Developer".into());
    let mut metadata_bytes = Vec::new();
    let _ = Value::Dictionary(metadata).to_writer_binary(&mut metadata_bytes);
    let mut d = Dictionary::new();
    d.insert("ApplicationType".into(), "User".into());
    d.insert("CFBundleIdentifier".into(), bundle_id.into());
    d.insert("CFBundleDisplayName".into(), name.into());
    d.insert("CFBundleName".into(), name.into());
    d.insert("CFBundleShortVersionString".into(), version.into());
    d.insert("CFBundleVersion".into(), version.into());
    // The App Store's encrypted licence: opaque bytes to every host.
    d.insert(
        "ApplicationSINF".into(),
        Value::Data(crate::synthetic::file_content(
            0x5157,
            bundle_id.len() as u64,
            96,
        )),
    );
    d.insert("iTunesMetadata".into(), Value::Data(metadata_bytes));
    d
}

/// installation_proxy: `Browse` answers with the apps (only the attributes
/// asked for in `ReturnAttributes`, when it is given); anything else is an
/// error the client can read.
pub(crate) async fn installation_proxy(mut conn: Conn) -> io::Result<()> {
    while let Some(message) = wire::read_plist(&mut conn).await? {
        let request = message.as_dictionary().cloned().unwrap_or_default();
        let command = request
            .get("Command")
            .and_then(Value::as_string)
            .unwrap_or("");
        if command != "Browse" {
            let mut reply = Dictionary::new();
            reply.insert("Error".into(), "UnknownCommand".into());
            reply.insert(
                "ErrorDescription".into(),
                format!("{command} is not supported by the simulated iPhone").into(),
            );
            wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
            continue;
        }
        let options = request.get("ClientOptions").and_then(Value::as_dictionary);
        let kind = options
            .and_then(|o| o.get("ApplicationType"))
            .and_then(Value::as_string)
            .unwrap_or("Any");
        let wanted: Option<Vec<String>> = options
            .and_then(|o| o.get("ReturnAttributes"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_string)
                    .map(str::to_owned)
                    .collect()
            });
        // Every app here is a user app; "System" lists none of them.
        let apps: Vec<Value> = if kind == "System" {
            Vec::new()
        } else {
            APPS.iter()
                .map(|(id, name, version)| {
                    let mut d = app(id, name, version);
                    if let Some(wanted) = &wanted {
                        d.retain(|k, _| wanted.iter().any(|w| w == k));
                    }
                    Value::Dictionary(d)
                })
                .collect()
        };
        let total = apps.len();
        for (n, page) in apps.chunks(PAGE).enumerate() {
            let mut reply = Dictionary::new();
            reply.insert("Status".into(), "BrowsingList".into());
            reply.insert("CurrentIndex".into(), ((n * PAGE) as u64).into());
            reply.insert("CurrentAmount".into(), (page.len() as u64).into());
            reply.insert("Total".into(), (total as u64).into());
            reply.insert("CurrentList".into(), Value::Array(page.to_vec()));
            wire::write_plist(&mut conn, &Value::Dictionary(reply), false).await?;
        }
        let mut done = Dictionary::new();
        done.insert("Status".into(), "Complete".into());
        wire::write_plist(&mut conn, &Value::Dictionary(done), false).await?;
    }
    Ok(())
}

/// springboardservices: each app's icon (a small PNG), the home screen's
/// layout, and the orientation; other commands get no answer, as on a phone.
pub(crate) async fn springboard(mut conn: Conn) -> io::Result<()> {
    while let Some(message) = wire::read_plist(&mut conn).await? {
        let request = message.as_dictionary().cloned().unwrap_or_default();
        let command = request
            .get("command")
            .and_then(Value::as_string)
            .unwrap_or("");
        let reply = match command {
            "getIconPNGData" => {
                let id = request
                    .get("bundleId")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                let shade = APPS.iter().position(|(a, _, _)| *a == id).unwrap_or(0) as u8;
                let mut d = Dictionary::new();
                d.insert("pngData".into(), Value::Data(icon(shade)));
                Value::Dictionary(d)
            }
            "getHomeScreenWallpaperPNGData" => {
                let mut d = Dictionary::new();
                d.insert("pngData".into(), Value::Data(icon(200)));
                Value::Dictionary(d)
            }
            "getInterfaceOrientation" => {
                let mut d = Dictionary::new();
                d.insert("interfaceOrientation".into(), 1u64.into());
                Value::Dictionary(d)
            }
            // The dock, then one page of apps.
            "getIconState" => {
                let entry = |(id, name, _): &(&str, &str, &str)| {
                    let mut d = Dictionary::new();
                    d.insert("bundleIdentifier".into(), (*id).into());
                    d.insert("displayName".into(), (*name).into());
                    Value::Dictionary(d)
                };
                let (dock, page) = APPS.split_at(2);
                Value::Array(vec![
                    Value::Array(dock.iter().map(entry).collect()),
                    Value::Array(page.iter().map(entry).collect()),
                ])
            }
            _ => continue,
        };
        wire::write_plist(&mut conn, &reply, false).await?;
    }
    Ok(())
}

/// A 16×16 PNG of one colour.
fn icon(shade: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, 16, 16);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..16 * 16)
        .flat_map(|_| [shade.wrapping_mul(37), 120, 200u8.wrapping_sub(shade)])
        .collect();
    if let Ok(mut writer) = encoder.write_header() {
        let _ = writer.write_image_data(&pixels);
    }
    out
}
