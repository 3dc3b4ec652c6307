"""A real turso-server node with the built-in backend, driven over HTTP."""

import os
import signal
import socket
import sqlite3
import threading
import time

import pytest
import turso.sync

from conftest import backend_processes, execute, http, pipeline

ADMIN = "admin-secret"
DATA = "data-secret"


def secured(node_factory, **env):
    return node_factory({"TURSO_ADMIN_TOKEN": ADMIN, "TURSO_AUTH_TOKEN": DATA, **env})


def query(node, name, sql, token=DATA):
    return pipeline(f"{node.data_url}/{name}", [execute(sql)], token=token)


def rows_of(result):
    return result.json()["results"][0]["response"]["result"]["rows"]


def test_namespace_lifecycle_through_the_admin_api(node_factory):
    node = secured(node_factory, TURSO_NODE_ID="node-a", TURSO_ZONE="z1")
    members = node.admin("GET", "/v1/cluster/members").json()["members"]
    assert [(m["id"], m["zone"], m["state"], m["liveness"]) for m in members] == [("node-a", "z1", "active", "alive")]
    created = node.admin("POST", "/v1/namespaces/app-1/create")
    assert created.status == 201
    body = created.json()
    assert body["origin"] == "explicit" and body["locked"] is True and body["running"] is True
    assert body["owner"] == "node-a"
    assert node.admin("POST", "/v1/namespaces/app-1/create").status == 409
    assert query(node, "app-1", "CREATE TABLE t(x)").status == 200
    assert query(node, "app-1", "INSERT INTO t VALUES (42)").status == 200

    listed = node.admin("GET", "/v1/namespaces").json()["namespaces"]
    assert [n["name"] for n in listed] == ["app-1"]
    assert node.admin("POST", "/v1/namespaces/app-1/unlock").json()["locked"] is False
    assert node.admin("POST", "/v1/namespaces/app-1/lock").json()["locked"] is True
    ttl = node.admin("POST", "/v1/namespaces/app-1/ttl", {"ttl": "30d"}).json()
    assert ttl["ttl"] == "720h0m0s" and ttl["expiresAt"]
    assert node.admin("POST", "/v1/namespaces/app-1/ttl", {"ttl": "soon"}).status == 400
    assert node.admin("POST", "/v1/namespaces/app-1/ttl", b"{oops").status == 400
    assert node.admin("POST", "/v1/namespaces/app-1/ttl", {"ttl": None}).json()["ttl"] is None
    assert node.admin("POST", "/v1/namespaces/app-1/access").status == 200

    backup = node.admin("GET", "/v1/namespaces/app-1/backup")
    assert backup.status == 200
    path = node.data_dir.parent / "backup.db"
    path.write_bytes(backup.body)
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert check.execute("SELECT x FROM t").fetchall() == [(42,)]
    check.close()

    deleted = node.admin("DELETE", "/v1/namespaces/app-1")
    assert deleted.status == 200
    archive = deleted.json()["archive"]
    assert os.path.exists(os.path.join(archive, "app-1.db"))
    assert node.admin("GET", "/v1/namespaces/app-1").status == 404
    assert node.admin("GET", "/v1/namespaces").json()["namespaces"] == []
    assert backend_processes(node.data_dir) == []


def test_auth_names_and_bad_input_get_clear_json_errors(node_factory):
    node = secured(node_factory, TURSO_MAX_BODY_BYTES="100000")
    assert query(node, "a", "SELECT 1", token=None).status == 401
    assert query(node, "a", "SELECT 1", token="wrong").status == 401
    assert node.admin("GET", "/v1/namespaces", token="wrong").status == 401
    assert node.admin("GET", "/metrics", token="").status == 401
    # Probes need no token.
    assert http("GET", node.admin_url + "/healthz").status == 200
    assert http("GET", node.admin_url + "/readyz").status == 200
    for bad in ["_state", "A", "%2e%2e", "..", "a.b", "a%00b", "-x", "x" * 64]:
        r = http("POST", f"{node.data_url}/{bad}/v2/pipeline", {"requests": []}, token=DATA)
        assert r.status == 400, bad
        assert r.json()["error"]["code"] == "INVALID_NAMESPACE"
        assert node.admin("POST", f"/v1/namespaces/{bad}/create").status in (400, 404), bad
    assert http("GET", node.data_url + "/", token=DATA).status == 404
    unknown = node.admin("GET", "/v2/whatever")
    assert unknown.status == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
    assert node.admin("PUT", "/v1/namespaces/x/lock").status == 405
    too_big = http("POST", f"{node.data_url}/big/v2/pipeline", b"x" * 200_000, token=DATA)
    assert too_big.status == 413
    # The same without a Content-Length: the streamed upload is cut at the limit.
    import http.client as httpclient

    conn = httpclient.HTTPConnection("127.0.0.1", node.data_port, timeout=30)
    conn.request(
        "POST", "/big/v2/pipeline", body=iter([b"x" * 50_000] * 4),
        headers={"Authorization": f"Bearer {DATA}", "Transfer-Encoding": "chunked"}, encode_chunked=True,
    )
    assert conn.getresponse().status == 413
    conn.close()
    # Huge headers are refused by the HTTP layer without harming the node.
    with socket.create_connection(("127.0.0.1", node.data_port)) as s:
        s.sendall(b"GET /a/v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        reply = s.recv(100)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 4")
    assert query(node, "a", "SELECT 1").status == 200
    assert [d.name for d in node.data_dir.iterdir() if d.name.startswith(".")] == []


def test_auto_provision_can_be_disabled(node_factory):
    node = secured(node_factory, TURSO_ALLOW_AUTO_PROVISION="false")
    r = query(node, "ghost", "SELECT 1")
    assert r.status == 404 and "does not exist" in r.json()["error"]["message"]
    assert not (node.data_dir / "ghost.db").exists()
    assert node.admin("POST", "/v1/namespaces/ghost/create").status == 201
    assert query(node, "ghost", "SELECT 1").status == 200


def test_namespace_cap(node_factory):
    node = secured(node_factory, TURSO_MAX_NAMESPACES="2")
    assert query(node, "n1", "SELECT 1").status == 200
    assert node.admin("POST", "/v1/namespaces/n2/create").status == 201
    capped = query(node, "n3", "SELECT 1")
    assert capped.status == 429 and "TURSO_MAX_NAMESPACES" in capped.json()["error"]["message"]
    assert node.admin("POST", "/v1/namespaces/n3/create").status == 429


def test_pyturso_bootstraps_pushes_and_pulls_through_the_data_port(tmp_path, node_factory):
    node = secured(node_factory)
    url = f"{node.data_url}/sync-app"
    assert query(node, "sync-app", "CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)").status == 200
    a = turso.sync.connect(str(tmp_path / "a.db"), remote_url=url, auth_token=DATA)
    b = turso.sync.connect(str(tmp_path / "b.db"), remote_url=url, auth_token=DATA)
    a.execute("INSERT INTO t VALUES ('from-a', '1')")
    a.commit()
    a.push()
    assert b.pull() is True
    assert b.execute("SELECT * FROM t").fetchall() == [("from-a", "1")]
    with pytest.raises(Exception, match="401"):
        turso.sync.connect(str(tmp_path / "c.db"), remote_url=url, auth_token="wrong")


def test_backend_killed_mid_use_gets_an_error_then_recovers(node_factory):
    node = secured(node_factory)
    assert query(node, "crashy", "CREATE TABLE t(x)").status == 200
    pid = node.backend_pid("crashy")
    assert pid
    os.kill(pid, signal.SIGKILL)
    statuses = []
    deadline = time.time() + 15
    while time.time() < deadline:
        r = query(node, "crashy", "INSERT INTO t VALUES (1)")
        statuses.append(r.status)
        if r.status == 200:
            break
        assert r.status in (502, 503), r.body
        assert r.json()["error"]["message"]
        time.sleep(0.1)
    assert statuses[-1] == 200
    assert node.backend_pid("crashy") not in (None, pid)
    metrics = node.admin("GET", "/metrics").body.decode()
    assert "turso_backend_crashes_total 1" in metrics


def test_node_restart_keeps_state_and_data(node_factory, tmp_path):
    node = secured(node_factory)
    node.admin("POST", "/v1/namespaces/keep/create")
    node.admin("POST", "/v1/namespaces/keep/ttl", {"ttl": "2h"})
    query(node, "keep", "CREATE TABLE t(x)")
    query(node, "keep", "INSERT INTO t VALUES ('durable')")
    query(node, "auto-one", "SELECT 1")
    node.kill()  # SIGKILL: no chance to flush anything
    time.sleep(1.5)  # the built-in backends notice their parent is gone
    assert backend_processes(node.data_dir) == []
    node.start()
    listed = {n["name"]: n for n in node.admin("GET", "/v1/namespaces").json()["namespaces"]}
    assert set(listed) == {"keep", "auto-one"}
    assert listed["keep"]["ttl"] == "2h0m0s" and listed["keep"]["locked"] is True
    assert listed["auto-one"]["origin"] == "auto"
    assert rows_of(query(node, "keep", "SELECT x FROM t")) == [[{"type": "text", "value": "durable"}]]


def test_state_from_a_newer_version_is_a_clear_startup_error(node_factory):
    node = node_factory(start=False)
    state = node.data_dir / "_state"
    state.mkdir(parents=True)
    db = sqlite3.connect(state / "registry.db")
    db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('format_version', '99')")
    db.commit()
    db.close()
    node.start(wait=False)
    assert node.process.wait(timeout=20) != 0
    assert any("newer than this build" in str(line.get("error", "")) for line in node.logs())
    (state / "registry.db").write_bytes(b"this is not a database" * 100)
    node.start(wait=False)
    assert node.process.wait(timeout=20) != 0


def test_sigterm_drains_and_leaves_no_backends(node_factory):
    node = secured(node_factory)
    for name in ["s1", "s2", "s3"]:
        assert query(node, name, "SELECT 1").status == 200
    assert len(backend_processes(node.data_dir)) == 3
    assert node.terminate() == 0
    assert backend_processes(node.data_dir) == []
    assert any(line.get("msg") == "node stopped" for line in node.logs())


def test_gc_archives_idle_and_expired_namespaces(node_factory):
    node = secured(
        node_factory,
        TURSO_GC_INTERVAL="1s",
        TURSO_AUTO_IDLE_DURATION="2s",
        TURSO_ARCHIVE_RETENTION="1h",
    )
    query(node, "idle-auto", "SELECT 1")
    node.admin("POST", "/v1/namespaces/kept/create")
    node.admin("POST", "/v1/namespaces/short/create")
    node.admin("POST", "/v1/namespaces/short/unlock")
    node.admin("POST", "/v1/namespaces/short/ttl", {"ttl": "1s"})
    deadline = time.time() + 20
    names = None
    while time.time() < deadline:
        names = [n["name"] for n in node.admin("GET", "/v1/namespaces").json()["namespaces"]]
        if names == ["kept"]:
            break
        time.sleep(0.3)
    assert names == ["kept"]
    archived = sorted(p.name.split(".")[0] for p in (node.data_dir / "archive").iterdir())
    assert archived == ["idle-auto", "short"]
    metrics = node.admin("GET", "/metrics").body.decode()
    assert 'turso_gc_actions_total{action="archive"} 2' in metrics


def test_gc_purges_old_archives(node_factory):
    node = node_factory(start=False, env={"TURSO_GC_INTERVAL": "1s", "TURSO_ARCHIVE_RETENTION": "1h"})
    old = node.data_dir / "archive" / "gone.20200101T000000Z"
    old.mkdir(parents=True)
    (old / "gone.db").write_bytes(b"")
    node.start()
    deadline = time.time() + 10
    while old.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not old.exists()


def test_many_namespaces_with_few_running_backends(node_factory):
    node = secured(node_factory, TURSO_MAX_RUNNING="16", TURSO_MAX_NAMESPACES="0")
    names = [f"tenant-{i}" for i in range(1000)]
    errors = []

    def worker(chunk):
        for name in chunk:
            for attempt in range(20):
                r = query(node, name, "SELECT 1")
                if r.status == 200:
                    break
                if r.status != 503:
                    errors.append((name, r.status, r.body))
                    break
                time.sleep(0.05)
            else:
                errors.append((name, "gave up"))

    threads = [threading.Thread(target=worker, args=(names[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert node.admin("GET", "/v1/namespaces").json()["namespaces"].__len__() == 1000
    assert len(backend_processes(node.data_dir)) <= 16
    # A dormant namespace starts again on its next request and keeps its data.
    assert query(node, "tenant-0", "CREATE TABLE t(x)").status == 200
    for name in names[1:40]:
        query(node, name, "SELECT 1")
    assert rows_of(query(node, "tenant-0", "SELECT count(*) FROM t")) == [[{"type": "integer", "value": "0"}]]
    metrics = node.admin("GET", "/metrics").body.decode()
    assert "turso_namespaces_registered 1000" in metrics


def test_external_backend_binary_and_orphan_reaping(node_factory):
    # TURSODB_BIN pointing at an executable is used as-is (here the standalone built-in backend, which,
    # like tursodb, is not told to exit with its parent). A node killed with SIGKILL leaves it running;
    # the restarted node kills it before serving.
    from conftest import SYNC_BIN

    node = secured(node_factory, TURSODB_BIN=str(SYNC_BIN))
    assert query(node, "ext", "CREATE TABLE t(x)").status == 200
    pid = node.backend_pid("ext")
    assert open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0] == str(SYNC_BIN).encode()
    node.kill()
    time.sleep(1.0)
    assert pid in backend_processes(node.data_dir)
    node.start()
    deadline = time.time() + 5
    while pid in backend_processes(node.data_dir) and time.time() < deadline:
        time.sleep(0.1)
    assert pid not in backend_processes(node.data_dir)
    assert query(node, "ext", "INSERT INTO t VALUES (1)").status == 200


def test_slow_clients_are_timed_out(node_factory):
    node = secured(node_factory, TURSO_IDLE_TIMEOUT="1s")
    with socket.create_connection(("127.0.0.1", node.data_port)) as s:
        s.sendall(b"POST /slow/v2/pipeline HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(10)
        started = time.time()
        assert s.recv(100) == b""  # closed by the node, not by our timeout
        assert time.time() - started < 5
    assert query(node, "slow", "SELECT 1").status == 200


def test_concurrent_keep_alive_requests(node_factory):
    # Regression: the proxy once let the upstream client and the server read one request body at the
    # same time, which crashed the node under keep-alive load.
    import json as jsonlib

    from conftest import hammer

    node = secured(node_factory)
    assert query(node, "load", "CREATE TABLE t(x)").status == 200
    body = jsonlib.dumps({"requests": [execute("INSERT INTO t VALUES (1)"), execute("SELECT count(*) FROM t")]})
    failures = hammer(node.data_port, "/load/v2/pipeline", body, clients=12, requests=150, headers={"Authorization": f"Bearer {DATA}"})
    assert failures == []
    assert node.process.poll() is None
    assert rows_of(query(node, "load", "SELECT count(*) FROM t")) == [[{"type": "integer", "value": "1800"}]]


def test_a_taken_backend_port_moves_the_backend_to_another_port(node_factory, tmp_path):
    # A socket bound (not listening) on the first backend port: the probe sees nothing there, the
    # backend's bind fails with EADDRINUSE, and the node retries on the next port within the request.
    from conftest import port_range

    start, _ = port_range(4)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", start))
    try:
        node = secured(node_factory, TURSO_BACKEND_PORT_START=str(start), TURSO_BACKEND_PORT_END=str(start + 3))
        r = query(node, "moved", "SELECT 1")
        assert r.status == 200, r.body
        assert node.admin("GET", "/v1/namespaces/moved").json()["port"] != start
    finally:
        blocker.close()


def test_sigterm_lets_in_flight_requests_finish(tmp_path, node_factory):
    node = secured(node_factory)
    url = f"{node.data_url}/drain"
    assert query(node, "drain", "CREATE TABLE t(x)").status == 200
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=url, auth_token=DATA, long_poll_timeout_ms=2500)
    outcome = {}

    def long_poll():
        started = time.time()
        try:
            outcome["changed"] = client.pull()
        except Exception as error:  # noqa: BLE001
            outcome["error"] = error
        outcome["seconds"] = time.time() - started

    thread = threading.Thread(target=long_poll)
    thread.start()
    time.sleep(0.7)
    node.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # Not accepting any more: readiness fails (or the listener is already closed).
    try:
        assert http("GET", node.admin_url + "/readyz", timeout=2).status == 503
    except OSError:
        pass
    thread.join(timeout=30)
    assert outcome.get("error") is None, outcome
    assert outcome["changed"] is False and outcome["seconds"] >= 2.0
    assert node.process.wait(timeout=30) == 0
    assert backend_processes(node.data_dir) == []


def test_backends_still_start_after_the_binary_is_replaced_on_disk(tmp_path, node_factory):
    # An in-place upgrade deletes the running node's executable; the built-in backend is started
    # through /proc/self/exe, which still names it.
    import shutil

    from conftest import SERVER_BIN

    copy = tmp_path / "turso-server-old"
    shutil.copy2(SERVER_BIN, copy)
    node = node_factory({"TURSO_ADMIN_TOKEN": ADMIN, "TURSO_AUTH_TOKEN": DATA}, start=False)
    node.binary = copy
    node.start()
    assert query(node, "before", "SELECT 1").status == 200
    copy.unlink()
    assert query(node, "after", "SELECT 1").status == 200
