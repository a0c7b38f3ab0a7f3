//! Key id, vault URL, data key id and key tag parsing: never a panic, and for every kind, what
//! parses prints back (through each of its printed forms) to something that parses to the same
//! value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = ekm_core::KeyId::parse(s) {
        let again = ekm_core::KeyId::parse(k.as_str()).expect("canonical key id parses");
        assert_eq!(again, k);
        assert_eq!(
            ekm_core::KeyId::parse(&k.to_string()).expect("display parses"),
            k
        );
        let json = serde_json::to_string(&k).expect("serializes");
        let back: ekm_core::KeyId = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, k);
        assert_eq!(k.version().len(), 32);
        assert!(k.as_str().starts_with(k.vault()));
    }
    if let Ok(v) = ekm_core::VaultUrl::parse(s) {
        let again = ekm_core::VaultUrl::parse(v.as_str()).expect("canonical vault url parses");
        assert_eq!(again, v);
        assert_eq!(again.as_str(), v.as_str());
        let json = serde_json::to_string(&v).expect("serializes");
        let back: ekm_core::VaultUrl = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, v);
    }
    if let Ok(id) = ekm_core::DataKeyId::parse(s) {
        assert_eq!(
            ekm_core::DataKeyId::parse(&id.to_hex()).expect("hex parses"),
            id
        );
        assert_eq!(
            ekm_core::DataKeyId::parse(&id.to_string()).expect("display parses"),
            id
        );
        assert_eq!(ekm_core::DataKeyId::from_bytes(*id.as_bytes()), id);
    }
    if let Ok(t) = ekm_core::KeyTag::parse(s) {
        let again = ekm_core::KeyTag::parse(t.as_str()).expect("canonical key tag parses");
        assert_eq!(again, t);
        assert_eq!(again.as_str(), t.as_str());
    }
});
