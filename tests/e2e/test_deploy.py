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
