"""The built-in backend's Hrana over HTTP, with the real turso-serverless client and raw pipelines."""

import base64

import pytest
import turso_serverless

from conftest import execute, http, pipeline


def test_queries_with_turso_serverless(sync_server):
    server = sync_server()
    conn = turso_serverless.connect(server.url)
    cur = conn.cursor()
    cur.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
    cur.execute("INSERT INTO t(name, score, data) VALUES (?, ?, ?)", ("ada", 1.5, b"\x00\x01\xff"))
    assert cur.lastrowid == 1
    cur.execute("INSERT INTO t(name, score, data) VALUES (?, ?, ?)", ("bob", None, b""))
    conn.commit()
    cur.execute("SELECT id, name, score, data FROM t ORDER BY id")
    assert cur.fetchall() == [(1, "ada", 1.5, b"\x00\x01\xff"), (2, "bob", None, b"")]
    cur.execute("UPDATE t SET score = 2 WHERE id >= 1")
    assert cur.rowcount == 2
    conn.close()


def test_interactive_transaction_with_batons(sync_server):
    server = sync_server()
    setup = turso_serverless.connect(server.url)
    setup.cursor().execute("CREATE TABLE t(x INTEGER)")
    setup.commit()
    conn = turso_serverless.connect(server.url)
    other = turso_serverless.connect(server.url)
    cur = conn.cursor()
    cur.execute("INSERT INTO t VALUES (1)")
    assert conn.in_transaction
    cur.execute("INSERT INTO t VALUES (2)")
    # Not visible to another stream before commit.
    oc = other.cursor()
    oc.execute("SELECT count(*) FROM t")
    assert oc.fetchone() == (0,)
    conn.commit()
    oc.execute("SELECT count(*) FROM t")
    assert oc.fetchone() == (2,)
    conn.close()
    other.close()


def test_error_mid_transaction_keeps_the_transaction_and_rollback_works(sync_server):
    server = sync_server()
    conn = turso_serverless.connect(server.url)
    cur = conn.cursor()
    cur.execute("CREATE TABLE t(x INTEGER PRIMARY KEY)")
    conn.commit()
    cur.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(turso_serverless.IntegrityError):
        cur.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(turso_serverless.OperationalError, match="no such table"):
        cur.execute("SELECT * FROM missing")
    conn.rollback()
    cur.execute("SELECT count(*) FROM t")
    assert cur.fetchone() == (0,)
    conn.close()


def test_pipeline_request_types(sync_server):
    server = sync_server()
    blob = base64.b64encode(b"hello").decode().rstrip("=")
    r = pipeline(server.url, [
        {"type": "sequence", "sql": "CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 'x');"},
        {"type": "store_sql", "sql_id": 7, "sql": "INSERT INTO t VALUES (:a, @b)"},
        {"type": "execute", "stmt": {"sql_id": 7, "named_args": [
            {"name": ":a", "value": {"type": "integer", "value": "9007199254740993"}},
            {"name": "b", "value": {"type": "blob", "base64": blob}}]}},
        {"type": "describe", "sql": "SELECT a FROM t WHERE b = ?"},
        {"type": "get_autocommit"},
        {"type": "close_sql", "sql_id": 7},
        {"type": "execute", "stmt": {"sql_id": 7}},
        execute("SELECT a, b, 1.25 FROM t ORDER BY rowid"),
        {"type": "bogus"},
    ]).json()
    res = r["results"]
    assert [x["type"] for x in res] == ["ok", "ok", "ok", "ok", "ok", "ok", "error", "ok", "error"]
    assert res[2]["response"]["result"]["affected_row_count"] == 1
    described = res[3]["response"]["result"]
    assert described["params"] == [{"name": None}] and described["is_readonly"] is True
    assert res[4]["response"]["is_autocommit"] is True
    rows = res[7]["response"]["result"]["rows"]
    assert rows[1][0] == {"type": "integer", "value": "9007199254740993"}
    assert base64.b64decode(rows[1][1]["base64"]) == b"hello"
    assert rows[0][2] == {"type": "float", "value": 1.25}
    assert r["baton"]


def test_wal_is_protected_from_checkpoints_and_rewrites(sync_server):
    server = sync_server()
    for sql in ["PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode=DELETE", "VACUUM", "ATTACH 'x.db' AS x"]:
        r = pipeline(server.url, [execute(sql)]).json()
        assert r["results"][0]["type"] == "error", sql


def test_batons_are_single_use_and_expired_streams_roll_back(sync_server):
    server = sync_server(env={"TURSO_SYNC_STREAM_EXPIRY_SECONDS": "1"})
    pipeline(server.url, [execute("CREATE TABLE t(x)")])
    first = pipeline(server.url, [execute("BEGIN"), execute("INSERT INTO t VALUES (1)")]).json()
    baton = first["baton"]
    again = pipeline(server.url, [execute("SELECT 1")], baton=baton)
    assert again.status == 200
    reused = pipeline(server.url, [execute("SELECT 1")], baton=baton)
    assert reused.status == 400
    assert reused.json()["error"]["code"] == "STREAM_EXPIRED"
    # The abandoned transaction is rolled back after the expiry and its write lock released.
    import time
    time.sleep(2.5)
    r = pipeline(server.url, [execute("INSERT INTO t VALUES (2)"), execute("SELECT x FROM t")]).json()
    assert r["results"][1]["response"]["result"]["rows"] == [[{"type": "integer", "value": "2"}]]


def test_version_probes_and_bad_requests(sync_server):
    server = sync_server()
    assert http("GET", server.url + "/v2").status == 200
    assert http("GET", server.url + "/v3").status == 200
    assert http("POST", server.url + "/v2/pipeline", b"{not json").status == 400
    assert http("POST", server.url + "/pull-updates", b"\xff\xff\xff").status == 400
    assert http("GET", server.url + "/nope").status == 404


def test_clients_that_never_close_streams_do_not_lock_others_out(sync_server):
    # Every pipeline without `close` leaves a stream; past the stream limit the least recently used
    # idle one is closed, also when many requests race for the last slots.
    import json

    from conftest import hammer

    server = sync_server()
    body = json.dumps({"requests": [execute("SELECT 1")]})
    assert hammer(server.port, "/v2/pipeline", body, clients=12, requests=60) == []
