"""Bad input, shared sessions, races and leftovers against real nodes: each case crashed a node, leaked
one client's session into another's, lost a DELETE, served foreign files or exposed a backend before
it was fixed."""

import json
import os
import sqlite3
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import SERVER_BIN, free_port, http, kill_nodes, pipeline, execute

ADMIN = "admin-secret"
DATA = "data-secret"


def secured(node_factory, **env):
    return node_factory({"TURSO_ADMIN_TOKEN": ADMIN, "TURSO_AUTH_TOKEN": DATA, **env})


def run(node, name, *statements, baton=None, close=True):
    requests = [execute(s) if isinstance(s, str) else s for s in statements]
    if close:
        requests.append({"type": "close"})
    result = pipeline(f"{node.data_url}/{name}", requests, baton=baton, token=DATA)
    assert result.status == 200, result.body
    return result.json()


def outcome(result, index=0):
    entry = result["results"][index]
    if entry["type"] == "error":
        return ("error", entry["error"]["message"])
    return ("ok", entry["response"]["result"]["rows"])


def assert_error(result, status, code, *words):
    assert result.status == status, result.body
    error = result.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error


# 1. Numbers from clients and the environment are range-checked where they are parsed.


@pytest.mark.parametrize("ttl", ["99999999999999999h", "36501d", "-5s", "1e3h", "9" * 400 + "s", "0.0000001ms"])
def test_out_of_range_ttl_is_a_400_naming_the_field_and_the_node_survives(node_factory, ttl):
    node = secured(node_factory)
    assert node.admin("POST", "/v1/namespaces/app/create").status == 201
    result = node.admin("POST", "/v1/namespaces/app/ttl", {"ttl": ttl})
    assert_error(result, 400, "BAD_REQUEST", "ttl", "between")
    assert http("GET", node.admin_url + "/healthz").status == 200
    assert node.admin("GET", "/v1/namespaces/app").json()["ttl"] is None
    assert node.admin("POST", "/v1/namespaces/app/ttl", {"ttl": "36500d"}).status == 200


@pytest.mark.parametrize(
    "variable,value",
    [
        ("TURSO_STARTUP_TIMEOUT", "99999999999999999h"),
        ("TURSO_UPSTREAM_TIMEOUT", "0s"),
        ("TURSO_GC_INTERVAL", "100000000h"),
        ("TURSO_MAX_BODY_BYTES", "99999999999999999999"),
        ("TURSO_MAX_BODY_BYTES", "1"),
        ("TURSO_MAX_RUNNING", "-1"),
        ("TURSO_BACKEND_PORT_END", "70000"),
    ],
)
def test_out_of_range_environment_stops_the_node_with_a_clear_message(tmp_path, variable, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TURSO")}
    env.update({
        "TURSO_DATA_DIR": str(tmp_path / "data"),
        "TURSO_DATA_ADDR": f"127.0.0.1:{free_port()}",
        "TURSO_ADMIN_ADDR": f"127.0.0.1:{free_port()}",
        variable: value,
    })
    done = subprocess.run([str(SERVER_BIN)], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    message = done.stderr.decode()
    assert variable in message and "between" in message, message


def test_peer_file_offsets_are_checked(node_factory):
    gossip, peer = free_port(), free_port()
    node = secured(
        node_factory,
        TURSO_INSECURE_CLUSTER="true",
        TURSO_GOSSIP_ADDR=f"127.0.0.1:{gossip}",
        TURSO_PEER_ADDR=f"127.0.0.1:{peer}",
        TURSO_NODE_ID="solo",
    )
    deadline = time.time() + 20
    while http("GET", node.admin_url + "/readyz").status != 200 and time.time() < deadline:
        time.sleep(0.1)
    # A clustered node alone: it owns everything once its own member state is active.
    while (created := node.admin("POST", "/v1/namespaces/app/create")).status == 503 and time.time() < deadline:
        time.sleep(0.1)
    assert created.status == 201, created.body
    # A clustered create starts the backend (and makes the database file) on first use.
    run(node, "app", "CREATE TABLE t(x)")
    base = f"http://127.0.0.1:{peer}/_peer/v1/namespaces/app/files"
    current = {"x-turso-peer-protocol": "2"}
    for offset in ["-5", "-9223372036854775808", "abc", "99999999999999999999"]:
        assert_error(http("GET", f"{base}/wal?offset={offset}", headers=current), 400, "BAD_REQUEST", "offset")
    whole = http("GET", f"{base}/db?offset=0", headers=current)
    assert whole.status == 200 and len(whole.body) >= 4096
    assert http("GET", f"{base}/db?offset=9223372036854775807", headers=current).body == b""
    # A member of an earlier release (no version header) is refused, not misread.
    assert_error(http("GET", f"{base}/db?offset=0"), 400, "PEER_PROTOCOL", "version 1")
    # A member that speaks another peer protocol version is refused clearly, not misread.
    future = http("GET", f"http://127.0.0.1:{peer}/_peer/v1/status", headers={"x-turso-peer-protocol": "3"})
    assert_error(future, 400, "PEER_PROTOCOL", "version 3")
    status = http("GET", f"http://127.0.0.1:{peer}/_peer/v1/status", headers={"x-turso-peer-protocol": "2"})
    assert status.status == 200 and status.json() == {"id": "solo", "namespaces": 1, "running": 1}
    assert http("GET", node.admin_url + "/healthz").status == 200


# 2. A pooled connection comes back exactly as a fresh one.


def test_one_streams_session_never_reaches_another(node_factory):
    node = secured(node_factory)
    run(node, "app", "CREATE TABLE t(x)", "CREATE TABLE parent(id INTEGER PRIMARY KEY)",
        "CREATE TABLE child(p REFERENCES parent(id))")
    # Session changes by one client, each on a stream it then closes.
    for change in ["PRAGMA query_only=1", "PRAGMA foreign_keys=ON", "CREATE TEMP TABLE scratch(x)",
                   "PRAGMA recursive_triggers=1", "PRAGMA synchronous=EXTRA"]:
        assert outcome(run(node, "app", change))[0] == "ok", change
    # An open transaction left behind at close is rolled back.
    run(node, "app", "BEGIN", "INSERT INTO t VALUES ('uncommitted')")
    for i in range(20):
        result = run(node, "app", f"INSERT INTO t VALUES ({i})", "PRAGMA query_only", "PRAGMA foreign_keys",
                     "SELECT count(*) FROM sqlite_temp_master", "PRAGMA synchronous", "INSERT INTO child VALUES (999)")
        assert outcome(result, 0) == ("ok", []), result
        assert outcome(result, 1)[1] == [[{"type": "integer", "value": "0"}]]
        assert outcome(result, 2)[1] == [[{"type": "integer", "value": "0"}]]
        assert outcome(result, 3)[1] == [[{"type": "integer", "value": "0"}]]
        assert outcome(result, 4)[1] == [[{"type": "integer", "value": "2"}]]
        assert outcome(result, 5)[0] == "ok"  # foreign keys are off on a fresh connection
    rows = outcome(run(node, "app", "SELECT count(*) FROM t WHERE x = 'uncommitted'"))[1]
    assert rows == [[{"type": "integer", "value": "0"}]]


@pytest.mark.parametrize("pragma", ["PRAGMA synchronous=OFF", "PRAGMA synchronous=0", "PRAGMA synchronous=NORMAL",
                                    "PRAGMA main.synchronous = 1", "PRAGMA wal_checkpoint", "PRAGMA journal_mode=DELETE"])
def test_durability_and_wal_pragmas_are_refused(node_factory, pragma):
    node = secured(node_factory)
    kind, message = outcome(run(node, "app", pragma))
    assert kind == "error" and "authoriz" in message.lower(), message
    assert outcome(run(node, "app", "PRAGMA synchronous"))[1] == [[{"type": "integer", "value": "2"}]]


def test_a_stream_keeps_its_own_session_until_it_closes(node_factory):
    node = secured(node_factory)
    run(node, "app", "CREATE TABLE t(x)")
    first = run(node, "app", "PRAGMA query_only=1", close=False)
    second = run(node, "app", "INSERT INTO t VALUES (1)", baton=first["baton"])
    kind, message = outcome(second)
    assert kind == "error" and "readonly" in message.lower().replace(" ", "").replace("-", ""), message
    assert outcome(run(node, "app", "INSERT INTO t VALUES (2)"))[0] == "ok"


# 4. DELETE racing data requests that restart the backend.


def test_delete_racing_requests_neither_hangs_nor_brings_the_files_back(node_factory):
    node = secured(node_factory, TURSO_ALLOW_AUTO_PROVISION="false", TURSO_MAX_RUNNING="2")
    for round in range(6):
        name = f"race{round}"
        assert node.admin("POST", f"/v1/namespaces/{name}/create").status == 201
        stop = threading.Event()
        statuses = []

        def hammer(target):
            while not stop.is_set():
                result = pipeline(f"{node.data_url}/{target}", [execute("SELECT 1")], token=DATA)
                statuses.append(result.status)

        # Requests to the namespace and to others, so LRU eviction restarts it while it is deleted.
        threads = [threading.Thread(target=hammer, args=(t,)) for t in [name, name, name, "other-a", "other-b"]]
        for other in ["other-a", "other-b"]:
            node.admin("POST", f"/v1/namespaces/{other}/create")
        for t in threads:
            t.start()
        time.sleep(0.3)
        started = time.time()
        deleted = node.admin("DELETE", f"/v1/namespaces/{name}")
        assert deleted.status == 200, deleted.body
        assert time.time() - started < 15
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        assert set(statuses) <= {200, 404, 502, 503}, set(statuses)  # 502: in flight when stopped
        assert not (node.data_dir / f"{name}.db").exists()
        assert not (node.data_dir / f"{name}.db-wal").exists()
        assert node.admin("GET", f"/v1/namespaces/{name}").status == 404
        assert pipeline(f"{node.data_url}/{name}", [execute("SELECT 1")], token=DATA).status == 404
        assert node.admin("POST", f"/v1/namespaces/{name}/create").status == 201


# 5. One body limit, enforced at the edge.


def test_the_node_and_its_backend_agree_on_the_body_limit(node_factory, tmp_path):
    node = secured(node_factory, TURSO_MAX_BODY_BYTES=str(48 << 20))
    run(node, "app", "CREATE TABLE blobs(v)")
    big = "x" * (40 << 20)  # above the backend's former 32 MiB limit, below the node's
    result = pipeline(f"{node.data_url}/app",
                      [execute("INSERT INTO blobs VALUES (?)", [{"type": "text", "value": big}]), {"type": "close"}],
                      token=DATA)
    assert result.status == 200, result.body[:300]
    assert outcome(result.json())[0] == "ok"
    length = outcome(run(node, "app", "SELECT length(v) FROM blobs"))[1]
    assert length == [[{"type": "integer", "value": str(40 << 20)}]]
    # curl reads the early answer while it sends (urllib would only read after sending everything).
    huge = tmp_path / "huge.json"
    huge.write_bytes(json.dumps({"requests": [execute("SELECT ?", [{"type": "text", "value": "x" * (50 << 20)}])]}).encode())
    refused = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {DATA}", "--data-binary", f"@{huge}",
         f"{node.data_url}/app/v2/pipeline"],
        capture_output=True, timeout=60,
    )
    body, status = refused.stdout.rsplit(b"\n", 1)
    assert status == b"413" and json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE", refused.stdout[-300:]


# 6. Leftovers: staging copies, stray database files.


def test_stray_files_are_archived_not_adopted(node_factory, tmp_path):
    data_dir = tmp_path / "data-stray"
    data_dir.mkdir()
    for name in ["stray", "stray-auto"]:
        foreign = sqlite3.connect(data_dir / f"{name}.db")
        foreign.execute("CREATE TABLE secret(x)")
        foreign.execute("INSERT INTO secret VALUES ('not yours')")
        foreign.commit()
        foreign.close()
    incoming = data_dir / "_state" / "incoming" / "gone"
    incoming.mkdir(parents=True)
    (incoming / "db").write_bytes(b"partial copy")
    node = node_factory({"TURSO_ADMIN_TOKEN": ADMIN, "TURSO_AUTH_TOKEN": DATA}, data_dir=data_dir)
    assert not incoming.exists()
    assert node.admin("POST", "/v1/namespaces/stray/create").status == 201
    for name in ["stray", "stray-auto"]:
        tables = outcome(run(node, name, "SELECT name FROM sqlite_master WHERE name = 'secret'"))[1]
        assert tables == [], name
        archived = list((data_dir / "archive").glob(f"{name}.stale.*/{name}.db"))
        assert len(archived) == 1, name
        check = sqlite3.connect(archived[0])
        assert check.execute("SELECT x FROM secret").fetchall() == [("not yours",)]
    assert any(line.get("msg") == "files of an unregistered namespace were archived before creating it"
               for line in node.logs())


# 7. A built-in backend serves only its node.


def test_backends_refuse_requests_that_do_not_come_from_the_node(node_factory):
    node = secured(node_factory)
    run(node, "app", "CREATE TABLE t(x)", "INSERT INTO t VALUES (1)")
    info = node.admin("GET", "/v1/namespaces/app").json()
    port, pid = info["port"], info["pid"]
    direct = pipeline(f"http://127.0.0.1:{port}", [execute("SELECT * FROM t")])
    assert_error(direct, 401, "UNAUTHORIZED")
    forged = http("POST", f"http://127.0.0.1:{port}/v2/pipeline", {"requests": [execute("SELECT 1")]},
                  headers={"x-turso-backend-secret": "guess"})
    assert forged.status == 401
    pull = http("POST", f"http://127.0.0.1:{port}/pull-updates", b"", headers={"Content-Type": "application/protobuf"})
    assert pull.status == 401
    # The client cannot smuggle a secret through the node either; the node sends its own.
    through = http("POST", f"{node.data_url}/app/v2/pipeline", {"requests": [execute("SELECT * FROM t")]},
                   token=DATA, headers={"x-turso-backend-secret": "guess"})
    assert through.status == 200
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not any(v.startswith(b"TURSO_AUTH_TOKEN=") or v.startswith(b"TURSO_ADMIN_TOKEN=") for v in environ)


# 6. Two live processes with one node id: the second refuses to serve.


def test_a_second_process_with_a_live_node_id_refuses_to_serve(tmp_path):
    from test_cluster import Cluster, ClusterNode

    cluster = Cluster(tmp_path)
    twin = None
    try:
        n1, n2 = cluster.start(2)
        (tmp_path / "twin").mkdir()
        twin = ClusterNode(tmp_path / "twin", 3, cluster.tls, cluster.base, [n1.gossip])
        twin.env.update({
            "TURSO_NODE_ID": "n2",
            "TURSO_TLS_CERT": str(cluster.tls / "n2.pem"),
            "TURSO_TLS_KEY": str(cluster.tls / "n2-key.pem"),
        })
        twin.start(wait=False)
        assert twin.process.wait(timeout=60) == 1
        assert any(line.get("msg") == "another live process already uses this node id; refusing to serve"
                   for line in twin.logs())
        assert not list(twin.data_dir.glob("*.db"))
        assert http("GET", n2.admin_url + "/readyz").status == 200
        assert n2.members()["n2"]["liveness"] == "alive"
        # n2 refuted the twin (a higher incarnation with its own address): n1 routes to n2 again.
        deadline = time.time() + 20
        while n1.members()["n2"]["peerAddress"] != f"{n2.host}:{n2.peer_port}" and time.time() < deadline:
            time.sleep(0.2)
        created = n1.admin("POST", "/v1/namespaces/after-twin/create")
        assert created.status == 201, created.body
    finally:
        kill_nodes([n for n in [twin] if n] + list(cluster.nodes.values()))


def test_restore_installs_a_backup_and_refuses_anything_else(node_factory, tmp_path):
    node = secured(node_factory)
    run(node, "app", "CREATE TABLE t(x)", "INSERT INTO t VALUES ('kept')")
    backup = node.admin("GET", "/v1/namespaces/app/backup")
    assert backup.status == 200
    restore = lambda name, body: http("POST", f"{node.admin_url}/v1/namespaces/{name}/restore", body, token=ADMIN,
                                      headers={"Content-Type": "application/vnd.sqlite3"})
    assert_error(restore("app", backup.body), 409, "NAMESPACE_EXISTS")
    assert node.admin("DELETE", "/v1/namespaces/app").status == 200
    assert_error(restore("app", b"not a database" * 100), 400, "BAD_REQUEST", "SQLite")
    small_pages = tmp_path / "small.db"
    db = sqlite3.connect(small_pages)
    db.execute("PRAGMA page_size=1024")
    db.execute("CREATE TABLE t(x)")
    db.commit()
    db.close()
    assert_error(restore("app", small_pages.read_bytes()), 400, "BAD_REQUEST", "4096")
    corrupt = bytearray(backup.body)
    corrupt[4096:8192] = b"\xff" * 4096
    assert restore("app", bytes(corrupt)).status == 400
    assert node.admin("GET", "/v1/namespaces/app").status == 404
    restored = restore("app", backup.body)
    assert restored.status == 201, restored.body
    assert restored.json()["origin"] == "explicit"
    assert outcome(run(node, "app", "SELECT x FROM t"))[1] == [[{"type": "text", "value": "kept"}]]
    assert not list((node.data_dir / "_state" / "tmp").glob("restore-*"))


def test_command_line_is_parsed_with_generated_help_and_clear_errors(tmp_path):
    from conftest import SYNC_BIN

    def cli(*args, binary=SERVER_BIN):
        return subprocess.run([str(binary), *args], capture_output=True, timeout=30, env={"PATH": os.environ["PATH"]})

    helped = cli("--help")
    assert helped.returncode == 0
    for word in ["certs", "membership-agent", "--sync-server", "TURSO_DATA_DIR", "TURSO_JOIN"]:
        assert word in helped.stdout.decode(), word
    assert cli("version").stdout.decode().strip() == "turso-server 0.1.0"
    assert cli("--version").stdout.decode().strip() == "0.1.0"
    for bad in [("bogus",), ("certs", "ca"), ("certs", "node", "--ca-dir", str(tmp_path), "--name", "n1", "--out",
                                              str(tmp_path), "--days", "999999999999999999999"),
                ("--sync-server", "127.0.0.1:1")]:
        result = cli(*bad)
        assert result.returncode == 64, bad
        assert b"Error:" in result.stderr and b"Usage:" in result.stderr, (bad, result.stderr)
    assert cli("certs", "ca", "--out", str(tmp_path / "pki")).returncode == 0
    assert (tmp_path / "pki" / "ca.pem").exists()
    backend_help = cli("--help", binary=SYNC_BIN)
    assert backend_help.returncode == 0 and b"--sync-server" in backend_help.stdout
    assert cli("--sync-server", "not-an-address", str(tmp_path / "x.db"), binary=SYNC_BIN).returncode == 2
