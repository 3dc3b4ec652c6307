#!/usr/bin/env python3
"""Benchmark of bounded storage (issue 14): history bytes per commit, first-request latency after a
restart of a namespace that has written 1 GB and 10 GB, pull latency against a long history, and
write throughput through the node with and without checkpoints.

    swift build -c release && bench/.venv/bin/python bench/storage.py   (needs wrk)

Writes of the history phases come from an external sqlite3 connection (auto-checkpoint off) next to
a running built-in backend, which is asked to checkpoint whenever the WAL passes 64 MiB, as the node
does: it is the fastest way to put gigabytes through the WAL on this machine.
"""

import json
import os
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import turso.sync

from common import BIN, Process, free_port, percentile, post, wait_port, wrk

LIMIT = 64 << 20


def start_backend(db: Path, port=None):
    port = port or free_port()
    process = Process([str(BIN / "turso-sync-server"), "--sync-server", f"127.0.0.1:{port}", str(db)])
    wait_port(port)
    return process, f"http://127.0.0.1:{port}", port


def checkpoint(url):
    request = urllib.request.Request(url + "/_turso/checkpoint?wait_ms=10000", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def writer(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def new_database(db: Path, schema: str) -> sqlite3.Connection:
    conn = writer(db)
    conn.execute("PRAGMA page_size=4096")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(schema)
    return conn


def wal_size(db: Path) -> int:
    try:
        return Path(str(db) + "-wal").stat().st_size
    except FileNotFoundError:
        return 0


def size(path) -> int:
    try:
        return Path(path).stat().st_size
    except FileNotFoundError:
        return 0


def first_request_ms(db: Path, port: int) -> float:
    """Starts the backend on `db` and times its first pull (a bootstrap plan reads the WAL index)."""
    started = time.perf_counter()
    process, url, _ = start_backend(db, port)
    post(url + "/v2/pipeline", {"requests": [{"type": "execute", "stmt": {"sql": "SELECT count(*) FROM t"}}]})
    elapsed = (time.perf_counter() - started) * 1000
    process.stop()
    return elapsed


def written_history(work: Path):
    print("## Restart after heavy writes (16 MB table, 256 KiB transactions of updates)\n")
    print("| written in total | checkpoints | WAL at restart | history file | db file | backend start + first request |")
    print("|---|---|---|---|---|---|")
    for total_gb, checkpoints_on in [(1, False), (1, True), (10, True)]:
        db = work / f"written-{total_gb}-{checkpoints_on}.db"
        conn = new_database(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        conn.executemany("INSERT INTO t VALUES (?, zeroblob(3900))", [(i,) for i in range(4096)])
        process, url, port = start_backend(db)
        written, commits, runs = 0, 0, 0
        blob = os.urandom(3900)
        while written < total_gb << 30:
            conn.execute("BEGIN")
            base = (commits * 64) % 4096
            # A new value every time: SQLite skips rewriting a cell whose bytes do not change.
            stamp = commits.to_bytes(8, "little")
            conn.executemany("UPDATE t SET v = ? WHERE id = ?", [(stamp + blob[8:], base + k) for k in range(64)])
            conn.execute("COMMIT")
            commits += 1
            written += 64 * 4120
            if checkpoints_on and wal_size(db) >= LIMIT:
                checkpoint(url)
                runs += 1
        wal = wal_size(db)
        conn.close()  # before the backend stops: Python's sqlite3 checkpoints when it closes last
        process.stop()
        latency = min(first_request_ms(db, free_port()) for _ in range(3))
        print(f"| {total_gb} GB | {runs if checkpoints_on else 'none (today)'} | {wal / 1e6:.1f} MB | "
              f"{size(str(db) + '-history') / 1e3:.1f} kB | {size(db) / 1e6:.1f} MB | {latency:.0f} ms |")
        for suffix in ["", "-wal", "-shm", "-history"]:
            Path(str(db) + suffix).unlink(missing_ok=True)


def one_row_commits(work: Path):
    print("\n## One-row commits: history bytes per commit and pull latency against the history length\n")
    print("| commits of history | checkpoints | history file | history bytes per commit | WAL | pull of a one-row change p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    for commits in [1_000, 1_000_000]:
        db = work / f"rows-{commits}.db"
        conn = new_database(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER)")
        conn.execute("INSERT INTO t VALUES (1, 0)")
        process, url, _ = start_backend(db)
        runs = 0
        for i in range(commits):
            conn.execute("UPDATE t SET n = ? WHERE id = 1", (i,))
            if i % 1000 == 999 and wal_size(db) >= LIMIT:
                checkpoint(url)
                runs += 1
        checkpoint(url)
        runs += 1
        client = turso.sync.connect(str(work / f"rows-client-{commits}.db"), remote_url=url)
        samples = []
        for i in range(30):
            post(url + "/v2/pipeline", {"requests": [{"type": "execute", "stmt": {"sql": f"UPDATE t SET n = {i} WHERE id = 1"}}]})
            started = time.perf_counter()
            assert client.pull()
            samples.append((time.perf_counter() - started) * 1000)
        history = size(str(db) + "-history")
        print(f"| {commits:,} | {runs} | {history / 1e3:.1f} kB | {history / commits:.2f} | {wal_size(db) / 1e3:.0f} kB | "
              f"{percentile(samples, 50):.2f} / {percentile(samples, 99):.2f} |")
        conn.close()
        process.stop()


def throughput(work: Path):
    print("\n## Write throughput through the node: one-row INSERT pipelines, wrk -t2 -c16 -d10s\n")
    print("| TURSO_SYNC_WAL_LIMIT | requests/s | p50 ms | p99 ms | checkpoints | WAL after |")
    print("|---|---|---|---|---|---|")
    body = json.dumps({"requests": [{"type": "execute", "stmt": {"sql": "INSERT INTO t(v) VALUES (randomblob(200))"}}, {"type": "close"}]})
    for limit in ["64GiB", "64MiB", "4MiB"]:
        data_port, admin_port = free_port(), free_port()
        start = 20000 + (data_port % 500) * 20
        data = work / f"node-{limit}"
        env = {
            "TURSO_DATA_DIR": str(data), "TURSO_DATA_ADDR": f"127.0.0.1:{data_port}",
            "TURSO_ADMIN_ADDR": f"127.0.0.1:{admin_port}", "TURSO_BACKEND_PORT_START": str(start),
            "TURSO_BACKEND_PORT_END": str(start + 20), "TURSO_LOG_LEVEL": "warning", "TURSODB_BIN": "/nonexistent",
            "TURSO_SYNC_WAL_LIMIT": limit,
        }
        node = Process([str(BIN / "turso-server")], env=env, log=work / f"node-{limit}.log")
        wait_port(admin_port)
        wait_port(data_port)
        url = f"http://127.0.0.1:{data_port}/bench/v2/pipeline"
        post(url, {"requests": [{"type": "execute", "stmt": {"sql": "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)"}}]})
        result = wrk(url, body)
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        runs = next((line.split()[1] for line in metrics.splitlines() if line.startswith("turso_checkpoints_total ")), "0")
        label = f"{limit} (no checkpoint in 10 s: today)" if limit == "64GiB" else limit
        print(f"| {label} | {result['rps']:.0f} | {result['p50']:.2f} | {result['p99']:.2f} | {float(runs):.0f} | "
              f"{wal_size(data / 'bench.db') / 1e6:.1f} MB |")
        node.stop()


def main():
    work = Path(tempfile.mkdtemp(prefix="turso-bench-storage-"))
    parts = sys.argv[1:] or ["history", "commits", "throughput"]
    if "commits" in parts:
        one_row_commits(work)
    if "history" in parts:
        written_history(work)
    if "throughput" in parts:
        throughput(work)


if __name__ == "__main__":
    main()
