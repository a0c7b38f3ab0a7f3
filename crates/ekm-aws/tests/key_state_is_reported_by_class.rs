//! Owns: what the key's own state turns into, against moto: an unknown key id or alias is
//! `KeyNotFound` on wrap, unwrap and check; a disabled or pending-deletion key fails `check`
//! as `KeyDisabled` naming the state (moto still encrypts with such keys, so DescribeKey is
//! what must catch it).
//! Must never: reach anything but moto on 127.0.0.1.

use ekm_aws::testing::Moto;
use ekm_aws::{AwsKms, Binding};
use ekm_core::backend::BackendErrorKind;
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

fn binding() -> Binding {
    Binding {
        config: Uuid::new_v4(),
        generation: 1,
    }
}

#[test]
fn an_unknown_key_is_key_not_found() {
    let Some(moto) = Moto::start_or_skip("unknown key") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let blob = kms
        .wrap(&moto.access(&id), &binding(), &KeyMaterial::random())
        .unwrap();
    for key in [
        "0b0e5e4a-5a4e-4f58-9b1e-000000000000",
        "alias/ekm-no-such-alias",
        "arn:aws:kms:us-east-1:123456789012:key/0b0e5e4a-5a4e-4f58-9b1e-000000000000",
    ] {
        let access = moto.access(key);
        let e = kms
            .wrap(&access, &binding(), &KeyMaterial::random())
            .unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::KeyNotFound, "wrap {key}: {e}");
        let e = kms.check(&access).unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::KeyNotFound, "check {key}: {e}");
        let e = kms.unwrap(&access, &binding(), &blob).unwrap_err();
        assert_eq!(e.kind, BackendErrorKind::KeyNotFound, "unwrap {key}: {e}");
    }
}

#[test]
fn a_disabled_key_fails_the_check_as_key_disabled() {
    let Some(moto) = Moto::start_or_skip("disabled key") else {
        return;
    };
    let (id, arn) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let access = moto.access(&id);
    kms.check(&access).unwrap();
    moto.disable_key(&id).unwrap();
    let e = kms.check(&access).unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::KeyDisabled, "{e}");
    assert!(e.message.contains("Disabled"), "{e}");
    assert!(e.message.contains(&arn), "{e}");
    // The check stopped at DescribeKey: no probe was sent to a disabled key.
    assert_eq!(moto.kms_calls().last().unwrap(), "DescribeKey");
}

#[test]
fn a_key_pending_deletion_fails_the_check_as_key_disabled() {
    let Some(moto) = Moto::start_or_skip("pending deletion") else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    moto.schedule_key_deletion(&id).unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let e = kms.check(&moto.access(&id)).unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::KeyDisabled, "{e}");
    assert!(e.message.contains("PendingDeletion"), "{e}");
}
