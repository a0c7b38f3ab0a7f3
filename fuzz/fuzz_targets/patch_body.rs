//! The patch and rekey-external bodies into validated requests: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ekm_core::PatchRequest::from_json(data) {
        let _ = p.proxy.apply(None);
    }
    let _ = ekm_core::RekeyExternalRequest::from_json(data);
});
