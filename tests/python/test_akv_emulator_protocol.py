"""Microsoft's own Python clients (azure-identity, azure-keyvault-keys) against akv-emulator.

Proves the emulator speaks the real protocol: OpenID discovery and the client-credentials token
endpoint, the vault's 401 bearer challenge, GET of a key's public JWK, key creation, and
RSA-OAEP-256 unwrap of a key the client wrapped locally with that public key.
"""

import json
import os
import socket
import subprocess

import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

TENANT, CLIENT, SECRET = "tenant1", "python-app", "python-secret-77a1"

# The emulator's names (login.localhost, myvault.vault.localhost) all live on 127.0.0.1.
_getaddrinfo = socket.getaddrinfo


def _loopback(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    ca = tmp_path_factory.mktemp("emulator") / "ca.pem"
    proc = subprocess.Popen(
        [os.environ["AKV_EMULATOR_BIN"], "--ca-out", str(ca),
         "--secret-app", f"{TENANT}:{CLIENT}:{SECRET}", "--key", "kek1"],
        stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        info["ca"] = str(ca)
        yield info
    finally:
        proc.kill()
        proc.wait()


def credential(info, secret=SECRET):
    return ClientSecretCredential(
        TENANT, CLIENT, secret, authority=info["authority"],
        connection_verify=info["ca"], disable_instance_discovery=True)


def key_client(info, secret=SECRET):
    # The vault is not on port 443, so the challenge's resource cannot match the Azure domain.
    return KeyClient(info["vault"], credential(info, secret), verify_challenge_resource=False,
                     connection_verify=info["ca"])


def test_get_key_returns_the_public_jwk(emulator):
    kid = emulator["key_ids"][0]
    name, version = kid.split("/keys/")[1].split("/")
    key = key_client(emulator).get_key(name, version)
    assert key.id == kid
    assert key.key_type == "RSA"
    assert len(key.key.n) == 256 and key.key.e == b"\x01\x00\x01"
    assert key.properties.enabled


def test_wrap_locally_unwrap_in_the_vault(emulator):
    kid = emulator["key_ids"][0]
    crypto = CryptographyClient(kid, credential(emulator), verify_challenge_resource=False,
                                connection_verify=emulator["ca"])
    kek = os.urandom(32)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, kek)
    assert wrapped.encrypted_key != kek and len(wrapped.encrypted_key) == 256
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == kek


def test_create_key_then_use_the_new_version(emulator):
    client = key_client(emulator)
    created = client.create_rsa_key("created-by-python", size=3072)
    assert len(created.key.n) == 384
    crypto = CryptographyClient(created.id, credential(emulator), verify_challenge_resource=False,
                                connection_verify=emulator["ca"])
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == b"k" * 32


def test_missing_key_and_wrong_secret(emulator):
    with pytest.raises(ResourceNotFoundError):
        key_client(emulator).get_key("no-such-key")
    with pytest.raises(ClientAuthenticationError):
        key_client(emulator, secret="wrong").get_key("kek1")
