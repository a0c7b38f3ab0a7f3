"""ekmd's /metrics parsed by the official Python Prometheus client's parser
(prometheus_client.parser), both from the authenticated REST listener and from
--metrics-listen, after real operations."""

import os
import socket
import subprocess

import requests
import urllib3
from prometheus_client.parser import text_string_to_metric_families

USER, PASSWORD = "admin", "metrics-pw"
KEY = "https://keyvault-test.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74"
urllib3.disable_warnings()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_exposition_parses_with_prometheus_client(tmp_path):
    port, mport = free_port(), free_port()
    env = dict(os.environ, EKMD_ADMIN_USER=USER, EKMD_ADMIN_PASSWORD=PASSWORD)
    proc = subprocess.Popen(
        [os.environ["EKMD_BIN"], "serve", "--data-dir", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert "listening" in proc.stdout.readline()
        base = f"https://127.0.0.1:{port}"
        auth = dict(auth=(USER, PASSWORD), verify=False)
        r = requests.post(f"{base}/api/security/azure-key-vaults?return_records=true", json={
            "client_id": "c", "tenant_id": "t", "name": "https://keyvault-test.vault.azure.net/",
            "key_id": KEY, "client_secret": "s"}, **auth)
        assert r.status_code == 201, r.text
        uuid = r.json()["records"][0]["uuid"]
        for i in range(2):
            assert requests.post(f"{base}/api/security/azure-key-vaults/{uuid}/keys",
                                 json={"key_tag": f"v{i}"}, **auth).status_code == 201

        assert requests.get(f"{base}/metrics", verify=False).status_code == 401
        texts = [requests.get(f"{base}/metrics", **auth).text,
                 requests.get(f"http://127.0.0.1:{mport}/metrics").text]
        for text in texts:
            families = {f.name: f for f in text_string_to_metric_families(text)}
            assert all(name.startswith("ekm_") for name in families), families.keys()
            assert families["ekm_http_requests"].type == "counter"
            assert families["ekm_http_request_duration_seconds"].type == "histogram"
            assert families["ekm_backend_calls"].type == "counter"
            assert families["ekm_kek_available"].type == "gauge"
            posts = [s for s in families["ekm_http_requests"].samples
                     if s.labels.get("route") == "/api/security/azure-key-vaults/{uuid}/keys"
                     and s.labels.get("method") == "POST" and s.labels.get("status") == "201"]
            assert [s.value for s in posts] == [2.0]
            keys = {s.labels["owner"]: s.value for s in families["ekm_data_keys"].samples}
            assert keys == {"cluster": 2.0}
    finally:
        proc.terminate()
        proc.wait()
