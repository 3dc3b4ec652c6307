#!/usr/bin/env python3
"""A three-node cluster (loopback addresses, mutual TLS) holding many namespaces (default 100,000),
created through the log by admin creates:

1. creates per second while filling it (wrk, 16 connections to each node);
2. GET /v1/namespaces on a node, whole and by page (the local directory, no fan-out);
3. the cluster state on disk per node: raft.db, directory.db and registry.db with their WALs, the
   log's entry count and the snapshot's size, and each node's resident memory before and after
   filling (namespace rows live in directory.db behind a cache of 20,000 rows, not in memory);
4. restart of a member that is not the leader (kill -9): time until its admin port listens and
   until /readyz answers 200 (log reopened, directory applied, ownership attached), and its
   resident memory then.

    swift build -c release && bench/.venv/bin/python bench/cluster_scale.py [namespaces]
"""

import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from cluster import TOKEN, BenchNode
from cluster_log import create_one, leader_of, three_nodes, voters_agree, wait_for, wrk_creates
from common import BIN, Process


def timed_get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - started, len(body)


def ready(node: BenchNode) -> bool:
    try:
        with urllib.request.urlopen(node.url("/readyz"), timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def listening(node: BenchNode) -> bool:
    try:
        with urllib.request.urlopen(node.url("/healthz"), timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def mib(path: Path) -> float:
    files = [path, Path(f"{path}-wal")]
    return sum(f.stat().st_size for f in files if f.exists()) / (1 << 20)


def rss_mib(node: BenchNode) -> float:
    """The node process's resident set size."""
    status = Path(f"/proc/{node.process.p.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def state_figures(node: BenchNode) -> tuple[str, int, int]:
    """Sizes of the node's state databases, its log entries and its snapshot's bytes."""
    state = Path(node.env["TURSO_DATA_DIR"]) / "_state"
    sizes = " / ".join(f"{mib(state / name):.1f}" for name in ("raft.db", "directory.db", "registry.db"))
    with sqlite3.connect(f"file:{state / 'raft.db'}?mode=ro", uri=True) as db:
        entries = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        row = db.execute("SELECT length(value) FROM meta WHERE key = 'snapshot_data'").fetchone()
    return sizes, entries, row[0] if row and row[0] else 0


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        nodes = three_nodes(Path(tmp), 32000)
        for node in nodes:
            node.process = Process([str(BIN / "turso-server")], env=node.env, log=node.log)
        try:
            measure(nodes, count)
        finally:
            for node in nodes:
                if node.process:
                    node.process.stop()


def measure(nodes: list[BenchNode], count: int):
    wait_for(lambda: leader_of(nodes) and voters_agree(nodes), interval=0.05)
    for node in nodes:
        wait_for(lambda: create_one(node, f"warmup-{node.id}") in (201, 409), timeout=60, interval=0.1)
    print("| measure | value |\n|---|---|")
    empty = [rss_mib(node) for node in nodes]
    started, made, round_ = time.perf_counter(), 0, 0
    while made < count:
        _, _, _, created = wrk_creates(nodes, duration=10, prefix=f"s{round_}")
        made += created
        round_ += 1
    elapsed = time.perf_counter() - started
    print(f"| {made:,} admin creates through the log (wrk, 3 × 16 connections) | {made / elapsed:.0f} /s overall |")

    entry = nodes[0]
    whole = [timed_get(entry.url("/v1/namespaces")) for _ in range(3)]
    print(f"| GET /v1/namespaces, all {made + 3:,} ({whole[0][1] / (1 << 20):.0f} MiB of JSON), median of 3 | "
          f"{statistics.median(t for t, _ in whole) * 1000:.0f} ms |")
    paged = [timed_get(entry.url("/v1/namespaces?limit=1000&after=s0-n2-5000")) for _ in range(5)]
    print(f"| GET /v1/namespaces?limit=1000&after=…, median of 5 | {statistics.median(t for t, _ in paged) * 1000:.0f} ms |")

    leader = leader_of(nodes)[0]
    restarted = next(n for n in nodes if n is not leader)
    for node in nodes:
        sizes, entries, snapshot = state_figures(node)
        print(f"| {node.id}: raft.db / directory.db / registry.db (with WALs) | {sizes} MiB |")
        print(f"| {node.id}: log entries kept / snapshot | {entries:,} / {snapshot / (1 << 20):.1f} MiB |")
        print(f"| {node.id}: resident memory, empty → filled | {empty[nodes.index(node)]:.0f} → {rss_mib(node):.0f} MiB |")

    restarted.process.p.send_signal(signal.SIGKILL)
    restarted.process.p.wait()
    started = time.perf_counter()
    restarted.process = Process([str(BIN / "turso-server")], env=restarted.env, log=restarted.log)
    wait_for(lambda: listening(restarted), timeout=120, interval=0.01)
    print(f"| restart of a member (kill -9) over {made + 3:,} namespaces: to listening | "
          f"{(time.perf_counter() - started) * 1000:.0f} ms |")
    wait_for(lambda: ready(restarted), timeout=120, interval=0.01)
    print(f"| ... to /readyz 200 | {(time.perf_counter() - started) * 1000:.0f} ms |")
    time.sleep(2)
    print(f"| {restarted.id}: resident memory after the restart | {rss_mib(restarted):.0f} MiB |")


if __name__ == "__main__":
    main()
