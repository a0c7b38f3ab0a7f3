"""NetApp's official Python client (netapp-ontap) drives ekmd's /api/security/aws-kms, served
on the fake backend (which serves every provider): create, list with filters, get with the
advanced fields, the data keys under the configuration, patch (secret, proxy), the three jobs,
delete refused while keys exist, and the secrets write-only.
The uuid of an AWS configuration is 404 on the Azure paths, and the key-managers list holds both
kinds.
"""

import os
import socket
import subprocess

import pytest
import requests
import urllib3
from netapp_ontap import HostConnection, config
from netapp_ontap.error import NetAppRestError
from netapp_ontap.resources import AwsKms, AzureKeyVault

USER, PASSWORD = "admin", "aws-compat-pw"
SECRET = "canary-AWS-SECRET-ACCESS-KEY-py"
SECRET2 = "canary-AWS-SECRET-ACCESS-KEY-py2"
PROXY_PASSWORD = "canary-PROXY-PASSWORD-py"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

urllib3.disable_warnings()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ekmd(tmp_path_factory):
    data = tmp_path_factory.mktemp("ekmd-aws") / "data"
    port = free_port()
    env = dict(os.environ, EKMD_ADMIN_USER=USER, EKMD_ADMIN_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [os.environ["EKMD_BIN"], "serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert "listening" in proc.stdout.readline()
        config.CONNECTION = HostConnection(
            "127.0.0.1", port=port, username=USER, password=PASSWORD, verify=False,
            poll_interval=1, poll_timeout=60)
        yield f"https://127.0.0.1:{port}", data
    finally:
        proc.terminate()
        proc.wait()


def code_of(err):
    return err.value.http_err_response.http_response.json()["error"]["code"]


def call(base, method, path, **kw):
    return requests.request(method, f"{base}{path}", auth=(USER, PASSWORD), verify=False, **kw)


def test_aws_kms_through_the_official_client(ekmd):
    base, data = ekmd
    kms = AwsKms(svm={"name": "vs0"}, region="us-east-1", key_id=KEY_ARN,
                 access_key_id="AKIAEKMTESTACCESS001", secret_access_key=SECRET,
                 encryption_context="tenant=vs0", proxy_type="http", proxy_host="proxy.example.com",
                 proxy_port=3128, proxy_username="u", proxy_password=PROXY_PASSWORD)
    body = kms.post().http_response.json()
    assert "records" not in body, body
    assert kms.uuid  # from the Location header
    other = AwsKms(region="eu-west-1", key_id="alias/ekm-cluster",
                   access_key_id="AKIAEKMTESTACCESS002", secret_access_key=SECRET)
    other.post()

    # A second configuration for the same SVM is refused.
    with pytest.raises(NetAppRestError) as err:
        AwsKms(svm={"name": "vs0"}, region="us-east-1", key_id="alias/x",
               access_key_id="AKIAEKMTESTACCESS003", secret_access_key="s").post()
    assert code_of(err) == "65537500"

    # Lists with filters.
    assert AwsKms.count_collection() == 2
    assert [r.uuid for r in AwsKms.get_collection(**{"svm.name": "vs0"})] == [kms.uuid]
    assert [r.uuid for r in AwsKms.get_collection(region="eu-*")] == [other.uuid]
    assert [r.uuid for r in AwsKms.get_collection(scope="cluster")] == [other.uuid]
    regions = [r.region for r in AwsKms.get_collection(fields="region", order_by="region desc")]
    assert regions == ["us-east-1", "eu-west-1"]

    # One record, every readable field, no secret.
    one = AwsKms(uuid=kms.uuid)
    one.get()
    assert (one.region, one.key_id, one.access_key_id) == ("us-east-1", KEY_ARN, "AKIAEKMTESTACCESS001")
    assert (one.service, one.default_domain, one.port) == ("kms", "amazonaws.com", 443)
    assert one.proxy_host == "proxy.example.com" and one.encryption_context == "tenant=vs0"
    assert not hasattr(one, "secret_access_key") and not hasattr(one, "proxy_password")
    # The advanced fields, when named.
    adv = AwsKms(uuid=kms.uuid)
    adv.get(fields="amazon_reachability,state")
    assert adv.amazon_reachability.reachable is True
    assert adv.amazon_reachability.code == "0"
    raw = call(base, "GET", f"/api/security/aws-kms?fields=**").text
    assert SECRET not in raw and PROXY_PASSWORD not in raw

    # The uuid of an AWS configuration is not an Azure one.
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=kms.uuid).get()
    assert code_of(err) == "4"
    kinds = sorted(r["kind"] for r in call(base, "GET", "/api/security/key-managers").json()["records"])
    assert kinds == ["aws_kms", "aws_kms"]

    # A data key under vs0's AWS configuration keeps the configuration until it is deleted.
    r = call(base, "POST", f"/api/security/aws-kms/{kms.uuid}/keys", json={"key_tag": "vol1"})
    assert r.status_code == 201, r.text
    key_id = r.json()["key_id"]

    # PATCH through the client (a new secret, a new proxy host), then the three jobs.
    p = AwsKms(uuid=kms.uuid)
    p.secret_access_key = SECRET2
    p.proxy_host = "proxy2.example.com"
    p.patch()
    p = AwsKms(uuid=kms.uuid)
    p.get()
    assert p.proxy_host == "proxy2.example.com"
    AwsKms(uuid=kms.uuid).rekey_internal()
    AwsKms(uuid=kms.uuid).rekey_external(body={"key_id": "alias/ekm-vs0-next"})
    AwsKms(uuid=kms.uuid).restore()
    p = AwsKms(uuid=kms.uuid)
    p.get()
    assert p.key_id == "alias/ekm-vs0-next"
    jobs = call(base, "GET", "/api/cluster/jobs", params={"fields": "description,state"}).json()
    done = [j for j in jobs["records"] if j["description"].startswith(f"POST /api/security/aws-kms/{kms.uuid}/")]
    assert len(done) == 3 and all(j["state"] == "success" for j in done), jobs
    with pytest.raises(NetAppRestError) as err:
        AwsKms(uuid=kms.uuid).delete()
    assert code_of(err) == "65536867"
    r = call(base, "DELETE", f"/api/security/aws-kms/{kms.uuid}/keys/{key_id}")
    assert r.status_code in (200, 202), r.text
    AwsKms(uuid=kms.uuid).delete()
    AwsKms(uuid=other.uuid).delete()
    assert AwsKms.count_collection() == 0

    # No secret in the clear anywhere under the data directory.
    for root, _, files in os.walk(data):
        for f in files:
            path = os.path.join(root, f)
            if not os.path.isfile(path) or os.path.islink(path):
                continue  # the data-path socket
            with open(path, "rb") as fh:
                content = fh.read()
            assert SECRET.encode() not in content, f
            assert SECRET2.encode() not in content, f
            assert PROXY_PASSWORD.encode() not in content, f
