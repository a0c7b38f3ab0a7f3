//! Pins every (ONTAP code, message, HTTP status) triple of `ErrorKind`.

use ekm::core::ErrorKind;

#[test]
fn every_error_kind_is_pinned() {
    let pinned: &[(ErrorKind, u32, &str, u16)] = &[
        (ErrorKind::EntryNotFound, 4, "entry doesn't exist", 404),
        (
            ErrorKind::UnexpectedArgument,
            262_179,
            "Unexpected argument.",
            400,
        ),
        (ErrorKind::InvalidValue, 262_197, "Invalid value.", 400),
        (
            ErrorKind::SvmNotFound,
            2_621_462,
            "The specified SVM does not exist.",
            400,
        ),
        (
            ErrorKind::NotAuthorized,
            6_691_623,
            "User is not authorized.",
            401,
        ),
        (
            ErrorKind::AkvUnavailable,
            346_758,
            "AKV service is not reachable or refused the request.",
            503,
        ),
        (
            ErrorKind::KeysExist,
            65_536_867,
            "Volume encryption keys (VEK) for one or more encrypted volumes are stored on the key manager configured for the given SVM.",
            409,
        ),
        (
            ErrorKind::NotConfigured,
            65_537_120,
            "Azure Key Vault is not configured for the given SVM.",
            400,
        ),
        (
            ErrorKind::AlreadyConfigured,
            65_537_500,
            "A key manager has already been configured for this SVM.",
            409,
        ),
        (
            ErrorKind::StoreFailed,
            65_537_504,
            "Internal error. Failed to store configuration in internal database.",
            500,
        ),
        (
            ErrorKind::RestorePartial,
            65_537_515,
            "Failed to restore keys on some nodes in the cluster.",
            503,
        ),
        (
            ErrorKind::ClientSecretRequired,
            65_537_517,
            "The field \"client_secret\" must be specified.",
            400,
        ),
        (
            ErrorKind::InvalidKeyId,
            65_537_523,
            "Invalid key ID format. Example key ID format: \"https://mykeyvault.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74\".",
            400,
        ),
        (
            ErrorKind::InvalidClientSecret,
            65_537_540,
            "Invalid client secret.",
            400,
        ),
        (
            ErrorKind::NoPatchInputs,
            65_537_541,
            "No inputs were provided for the patch request.",
            400,
        ),
        (
            ErrorKind::MissingWrappedKek,
            65_537_544,
            "Missing wrapped top-level internal key protection key (KEK) from internal database.",
            500,
        ),
        (
            ErrorKind::KeysOnAdminKeyManager,
            65_537_547,
            "One or more volume encryption keys for encrypted volumes of this data SVM are stored in the key manager configured for the admin SVM. Use the REST API POST method to migrate this data SVM's keys from the admin SVM's key manager to this data SVM's key manager before running the rekey operation.",
            409,
        ),
        (
            ErrorKind::NoInternalKeys,
            65_537_559,
            "There are no existing internal keys for the SVM. A rekey operation is allowed for an SVM with one or more encryption keys.",
            400,
        ),
        (
            ErrorKind::NoAuthenticationMethod,
            65_537_567,
            "No authentication method provided.",
            400,
        ),
        (
            ErrorKind::InvalidClientCertificate,
            65_537_573,
            "Invalid client certificate.",
            400,
        ),
        (
            ErrorKind::CorruptRecord,
            65_537_601,
            "Internal error. A stored record is damaged.",
            500,
        ),
        (
            ErrorKind::KekUnavailable,
            65_537_602,
            "Top-level internal key protection key (KEK) is unavailable on this node.",
            503,
        ),
        (
            ErrorKind::JobInProgress,
            65_537_603,
            "Another key operation is in progress for this key manager.",
            409,
        ),
        (
            ErrorKind::ProviderNotEnabled,
            65_537_604,
            "This kind of key manager is not enabled on this cluster.",
            400,
        ),
        (
            ErrorKind::MirrorsAttached,
            65_537_605,
            "This key manager has other roots of trust attached (mirror_of); delete them first.",
            409,
        ),
        (
            ErrorKind::AwsNotConfigured,
            65_537_926,
            "AWS KMS is not configured for the given SVM.",
            400,
        ),
    ];
    assert_eq!(pinned.len(), ErrorKind::ALL.len(), "a kind is not pinned");
    for &(kind, code, message, status) in pinned {
        assert_eq!(kind.code(), code, "{kind:?}");
        assert_eq!(kind.message(), message, "{kind:?}");
        assert_eq!(kind.http_status(), status, "{kind:?}");
    }
}

/// The texts that say "SVM" are said of the cluster for the cluster's key manager; an SVM's
/// keeps the seed's text, and every other kind its own text whatever the scope.
#[test]
fn scoped_texts_name_the_cluster_for_the_cluster() {
    use ekm::core::Error;
    let cluster: &[(ErrorKind, &str)] = &[
        (
            ErrorKind::NotConfigured,
            "Azure Key Vault is not configured for the cluster.",
        ),
        (
            ErrorKind::AlreadyConfigured,
            "A key manager has already been configured for the cluster.",
        ),
        (
            ErrorKind::KeysExist,
            "Volume encryption keys (VEK) for one or more encrypted volumes are stored on the key manager configured for the cluster.",
        ),
        (
            ErrorKind::NoInternalKeys,
            "There are no existing internal keys for the cluster. A rekey operation is allowed for a cluster with one or more encryption keys.",
        ),
    ];
    for &kind in ErrorKind::ALL {
        let svm = Error::for_scope(kind, true);
        assert_eq!(svm.message(), kind.message(), "{kind:?}");
        assert_eq!(svm.code(), kind.code());
        let for_cluster = Error::for_scope(kind, false);
        assert_eq!(for_cluster.code(), kind.code());
        match cluster.iter().find(|(k, _)| *k == kind) {
            Some((_, text)) => assert_eq!(for_cluster.message(), *text, "{kind:?}"),
            None => assert_eq!(for_cluster.message(), kind.message(), "{kind:?}"),
        }
    }
}
