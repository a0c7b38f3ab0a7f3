//! Owns: the happy path against moto over HTTPS at AWS's own endpoint name (pinned to moto):
//! a KEK wrapped by Encrypt comes back from Decrypt, by key id, ARN or alias; `check` names
//! the key's ARN.
//! Must never: reach anything but moto on 127.0.0.1.

use ekm_aws::testing::Moto;
use ekm_aws::{AwsKms, Binding};
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

#[test]
fn a_wrapped_kek_unwraps_to_itself_by_id_arn_and_alias() {
    let Some(moto) = Moto::start_or_skip("round trip") else {
        return;
    };
    let (id, arn) = moto.create_key().unwrap();
    moto.create_alias("alias/ekm-round-trip", &id).unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 3,
    };
    for key in [id.as_str(), arn.as_str(), "alias/ekm-round-trip"] {
        let mut access = moto.access(key);
        access.encryption_context = Some("dept=storage,env=test".into());
        assert_eq!(access.endpoint(), "https://kms.us-east-1.amazonaws.com");
        let kek = KeyMaterial::random();
        let blob = kms.wrap(&access, &binding, &kek).unwrap();
        assert!(!blob.is_empty());
        assert_ne!(&blob[..], &kek.expose_secret()[..]);
        let back = kms.unwrap(&access, &binding, &blob).unwrap();
        assert_eq!(back.expose_secret(), &kek.expose_secret()[..], "{key}");
    }
}

#[test]
fn check_names_the_key_arn_even_through_an_alias() {
    let Some(moto) = Moto::start_or_skip("check") else {
        return;
    };
    let (id, arn) = moto.create_key().unwrap();
    moto.create_alias("alias/ekm-check", &id).unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let info = kms.check(&moto.access("alias/ekm-check")).unwrap();
    assert_eq!(info.arn, arn);
    assert_eq!(info.key_id, id);
    assert_eq!(info.key_spec, "SYMMETRIC_DEFAULT");
}
