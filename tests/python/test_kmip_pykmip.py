"""PyKMIP 0.11's client against a running ekmd's KMIP server (mutual TLS), in KMIP 1.2 and 2.0:
every served operation, per-SVM isolation, and the REST / socket / KMIP views of the same keys.
"""

import base64
import json
import os
import socket
import ssl
import subprocess
import uuid

import pytest
import requests
from kmip import enums
from kmip.core import objects as cobjects
from kmip.core import primitives
from kmip.core.factories import attributes as attribute_factory
from kmip.pie import client as pie_client
from kmip.pie import exceptions as pie_exc
from kmip.pie import objects

KEY = "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74"
VAULT = "https://keyvault-test.vault.azure.net/"
USER, PASSWORD = "admin", "kmip-test-pw"
F = attribute_factory.AttributeFactory()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ekmd:
    def __init__(self, data, rest, kmip):
        self.data, self.rest, self.kmip = data, rest, kmip

    def api(self, method, path, **kw):
        return requests.request(method, f"{self.rest}/api{path}", auth=(USER, PASSWORD), **kw)

    def socket_key(self, key_id):
        """The data path: GET /keys/<id> over the unix socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.data / "ekmd.sock"))
            s.sendall(f"GET /keys/{key_id} HTTP/1.1\r\nHost: ekmd\r\nConnection: close\r\n\r\n".encode())
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        head, body = raw.split(b"\r\n\r\n", 1)
        if b" 200 " not in head.split(b"\r\n")[0]:
            return None
        return base64.b64decode(json.loads(body)["key"])

    def client_cert(self, owner, days=None):
        out = self.data.parent / f"client-{owner}-{days}"
        cmd = [os.environ["EKMD_BIN"], "kmip-client-cert", "--data-dir", str(self.data),
               "--owner", owner, "--out", str(out)]
        if days is not None:
            cmd += ["--days", str(days)]
        subprocess.run(cmd, check=True, capture_output=True)
        return str(out / "client.pem"), str(out / "client.key")

    def client(self, owner, version):
        cert, key = self.client_cert(owner)
        c = pie_client.ProxyKmipClient(
            hostname="127.0.0.1", port=self.kmip, cert=cert, key=key,
            ca=str(self.data / "kmip" / "ca.pem"),
            kmip_version=version)
        return c  # opened by `with`


@pytest.fixture(scope="module")
def ekmd(tmp_path_factory):
    base = tmp_path_factory.mktemp("ekmd-kmip")
    data = base / "data"
    topo = base / "topology.toml"
    topo.write_text(
        f'[cluster]\nname = "cluster1"\nuuid = "{uuid.uuid4()}"\n\n'
        f'[[nodes]]\nname = "node1"\nuuid = "{uuid.uuid4()}"\n\n'
        f'[[svms]]\nname = "vs0"\nuuid = "{uuid.uuid4()}"\n\n'
        f'[[svms]]\nname = "vs1"\nuuid = "{uuid.uuid4()}"\n')
    rest, kmip = free_port(), free_port()
    env = dict(os.environ, EKMD_ADMIN_USER=USER, EKMD_ADMIN_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [os.environ["EKMD_BIN"], "serve", "--data-dir", str(data), "--topology", str(topo),
         "--listen", f"127.0.0.1:{rest}", "--plain-http", "--kmip-listen", f"127.0.0.1:{kmip}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert any("KMIP listening" in l for l in lines), lines
        e = Ekmd(data, f"http://127.0.0.1:{rest}", kmip)
        r = e.api("POST", "/security/azure-key-vaults?return_records=true",
                  json={"client_id": "c", "tenant_id": "t", "name": VAULT, "key_id": KEY,
                        "client_secret": "s"})
        assert r.status_code == 201, r.text
        e.config = r.json()["records"][0]["uuid"]
        yield e
    finally:
        proc.terminate()
        proc.wait()


VERSIONS = [enums.KMIPVersion.KMIP_1_2, enums.KMIPVersion.KMIP_2_0]


def reason_of(exc):
    return exc.value.reason


@pytest.mark.parametrize("version", VERSIONS, ids=["kmip1.2", "kmip2.0"])
def test_every_operation(ekmd, version):
    tag = f"vol-{version.name}"
    with ekmd.client("vs0", version) as c:
        # Create, Get: the same 256-bit key over the socket, listed by REST with its Name.
        uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=tag)
        assert len(uid) == 64
        key = c.get(uid)
        assert len(key.value) == 32
        assert ekmd.socket_key(uid) == key.value
        listed = ekmd.api("GET", f"/security/azure-key-vaults/{ekmd.config}/keys").json()["records"]
        mine = [k for k in listed if k["key_id"] == uid]
        assert mine and mine[0]["key_tag"] == tag and mine[0]["svm"]["name"] == "vs0"

        # Register a client-supplied key.
        material = os.urandom(32)
        reg = c.register(objects.SymmetricKey(enums.CryptographicAlgorithm.AES, 256, material,
                                              name=tag + "-reg"))
        assert c.get(reg).value == material
        assert ekmd.socket_key(reg) == material

        # AES-128 and -192 are served too: Get and the socket serve the same 16 / 24 bytes.
        for bits in (128, 192):
            short = c.create(enums.CryptographicAlgorithm.AES, bits)
            value = c.get(short).value
            assert len(value) == bits // 8
            assert ekmd.socket_key(short) == value
            c.destroy(short)
        # Other lengths are refused.
        with pytest.raises(pie_exc.KmipOperationFailure) as err:
            c.create(enums.CryptographicAlgorithm.AES, 64)
        assert reason_of(err) == enums.ResultReason.INVALID_FIELD

        # Locate by Name, by State, with Maximum Items.
        assert c.locate(attributes=[F.create_attribute(enums.AttributeType.NAME, tag)]) == [uid]
        pre = c.locate(attributes=[F.create_attribute(enums.AttributeType.STATE,
                                                      enums.State.PRE_ACTIVE)])
        assert uid in pre and reg in pre
        assert len(c.locate(maximum_items=1)) == 1

        # Get Attributes, Get Attribute List.
        got_uid, attrs = c.get_attributes(uid, ["State", "Cryptographic Length", "Name"])
        assert got_uid == uid
        by_name = {a.attribute_name.value: a.attribute_value for a in attrs}
        assert by_name["State"].value == enums.State.PRE_ACTIVE
        assert by_name["Cryptographic Length"].value == 256
        names = c.get_attribute_list(uid)
        assert "Digest" in names and "Last Change Date" in names and "State" in names

        # Attribute changes.
        if version == enums.KMIPVersion.KMIP_2_0:
            c.set_attribute(uid, attribute_name="Contact Information",
                            attribute_value="storage-admin@example.com")
            _, attrs = c.get_attributes(uid, ["Contact Information"])
            assert attrs[0].attribute_value.value == "storage-admin@example.com"
            c.delete_attribute(uid, attribute_reference=cobjects.AttributeReference(
                vendor_identification="", attribute_name="Contact Information"))
            _, attrs = c.get_attributes(uid, ["Contact Information"])
            assert attrs == []
        else:
            new_name = F.create_attribute(enums.AttributeType.NAME, tag + "-renamed")
            c.modify_attribute(uid, attribute=new_name)
            assert c.locate(attributes=[F.create_attribute(enums.AttributeType.NAME,
                                                           tag + "-renamed")]) == [uid]
            got, deleted = c.delete_attribute(uid, attribute_name="Name", attribute_index=0)
            assert got == uid
            assert c.locate(attributes=[F.create_attribute(enums.AttributeType.NAME,
                                                           tag + "-renamed")]) == []

        # The state machine: Activate; Destroy of an Active key refused; Revoke; Destroy.
        c.activate(uid)
        with pytest.raises(pie_exc.KmipOperationFailure) as err:
            c.activate(uid)
        assert reason_of(err) == enums.ResultReason.PERMISSION_DENIED
        with pytest.raises(pie_exc.KmipOperationFailure) as err:
            c.destroy(uid)
        assert reason_of(err) == enums.ResultReason.PERMISSION_DENIED
        c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
        _, attrs = c.get_attributes(uid, ["State"])
        assert attrs[0].attribute_value.value == enums.State.DEACTIVATED
        c.destroy(uid)
        with pytest.raises(pie_exc.KmipOperationFailure) as err:
            c.get(uid)
        assert reason_of(err) == enums.ResultReason.ITEM_NOT_FOUND
        assert ekmd.socket_key(uid) is None
        c.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, reg)
        _, attrs = c.get_attributes(reg, ["State"])
        assert attrs[0].attribute_value.value == enums.State.COMPROMISED
        c.destroy(reg)

        # Another SVM sees none of vs0's keys; the cluster's certificate neither.
        keep = c.create(enums.CryptographicAlgorithm.AES, 256, name=tag + "-kept")
    for other in ("vs1", "cluster1"):
        with ekmd.client(other, version) as o:
            with pytest.raises(pie_exc.KmipOperationFailure) as err:
                o.get(keep)
            assert reason_of(err) == enums.ResultReason.ITEM_NOT_FOUND
            with pytest.raises(pie_exc.KmipOperationFailure) as err:
                o.get_attributes(keep, ["State"])
            assert reason_of(err) == enums.ResultReason.ITEM_NOT_FOUND
            assert keep not in o.locate()


def test_rest_keys_are_kmip_keys_and_rest_delete_is_destroy(ekmd):
    r = ekmd.api("POST", f"/security/azure-key-vaults/{ekmd.config}/keys",
                 json={"key_tag": "rest-made", "svm": {"name": "vs1"}})
    assert r.status_code == 201, r.text
    kid = r.json()["key_id"]
    with ekmd.client("vs1", enums.KMIPVersion.KMIP_1_2) as c:
        assert c.get(kid).value == ekmd.socket_key(kid)
        assert kid in c.locate(attributes=[F.create_attribute(enums.AttributeType.NAME,
                                                              "rest-made")])
        assert ekmd.api("DELETE", f"/security/azure-key-vaults/{ekmd.config}/keys/{kid}").ok
        with pytest.raises(pie_exc.KmipOperationFailure) as err:
            c.get(kid)
        assert reason_of(err) == enums.ResultReason.ITEM_NOT_FOUND


def test_cluster_certificate_reaches_cluster_keys(ekmd):
    with ekmd.client("cluster1", enums.KMIPVersion.KMIP_1_2) as c:
        uid = c.create(enums.CryptographicAlgorithm.AES, 256, name="cluster-vol")
        listed = ekmd.api("GET", f"/security/azure-key-vaults/{ekmd.config}/keys").json()["records"]
        assert [k["owner"] for k in listed if k["key_id"] == uid] == ["cluster"]
        assert c.get(uid).value == ekmd.socket_key(uid)


def tls_connect(ekmd, cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ekmd.data / "kmip" / "ca.pem"))
    ctx.check_hostname = False
    if cert:
        ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ekmd.kmip)),
                        server_hostname="127.0.0.1")
    # TLS 1.3 reports a refused client certificate on the first read. An empty Request
    # Message: a trusted client gets an answer (Invalid Message), a refused one none.
    s.sendall(bytes.fromhex("4200780100000000"))
    return s.recv(8)


def test_mtls_refuses_no_certificate_other_ca_and_expired(ekmd, tmp_path):
    assert tls_connect(ekmd, *ekmd.client_cert("vs0"))[:3] == bytes.fromhex("42007b")
    for cert, key in [
        (None, None),
        other_ca_cert(tmp_path),
        ekmd.client_cert("vs0", days=-1),
    ]:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            got = tls_connect(ekmd, cert, key)
            if got == b"":
                raise ConnectionResetError("closed")


def other_ca_cert(tmp_path):
    """A client certificate from a CA the server does not trust (openssl)."""
    d = tmp_path / "other"
    d.mkdir()
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=other CA", "-days", "2")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=vs0")
    run("openssl", "x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "client.pem", "-days", "2")
    return str(d / "client.pem"), str(d / "client.key")


def test_an_aws_protected_scope_serves_kmip_as_an_azure_one(ekmd):
    """vs1 on AWS KMS (the fake serves every provider): keys a vs1 KMIP client creates are
    kept under vs1's AWS configuration, and KMIP, the socket and REST show the same key."""
    r = ekmd.api("POST", "/security/aws-kms?return_records=true",
                 json={"svm": {"name": "vs1"}, "region": "us-east-1", "key_id": "alias/ekm-vs1",
                       "access_key_id": "AKIAEKMKMIPTEST", "secret_access_key": "s"})
    assert r.status_code == 201, r.text
    aws = r.json()["records"][0]["uuid"]
    try:
        with ekmd.client("vs1", enums.KMIPVersion.KMIP_1_2) as c:
            uid = c.create(enums.CryptographicAlgorithm.AES, 256, name="aws-vol")
            listed = ekmd.api("GET", f"/security/aws-kms/{aws}/keys").json()["records"]
            assert [k["key_id"] for k in listed] == [uid]
            assert c.get(uid).value == ekmd.socket_key(uid)
            c.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)
            c.destroy(uid)
            with pytest.raises(pie_exc.KmipOperationFailure) as err:
                c.get(uid)
            assert reason_of(err) == enums.ResultReason.ITEM_NOT_FOUND
    finally:
        left = ekmd.api("GET", f"/security/aws-kms/{aws}/keys").json().get("records", [])
        for k in left:
            ekmd.api("DELETE", f"/security/aws-kms/{aws}/keys/{k['key_id']}")
        assert ekmd.api("DELETE", f"/security/aws-kms/{aws}").status_code == 200
