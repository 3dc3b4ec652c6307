"""kill -9 of the built-in backend loses no acknowledged write and clients continue incrementally."""

import threading
import time

import turso.sync

from conftest import execute, pipeline


def test_kill_dash_nine_loses_no_acknowledged_write(tmp_path, sync_server):
    db = tmp_path / "server.db"
    server = sync_server(db)
    pipeline(server.url, [execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")])
    client = turso.sync.connect(str(tmp_path / "c.db"), remote_url=server.url)
    acknowledged = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = pipeline(server.url, [execute(f"INSERT INTO t VALUES ({i}, 'v{i}')")])
                if r.status == 200 and r.json()["results"][0]["type"] == "ok":
                    acknowledged.append(i)
            except Exception:
                return

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.0)
    server.kill()
    stop.set()
    thread.join()
    assert len(acknowledged) > 10
    server.start()  # same port: the client's URL stays valid
    r = pipeline(server.url, [execute("SELECT id FROM t ORDER BY id")]).json()
    stored = {int(row[0]["value"]) for row in r["results"][0]["response"]["result"]["rows"]}
    assert set(acknowledged) <= stored
    integrity = pipeline(server.url, [execute("PRAGMA integrity_check")]).json()
    assert integrity["results"][0]["response"]["result"]["rows"] == [[{"type": "text", "value": "ok"}]]
    # The client that synced before the crash continues incrementally from its revision.
    pipeline(server.url, [execute("INSERT INTO t VALUES (-1, 'after restart')")])
    assert client.pull() is True
    assert client.execute("SELECT v FROM t WHERE id = -1").fetchall() == [("after restart",)]
    assert client.execute("SELECT count(*) FROM t").fetchone()[0] == len(stored) + 1
