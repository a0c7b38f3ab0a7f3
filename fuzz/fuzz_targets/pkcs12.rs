//! PKCS#12 input with passwords: the first byte is the password length, the password follows,
//! the rest is the file. Never a panic; a file that opens holds a key and its certificate.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ekm_core::pkcs12::ClientCertificate;
use ekm_core::secret::{SecretBytes, SecretString};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n as usize).min(rest.len());
    let (pw, der) = rest.split_at(n);
    let password = std::str::from_utf8(pw).ok().map(|p| SecretString::from(p.to_owned()));
    if let Ok(c) = ClientCertificate::from_der(SecretBytes::new(der.to_vec()), password) {
        assert!(c.open().is_ok());
    }
});
