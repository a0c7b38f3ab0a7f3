"""Per-Get time of PyKMIP 0.11's client over one session: against ekmd's KMIP server, and
against PyKMIP's own server (kmip.services.server.KmipServer) in the same run, with the same
PKI (ekmd's CA, server certificate and a client certificate `ekmd kmip-client-cert` issued),
the same KMIP version (1.2) and the same TLS 1.2. Rounds alternate between the two servers so
both see the same machine; each Get is timed on its own and the medians are compared.

Run (from the repository root, with the test venv that scripts/test builds):

    cargo build --release -p ekmd
    target/venv-python-tests/bin/python benches/kmip_pykmip.py [--gets 300] [--rounds 5]

Prints the median per-Get time on each server and their ratio (goal: ekmd at most half of
PyKMIP's server's time).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests
from kmip import enums
from kmip.pie import client as pie_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER, PASSWORD = "admin", "bench-pw"
KEY = "https://keyvault-bench.vault.azure.net/keys/key1/a8e619fd8f234db3b0b95c59540e2a74"

PYKMIP_SERVER = """
import sys
from kmip.services.server import KmipServer
host, port, cert, key, ca, policies, db, log = sys.argv[1:]
server = KmipServer(hostname=host, port=int(port), certificate_path=cert, key_path=key,
                    ca_path=ca, auth_suite="TLS1.2", config_path=None, log_path=log,
                    policy_path=policies, enable_tls_client_auth=True,
                    logging_level="WARNING", database_path=db)
with server:
    print("serving", flush=True)
    server.serve()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port}")


def timed_gets(c, uid, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        key = c.get(uid)
        times.append(time.perf_counter() - t0)
        assert len(key.value) == 32
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ekmd", default=os.path.join(ROOT, "target", "release", "ekmd"))
    ap.add_argument("--gets", type=int, default=300, help="Gets per round per server")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    base = tempfile.mkdtemp(prefix="kmip-bench-")
    data = os.path.join(base, "data")
    topo = os.path.join(base, "topology.toml")
    with open(topo, "w") as f:
        f.write(f'[cluster]\nname = "cluster1"\nuuid = "{uuid.uuid4()}"\n\n'
                f'[[nodes]]\nname = "node1"\nuuid = "{uuid.uuid4()}"\n')
    rest, kmip_port, pykmip_port = free_port(), free_port(), free_port()
    env = dict(os.environ, EKMD_ADMIN_USER=USER, EKMD_ADMIN_PASSWORD=PASSWORD)
    procs = []
    try:
        ekmd = subprocess.Popen(
            [args.ekmd, "serve", "--data-dir", data, "--topology", topo,
             "--listen", f"127.0.0.1:{rest}", "--plain-http",
             "--kmip-listen", f"127.0.0.1:{kmip_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        procs.append(ekmd)
        wait_port(rest, ekmd, "ekmd")
        wait_port(kmip_port, ekmd, "ekmd's KMIP listener")
        r = requests.post(f"http://127.0.0.1:{rest}/api/security/azure-key-vaults",
                          auth=(USER, PASSWORD),
                          json={"client_id": "c", "tenant_id": "t",
                                "name": "https://keyvault-bench.vault.azure.net/", "key_id": KEY,
                                "client_secret": "s"})
        assert r.status_code in (201, 202), r.text
        out = os.path.join(base, "client")
        subprocess.run([args.ekmd, "kmip-client-cert", "--data-dir", data,
                        "--owner", "cluster1", "--out", out], check=True,
                       capture_output=True)
        pki = os.path.join(data, "kmip")
        policies = os.path.join(base, "policies")
        os.makedirs(policies)
        pykmip = subprocess.Popen(
            [sys.executable, "-c", PYKMIP_SERVER, "127.0.0.1", str(pykmip_port),
             os.path.join(pki, "server.pem"), os.path.join(pki, "server.key"),
             os.path.join(pki, "ca.pem"), policies, os.path.join(base, "pykmip.db"),
             os.path.join(base, "pykmip.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(pykmip)
        wait_port(pykmip_port, pykmip, "PyKMIP's server")

        clients = {}
        for name, port in (("ekmd", kmip_port), ("pykmip", pykmip_port)):
            c = pie_client.ProxyKmipClient(
                hostname="127.0.0.1", port=port, cert=os.path.join(out, "client.pem"),
                key=os.path.join(out, "client.key"), ca=os.path.join(pki, "ca.pem"),
                kmip_version=enums.KMIPVersion.KMIP_1_2)
            c.open()
            uid = c.create(enums.CryptographicAlgorithm.AES, 256)
            timed_gets(c, uid, 50)  # warm-up
            clients[name] = (c, uid, [])
        for _ in range(args.rounds):
            for name in ("ekmd", "pykmip"):
                c, uid, times = clients[name]
                times.extend(timed_gets(c, uid, args.gets))
        med = {n: statistics.median(t) * 1e6 for n, (_, _, t) in clients.items()}
        for name, (c, _, t) in clients.items():
            c.close()
            print(f"{name}: median {med[name]:.0f} us per Get over {len(t)} Gets "
                  f"(p90 {statistics.quantiles(t, n=10)[-1] * 1e6:.0f} us)")
        ratio = med["ekmd"] / med["pykmip"]
        verdict = "met" if ratio <= 0.5 else "MISSED"
        print(f"RATIO kmip_pykmip: ekmd {med['ekmd']:.0f} us / PyKMIP server "
              f"{med['pykmip']:.0f} us = {ratio:.2f}x time (goal: at most 0.5x): {verdict}")
    finally:
        for p in procs:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
