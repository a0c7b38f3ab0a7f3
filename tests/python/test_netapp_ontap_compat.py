"""NetApp's official Python client (netapp-ontap) against a running ekmd: every operation of the
ONTAP 9.13.1 azure-key-vaults reference through the client's public API, plus migrate.
"""

import os
import socket
import subprocess
import uuid

import pytest
import requests
import urllib3
from netapp_ontap import HostConnection, config
from netapp_ontap.error import NetAppRestError
from netapp_ontap.resources import AzureKeyVault, SecurityKeyManager

KEY = "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74"
KEY2 = "https://keyvault-test.vault.azure.net/keys/key2/0123456789abcdef0123456789abcdef"
VAULT = "https://keyvault-test.vault.azure.net/"
USER, PASSWORD = "admin", "ontap-compat-pw"

urllib3.disable_warnings()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ekmd(tmp_path_factory):
    data = tmp_path_factory.mktemp("ekmd") / "data"
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
        yield f"https://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def code_of(err):
    return err.value.http_err_response.http_response.json()["error"]["code"]


def create_key(base, config_uuid, tag, svm=None):
    body = {"key_tag": tag}
    if svm:
        body["svm"] = {"name": svm}
    r = requests.post(f"{base}/api/security/azure-key-vaults/{config_uuid}/keys", json=body,
                      auth=(USER, PASSWORD), verify=False)
    assert r.status_code == 201, r.text
    return r.json()["key_id"]


def new_akv(**extra):
    return AzureKeyVault(client_id="client1", tenant_id="tenant1", name=VAULT, key_id=KEY,
                         client_secret="myclientPwd", **extra)


def test_the_whole_api_through_the_official_client(ekmd):
    # Create (the seed's first example) and read back.
    cluster = new_akv()
    cluster.post(hydrate=True)
    assert cluster.uuid and cluster.scope == "cluster"
    # The secret is write-only: hydrate replaced every field with ekmd's answer, which has none.
    assert not hasattr(cluster, "client_secret"), cluster.client_secret
    every_field = AzureKeyVault(uuid=cluster.uuid)
    every_field.get(fields="**")
    assert every_field.client_id == "client1"
    assert not hasattr(every_field, "client_secret"), every_field.client_secret

    with pytest.raises(NetAppRestError) as err:
        new_akv().post()
    assert code_of(err) == "65537500"
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(svm={"name": "vs0"}, client_id="c", tenant_id="t", name=VAULT,
                      key_id="https://keyvault1.vault.azure.net/keys/key1", client_secret="x").post()
    assert code_of(err) == "65537523"
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(svm={"name": "vs0"}, client_id="c", tenant_id="t", name=VAULT, key_id=KEY).post()
    assert code_of(err) == "65537567"

    # Collection GET with fields and filters.
    found = list(AzureKeyVault.get_collection(fields="*"))
    assert [r.uuid for r in found] == [cluster.uuid]
    assert found[0].key_id == KEY and found[0].authentication_method == "client_secret"
    assert AzureKeyVault.count_collection(scope="svm") == 0
    assert len(list(AzureKeyVault.get_collection(client_id="client*"))) == 1

    # Instance GET with the advanced fields, only when named.
    one = AzureKeyVault(uuid=cluster.uuid)
    one.get()
    assert one.key_id == KEY
    assert not hasattr(one, "state")
    one.get(fields="state,azure_reachability,ekmip_reachability")
    assert one.azure_reachability.reachable is True
    assert one.ekmip_reachability[0].node.name == "node1"
    assert one.state.code == "346758"

    # PATCH: the seed's client-secret update, then proxy settings.
    # (The client sends what changed since the object was made or last fetched.)
    one = AzureKeyVault(uuid=cluster.uuid)
    one.client_secret = "newSecret"
    one.patch()
    one = AzureKeyVault(uuid=cluster.uuid)
    one.proxy_type, one.proxy_host, one.proxy_port = "http", "proxy.eng.com", 1234
    one.patch()
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=cluster.uuid).patch()
    assert code_of(err) == "65537541"
    one.get(fields="proxy_host,proxy_port")
    assert one.proxy_host == "proxy.eng.com" and one.proxy_port == 1234
    one = AzureKeyVault(uuid=cluster.uuid)
    one.client_secret = ""
    with pytest.raises(NetAppRestError) as err:
        one.patch()
    assert code_of(err) == "65537540"

    # Actions are jobs; the client polls /api/cluster/jobs until they end.
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=cluster.uuid).rekey_internal()
    assert code_of(err) == "65537559"
    ids = [create_key(ekmd, cluster.uuid, f"vol{i}") for i in range(5)]
    AzureKeyVault(uuid=cluster.uuid).rekey_internal()
    AzureKeyVault(uuid=cluster.uuid).rekey_external(body={"key_id": KEY2})
    one = AzureKeyVault(uuid=cluster.uuid)
    one.get()
    assert one.key_id == KEY2
    AzureKeyVault(uuid=cluster.uuid).restore()

    # Keys of vs0 created under the cluster's key manager; vs0 configured; migrate.
    vs0_key = create_key(ekmd, cluster.uuid, "vs0-vol", svm="vs0")
    svm = new_akv(svm={"name": "vs0"})
    svm.post(hydrate=True)
    assert svm.scope == "svm" and svm.svm.name == "vs0"
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=svm.uuid).rekey_internal()
    assert code_of(err) == "65537547"
    SecurityKeyManager(uuid=cluster.uuid).migrate(body={"uuid": svm.uuid})
    AzureKeyVault(uuid=svm.uuid).rekey_internal()
    r = requests.get(f"{ekmd}/api/security/azure-key-vaults/{svm.uuid}/keys", auth=(USER, PASSWORD), verify=False)
    assert [k["key_id"] for k in r.json()["records"]] == [vs0_key]

    # Filters on svm, and order_by through the client.
    assert [r.uuid for r in AzureKeyVault.get_collection(**{"svm.name": "vs0"})] == [svm.uuid]
    ordered = [r.scope for r in AzureKeyVault.get_collection(fields="scope", order_by="scope desc")]
    assert ordered == ["svm", "cluster"]

    # DELETE: refused while keys exist, then allowed.
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=cluster.uuid).delete()
    assert code_of(err) == "65536867"
    for key_id in ids:
        requests.delete(f"{ekmd}/api/security/azure-key-vaults/{cluster.uuid}/keys/{key_id}",
                        auth=(USER, PASSWORD), verify=False).raise_for_status()
    AzureKeyVault(uuid=cluster.uuid).delete()
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=cluster.uuid).get()
    assert code_of(err) == "4"
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=str(uuid.uuid4())).get()
    assert code_of(err) == "4"


def test_wrong_password_is_refused(ekmd):
    r = requests.get(f"{ekmd}/api/security/azure-key-vaults", auth=(USER, "wrong"), verify=False)
    assert r.status_code == 401


def cluster_akv():
    """The cluster's configuration, created if the scope has none (tests share one ekmd)."""
    found = list(AzureKeyVault.get_collection(scope="cluster"))
    if found:
        return found[0].uuid
    akv = new_akv()
    akv.post()
    return akv.uuid


def test_post_returns_records_only_when_asked(ekmd):
    # The seed: return_records "The default is false. If set to true, the records are returned."
    for existing in AzureKeyVault.get_collection(scope="cluster"):
        existing.delete()
    akv = new_akv()
    body = akv.post().http_response.json()
    assert "records" not in body, body
    assert akv.uuid  # from the Location header
    AzureKeyVault(uuid=akv.uuid).delete()
    # The client sends Python's True as "True".
    akv = new_akv()
    body = akv.post(return_records=True).http_response.json()
    assert body["records"][0]["uuid"] == akv.uuid
    assert body["records"][0]["client_id"] == "client1"


def test_boolean_query_parameters_take_every_spelling(ekmd):
    cluster_akv()
    for value, with_records in [(True, True), ("True", True), ("true", True), (1, True),
                                (False, False), ("False", False), ("false", False), (0, False)]:
        r = requests.get(f"{ekmd}/api/security/azure-key-vaults", params={"return_records": value},
                         auth=(USER, PASSWORD), verify=False)
        assert r.status_code == 200, (value, r.text)
        assert ("records" in r.json()) == with_records, value
    assert AzureKeyVault.count_collection() >= 1  # the client's own return_records=false


def test_a_lost_job_is_found_in_the_jobs_collection(ekmd):
    u = cluster_akv()
    create_key(ekmd, u, "lost-job-vol")
    r = requests.post(f"{ekmd}/api/security/azure-key-vaults/{u}/rekey-internal",
                      auth=(USER, PASSWORD), verify=False)
    assert r.status_code == 202
    job = r.json()["job"]["uuid"]
    r = requests.get(f"{ekmd}/api/cluster/jobs", params={"fields": "state,description"},
                     auth=(USER, PASSWORD), verify=False)
    assert r.status_code == 200
    assert job in [j["uuid"] for j in r.json()["records"]]


def test_patch_of_client_id_alone(ekmd):
    # Needs the core's acceptance of client_id/tenant_id alone in a patch (ONTAP allows it).
    u = cluster_akv()
    # The client patches what changed since the object was made: fields given to the
    # constructor count as its starting state, so AzureKeyVault(uuid=u, client_id="new").patch()
    # sends an empty body (65537541). A change after construction is sent.
    with pytest.raises(NetAppRestError) as err:
        AzureKeyVault(uuid=u, client_id="new").patch()
    assert code_of(err) == "65537541"
    one = AzureKeyVault(uuid=u)
    one.client_id = "new"
    one.patch()
    one = AzureKeyVault(uuid=u)
    one.get()
    assert one.client_id == "new"
