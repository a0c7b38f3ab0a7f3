//! Key id, vault URL, data key id and key tag parsing: never a panic, and what parses prints
//! back to something that parses to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(k) = ekm_core::KeyId::parse(s) {
        let again = ekm_core::KeyId::parse(k.as_str()).expect("canonical key id parses");
        assert_eq!(again, k);
        assert_eq!(k.version().len(), 32);
    }
    let _ = ekm_core::VaultUrl::parse(s);
    if let Ok(id) = ekm_core::DataKeyId::parse(s) {
        assert_eq!(ekm_core::DataKeyId::parse(&id.to_hex()).expect("hex parses"), id);
    }
    let _ = ekm_core::KeyTag::parse(s);
});
