//! Secrets never leak (Azure and AWS KMS configurations): with known canary secrets and keys, no
//! file under the data directory and no `Debug`, `Display`, serialized or error output contains
//! the canary bytes — plain, hex or base64.

mod common;
// The scanner and its self-test (a secret planted at every offset of a larger blob is found).
#[path = "common/canary.rs"]
mod canary;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use canary::assert_clean;
use common::*;
use ekm::core::{CreateRequest, KeyOwner, KeyTag, PatchRequest};
use ekm::store::StoreKind;

const SECRET: &str = "CANARY-client-secret-8c1f4e2a9b";
const SECRET_2: &str = "CANARY-client-secret-2-51d0aa";
const PROXY_PW: &str = "CANARY-proxy-pw-77d1e0c3";

#[test]
fn no_canary_in_files_debug_display_or_errors() {
    for kind in [StoreKind::Redb, StoreKind::Sled] {
        run(kind);
    }
}

fn run(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), kind);
    let pfx = pfx("client-aes256.p12");
    let mut canaries: Vec<(String, Vec<u8>)> = vec![
        ("client secret".into(), SECRET.into()),
        ("second client secret".into(), SECRET_2.into()),
        ("proxy password".into(), PROXY_PW.into()),
        ("pfx password".into(), PFX_PASSWORD.into()),
        // A window from the middle of the PKCS#12 file (the encrypted key bag).
        (
            "certificate".into(),
            pfx[pfx.len() / 2..pfx.len() / 2 + 48].to_vec(),
        ),
    ];
    let mut outputs: Vec<(String, String)> = Vec::new();
    {
        let (e, _fake, _store) = dd.open();
        let body = secret_body(None, SECRET).replacen(
            '{',
            &format!(
                r#"{{"proxy_type":"http","proxy_host":"proxy.example","proxy_port":3128,"proxy_username":"u","proxy_password":"{PROXY_PW}","#
            ),
            1,
        );
        let req = CreateRequest::from_json(body.as_bytes()).unwrap();
        outputs.push(("CreateRequest debug".into(), format!("{req:?}")));
        let cluster = e.create_config(req).unwrap();
        let cert_body = format!(
            r#"{{"svm":{{"name":"vs0"}},"client_id":"c","tenant_id":"t","name":"{VAULT}","key_id":"{KEY_ID}","client_certificate":"{}","client_certificate_password":"{PFX_PASSWORD}"}}"#,
            STANDARD.encode(&pfx)
        );
        let req = CreateRequest::from_json(cert_body.as_bytes()).unwrap();
        outputs.push(("CreateRequest (cert) debug".into(), format!("{req:?}")));
        let svm = e.create_config(req).unwrap();
        let patch =
            PatchRequest::from_json(format!(r#"{{"client_secret":"{SECRET_2}"}}"#).as_bytes())
                .unwrap();
        outputs.push(("PatchRequest debug".into(), format!("{patch:?}")));
        e.patch_config(cluster.uuid, patch).unwrap();

        for owner in [KeyOwner::Cluster, KeyOwner::Svm(VS0), KeyOwner::Svm(VS1)] {
            for _ in 0..10 {
                let id = e
                    .create_data_key(owner, KeyTag::parse("vol").unwrap())
                    .unwrap();
                let m = e.read_data_key(&id).unwrap();
                outputs.push(("KeyMaterial debug".into(), format!("{m:?}")));
                canaries.push((format!("data key {id}"), m.expose_secret().to_vec()));
            }
        }
        for cfg in e.list_configs().unwrap() {
            outputs.push(("config json".into(), serde_json::to_string(&cfg).unwrap()));
            outputs.push(("config debug".into(), format!("{cfg:?}")));
        }
        for c in [cluster.uuid, svm.uuid] {
            let keys = e.list_data_keys(c).unwrap();
            outputs.push((
                "key list json".into(),
                serde_json::to_string(&keys).unwrap(),
            ));
            outputs.push(("key list debug".into(), format!("{keys:?}")));
        }
        outputs.push(("engine debug".into(), format!("{e:?}")));

        // Errors on inputs that carry canaries in the wrong places.
        let bad_bodies = [
            secret_body(None, SECRET).replace(
                r#""tenant_id":"tenant1""#,
                &format!(r#""tenant_id":{{"x":"{SECRET}"}}"#),
            ),
            format!(r#"{{"client_secret":"{SECRET}","proxy_port":"{PROXY_PW}"}}"#),
            format!(r#"{{"{SECRET}":1}}"#),
            secret_body(None, SECRET).replacen(
                '{',
                &format!(r#"{{"proxy_password":"{PROXY_PW}","#),
                1,
            ),
            format!(
                r#"{{"client_id":"c","tenant_id":"t","name":"{VAULT}","key_id":"{KEY_ID}","client_certificate":"{}","client_certificate_password":"{PROXY_PW}"}}"#,
                STANDARD.encode(&pfx)
            ),
            secret_body(None, &format!("{SECRET}\\u0001")),
        ];
        for b in &bad_bodies {
            let err = CreateRequest::from_json(b.as_bytes())
                .and_then(|r| e.create_config(r))
                .unwrap_err();
            outputs.push(("error display".into(), err.to_string()));
            outputs.push(("error debug".into(), format!("{err:?}")));
        }
        let err = e
            .patch_config(
                cluster.uuid,
                PatchRequest::from_json(
                    format!(r#"{{"proxy_port":0,"proxy_password":"{PROXY_PW}"}}"#).as_bytes(),
                )
                .unwrap(),
            )
            .unwrap_err();
        outputs.push(("patch error".into(), format!("{err} {err:?}")));
    }
    for (what, text) in &outputs {
        assert_clean(what, text.as_bytes(), &canaries);
    }
    let files = files_under(dir.path());
    assert!(files.len() >= 3, "expected store, vault and key files");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert_clean(&f.display().to_string(), &bytes, &canaries);
    }
}

const AWS_SECRET: &str = "CANARY-aws-secret-access-key-3e9b1f";
const AWS_SECRET_2: &str = "CANARY-aws-secret-access-key-2-a07c";
const AWS_PROXY_PW: &str = "CANARY-aws-proxy-pw-c55e19";

/// The same for an AWS KMS configuration: the secret access key (created, then patched) and the
/// proxy password are in no file, no `Debug`/`Display`/JSON of requests, records, views and
/// errors — plain, hex or base64.
#[test]
fn no_aws_canary_in_files_debug_display_or_errors() {
    use ekm::core::{AwsCreateRequest, AwsPatchRequest};
    let dir = tempfile::tempdir().unwrap();
    let dd = DataDir::new(dir.path(), StoreKind::Redb);
    let canaries: Vec<(String, Vec<u8>)> = vec![
        ("secret access key".into(), AWS_SECRET.into()),
        ("second secret access key".into(), AWS_SECRET_2.into()),
        ("proxy password".into(), AWS_PROXY_PW.into()),
    ];
    let mut outputs: Vec<(String, String)> = Vec::new();
    {
        let (e, _fake, _store) = dd.open();
        let body = format!(
            r#"{{"svm":{{"name":"vs0"}},"region":"us-east-1","key_id":"alias/ekm","access_key_id":"AKIAEXAMPLE","secret_access_key":"{AWS_SECRET}","proxy_type":"http","proxy_host":"proxy.example","proxy_port":3128,"proxy_username":"u","proxy_password":"{AWS_PROXY_PW}"}}"#
        );
        let req = AwsCreateRequest::from_json(body.as_bytes()).unwrap();
        outputs.push(("AwsCreateRequest debug".into(), format!("{req:?}")));
        let cfg = e.create_aws_config(req).unwrap();
        let patch = AwsPatchRequest::from_json(
            format!(r#"{{"access_key_id":"AKIANEW","secret_access_key":"{AWS_SECRET_2}"}}"#)
                .as_bytes(),
        )
        .unwrap();
        outputs.push(("AwsPatchRequest debug".into(), format!("{patch:?}")));
        e.patch_aws_config(cfg.uuid, patch).unwrap();
        e.create_data_key(KeyOwner::Svm(VS0), KeyTag::parse("vol").unwrap())
            .unwrap();
        for c in e.list_aws_configs().unwrap() {
            outputs.push(("aws config json".into(), serde_json::to_string(&c).unwrap()));
            outputs.push(("aws config debug".into(), format!("{c:?}")));
        }
        outputs.push((
            "key managers debug".into(),
            format!("{:?}", e.list_key_managers().unwrap()),
        ));
        outputs.push(("engine debug".into(), format!("{e:?}")));
        for b in [
            format!(r#"{{"region":"us-east-1","key_id":"k","secret_access_key":"{AWS_SECRET}"}}"#),
            format!(r#"{{"{AWS_SECRET}":1}}"#),
            format!(
                r#"{{"region":"us-east-1","key_id":"k","access_key_id":"a","secret_access_key":"{AWS_SECRET}\u0001"}}"#
            ),
            format!(
                r#"{{"region":"us-east-1","key_id":"k","access_key_id":"a","secret_access_key":"s","proxy_host":"h","proxy_port":1,"proxy_password":"{AWS_PROXY_PW}"}}"#
            ),
        ] {
            let err = AwsCreateRequest::from_json(b.as_bytes())
                .and_then(|r| e.create_aws_config(r))
                .unwrap_err();
            outputs.push(("error display".into(), err.to_string()));
            outputs.push(("error debug".into(), format!("{err:?}")));
        }
        e.shutdown();
    }
    for (what, text) in &outputs {
        assert_clean(what, text.as_bytes(), &canaries);
    }
    let files = files_under(dir.path());
    assert!(files.len() >= 3, "expected store, vault and key files");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert_clean(&f.display().to_string(), &bytes, &canaries);
    }
}
