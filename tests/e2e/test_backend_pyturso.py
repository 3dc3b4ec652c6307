"""The built-in backend against the real embedded-replica client, pyturso (`turso.sync`)."""

import sqlite3
import threading
import time

import pytest
import turso.sync

from conftest import execute, pipeline


def server_write(db_path, sql, args=()):
    """A write by another process with plain sqlite3 (autocheckpoint off, as every writer must)."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def make_db_with_main_file_data(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(f"m{i}", "main") for i in range(50)])
    conn.commit()
    conn.close()


def rows(conn):
    return sorted(conn.execute("SELECT id, v FROM t").fetchall())


def test_bootstrap_includes_main_file_and_wal_pages(tmp_path, sync_server):
    db = tmp_path / "server.db"
    make_db_with_main_file_data(db)
    server = sync_server(db)
    pipeline(server.url, [execute("INSERT INTO t VALUES ('w1', 'wal')")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url)
    got = rows(client)
    assert len(got) == 51
    assert ("w1", "wal") in got
    assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_pull_after_server_write_then_nothing_new(tmp_path, sync_server):
    db = tmp_path / "server.db"
    make_db_with_main_file_data(db)
    server = sync_server(db)
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url)
    server_write(db, "INSERT INTO t VALUES ('ext', 'sqlite3')")
    assert client.pull() is True
    assert ("ext", "sqlite3") in rows(client)
    assert client.pull() is False


def test_push_and_two_clients_pushing(tmp_path, sync_server):
    server = sync_server(tmp_path / "server.db")
    pipeline(server.url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")])
    a = turso.sync.connect(str(tmp_path / "a.db"), remote_url=server.url, client_name="a")
    b = turso.sync.connect(str(tmp_path / "b.db"), remote_url=server.url, client_name="b")
    for i in range(3):
        a.execute("INSERT INTO t VALUES (?, 'a')", (f"a{i}",))
        b.execute("INSERT INTO t VALUES (?, 'b')", (f"b{i}",))
    a.commit()
    b.commit()
    a.push()
    b.push()
    result = pipeline(server.url, [execute("SELECT id FROM t ORDER BY id")]).json()
    ids = [r[0]["value"] for r in result["results"][0]["response"]["result"]["rows"]]
    assert ids == ["a0", "a1", "a2", "b0", "b1", "b2"]
    a.pull()
    b.pull()
    assert rows(a) == rows(b)
    assert len(rows(a)) == 6
    # The pusher pulls its own rows back without duplicates; an empty push is a no-op.
    b.push()
    assert len(rows(b)) == 6


def test_chunked_bootstrap_with_page_selectors(tmp_path, sync_server):
    db = tmp_path / "server.db"
    make_db_with_main_file_data(db)
    server = sync_server(db)
    big = "x" * 3000
    for i in range(40):
        pipeline(server.url, [execute("INSERT INTO t VALUES (?, ?)", [{"type": "text", "value": f"big{i}"}, {"type": "text", "value": big}])])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url, pull_bytes_threshold=16384)
    assert len(rows(client)) == 90
    assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_long_poll_waits_then_returns_early_on_write(tmp_path, sync_server):
    server = sync_server(tmp_path / "server.db")
    pipeline(server.url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url, long_poll_timeout_ms=1500)
    started = time.time()
    assert client.pull() is False
    waited = time.time() - started
    assert waited >= 1.3, waited
    writer = threading.Timer(0.4, lambda: pipeline(server.url, [execute("INSERT INTO t VALUES ('lp', 'x')")]))
    writer.start()
    started = time.time()
    assert client.pull() is True
    assert time.time() - started < 1.4
    assert ("lp", "x") in rows(client)


def test_client_revision_from_another_history_gets_a_full_resync(tmp_path, sync_server):
    # The client syncs with server A, then talks to server B: a copy of A from before A moved on, that
    # took other writes. Bare frame numbers would silently diverge; lineage revisions force a resync.
    db_a = tmp_path / "a.db"
    server_a = sync_server(db_a)
    pipeline(server_a.url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")])
    for i in range(5):
        pipeline(server_a.url, [execute(f"INSERT INTO t VALUES ('common{i}', 'x')")])
    server_a.stop()
    db_b = tmp_path / "b.db"
    for suffix in ("", "-wal"):
        (tmp_path / f"b.db{suffix}").write_bytes((tmp_path / f"a.db{suffix}").read_bytes())
    server_a = sync_server(db_a)
    for i in range(20):
        pipeline(server_a.url, [execute(f"INSERT INTO t VALUES ('only-a{i}', 'a')")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server_a.url)
    assert len(rows(client)) == 25
    server_a.stop()
    server_b = sync_server(db_b)
    for i in range(30):
        pipeline(server_b.url, [execute(f"INSERT INTO t VALUES ('only-b{i}', 'b')")])
    # Point the same client at B: reconnect with the same local files.
    client.close()
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server_b.url)
    client.pull()
    got = rows(client)
    assert not any(r[0].startswith("only-a") for r in got)
    assert len(got) == 35
    assert client.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_push_batch_with_failing_step_is_rolled_back(tmp_path, sync_server):
    server = sync_server(tmp_path / "server.db")
    not_autocommit = {"type": "not", "cond": {"type": "is_autocommit"}}
    steps = [
        {"stmt": {"sql": "BEGIN IMMEDIATE"}},
        {"condition": not_autocommit, "stmt": {"sql": "CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY CHECK (id != 'bad'))"}},
        {"condition": not_autocommit, "stmt": {"sql": "INSERT INTO t VALUES ('good')"}},
        {"condition": not_autocommit, "stmt": {"sql": "INSERT INTO t VALUES ('bad')"}},
        {"condition": not_autocommit, "stmt": {"sql": "INSERT INTO t VALUES ('after')"}},
        {"condition": not_autocommit, "stmt": {"sql": "COMMIT"}},
    ]
    result = pipeline(server.url, [{"type": "batch", "batch": {"steps": steps}}]).json()
    batch = result["results"][0]["response"]["result"]
    assert batch["step_errors"][3]["code"].startswith("SQLITE_CONSTRAINT")
    assert batch["step_results"][4] is None and batch["step_results"][5] is None
    check = pipeline(server.url, [execute("SELECT name FROM sqlite_master WHERE name = 't'")]).json()
    assert check["results"][0]["response"]["result"]["rows"] == []


def test_two_clients_adding_the_same_column_both_push(tmp_path, sync_server):
    # pyturso ignores "duplicate column" errors of ALTER TABLE … ADD COLUMN in a push batch; the
    # server's rollback-on-failure rule must not turn that ignored error into a lost push.
    server = sync_server(tmp_path / "server.db")
    pipeline(server.url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)")])
    a = turso.sync.connect(str(tmp_path / "a.db"), remote_url=server.url, client_name="a")
    b = turso.sync.connect(str(tmp_path / "b.db"), remote_url=server.url, client_name="b")
    for client, name in [(a, "a"), (b, "b")]:
        client.execute("ALTER TABLE t ADD COLUMN extra TEXT")
        client.execute("INSERT INTO t VALUES (?, 'x', ?)", (f"row-{name}", f"extra-{name}"))
        client.commit()
    a.push()
    b.push()
    result = pipeline(server.url, [execute("SELECT id, extra FROM t ORDER BY id")]).json()
    rows = [[c["value"] for c in r] for r in result["results"][0]["response"]["result"]["rows"]]
    assert rows == [["row-a", "extra-a"], ["row-b", "extra-b"]]


def test_a_push_that_fails_on_the_server_commits_nothing(tmp_path, sync_server):
    # A server-side constraint the client does not know about rejects one row of a push. Upstream
    # would commit the other rows and the high-water mark, so the client would never retry the
    # rejected change; here the whole batch is rolled back.
    server = sync_server(tmp_path / "server.db")
    pipeline(server.url, [execute("CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)"), execute("INSERT INTO t VALUES ('s', 'taken')")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url, client_name="c")
    pipeline(server.url, [execute("CREATE UNIQUE INDEX t_v ON t(v)")])
    client.execute("INSERT INTO t VALUES ('ok-1', 'fine')")
    client.execute("INSERT INTO t VALUES ('bad', 'taken')")
    client.execute("INSERT INTO t VALUES ('ok-2', 'also fine')")
    client.commit()
    with pytest.raises(Exception):
        client.push()
    result = pipeline(server.url, [
        execute("SELECT id FROM t ORDER BY id"),
        execute("SELECT count(*) FROM sqlite_master WHERE name = 'turso_sync_last_change_id'"),
    ]).json()
    ids = [r[0]["value"] for r in result["results"][0]["response"]["result"]["rows"]]
    assert ids == ["s"]
    marks = result["results"][1]["response"]["result"]["rows"][0][0]["value"]
    assert marks == "0"  # not even the bookkeeping table of the failed push was committed
