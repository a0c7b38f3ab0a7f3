//! Owns: the SDK's own tracing at TRACE level (which prints every request it transmits and
//! every answer it receives) shows neither the KEK, nor a probe, nor the secret access key,
//! for wrap, unwrap and check against moto. One test per process: it installs the global
//! subscriber.
//! Must never: reach anything but moto on 127.0.0.1.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use ekm_aws::testing::{CANARY_SECRET, Moto};
use ekm_aws::{AwsKms, Binding};
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trace_logs_show_no_kek_and_no_secret() {
    let Some(moto) = Moto::start_or_skip("trace log") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let kms = AwsKms::new(moto.options()).unwrap();
    let mut access = moto.access(&id);
    access.encryption_context = Some("dept=storage".into());
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 5,
    };
    let kek = KeyMaterial::random();
    let blob = kms.wrap(&access, &binding, &kek).unwrap();
    let back = kms.unwrap(&access, &binding, &blob).unwrap();
    assert_eq!(back.expose_secret(), &kek.expose_secret()[..]);
    kms.check(&access).unwrap();
    let log = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        log.contains("transmitting request"),
        "the SDK's trace was captured"
    );
    assert!(
        log.contains("received response from service"),
        "answers too"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(kek.expose_secret());
    assert!(!log.contains(&b64), "the KEK (base64) is in the trace log");
    assert!(
        !log.contains(&hex::encode(kek.expose_secret())),
        "the KEK (hex)"
    );
    assert!(
        !log.contains(CANARY_SECRET),
        "the secret access key is in the trace log"
    );
    // Nor any plaintext of a probe: no Plaintext field of any request or answer shows.
    assert!(
        !log.contains("\\\"Plaintext\\\""),
        "a Plaintext field is in the trace log"
    );
}
