#!/usr/bin/env python3
"""Benchmark of the built-in backend (issue 3): statements/s over Hrana vs in-process libsqlite3,
bootstrap throughput of a 100 MB database with pyturso, incremental pull latency on a long WAL.

    swift build -c release && bench/.venv/bin/python bench/backend.py   (needs wrk)
"""

import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import turso.sync

from common import BIN, Process, free_port, percentile, post, wait_port, wrk

INSERT = {"sql": "INSERT INTO t(v) VALUES ('payload-0123456789')"}


def start_server(db: Path, env=None) -> tuple[Process, str]:
    port = free_port()
    p = Process([str(BIN / "turso-sync-server"), "--sync-server", f"127.0.0.1:{port}", str(db)], env=env)
    wait_port(port)
    return p, f"http://127.0.0.1:{port}"


def in_process(db: Path, synchronous: str) -> tuple[float, float]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 5:
        conn.execute(INSERT["sql"])
        n += 1
    single = n / (time.perf_counter() - t)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 5:
        conn.execute("BEGIN")
        for _ in range(100):
            conn.execute(INSERT["sql"])
        conn.execute("COMMIT")
        n += 100
    batch = n / (time.perf_counter() - t)
    conn.close()
    return single, batch


def statements(work: Path):
    print("## Statements per second (wrk -t2 -c16 -d10s; in-process = Python's sqlite3 on the same libsqlite3)\n")
    print("| synchronous | single-statement pipeline | in-process single | 100-statement batch (BEGIN…COMMIT) | in-process batch |")
    print("|---|---|---|---|---|")
    single_body = json.dumps({"requests": [{"type": "execute", "stmt": INSERT}, {"type": "close"}]})
    steps = [{"stmt": {"sql": "BEGIN IMMEDIATE"}}] + [{"stmt": INSERT}] * 100 + [{"stmt": {"sql": "COMMIT"}}]
    batch_body = json.dumps({"requests": [{"type": "batch", "batch": {"steps": steps}}, {"type": "close"}]})
    for mode in ["full", "normal"]:
        db = work / f"stmts-{mode}.db"
        server, url = start_server(db, {"TURSO_SYNC_SYNCHRONOUS": mode})
        post(url + "/v2/pipeline", {"requests": [{"type": "execute", "stmt": {"sql": "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"}}]})
        single = wrk(url + "/v2/pipeline", single_body)
        batch = wrk(url + "/v2/pipeline", batch_body, connections=4)
        server.stop()
        local_single, local_batch = in_process(work / f"local-{mode}.db", mode)
        print(f"| {mode} | {single['rps']:.0f} (p99 {single['p99']:.1f} ms) | {local_single:.0f} | "
              f"{batch['rps'] * 100:.0f} | {local_batch:.0f} |")


def bootstrap(work: Path):
    db = work / "big.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB)")
    blob = os.urandom(4000)
    conn.executemany("INSERT INTO b(data) VALUES (?)", [(blob,) for _ in range(25_000)])
    conn.commit()
    conn.close()
    size = db.stat().st_size
    server, url = start_server(db)
    t = time.perf_counter()
    client = turso.sync.connect(str(work / "big-client.db"), remote_url=url)
    elapsed = time.perf_counter() - t
    count = client.execute("SELECT count(*) FROM b").fetchone()[0]
    server.stop()
    print(f"\n## Bootstrap\n\n{size / 1e6:.0f} MB database ({count} rows) bootstrapped by pyturso in {elapsed:.2f} s: "
          f"{size / 1e6 / elapsed:.0f} MB/s")


def pull_latency(work: Path):
    print("\n## Incremental pull of a one-row change (pyturso pull(), 30 runs)\n")
    print("| WAL frames before the change | p50 ms | p99 ms |")
    print("|---|---|---|")
    for commits in [100, 50_000]:
        db = work / f"wal-{commits}.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        for i in range(commits):
            conn.execute("INSERT INTO t(v) VALUES (?)", (f"row-{i}",))
        frames = (Path(str(db) + "-wal").stat().st_size - 32) // 4120
        # Python's sqlite3 cannot disable the checkpoint on close: close only once the server holds the
        # database open, so this connection is not the last one and leaves the WAL alone.
        server, url = start_server(db)
        conn.close()
        client = turso.sync.connect(str(work / f"wal-client-{commits}.db"), remote_url=url)
        samples = []
        for i in range(30):
            post(url + "/v2/pipeline", {"requests": [{"type": "execute", "stmt": {"sql": f"INSERT INTO t(v) VALUES ('new-{i}')"}}, {"type": "close"}]})
            t = time.perf_counter()
            assert client.pull()
            samples.append((time.perf_counter() - t) * 1000)
        server.stop()
        print(f"| {frames} | {percentile(samples, 50):.2f} | {percentile(samples, 99):.2f} |")


def main():
    work = Path(tempfile.mkdtemp(prefix="turso-bench-"))
    statements(work)
    bootstrap(work)
    pull_latency(work)


if __name__ == "__main__":
    main()
