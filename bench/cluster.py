#!/usr/bin/env python3
"""Benchmark of the cluster (issue 6), on loopback addresses with mutual TLS between nodes:

1. SELECT 1 pipelines sent to the namespace's owner, to another node (one forwarding hop over mutual
   TLS), and through nginx in front of the owner (a plain HTTP hop, for comparison).
2. A third node joining a two-node cluster holding N namespaces of about 1 MB each (default 1,000):
   time until every namespace sits on its owner, per-handoff fenced time (from the nodes' logs),
   bytes copied, and the longest request stall seen by a client reading every namespace meanwhile.

    swift build -c release && bench/.venv/bin/python bench/cluster.py [namespaces]   (needs wrk, nginx)
"""

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import BIN, Process, percentile, post, require, wrk
from proxy import SELECT1, nginx_in_front_of

TOKEN = "bench-admin"


def call(method: str, url: str, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"{}")


class BenchNode:
    def __init__(self, work: Path, index: int, base: int, join: str):
        self.id, self.host = f"n{index}", f"127.0.0.{index}"
        self.data, self.admin = base, base + 1
        self.log = work / f"{self.id}.log"
        start = 20000 + index * 1000
        subprocess.run([str(BIN / "turso-server"), "certs", "node", "--ca-dir", str(work / "tls"), "--name", self.id,
                        "--host", self.host, "--out", str(work / "tls")], check=True, capture_output=True)
        self.env = {
            "TURSO_NODE_ID": self.id, "TURSO_DATA_DIR": str(work / self.id),
            "TURSO_DATA_ADDR": f"{self.host}:{base}", "TURSO_ADMIN_ADDR": f"{self.host}:{base + 1}",
            "TURSO_GOSSIP_ADDR": f"{self.host}:{base + 2}", "TURSO_PEER_ADDR": f"{self.host}:{base + 3}",
            "TURSO_JOIN": join, "TURSO_TLS_CA": str(work / "tls" / "ca.pem"),
            "TURSO_TLS_CERT": str(work / "tls" / f"{self.id}.pem"),
            "TURSO_TLS_KEY": str(work / "tls" / f"{self.id}-key.pem"),
            "TURSO_BACKEND_PORT_START": str(start), "TURSO_BACKEND_PORT_END": str(start + 900),
            "TURSO_MAX_NAMESPACES": "0", "TURSO_MAX_RUNNING": "64", "TURSO_ADMIN_TOKEN": TOKEN,
            "TURSODB_BIN": "/nonexistent", "TURSO_MEMBERSHIP_PRESET": "local-testing",
        }
        self.process = None

    def start(self):
        self.process = Process([str(BIN / "turso-server")], env=self.env, log=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}:{self.admin}/readyz", timeout=1)
                return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(self.id)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.admin}{path}"

    def data_url(self, name: str) -> str:
        return f"http://{self.host}:{self.data}/{name}/v2/pipeline"

    def handoffs(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "ownership changed":
                out.append(entry)
        return out


def hops(owner: BenchNode, other: BenchNode, work: Path):
    print("## SELECT 1 pipelines, wrk -t2 -c16 -d10s (one run, same machine)\n")
    print("| path | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    nginx, nginx_port = nginx_in_front_of(owner.data, work, host=owner.host)
    try:
        for label, url in [
            ("owner directly", owner.data_url("bench")),
            ("another node (one forwarding hop, mutual TLS)", other.data_url("bench")),
            ("nginx in front of the owner (plain HTTP hop)", f"http://127.0.0.1:{nginx_port}/bench/bench/v2/pipeline"),
        ]:
            wrk(url, SELECT1, duration=3, connections=4)  # warm-up
            r = wrk(url, SELECT1)
            print(f"| {label} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors'] + r['non2xx']} |")
    finally:
        nginx.stop()
    print()


def fill(node: BenchNode, names: list[str]):
    def work(chunk):
        for name in chunk:
            post(node.data_url(name), {"requests": [
                {"type": "execute", "stmt": {"sql": "CREATE TABLE t(b BLOB)"}},
                {"type": "execute", "stmt": {"sql": "INSERT INTO t VALUES (randomblob(1000000))"}},
                {"type": "close"}]})
    threads = [threading.Thread(target=work, args=(names[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def join(nodes: list[BenchNode], joiner: BenchNode, names: list[str]):
    latencies, errors, stop = [], [0], threading.Event()

    def reader(seed):
        rng = random.Random(seed)
        body = {"requests": [{"type": "execute", "stmt": {"sql": "SELECT length(b) FROM t"}}, {"type": "close"}]}
        while not stop.is_set():
            node = rng.choice(nodes)
            started = time.perf_counter()
            try:
                post(node.data_url(rng.choice(names)), body, timeout=120)
            except Exception:
                errors[0] += 1
            latencies.append(time.perf_counter() - started)

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in readers:
        t.start()
    wanted = set(names)
    time.sleep(2)
    before = len(latencies)
    started = time.time()
    joiner.start()
    ready = time.time() - started
    while True:
        listed = call("GET", nodes[0].url("/v1/namespaces"), timeout=120)["namespaces"]
        mine = [e for e in listed if e["name"] in wanted]
        if len(mine) == len(names) and all(e["owner"] == e["holder"] for e in mine):
            break
        time.sleep(0.5)
    settled = time.time() - started
    stop.set()
    for t in readers:
        t.join()
    during = latencies[before:]
    handoffs = [h for n in nodes for h in n.handoffs()]
    fenced = [int(h["handoff.fenced_ms"]) for h in handoffs]
    moved = sum(int(h["handoff.bytes"]) for h in handoffs)
    print(f"## A third node joins two nodes holding {len(names):,} namespaces of ~1 MB\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| namespaces moved to the new node | {len(handoffs):,} ({moved / 1e6:,.0f} MB) |")
    print(f"| start of the new node to ready (precopy done, active) | {ready:.1f} s |")
    print(f"| start of the new node to every namespace on its owner | {settled:.1f} s |")
    if fenced:
        print(f"| fenced time per handoff p50 / p99 / max | {percentile(fenced, 50)} / {percentile(fenced, 99)} / {max(fenced)} ms |")
    if during:
        print(f"| reads during the join, p50 / p99 / longest | {percentile(during, 50) * 1000:.1f} / "
              f"{percentile(during, 99) * 1000:.1f} / {max(during) * 1000:.0f} ms ({len(during):,} reads, {errors[0]} errors) |")
    print()


def main():
    require("wrk")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    work = Path(tempfile.mkdtemp(prefix="turso-cluster-bench-"))
    subprocess.run([str(BIN / "turso-server"), "certs", "ca", "--out", str(work / "tls")], check=True, capture_output=True)
    base = 11000 + random.randrange(0, 500) * 10
    n1 = BenchNode(work, 1, base, "").start()
    n2 = BenchNode(work, 2, base, f"127.0.0.1:{base + 2}").start()
    n3 = BenchNode(work, 3, base, f"127.0.0.1:{base + 2}")
    try:
        call("POST", n1.url("/v1/namespaces/bench/create"))
        owner_id = call("GET", n1.url("/v1/namespaces/bench"))["owner"]
        owner, other = (n1, n2) if owner_id == "n1" else (n2, n1)
        hops(owner, other, work)
        names = [f"t{i:04d}" for i in range(count)]
        fill(n1, names)
        join([n1, n2], n3, names)
    finally:
        for node in (n1, n2, n3):
            if node.process:
                node.process.stop()


if __name__ == "__main__":
    main()
