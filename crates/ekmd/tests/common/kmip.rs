//! A KMIP client of a running ekmd, for the tests that start one with `--kmip-listen`: the
//! client certificate `ekmd kmip-client-cert` issues for an owner, one request message over
//! mutual TLS, and the few requests and answers the tests read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ekm_kmip::tags as t;
use ekm_kmip::ttlv::{self, Item};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// One KMIP message to `addr` over mutual TLS, as a client certificate that
/// `ekmd kmip-client-cert --data-dir DATA --owner OWNER` issues (written next to `data`);
/// the whole decoded answer.
pub fn call(data: &Path, addr: SocketAddr, owner: &str, msg: &[u8]) -> Item {
    let out = data.parent().unwrap().join(format!("client-{owner}"));
    let st = Command::new(env!("CARGO_BIN_EXE_ekmd"))
        .args(["kmip-client-cert", "--data-dir"])
        .arg(data)
        .args(["--owner", owner, "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "kmip-client-cert --owner {owner}");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data.join("kmip/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(out.join("client.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(out.join("client.key")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    tls.write_all(msg).unwrap();
    let mut header = [0u8; 8];
    tls.read_exact(&mut header).unwrap();
    let mut body = vec![0u8; ttlv::message_len(&header).unwrap()];
    body[..8].copy_from_slice(&header);
    tls.read_exact(&mut body[8..]).unwrap();
    ttlv::decode(&body).unwrap()
}

/// Each batch item's (result status, unique identifier).
pub fn results(answer: &Item) -> Vec<(u32, Option<String>)> {
    answer
        .all(t::BATCH_ITEM)
        .map(|b| {
            (
                b.child(t::RESULT_STATUS).and_then(Item::as_enum).unwrap(),
                b.child(t::RESPONSE_PAYLOAD)
                    .and_then(|p| p.child(t::UNIQUE_IDENTIFIER))
                    .and_then(Item::as_text)
                    .map(str::to_owned),
            )
        })
        .collect()
}

/// The key material of a Get's first batch item, if it carries a symmetric key.
pub fn material(answer: &Item) -> Option<Vec<u8>> {
    answer
        .child(t::BATCH_ITEM)?
        .child(t::RESPONSE_PAYLOAD)?
        .child(t::SYMMETRIC_KEY)?
        .child(t::KEY_BLOCK)?
        .child(t::KEY_VALUE)?
        .child(t::KEY_MATERIAL)?
        .as_bytes()
        .map(<[u8]>::to_vec)
}

/// A KMIP 1.2 Create of one AES-256 symmetric key.
pub fn create_aes256() -> Vec<u8> {
    let attr = |name: &str, value: Item| {
        Item::structure(
            t::ATTRIBUTE,
            vec![Item::text(t::ATTRIBUTE_NAME, name), value],
        )
    };
    ekm_kmip::request_message(
        (1, 2),
        vec![(
            t::op::CREATE,
            vec![
                Item::enumeration(t::OBJECT_TYPE, t::OBJECT_SYMMETRIC_KEY),
                Item::structure(
                    t::TEMPLATE_ATTRIBUTE,
                    vec![
                        attr(
                            "Cryptographic Algorithm",
                            Item::enumeration(t::ATTRIBUTE_VALUE, t::ALGORITHM_AES),
                        ),
                        attr("Cryptographic Length", Item::int(t::ATTRIBUTE_VALUE, 256)),
                    ],
                ),
            ],
        )],
    )
    .to_vec()
}

/// A KMIP 1.2 Get of `uid`.
pub fn get(uid: &str) -> Vec<u8> {
    ekm_kmip::request_message(
        (1, 2),
        vec![(t::op::GET, vec![Item::text(t::UNIQUE_IDENTIFIER, uid)])],
    )
    .to_vec()
}
