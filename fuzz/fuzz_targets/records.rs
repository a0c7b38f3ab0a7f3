//! Every on-disk record decoder — wrapped KEK, wrapped data key, key location, configuration,
//! job, node availability — on arbitrary bytes (the first byte picks the decoder): never a
//! panic, and what decodes re-encodes to the same bytes where the format is canonical.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ekm_core::codec::{KeyLocation, WrappedDataKey, WrappedKek};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 6 {
        0 => {
            if let Ok(k) = WrappedKek::decode_unauthenticated(bytes) {
                assert_eq!({ let pk = ekm_core::ProtectionKey::from_material(ekm_core::KeyMaterial::from_array([7; 32])); WrappedKek::decode(&k.encode(&pk).expect("re-encodes"), &pk).expect("re-decodes") }, k);
            }
        }
        1 => {
            if let Ok(d) = WrappedDataKey::decode(bytes) {
                assert_eq!(d.encode(), bytes);
            }
        }
        2 => {
            if let Ok(l) = KeyLocation::decode(bytes) {
                assert_eq!(l.encode(), bytes);
            }
        }
        3 => {
            let _ = ekm_core::fuzzing::decode_config(bytes);
        }
        4 => {
            let _ = ekm_core::Job::decode(bytes);
        }
        _ => {
            let _ = ekm_core::fuzzing::decode_node_record(bytes);
        }
    }
});
