//! Owns: a credential AWS does not know fails as `AuthenticationFailed`, on a moto that
//! enforces credentials (`INITIAL_NO_AUTH_ACTION_COUNT`: the key is created before it does).
//! moto knows no access key but those of its own IAM users, so the test credentials are
//! exactly such an unknown key; a wrong secret for a known key (`SignatureDoesNotMatch`) is
//! covered by the fault-server test of KMS's error answers.
//! Must never: reach anything but moto on 127.0.0.1.

use ekm_aws::testing::{Moto, MotoSettings};
use ekm_aws::{AwsKms, Binding};
use ekm_core::backend::BackendErrorKind;
use ekm_core::secret::KeyMaterial;
use uuid::Uuid;

#[test]
fn an_unknown_access_key_fails_authentication() {
    let settings = MotoSettings {
        authenticate_after: Some(1),
    };
    let Some(moto) = Moto::start_with_or_skip("wrong credentials", settings) else {
        return;
    };
    let (id, _) = moto.create_key().unwrap();
    let kms = AwsKms::new(moto.options()).unwrap();
    let access = moto.access(&id);
    let e = kms.check(&access).unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::AuthenticationFailed, "{e}");
    assert!(e.message.contains("InvalidClientTokenId"), "{e}");
    let binding = Binding {
        config: Uuid::new_v4(),
        generation: 1,
    };
    let e = kms
        .wrap(&access, &binding, &KeyMaterial::random())
        .unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::AuthenticationFailed, "{e}");
}
