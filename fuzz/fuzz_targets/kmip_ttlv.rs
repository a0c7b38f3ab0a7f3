//! The KMIP TTLV decoder on arbitrary bytes: never a panic, and what decodes re-encodes to
//! exactly the same bytes (the decoder accepts only the canonical form: fixed lengths, zero
//! padding, nothing after the item), which decodes to the same tree again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ekm_kmip::ttlv;

fuzz_target!(|data: &[u8]| {
    let Ok(item) = ttlv::decode(data) else { return };
    let again = ttlv::encode(&item);
    assert_eq!(&again[..], data, "decode then encode changed the bytes");
    assert_eq!(ttlv::decode(&again).expect("re-decodes"), item);
    // The stream framing agrees with the decoder on a whole message.
    if let Some(header) = data.get(..8).and_then(|h| <&[u8; 8]>::try_from(h).ok()) {
        if let Some(total) = ttlv::message_len(header) {
            assert_eq!(total, data.len());
        }
    }
});
