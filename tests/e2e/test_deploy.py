"""The systemd unit's command line and environment file, run against the built binary on loopback."""

import base64
import configparser
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml
from cryptography import x509

from conftest import ROOT, SERVER_BIN, free_port, http, pipeline, execute, port_range, wait_for_port

UNIT = ROOT / "deploy" / "systemd" / "turso-server.service"
ENV_FILE = ROOT / "deploy" / "systemd" / "turso-server.env"


def read_env_file(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def test_systemd_unit_command_and_environment_run_a_node(tmp_path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start[0] == "/usr/local/bin/turso-server"
    assert unit["Service"]["EnvironmentFile"] == "/etc/turso-server/turso-server.env"
    env = read_env_file(ENV_FILE)
    # The shipped defaults, made to fit a test: loopback ports, a temporary data directory, secrets.
    data_port, admin_port = free_port(), free_port()
    start, end = port_range(20)
    env.update({
        "TURSO_DATA_ADDR": f"127.0.0.1:{data_port}", "TURSO_ADMIN_ADDR": f"127.0.0.1:{admin_port}",
        "TURSO_DATA_DIR": str(tmp_path / "turso"), "TURSO_AUTH_TOKEN": "d", "TURSO_ADMIN_TOKEN": "a",
        "TURSO_BACKEND_PORT_START": str(start), "TURSO_BACKEND_PORT_END": str(end),
    })
    assert env["TURSO_GC_INTERVAL"] == "1h" and env["TURSO_MAX_RUNNING"] == "256"
    base = {k: v for k, v in os.environ.items() if not k.startswith("TURSO")}
    log = open(tmp_path / "node.log", "wb")
    process = subprocess.Popen([str(SERVER_BIN), *exec_start[1:]], env={**base, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(admin_port, process=process)
        wait_for_port(data_port, process=process)
        assert http("GET", f"http://127.0.0.1:{admin_port}/readyz").status == 200
        assert http("POST", f"http://127.0.0.1:{admin_port}/v1/namespaces/app/create", token="a").status == 201
        r = pipeline(f"http://127.0.0.1:{data_port}/app", [execute("SELECT 1")], token="d")
        assert r.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_systemd_unit_runs_a_three_node_cluster_on_loopback(tmp_path):
    """The bare-metal setup of deploy/README.md: a CA and one certificate per host made with
    `turso-server certs`, the shipped environment file with each host's cluster settings, the unit's
    command line; three nodes form one cluster and serve each other's namespaces."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    exec_start = unit["Service"]["ExecStart"].split()
    shipped = read_env_file(ENV_FILE)
    assert shipped["TURSO_JOIN"] == "" and shipped["TURSO_GOSSIP_ADDR"] == ":7946"
    pki = tmp_path / "pki"
    subprocess.run([str(SERVER_BIN), "certs", "ca", "--out", str(pki)], check=True, capture_output=True)
    base_port = 13000 + int.from_bytes(os.urandom(2), "big") % 500 * 10
    processes, hosts = [], [f"127.0.0.{i}" for i in (1, 2, 3)]
    base = {k: v for k, v in os.environ.items() if not k.startswith("TURSO")}
    try:
        for i, host in enumerate(hosts, start=1):
            subprocess.run([str(SERVER_BIN), "certs", "node", "--ca-dir", str(pki), "--name", f"db{i}", "--host", host,
                            "--out", str(pki)], check=True, capture_output=True)
            start, end = port_range(20)
            env = dict(shipped)
            env.update({
                "TURSO_NODE_ID": f"db{i}", "TURSO_DATA_DIR": str(tmp_path / f"db{i}"),
                "TURSO_DATA_ADDR": f"{host}:{base_port}", "TURSO_ADMIN_ADDR": f"{host}:{base_port + 1}",
                "TURSO_GOSSIP_ADDR": f"{host}:{base_port + 2}", "TURSO_PEER_ADDR": f"{host}:{base_port + 3}",
                "TURSO_JOIN": "" if i == 1 else f"{hosts[0]}:{base_port + 2}",
                "TURSO_TLS_CA": str(pki / "ca.pem"), "TURSO_TLS_CERT": str(pki / f"db{i}.pem"),
                "TURSO_TLS_KEY": str(pki / f"db{i}-key.pem"), "TURSO_AUTH_TOKEN": "d", "TURSO_ADMIN_TOKEN": "a",
                "TURSO_BACKEND_PORT_START": str(start), "TURSO_BACKEND_PORT_END": str(end),
            })
            log = open(tmp_path / f"db{i}.log", "wb")
            processes.append(subprocess.Popen([str(SERVER_BIN), *exec_start[1:]], env={**base, **env}, stdout=log,
                                              stderr=subprocess.STDOUT))
        admin = [f"http://{h}:{base_port + 1}" for h in hosts]
        deadline = time.time() + 60
        views = []
        while time.time() < deadline:
            try:
                views = [http("GET", f"{a}/v1/cluster/members", token="a", timeout=2).json()["members"] for a in admin]
                if all(sorted((m["id"], m["state"], m["liveness"]) for m in v) ==
                       [(f"db{i}", "active", "alive") for i in (1, 2, 3)] for v in views):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        else:
            raise AssertionError(f"no three-node cluster: {views}")
        for k in range(6):
            r = pipeline(f"http://{hosts[k % 3]}:{base_port}/app{k}", [execute("CREATE TABLE t(x)")], token="d")
            assert r.status == 200, r.body
        listed = http("GET", f"{admin[2]}/v1/namespaces", token="a").json()["namespaces"]
        assert sorted(e["name"] for e in listed) == [f"app{k}" for k in range(6)]
        assert len({e["holder"] for e in listed}) > 1, "namespaces spread over the hosts"
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(timeout=120) == 0


def test_cluster_tls_secret_script_certifies_every_pod(tmp_path):
    script = ROOT / "deploy" / "scripts" / "cluster-tls-secret.sh"
    out = subprocess.run(
        [str(script), "turso-server", "3", "databases"], cwd=tmp_path, check=True, capture_output=True, text=True,
        env={**os.environ, "TURSO_SERVER_BIN": str(SERVER_BIN)},
    ).stdout
    secret = yaml.safe_load(out)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "turso-server-cluster-tls"
    keys = set(secret["data"])
    assert keys == {"ca.crt"} | {f"turso-server-{i}.{ext}" for i in range(3) for ext in ("crt", "key")}
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    for i in range(3):
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"][f"turso-server-{i}.crt"]))
        assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == f"turso-server-{i}"
        assert cert.issuer == ca.subject
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert f"turso-server-{i}.turso-server-headless.databases.svc.cluster.local" in sans
    assert (tmp_path / "turso-server-ca" / "ca-key.pem").exists()


FAKE_MC = r"""#!/bin/sh
# A stand-in for the MinIO client: "target/<path>" maps to $FAKE_S3/<path>.
set -e
path() { echo "$FAKE_S3/${1#target/}"; }
case "$1" in
  alias) exit 0 ;;
  pipe) mkdir -p "$(dirname "$(path "$2")")"; cat > "$(path "$2")" ;;
  ls) for f in "$(path "$3")"*; do [ -e "$f" ] && printf '{"key":"%s"}\n' "$(basename "$f")"; done; true ;;
  rm) rm -f "$(path "$2")" ;;
  *) echo "unexpected mc $*" >&2; exit 2 ;;
esac
"""


def test_backup_cronjob_script_backs_up_every_namespace_with_retention(tmp_path, node_factory):
    # The CronJob's shell script, taken from the rendered chart, run against a real node with curl and
    # jq, and a stand-in for mc that stores objects in a directory.
    import shutil
    import sqlite3
    import yaml

    if shutil.which("jq") is None:
        import pytest
        pytest.skip("jq is not installed")
    rendered = subprocess.run(
        [str(ROOT / ".venv-deploy" / "bin" / "python"), str(ROOT / "deploy" / "render.py"), str(ROOT / "deploy" / "chart"),
         str(ROOT / "deploy" / "chart" / "ci" / "production-values.yaml")],
        capture_output=True, text=True, check=True,
    ).stdout
    cronjob = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "CronJob")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    script = container["args"][0]
    node = node_factory({"TURSO_ADMIN_TOKEN": "adm"})
    for name in ["alpha", "beta"]:
        assert node.admin("POST", f"/v1/namespaces/{name}/create").status == 201
        pipeline(f"{node.data_url}/{name}", [execute("CREATE TABLE t(x)"), execute(f"INSERT INTO t VALUES ('{name}')")])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    store = tmp_path / "s3"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_S3": str(store), "ADMIN_URL": node.admin_url,
        "ADMIN_TOKEN": "adm", "BUCKET": "backups/turso", "RETENTION": "2", "S3_ENDPOINT": "http://s3",
        "S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s",
    }
    # Three runs a second apart (the object names carry a timestamp): retention keeps the newest two.
    import time
    for _ in range(3):
        subprocess.run(["/bin/sh", "-ec", script], env=env, check=True, capture_output=True)
        time.sleep(1.1)
    for name in ["alpha", "beta"]:
        objects = sorted((store / "backups" / "turso" / name).iterdir())
        assert len(objects) == 2, objects
        db = sqlite3.connect(objects[-1])
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT x FROM t").fetchall() == [(name,)]
        db.close()
