//! mobilebackup2's front door on the simulated iPhone: the DeviceLink
//! version exchange, then each request the host sends — Hello, Backup,
//! Restore, ChangePassword, Info and List — handed to the module that
//! carries it out (`backup2.rs`, `restore.rs`).

use std::io;
use std::sync::Arc;

use plist::Value;

use super::Shared;
use super::backup2;
use super::conn::Conn;
use crate::wire;

pub(crate) async fn serve(mut conn: Conn, shared: &Arc<Shared>) -> io::Result<()> {
    backup2::send(
        &mut conn,
        vec![
            "DLMessageVersionExchange".into(),
            300u64.into(),
            0u64.into(),
        ],
    )
    .await?;
    let reply = backup2::receive(&mut conn).await?;
    let ok = reply.get(1).and_then(Value::as_string) == Some("DLVersionsOk");
    if backup2::tag(&reply) != "DLMessageVersionExchange" || !ok {
        return Err(backup2::invalid(
            "the host did not accept the DeviceLink version",
        ));
    }
    backup2::send(&mut conn, vec!["DLMessageDeviceReady".into()]).await?;

    loop {
        let message = match wire::read_plist(&mut conn).await? {
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(backup2::invalid(
                    "a DeviceLink message that is not an array",
                ));
            }
            None => return Ok(()),
        };
        match backup2::tag(&message) {
            "DLMessageProcessMessage" => {
                let request = message
                    .get(1)
                    .and_then(Value::as_dictionary)
                    .cloned()
                    .unwrap_or_default();
                let name = request
                    .get("MessageName")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                match name {
                    "Hello" => {
                        let mut response = backup2::response(0, None);
                        response.insert("ProtocolVersion".into(), Value::Real(2.1));
                        backup2::process_message(&mut conn, response).await?;
                    }
                    "Backup" => backup2::backup(&mut conn, shared, &request).await?,
                    "Restore" => super::restore::restore(&mut conn, shared, &request).await?,
                    "ChangePassword" => {
                        backup2::change_password(&mut conn, shared, &request).await?
                    }
                    "Info" | "List" => {
                        backup2::describe(&mut conn, shared, &request, name == "List").await?
                    }
                    other => {
                        let description =
                            format!("{other} is not supported by the simulated iPhone");
                        backup2::process_message(
                            &mut conn,
                            backup2::response(1, Some(&description)),
                        )
                        .await?;
                    }
                }
            }
            "DLMessageDisconnect" => return Ok(()),
            other => tracing::debug!(message = other, "sim mobilebackup2 ignored a message"),
        }
    }
}
