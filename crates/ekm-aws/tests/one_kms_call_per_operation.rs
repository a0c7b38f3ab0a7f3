//! Owns: the call budget, counted by moto's own request recording: wrap is one Encrypt,
//! unwrap one Decrypt, check DescribeKey + Encrypt + Decrypt; and what the Encrypt carried
//! (the binding and the record's context as EncryptionContext).
//! Must never: reach anything but moto on 127.0.0.1.

use ekm_aws::testing::Moto;
use ekm_aws::{AwsKms, Binding};
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

#[test]
fn wrap_unwrap_and_check_make_one_call_each_and_check_three() {
    let Some(moto) = Moto::start_or_skip("call count") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let access = moto.access(&id);
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 1,
    };
    let before = moto.kms_calls().len();
    let blob = kms.wrap(&access, &binding, &KeyMaterial::random()).unwrap();
    assert_eq!(moto.kms_calls()[before..], ["Encrypt"]);
    kms.unwrap(&access, &binding, &blob).unwrap();
    assert_eq!(moto.kms_calls()[before..], ["Encrypt", "Decrypt"]);
    kms.check(&access).unwrap();
    assert_eq!(
        moto.kms_calls()[before..],
        ["Encrypt", "Decrypt", "DescribeKey", "Encrypt", "Decrypt"]
    );
}

#[test]
fn the_encryption_context_is_the_binding_plus_the_record_string() {
    let Some(moto) = Moto::start_or_skip("context") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let mut access = moto.access(&id);
    access.encryption_context = Some("dept=storage".into());
    let config = Uuid::new_v4();
    let binding = Binding {
        config,
        generation: 42,
    };
    kms.wrap(&access, &binding, &KeyMaterial::random()).unwrap();
    let recording = moto.recording();
    let last = recording.lines().last().unwrap();
    let entry: serde_json::Value = serde_json::from_str(last).unwrap();
    let body = entry["body"].as_str().unwrap();
    let body = if entry["body_encoded"].as_bool() == Some(true) {
        use base64::Engine;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    } else {
        body.to_owned()
    };
    let request: serde_json::Value = serde_json::from_str(&body).unwrap();
    let context = &request["EncryptionContext"];
    assert_eq!(
        *context,
        serde_json::json!({
            "ekm:config": config.to_string(),
            "ekm:generation": "42",
            "ontap:context": "dept=storage",
        }),
        "{request}"
    );
}
