//! Owns: unwrap's threat contract against moto: a blob bound to another configuration or
//! generation, wrapped under another record context or by another key, corrupted, truncated
//! or empty, is refused as `Rejected` (and never panics).
//! Must never: reach anything but moto on 127.0.0.1.

use ekm_aws::testing::Moto;
use ekm_aws::{AwsKms, Binding};
use ekm_core::backend::BackendErrorKind;
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

fn rejected(r: Result<ekm_core::secret::SecretBytes, ekm_core::backend::BackendError>, what: &str) {
    match r {
        Err(e) => assert_eq!(e.kind, BackendErrorKind::Rejected, "{what}: {e}"),
        Ok(_) => panic!("{what}: unwrapped"),
    }
}

#[test]
fn a_blob_of_another_binding_or_record_context_is_rejected() {
    let Some(moto) = Moto::start_or_skip("foreign context") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let mut access = moto.access(&id);
    access.encryption_context = Some("dept=storage".into());
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 7,
    };
    let blob = kms.wrap(&access, &binding, &KeyMaterial::random()).unwrap();
    let other_generation = Binding {
        generation: 8,
        ..binding
    };
    rejected(
        kms.unwrap(&access, &other_generation, &blob),
        "another generation",
    );
    let other_config = Binding {
        config: Uuid::new_v4(),
        ..binding
    };
    rejected(
        kms.unwrap(&access, &other_config, &blob),
        "another configuration",
    );
    let mut other_record = access.clone();
    other_record.encryption_context = Some("dept=finance".into());
    rejected(
        kms.unwrap(&other_record, &binding, &blob),
        "another record context",
    );
    other_record.encryption_context = None;
    rejected(
        kms.unwrap(&other_record, &binding, &blob),
        "no record context",
    );
    assert!(kms.unwrap(&access, &binding, &blob).is_ok());
}

#[test]
fn a_blob_of_another_key_is_rejected() {
    let Some(moto) = Moto::start_or_skip("foreign key") else {
        return;
    };
    let (a, _) = moto.create_key().unwrap();
    let (b, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 1,
    };
    let blob = kms
        .wrap(&moto.access(&a), &binding, &KeyMaterial::random())
        .unwrap();
    rejected(kms.unwrap(&moto.access(&b), &binding, &blob), "another key");
}

#[test]
fn a_corrupted_truncated_or_empty_blob_is_rejected() {
    let Some(moto) = Moto::start_or_skip("corrupted blob") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let access = moto.access(&id);
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 1,
    };
    let blob = kms.wrap(&access, &binding, &KeyMaterial::random()).unwrap();
    let mut flipped = blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    rejected(kms.unwrap(&access, &binding, &flipped), "a flipped bit");
    rejected(
        kms.unwrap(&access, &binding, &blob[..blob.len() / 2]),
        "half a blob",
    );
    rejected(kms.unwrap(&access, &binding, b"not a blob"), "garbage");
    rejected(kms.unwrap(&access, &binding, &[]), "empty");
}
