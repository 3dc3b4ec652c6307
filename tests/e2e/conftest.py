"""Fixtures that run the real binaries: the built-in backend (`turso-sync-server`) and full nodes
(`turso-server`) in temporary directories on loopback ports."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("TURSO_BIN_DIR", ROOT / ".build" / "debug"))
SERVER_BIN = BIN_DIR / "turso-server"
SYNC_BIN = BIN_DIR / "turso-sync-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_range(size: int = 50) -> tuple[int, int]:
    """A block of ports nothing listens on (checked), for a node's backends, below the kernel's
    ephemeral range (32768+) so outgoing connections do not take them."""
    for _ in range(200):
        start = 20000 + int.from_bytes(os.urandom(2), "big") % 12000
        ok = True
        for p in range(start, start + size):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return start, start + size - 1
    raise RuntimeError("no free port range")


def wait_for_port(port: int, timeout: float = 20.0, process: subprocess.Popen | None = None, host="127.0.0.1") -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


class HTTPResult:
    def __init__(self, status: int, body: bytes, headers):
        self.status = status
        self.body = body
        self.headers = headers

    def json(self):
        return json.loads(self.body)


def http(method: str, url: str, body=None, token: str | None = None, headers=None, timeout: float = 30) -> HTTPResult:
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return HTTPResult(r.status, r.read(), r.headers)
    except urllib.error.HTTPError as e:
        return HTTPResult(e.code, e.read(), e.headers)


def pipeline(url: str, requests: list, baton=None, token=None) -> HTTPResult:
    return http("POST", f"{url}/v2/pipeline", {"baton": baton, "requests": requests}, token=token)


def execute(sql: str, args=None) -> dict:
    stmt = {"sql": sql}
    if args is not None:
        stmt["args"] = args
    return {"type": "execute", "stmt": stmt}


class SyncServer:
    """One built-in backend process serving one database file."""

    def __init__(self, db_path: Path, port: int | None = None, env=None):
        self.db_path = db_path
        self.port = port or free_port()
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self.log_path = db_path.parent / f"sync-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        env = dict(os.environ, **self.env)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(SYNC_BIN), "--sync-server", f"127.0.0.1:{self.port}", str(self.db_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Node:
    """One turso-server process with its own data directory and ports."""

    host = "127.0.0.1"

    def __init__(self, data_dir: Path, env=None):
        self.data_dir = data_dir
        self.data_port = free_port()
        self.admin_port = free_port()
        start, end = port_range(40)
        self.env = {
            "TURSO_DATA_DIR": str(data_dir),
            "TURSO_DATA_ADDR": f"127.0.0.1:{self.data_port}",
            "TURSO_ADMIN_ADDR": f"127.0.0.1:{self.admin_port}",
            "TURSO_BACKEND_PORT_START": str(start),
            "TURSO_BACKEND_PORT_END": str(end),
            "TURSODB_BIN": "/nonexistent/tursodb",
        }
        self.env.update(env or {})
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"node-{self.data_port}.log"
        self.binary = SERVER_BIN

    @property
    def data_url(self) -> str:
        return f"http://{self.host}:{self.data_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    def start(self, wait=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TURSO")}
        env.update(self.env)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(self.binary)], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if wait:
            wait_for_port(self.admin_port, process=self.process, host=self.host)
            wait_for_port(self.data_port, process=self.process, host=self.host)
        return self

    def logs(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def admin(self, method, path, body=None, token=None) -> HTTPResult:
        token = token if token is not None else self.env.get("TURSO_ADMIN_TOKEN")
        return http(method, self.admin_url + path, body, token=token)

    def backend_pid(self, name: str) -> int | None:
        info = self.admin("GET", f"/v1/namespaces/{name}")
        return info.json().get("pid") if info.status == 200 else None

    def terminate(self, timeout=30) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout=timeout)
        return self.process.returncode if self.process else 0

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def backend_processes(data_dir: Path) -> list[int]:
    """Pids of live processes whose command line names a database in `data_dir`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--sync-server" in cmd and any(str(data_dir).encode() in part for part in cmd):
            try:
                if (entry / "stat").read_text().split()[2] == "Z":
                    continue
            except OSError:
                continue
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def node_factory(tmp_path):
    nodes = []

    def make(env=None, data_dir=None, start=True):
        node = Node(data_dir or (tmp_path / f"data{len(nodes)}"), env)
        nodes.append(node)
        if start:
            node.start()
        return node

    yield make
    kill_nodes(nodes)


def kill_nodes(nodes) -> None:
    """SIGKILL the nodes and any backend left over in their data directories."""
    for node in nodes:
        node.kill()
    for node in nodes:
        for pid in backend_processes(node.data_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def sync_server(tmp_path):
    servers = []

    def make(db_path=None, env=None):
        server = SyncServer(db_path or tmp_path / "server.db", env=env)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.kill()


def hammer(port: int, path: str, body: bytes, clients: int, requests: int, headers=None) -> list:
    """`clients` threads each send `requests` POSTs on one keep-alive connection; returns failures."""
    import http.client
    import threading

    failures = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            conn.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append((response.status, payload[:200]))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures
