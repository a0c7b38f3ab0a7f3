//! The create body (`POST /api/security/azure-key-vaults`) into a validated request: any bytes
//! give a request or an error with an ONTAP code, never a panic, and no error echoes a secret.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ekm_core::CreateRequest::from_json(data) {
        Ok(req) => {
            let _ = format!("{req:?}");
        }
        Err(e) => {
            assert!(e.code() > 0);
            let _ = e.to_string();
        }
    }
});
