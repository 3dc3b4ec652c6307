"""The systemd unit's command line and environment file, run against the built binary on loopback."""

import configparser
import os
import signal
import subprocess
from pathlib import Path

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
