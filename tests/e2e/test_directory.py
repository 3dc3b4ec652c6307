"""The one-node cluster log: every namespace change goes through a Raft log persisted under
`_state/` (raft.db, directory.db), survives SIGKILL, imports an older build's registry, keeps a
renamed node's namespaces, and lists in pages."""

import sqlite3
import time

from conftest import http, pipeline, execute

ADMIN = "admin-secret"
DATA = "data-secret"


def secured(node_factory, **env):
    return node_factory({"TURSO_ADMIN_TOKEN": ADMIN, "TURSO_AUTH_TOKEN": DATA, **env})


def query(node, name, sql):
    result = pipeline(f"{node.data_url}/{name}", [execute(sql)], token=DATA)
    assert result.status == 200, result.body
    entry = result.json()["results"][0]
    assert entry["type"] == "ok", entry
    return entry["response"]["result"]["rows"]


def names(node):
    return {n["name"]: n for n in node.admin("GET", "/v1/namespaces").json()["namespaces"]}


def test_changes_go_through_the_log_and_survive_sigkill(node_factory):
    node = secured(node_factory, TURSO_NODE_ID="solo")
    me = node.admin("GET", "/v1/cluster/members").json()["members"][0]
    assert me["role"] == "voter" and me["leader"] is True and me["term"] >= 1
    assert me["appliedIndex"] == me["commitIndex"]
    assert node.admin("POST", "/v1/namespaces/keep/create").status == 201
    assert node.admin("POST", "/v1/namespaces/keep/ttl", {"ttl": "3h"}).status == 200
    assert node.admin("POST", "/v1/namespaces/gone/create").status == 201
    assert node.admin("POST", "/v1/namespaces/gone/unlock").status == 200
    assert node.admin("DELETE", "/v1/namespaces/gone").status == 200
    query(node, "keep", "CREATE TABLE t(x)")
    query(node, "keep", "INSERT INTO t VALUES ('durable')")
    query(node, "auto-made", "SELECT 1")
    node.kill()
    time.sleep(1.5)
    node.start()
    listed = names(node)
    assert set(listed) == {"keep", "auto-made"}
    assert listed["keep"]["ttl"] == "3h0m0s" and listed["keep"]["locked"] is True
    assert listed["auto-made"]["origin"] == "auto" and listed["auto-made"]["owner"] == "solo"
    assert query(node, "keep", "SELECT x FROM t") == [[{"type": "text", "value": "durable"}]]
    # The deleted name is free again, and the log and directory are where the docs say.
    assert node.admin("POST", "/v1/namespaces/gone/create").status == 201
    state = node.data_dir / "_state"
    assert (state / "raft.db").exists() and (state / "directory.db").exists() and (state / "storage-id").exists()
    after = node.admin("GET", "/v1/cluster/members").json()["members"][0]
    assert after["commitIndex"] > me["commitIndex"]
    metrics = node.admin("GET", "/metrics").body.decode()
    assert "turso_raft_term " in metrics and "turso_raft_commit_seconds_bucket" in metrics


def test_an_older_builds_registry_is_imported(node_factory):
    node = node_factory({"TURSO_ADMIN_TOKEN": ADMIN, "TURSO_AUTH_TOKEN": DATA}, start=False)
    state = node.data_dir / "_state"
    state.mkdir(parents=True)
    # What the previous build left: a registry and a database file, no log.
    registry = sqlite3.connect(state / "registry.db")
    registry.executescript(
        """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('format_version', '1');
        CREATE TABLE namespaces(name TEXT PRIMARY KEY, origin TEXT NOT NULL, locked INTEGER NOT NULL,
            ttl_seconds REAL, created_at INTEGER NOT NULL, last_access_at INTEGER NOT NULL);
        INSERT INTO namespaces VALUES ('legacy', 'explicit', 1, 7200, 1700000000000, 1700000000000);
        INSERT INTO namespaces VALUES ('old-auto', 'auto', 0, NULL, 1700000000000, 1700000000000);
        """
    )
    registry.commit()
    registry.close()
    database = sqlite3.connect(node.data_dir / "legacy.db")
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("CREATE TABLE t(x)")
    database.execute("INSERT INTO t VALUES ('from the old build')")
    database.commit()
    database.close()
    node.start()
    listed = names(node)
    assert set(listed) == {"legacy", "old-auto"}
    assert listed["legacy"]["ttl"] == "2h0m0s" and listed["legacy"]["locked"] is True
    assert listed["old-auto"]["origin"] == "auto" and listed["old-auto"]["locked"] is False
    assert query(node, "legacy", "SELECT x FROM t") == [[{"type": "text", "value": "from the old build"}]]
    assert any(line.get("msg") == "imported the namespace registry into the cluster log" for line in node.logs())
    # Imported once: a deleted namespace does not come back at the next start.
    assert node.admin("DELETE", "/v1/namespaces/old-auto").status == 200
    node.terminate()
    node.start()
    assert set(names(node)) == {"legacy"}


def test_a_renamed_node_keeps_its_namespaces(node_factory, tmp_path):
    node = secured(node_factory, TURSO_NODE_ID="old-name")
    query(node, "app", "CREATE TABLE t(x)")
    query(node, "app", "INSERT INTO t VALUES (1)")
    node.terminate()
    node.env["TURSO_NODE_ID"] = "new-name"
    node.start()
    assert names(node)["app"]["owner"] == "new-name"
    assert query(node, "app", "SELECT x FROM t") == [[{"type": "integer", "value": "1"}]]


def test_listing_in_pages(node_factory):
    node = secured(node_factory, TURSO_MAX_RUNNING="4")
    expected = sorted(f"page-{i:02d}" for i in range(23))
    for name in expected:
        query(node, name, "SELECT 1")
    seen, after, pages = [], None, 0
    while True:
        path = "/v1/namespaces?limit=10" + (f"&after={after}" if after else "")
        body = node.admin("GET", path).json()
        pages += 1
        seen += [n["name"] for n in body["namespaces"]]
        after = body.get("next")
        if after is None:
            break
    assert seen == expected and pages == 3
    assert [n["name"] for n in node.admin("GET", "/v1/namespaces?after=page-20").json()["namespaces"]] == [
        "page-21",
        "page-22",
    ]
    assert len(node.admin("GET", "/v1/namespaces").json()["namespaces"]) == 23
    for bad in ["limit=0", "limit=abc", "limit=10001"]:
        refused = node.admin("GET", f"/v1/namespaces?{bad}")
        assert refused.status == 400 and refused.json()["error"]["code"] == "BAD_REQUEST"


def test_sigkill_under_a_stream_of_creates_loses_none(node_factory):
    """Every create that answered 201 before the node was SIGKILLed is there after the restart;
    nothing appears that was not asked for."""
    import threading

    node = secured(node_factory, TURSO_MAX_NAMESPACES="0", TURSO_MAX_RUNNING="8")
    answered, attempted, lock = {}, set(), threading.Lock()
    stop = threading.Event()

    def worker(offset):
        index = offset
        while not stop.is_set():
            name = f"k-{index:05d}"
            with lock:
                attempted.add(name)
            try:
                status = http("POST", f"{node.admin_url}/v1/namespaces/{name}/create", token=ADMIN, timeout=10).status
            except Exception:
                status = None  # the node died mid-request: unknown outcome
            with lock:
                answered[name] = status
            if status is None:
                return
            index += 4

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    node.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    created = {name for name, status in answered.items() if status == 201}
    assert len(created) >= 10, answered
    time.sleep(1.5)
    node.start()
    listed = set(names(node))
    assert created <= listed, sorted(created - listed)
    assert listed <= attempted, sorted(listed - attempted)
    for name in sorted(created)[:5]:
        assert node.admin("POST", f"/v1/namespaces/{name}/create").status == 409
