"""Bounded storage: checkpoints retire WAL generations into a page-change index, and real clients
(pyturso embedded replicas, turso-serverless) keep working across them."""

import os
import random
import re
import signal
import socket
import threading
import time

import turso.sync
import turso_serverless

from conftest import execute, http, pipeline


def text(value):
    return {"type": "text", "value": value}


def checkpoint(url, wait_ms=2000):
    return http("POST", f"{url}/_turso/checkpoint?wait_ms={wait_ms}", b"")


def rows(conn, table="t"):
    return sorted(conn.execute(f"SELECT id, v FROM {table}").fetchall())


def full_snapshots(log_text):
    return log_text.count("sending a full snapshot")


def metric(node, name):
    body = node.admin("GET", "/metrics").body.decode()
    match = re.search(rf"^{name} (\S+)$", body, re.M)
    return float(match.group(1)) if match else 0.0


def wait_until(predicate, timeout=20.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def test_pyturso_pulls_incrementally_across_node_checkpoints(tmp_path, node_factory):
    node = node_factory({"TURSO_SYNC_WAL_LIMIT": "64KiB"})
    url = f"{node.data_url}/ckpt"
    pipeline(url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=url)
    assert rows(client) == []
    wal = node.data_dir / "ckpt.db-wal"
    expected = []
    for round in range(3):
        before = metric(node, "turso_checkpoints_total")
        for i in range(30):
            key = f"r{round}-{i}"
            pipeline(url, [execute("INSERT INTO t VALUES (?, ?)", [text(key), text("x" * 1500)])])
            expected.append((key, "x" * 1500))
        # The node notices the WAL past its limit and checkpoints it (again if writes went on past
        # the limit meanwhile).
        assert wait_until(
            lambda: metric(node, "turso_checkpoints_total") > before and wal.stat().st_size < 64 << 10
        ), f"no checkpoint brought the WAL under its limit ({wal.stat().st_size} bytes)"
        assert client.pull() is True
        assert rows(client) == sorted(expected)
    assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    # Every pull after the first was incremental: no client was sent a full snapshot.
    assert full_snapshots(node.log_path.read_text()) == 0
    history = node.data_dir / "ckpt.db-history"
    assert history.exists() and history.stat().st_size < 4096
    # The admin API shows the files' sizes.
    storage = node.admin("GET", "/v1/namespaces/ckpt").json()["storage"]
    assert storage["historyBytes"] == history.stat().st_size
    assert storage["databaseBytes"] > 100_000 and storage["walBytes"] < 64 << 10


def test_five_thousand_one_row_updates_keep_the_wal_bounded(node_factory):
    limit = 256 << 10
    node = node_factory({"TURSO_SYNC_WAL_LIMIT": str(limit)})
    url = f"{node.data_url}/counter"
    pipeline(url, [execute("CREATE TABLE c(id INTEGER PRIMARY KEY, n INTEGER)"), execute("INSERT INTO c VALUES (1, 0)")])
    wal = node.data_dir / "counter.db-wal"
    largest = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                largest[0] = max(largest[0], wal.stat().st_size)
            except FileNotFoundError:
                pass
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def update(count):
        for _ in range(count):
            assert pipeline(url, [execute("UPDATE c SET n = n + 1 WHERE id = 1")]).status == 200

    workers = [threading.Thread(target=update, args=(1250,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    sampler.join()
    result = pipeline(url, [execute("SELECT n FROM c")]).json()
    assert result["results"][0]["response"]["result"]["rows"][0][0]["value"] == "5000"
    # Without checkpoints these updates leave a WAL of about 20 MB. The limit is soft (checked every
    # 250 ms), so allow what 250 ms of writes add on a slow machine.
    print(f"largest WAL {largest[0]} bytes, limit {limit}")
    assert largest[0] < limit + (4 << 20)
    assert wait_until(lambda: wal.stat().st_size < limit)
    assert metric(node, "turso_checkpoints_total") >= 3
    db = node.data_dir / "counter.db"
    assert db.stat().st_size < 64 << 10
    assert (node.data_dir / "counter.db-history").stat().st_size < 64 << 10


def test_a_client_older_than_the_retained_history_bootstraps(tmp_path, sync_server):
    server = sync_server(env={"TURSO_SYNC_HISTORY_RETENTION_SECONDS": "1"})
    pipeline(server.url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")])
    pipeline(server.url, [execute("INSERT INTO t VALUES ('a', 'old')")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url)
    assert rows(client) == [("a", "old")]
    pipeline(server.url, [execute("INSERT INTO t VALUES ('b', 'x')")])
    assert checkpoint(server.url).status == 200
    time.sleep(1.5)
    pipeline(server.url, [execute("UPDATE t SET v = 'new' WHERE id = 'a'")])
    # This checkpoint expires the first retired generation: the client's revision is now too old.
    assert checkpoint(server.url).status == 200
    assert client.pull() is True
    assert rows(client) == [("a", "new"), ("b", "x")]
    assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert full_snapshots(server.log_path.read_text()) == 1


def test_interactive_transaction_across_a_checkpoint(sync_server):
    server = sync_server()
    setup = turso_serverless.connect(server.url)
    setup.cursor().execute("CREATE TABLE t(x INTEGER)")
    setup.commit()
    conn = turso_serverless.connect(server.url)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    # A checkpoint waits for the open transaction and gives up for now; the transaction goes on.
    busy = checkpoint(server.url, wait_ms=100)
    assert busy.status == 409
    assert busy.json()["error"]["code"] == "CHECKPOINT_BUSY"
    cur.execute("INSERT INTO t VALUES (2)")
    # A checkpoint asked meanwhile waits; the transaction commits while it waits, then it runs.
    outcome = {}
    waiter = threading.Thread(target=lambda: outcome.update(r=checkpoint(server.url, wait_ms=10000)))
    waiter.start()
    time.sleep(0.2)
    conn.commit()
    waiter.join()
    assert outcome["r"].status == 200, outcome["r"].body
    assert outcome["r"].json()["retired_commits"] >= 2
    cur.execute("SELECT count(*) FROM t")
    assert cur.fetchone() == (2,)
    cur.execute("INSERT INTO t VALUES (3)")
    conn.commit()
    other = turso_serverless.connect(server.url).cursor()
    other.execute("SELECT x FROM t ORDER BY x")
    assert other.fetchall() == [(1,), (2,), (3,)]


def test_chunked_bootstrap_and_pulls_racing_checkpoints_see_consistent_pages(tmp_path, sync_server):
    server = sync_server()
    pipeline(
        server.url,
        [
            execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"),
            execute("CREATE TABLE c(n INTEGER)"),
            execute("INSERT INTO c VALUES (0)"),
        ],
    )
    stop = threading.Event()
    written = [0]

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            # One transaction: a row and the counter move together, so a torn snapshot shows.
            pipeline(
                server.url,
                [
                    execute("BEGIN"),
                    execute("INSERT INTO t VALUES (?, ?)", [{"type": "integer", "value": str(i)}, text("y" * 3000)]),
                    execute("UPDATE c SET n = n + 1"),
                    execute("COMMIT"),
                ],
            )
            written[0] = i

    def checkpointer():
        while not stop.is_set():
            checkpoint(server.url, wait_ms=50)
            time.sleep(0.01)

    threads = [threading.Thread(target=writer), threading.Thread(target=checkpointer)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: written[0] > 50)
        for k in range(3):
            client = turso.sync.connect(str(tmp_path / f"c{k}.db"), remote_url=server.url, pull_bytes_threshold=16384)
            for _ in range(3):
                n = client.execute("SELECT n FROM c").fetchone()[0]
                assert client.execute("SELECT count(*) FROM t").fetchone()[0] == n
                assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
                time.sleep(0.1)
                client.pull()
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_kill_during_checkpoints_and_commits_loses_no_acknowledged_write(tmp_path, sync_server):
    db = tmp_path / "server.db"
    server = sync_server(db)
    pipeline(server.url, [execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url)
    acknowledged = []
    rng = random.Random(7)
    next_id = [0]
    for drill in range(4):
        stop = threading.Event()

        def writer():
            while not stop.is_set():
                next_id[0] += 1
                key = next_id[0]
                try:
                    response = pipeline(server.url, [execute("INSERT INTO t VALUES (?, ?)", [{"type": "integer", "value": str(key)}, text("z" * 2000)])])
                except Exception:  # the backend was killed mid-request
                    return
                if response.status == 200 and response.json()["results"][0]["type"] == "ok":
                    acknowledged.append(key)

        def checkpointer():
            while not stop.is_set():
                try:
                    checkpoint(server.url, wait_ms=20)
                except Exception:  # the backend was killed mid-request
                    return

        threads = [threading.Thread(target=writer), threading.Thread(target=checkpointer)]
        for thread in threads:
            thread.start()
        time.sleep(0.3 + rng.random() * 0.7)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join()
        server.start()
        result = pipeline(server.url, [execute("SELECT id FROM t")]).json()
        present = {int(r[0]["value"]) for r in result["results"][0]["response"]["result"]["rows"]}
        missing = [key for key in acknowledged if key not in present]
        assert not missing, f"drill {drill}: acknowledged writes lost: {missing[:10]}"
        # The history stays pullable: the client catches up (incrementally or by a clean resync).
        client.pull()
        assert {r[0] for r in client.execute("SELECT id FROM t").fetchall()} == present
        assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_client_that_stops_reading_a_pull_does_not_keep_checkpoints_away(sync_server):
    server = sync_server(env={"TURSO_SYNC_PULL_STALL_SECONDS": "1"})
    pipeline(server.url, [execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")])
    for _ in range(10):
        pipeline(server.url, [execute("INSERT INTO t(v) SELECT randomblob(4000) FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) SELECT i FROM n)")])
    # A client asks for the whole database (about 20 MB) and never reads the answer.
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"POST /pull-updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/protobuf\r\nContent-Length: 0\r\n\r\n")
    try:
        time.sleep(0.3)
        # While its pull is in flight, a checkpoint waits for it and gives up for now.
        assert checkpoint(server.url, wait_ms=100).status == 409
        # Past the stall bound the pull is cut off, and the checkpoint runs.
        time.sleep(1.5)
        response = checkpoint(server.url, wait_ms=2000)
        assert response.status == 200, response.body
    finally:
        stalled.close()


def test_a_held_checkpoint_makes_writes_wait_and_retires_only_the_end_it_named(sync_server):
    """The two halves a node with followers uses: `hold_ms` holds the barrier and names the WAL's
    committed end; only that end is retired; a hold that is released or expires lets writes on."""
    server = sync_server()
    setup = turso_serverless.connect(server.url)
    setup.cursor().execute("CREATE TABLE t(x INTEGER)")
    setup.commit()

    def insert(value, results):
        conn = turso_serverless.connect(server.url)
        conn.cursor().execute("INSERT INTO t VALUES (?)", (value,))
        conn.commit()
        results.append((value, time.time()))

    held = http("POST", f"{server.url}/_turso/checkpoint?hold_ms=5000&wait_ms=2000", b"")
    assert held.status == 200, held.body
    token, end = held.json()["held"], held.json()["wal_end"]
    assert end > 0
    results = []
    writer = threading.Thread(target=insert, args=(1, results))
    writer.start()
    time.sleep(0.5)
    assert results == [], "a write waits while the checkpoint is held"
    # Another end than the one named retires nothing (409); the hold is over and the write goes on.
    wrong = http("POST", f"{server.url}/_turso/checkpoint?held={token}&wal_end={end + 4120}", b"")
    assert wrong.status == 409 and wrong.json()["error"]["code"] == "CHECKPOINT_BUSY"
    writer.join(timeout=10)
    assert [v for v, _ in results] == [1], "the write did not go on after the hold ended"
    # Held again, finished at its end: retired; the write that waited then lands in a new WAL.
    held = http("POST", f"{server.url}/_turso/checkpoint?hold_ms=5000", b"").json()
    writer = threading.Thread(target=insert, args=(2, results))
    writer.start()
    time.sleep(0.3)
    done = http("POST", f"{server.url}/_turso/checkpoint?held={held['held']}&wal_end={held['wal_end']}", b"")
    assert done.status == 200 and done.json()["retired_commits"] >= 1, done.body
    writer.join(timeout=10)
    # A finish after the token was used, a release of an unknown token: refused / harmless.
    again = http("POST", f"{server.url}/_turso/checkpoint?held={held['held']}&wal_end={held['wal_end']}", b"")
    assert again.status == 409
    assert http("POST", f"{server.url}/_turso/checkpoint?release=12345", b"").status == 200
    # A hold nobody finishes expires: writes go on after hold_ms.
    assert http("POST", f"{server.url}/_turso/checkpoint?hold_ms=300", b"").status == 200
    started = time.time()
    insert(3, results)
    assert time.time() - started < 3
    held = http("POST", f"{server.url}/_turso/checkpoint?hold_ms=5000", b"").json()
    assert http("POST", f"{server.url}/_turso/checkpoint?release={held['held']}", b"").status == 200
    insert(4, results)
    cur = turso_serverless.connect(server.url).cursor()
    cur.execute("SELECT x FROM t ORDER BY x")
    assert cur.fetchall() == [(1,), (2,), (3,), (4,)]
    assert http("POST", f"{server.url}/_turso/checkpoint?hold_ms=nope", b"").status == 400
