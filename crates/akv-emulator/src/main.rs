//! `akv-emulator`: runs the emulator standalone for clients in other languages.
//!
//! ```text
//! akv-emulator [--port N] [--ca-out FILE] [--secret-app TENANT:CLIENT:SECRET] [--key NAME]...
//! ```
//! Prints one JSON line with the port, the authority, the vault URL and the key ids, then
//! serves until killed.

use std::time::Duration;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut ca_out = None;
    let mut apps = Vec::new();
    let mut keys = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).ok_or("--port N")?,
            "--ca-out" => ca_out = Some(args.next().ok_or("--ca-out FILE")?),
            "--secret-app" => apps.push(args.next().ok_or("--secret-app TENANT:CLIENT:SECRET")?),
            "--key" => keys.push(args.next().ok_or("--key NAME")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let emu = akv_emulator::Emulator::start_on(([127, 0, 0, 1], port).into()).await?;
        if let Some(path) = ca_out {
            std::fs::write(&path, emu.ca_pem()).map_err(|e| format!("{path}: {e}"))?;
        }
        for a in &apps {
            let mut p = a.splitn(3, ':');
            let (Some(t), Some(c), Some(s)) = (p.next(), p.next(), p.next()) else {
                return Err(format!("bad --secret-app {a}"));
            };
            emu.add_secret_app(t, c, s);
        }
        let mut ids = Vec::new();
        for k in &keys {
            let v = emu.add_key(k, 2048)?;
            ids.push(emu.key_id("myvault", k, &v));
        }
        println!(
            "{}",
            serde_json::json!({
                "port": emu.port(), "authority": emu.authority(),
                "vault": emu.vault_url("myvault"), "key_ids": ids,
            })
        );
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    })
}
