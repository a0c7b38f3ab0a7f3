//! The canary scanner shared by the leak tests (`tests/secrets_never_leak.rs`, and
//! `crates/ekmd/tests/daemon.rs` through `#[path]`): finds a secret in a text or file, plain, hex
//! (either case) or base64 (standard or URL-safe alphabet) — the base64 also when the secret sits
//! inside a larger encoded blob, at any of the three byte alignments and with any length.
//!
//! How: a secret of n bytes at byte offset o of a blob is encoded into the base64 characters
//! covering bits 8o .. 8(o+n). Only the characters whose 6 bits all lie inside that range are
//! fixed by the secret; the first (when 8o is not a multiple of 6) and the last (when 8(o+n)
//! is not) mix in neighbouring bytes. So for o mod 3 = 0, 1, 2 the needle is the base64 of the
//! secret behind o mod 3 filler bytes, trimmed to the characters the secret alone fixes.
//!
//! Its self-tests run in every binary that includes it.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Every form of `secret` the scanner looks for, each with a name for failure messages.
pub fn needles(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert!(
        secret.len() >= 8,
        "a canary of {} bytes would match by chance",
        secret.len()
    );
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut out = vec![
        ("plain".to_owned(), secret.to_vec()),
        ("hex".to_owned(), hex.clone().into_bytes()),
        ("HEX".to_owned(), hex.to_uppercase().into_bytes()),
    ];
    for (alphabet, engine) in [("base64", STANDARD_NO_PAD), ("base64url", URL_SAFE_NO_PAD)] {
        for shift in 0..3usize {
            let mut shifted = vec![0u8; shift];
            shifted.extend_from_slice(secret);
            let chars = engine.encode(&shifted).into_bytes();
            let first = (8 * shift).div_ceil(6);
            let end = 8 * shifted.len() / 6;
            out.push((
                format!("{alphabet} at offset {shift} mod 3"),
                chars[first..end].to_vec(),
            ));
        }
    }
    out
}

/// The first form of `secret` found in `hay`, by name.
pub fn find(hay: &[u8], secret: &[u8]) -> Option<String> {
    needles(secret)
        .into_iter()
        .find(|(_, n)| n.len() <= hay.len() && hay.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|(name, _)| name)
}

/// Panics naming `what` and the secret when `hay` holds any form of any secret.
pub fn assert_clean(what: &str, hay: &[u8], secrets: &[(String, Vec<u8>)]) {
    for (name, secret) in secrets {
        if let Some(form) = find(hay, secret) {
            panic!("{what} contains canary {name} ({form})");
        }
    }
}

/// Filler bytes that hold no canary: a fixed pseudo-random sequence.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn canary_scanner_finds_a_secret_at_every_offset_of_a_larger_blob() {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    // Secret lengths of every residue mod 3, planted at offsets 0..6 of blobs whose tails also
    // take every residue, then encoded as a whole (with padding, as real blobs are).
    for secret_len in [10usize, 11, 12, 32] {
        let secret: Vec<u8> = filler(secret_len, 0xC0FFEE + secret_len as u64)
            .into_iter()
            .map(|b| b | 0x80)
            .collect();
        for offset in 0..6usize {
            for tail in 0..3usize {
                let mut blob = filler(offset, 7 + offset as u64);
                blob.extend_from_slice(&secret);
                blob.extend(filler(tail, 99 + tail as u64));
                for (name, encoded) in [
                    ("base64", STANDARD.encode(&blob)),
                    ("base64url", URL_SAFE.encode(&blob)),
                    (
                        "hex",
                        blob.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    ),
                ] {
                    let text = format!("{{\"blob\":\"{encoded}\"}}");
                    assert!(
                        find(text.as_bytes(), &secret).is_some(),
                        "{name}: a {secret_len}-byte secret at offset {offset} (tail {tail}) \
                         was not found in {text}"
                    );
                }
                assert!(find(&blob, &secret).is_some(), "plain at offset {offset}");
            }
        }
        // And nothing is found where the secret is not.
        let clean = filler(300, 12345);
        assert_eq!(find(STANDARD.encode(&clean).as_bytes(), &secret), None);
        assert_eq!(find(&clean, &secret), None);
    }
}
