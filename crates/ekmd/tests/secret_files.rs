//! Every file that holds a secret (admin password, TLS key, protection key, fake vault) is
//! written whole with mode 0600 or not at all, and a file that is empty (what a crash during a
//! non-atomic write used to leave: `admin:` then logged in with an empty password) or readable
//! by group or others is refused at start with a message naming the file and the reason.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use secrecy::ExposeSecret;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn plant(p: &Path, contents: &[u8], mode: u32) {
    fs::write(p, contents).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_generated_admin_password_is_whole_owner_only_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let (user, pw, _) = ekmd::setup::admin_credentials(dir.path(), None).unwrap();
    assert_eq!(user, "admin");
    assert!(pw.expose_secret().len() >= 20);
    let file = dir.path().join("admin-password");
    assert_eq!(mode(&file), 0o600);
    let (_, again, _) = ekmd::setup::admin_credentials(dir.path(), None).unwrap();
    assert_eq!(again.expose_secret(), pw.expose_secret());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn an_empty_admin_password_file_is_refused_not_logged_in_with() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-password");
    for contents in [&b""[..], b"\n", b"  \n"] {
        plant(&file, contents, 0o600);
        let err = ekmd::setup::admin_credentials(dir.path(), None)
            .err()
            .expect("an empty password file must be refused");
        assert!(err.contains("admin-password"), "{err}");
        assert!(err.contains("empty"), "{err}");
    }
}

#[test]
fn secret_files_readable_by_others_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-password");
    plant(&file, b"s3cret-password\n", 0o644);
    let err = ekmd::setup::admin_credentials(dir.path(), None)
        .err()
        .expect("refused");
    assert!(err.contains("chmod 600"), "{err}");

    let creds = dir.path().join("creds");
    plant(&creds, b"admin:pw\n", 0o640);
    let err = ekmd::setup::admin_credentials(dir.path(), Some(&creds))
        .err()
        .expect("refused");
    assert!(err.contains("creds") && err.contains("chmod 600"), "{err}");
    plant(&creds, b"admin:\n", 0o600);
    assert!(ekmd::setup::admin_credentials(dir.path(), Some(&creds)).is_err());
}

#[test]
fn an_empty_tls_key_protection_key_or_fake_vault_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ekmd::tls::ensure_cert(dir.path(), None, "127.0.0.1").unwrap();
    assert_eq!(mode(&key), 0o600);
    assert!(ekmd::tls::server_config(&cert, &key).is_ok());
    plant(&key, b"", 0o600);
    let err = ekmd::tls::ensure_cert(dir.path(), None, "127.0.0.1").unwrap_err();
    assert!(
        err.contains("tls-key.pem") && err.contains("empty"),
        "{err}"
    );

    let pk = dir.path().join("protection.key");
    ekm_store::protection_key::load_or_create(&pk).unwrap();
    assert_eq!(mode(&pk), 0o600);
    plant(&pk, b"", 0o600);
    let err = ekm_store::protection_key::load_or_create(&pk).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    let vault = dir.path().join("fake-vault.json");
    plant(&vault, b"", 0o600);
    let err = ekm_fake::FakeBackend::open(&vault).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    plant(&vault, b"{}", 0o644);
    let err = ekm_fake::FakeBackend::open(&vault).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}
