//! Several backends in one process (`Backends`, what `ekmd serve --backend azure,aws` builds):
//! each call goes to the backend of its key's provider and to no other; a key of one provider
//! with the access of another is refused before any backend is asked; a provider no backend
//! serves is refused, and the engine refuses to create a configuration of it (65537604,
//! naming the flag) without writing anything.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{VAULT, topology};
use ekm::core::{
    AwsKeyId, AwsKmsAccess, AzureAccess, Backend, BackendAccess, BackendCall, BackendError,
    BackendErrorKind, Backends, Credential, Engine, EngineOptions, ExternalKey, KeyMaterial,
    ProtectionKey, Provider, ProviderAccess, SecretBytes, VaultUrl,
};
use ekm::fake::FakeBackend;
use uuid::Uuid;

/// The fake, serving one provider only (as ekm-azure or ekm-aws would).
#[derive(Debug)]
struct Only(Provider, FakeBackend);

impl Backend for Only {
    fn serves(&self, provider: Provider) -> bool {
        provider == self.0
    }

    fn kind(&self, provider: Provider) -> &'static str {
        self.1.kind(provider)
    }

    fn algorithm(&self, provider: Provider) -> &'static str {
        self.1.algorithm(provider)
    }

    fn wrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        kek: &KeyMaterial,
    ) -> Result<Vec<u8>, BackendError> {
        assert!(self.serves(key.provider()), "routed to the wrong backend");
        self.1.wrap_kek(call, key, generation, kek)
    }

    fn unwrap_kek(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
        generation: u32,
        wrapped: &[u8],
    ) -> Result<SecretBytes, BackendError> {
        assert!(self.serves(key.provider()), "routed to the wrong backend");
        self.1.unwrap_kek(call, key, generation, wrapped)
    }

    fn check(&self, call: &BackendCall<'_>, key: &ExternalKey) -> Result<(), BackendError> {
        assert!(self.serves(key.provider()), "routed to the wrong backend");
        self.1.check(call, key)
    }

    fn resolve(
        &self,
        call: &BackendCall<'_>,
        key: &ExternalKey,
    ) -> Result<ExternalKey, BackendError> {
        assert!(self.serves(key.provider()), "routed to the wrong backend");
        self.1.resolve(call, key)
    }
}

fn azure_access() -> BackendAccess {
    BackendAccess {
        config_uuid: Uuid::from_u128(1),
        revision: 1,
        provider: ProviderAccess::Azure(AzureAccess {
            vault: VaultUrl::parse(VAULT).unwrap(),
            client_id: "c".into(),
            tenant_id: "t".into(),
            credential: Credential::ClientSecret("s".to_owned().into()),
            proxy: None,
        }),
    }
}

fn aws_access() -> BackendAccess {
    BackendAccess {
        config_uuid: Uuid::from_u128(2),
        revision: 1,
        provider: ProviderAccess::Aws(AwsKmsAccess {
            region: "us-east-1".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "secret".to_owned().into(),
            service: "kms".into(),
            default_domain: "amazonaws.com".into(),
            host: None,
            port: 443,
            encryption_context: None,
            timeout: Duration::from_secs(10),
            verify: true,
            verify_host: true,
            proxy: None,
        }),
    }
}

fn azure_key() -> ExternalKey {
    ExternalKey::parse(common::KEY_ID).unwrap()
}

fn aws_key() -> ExternalKey {
    ExternalKey::Aws(AwsKeyId::new("us-east-1", "alias/ekm").unwrap())
}

/// Two backends, one per provider, and the fakes behind them (for their counters).
fn two() -> (Backends, Arc<Only>, Arc<Only>) {
    let az = Arc::new(Only(Provider::AzureKeyVault, FakeBackend::in_memory()));
    let aws = Arc::new(Only(Provider::AwsKms, FakeBackend::in_memory()));
    let both = Backends::new(vec![az.clone(), aws.clone()]);
    (both, az, aws)
}

#[test]
fn each_call_goes_to_the_backend_of_its_provider_only() {
    let (both, az, aws) = two();
    let node = topology().nodes[0].clone();
    let kek = KeyMaterial::random();
    for (access, key, mine, other) in [
        (azure_access(), azure_key(), &az, &aws),
        (aws_access(), aws_key(), &aws, &az),
    ] {
        let call = BackendCall {
            node: &node,
            access: &access,
        };
        let before = (mine.1.counters(), other.1.counters());
        both.check(&call, &key).unwrap();
        let blob = both.wrap_kek(&call, &key, 3, &kek).unwrap();
        let back = both.unwrap_kek(&call, &key, 3, &blob).unwrap();
        assert_eq!(back.expose_secret(), kek.expose_secret());
        let (m, o) = (mine.1.counters(), other.1.counters());
        assert_eq!(
            (m.checks, m.wraps, m.unwraps),
            (
                before.0.checks + 1,
                before.0.wraps + 1,
                before.0.unwraps + 1
            ),
            "{:?}",
            key.provider()
        );
        assert_eq!(
            (o.checks, o.wraps, o.unwraps),
            (before.1.checks, before.1.wraps, before.1.unwraps),
            "the other provider's backend is never asked"
        );
    }
    assert!(both.serves(Provider::AzureKeyVault) && both.serves(Provider::AwsKms));
}

#[test]
fn a_key_of_one_provider_with_the_access_of_another_is_refused_unsent() {
    let (both, az, aws) = two();
    let node = topology().nodes[0].clone();
    let access = azure_access();
    let call = BackendCall {
        node: &node,
        access: &access,
    };
    let e = both
        .wrap_kek(&call, &aws_key(), 1, &KeyMaterial::random())
        .unwrap_err();
    assert_eq!(e.kind, BackendErrorKind::InvalidResponse, "{e}");
    assert!(e.to_string().contains("AWS KMS key"), "{e}");
    assert_eq!(aws.1.counters().wraps, 0);
    assert_eq!(az.1.counters().wraps, 0);
}

#[test]
fn a_provider_no_backend_serves_is_refused_and_no_configuration_of_it_is_made() {
    let aws_only = Backends::new(vec![Arc::new(Only(
        Provider::AwsKms,
        FakeBackend::in_memory(),
    ))]);
    let node = topology().nodes[0].clone();
    let access = azure_access();
    let call = BackendCall {
        node: &node,
        access: &access,
    };
    let e = aws_only.check(&call, &azure_key()).unwrap_err();
    assert!(e.to_string().contains("--backend azure"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let store = ekm::store::open(ekm::store::StoreKind::Redb, &dir.path().join("store")).unwrap();
    let engine = Engine::open(EngineOptions::new(
        store,
        Arc::new(aws_only),
        topology(),
        ProtectionKey::generate(),
    ))
    .unwrap();
    let e = common::create(&engine, &common::secret_body(None, "s")).unwrap_err();
    assert_eq!(e.code(), 65_537_604, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("Azure Key Vault is not enabled") && text.contains("--backend azure"),
        "{text}"
    );
    assert!(engine.list_configs().unwrap().is_empty());
    engine.shutdown();
}
