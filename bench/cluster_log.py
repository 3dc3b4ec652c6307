#!/usr/bin/env python3
"""The cluster log across three real nodes on loopback addresses with mutual TLS:

1. Formation: three nodes started together (TURSO_BOOTSTRAP_EXPECT=3) until one leader leads a
   configuration of three voters that every node agrees on.
2. Creates through the log: admin creates from concurrent clients spread over the three nodes (each
   one committed by a majority before its 201), as creates per second and latency percentiles.
3. Leader failover, repeated: kill -9 of the leader until another node leads and has committed an
   entry of its own term (a new leader's first entry), then the old leader is restarted and rejoins.

    swift build -c release && bench/.venv/bin/python bench/cluster_log.py [runs] [creates]
"""

import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cluster import TOKEN, BenchNode, call
from common import BIN, Process, percentile, require


def members(node: BenchNode) -> list[dict] | None:
    """GET /v1/cluster/members of one node (None while it does not answer)."""
    try:
        req = urllib.request.Request(node.url("/v1/cluster/members"), headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=1) as r:
            return json.loads(r.read())["members"]
    except OSError:
        return None


def own_status(node: BenchNode) -> dict | None:
    """This node's own entry (its role, leader flag, term, commit)."""
    return next((m for m in members(node) or [] if m.get("self")), None)


def commit_index(node: BenchNode) -> int | None:
    """The node's committed index from /metrics: local, unlike /v1/cluster/members, which asks every
    live member for its count (a call to a member killed a moment ago can take a second)."""
    try:
        req = urllib.request.Request(node.url("/metrics"), headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    match = re.search(r"^turso_raft_commit_index (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else None


def leader_of(nodes: list[BenchNode]) -> tuple[BenchNode, dict] | None:
    """The node that says it leads, with three voters visible from it."""
    for node in nodes:
        status = own_status(node)
        if status and status.get("leader") and status.get("role") == "voter":
            return node, status
    return None


def wait_for(predicate, timeout=60.0, interval=0.01):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not reached")


def voters_agree(nodes: list[BenchNode]) -> bool:
    views = []
    for node in nodes:
        listed = members(node)
        if listed is None:
            return False
        views.append(sorted((m["id"], m.get("role")) for m in listed))
    return all(v == views[0] for v in views) and [r for _, r in views[0]] == ["voter"] * len(nodes)


def create_one(node: BenchNode, name: str) -> int:
    req = urllib.request.Request(node.url(f"/v1/namespaces/{name}/create"), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code


def create_burst(nodes: list[BenchNode], count: int, clients: int = 32) -> tuple[float, list[float]]:
    """Creates `count` namespaces from `clients` threads, round robin over the nodes: creates per
    second and each create's latency (every answer must be 201)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(first: int):
        for i in range(first, count, clients):
            started = time.perf_counter()
            status = create_one(nodes[i % len(nodes)], f"bench-{i}")
            with lock:
                latencies.append(time.perf_counter() - started)
                if status != 201:
                    failures.append(f"bench-{i}: {status}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:5]
    return count / elapsed, latencies


def wrk_creates(nodes: list[BenchNode], duration: int = 5, prefix: str = "wrk") -> tuple[float, float, float, int]:
    """Admin creates of fresh names from one wrk process per node (no Python client in the way):
    creates per second, mean p50 and worst p99 latency (ms), and how many names exist afterwards.
    Every answer must be 201, and every 201 must be listed."""
    require("wrk")
    runs = []
    for node in nodes:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            "local n = 0\n"
            "request = function()\n"
            "  n = n + 1\n"
            f'  return wrk.format("POST", "/v1/namespaces/{prefix}-{node.id}-" .. n .. "/create",'
            f' {{["Authorization"] = "Bearer {TOKEN}"}})\n'
            "end\n"
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("JSON {\\"requests\\": %d, \\"seconds\\": %f, \\"p50\\": %f, \\"p99\\": %f,'
            ' \\"errors\\": %d, \\"non2xx\\": %d}\\n", summary.requests, summary.duration / 1e6,'
            " latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.connect +"
            " summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))\n"
            "end\n"
        )
        command = ["wrk", "-t", "1", "-c", "16", "-d", f"{duration}s", "--latency", "-s", str(script),
                   node.url("/")]
        runs.append((script, subprocess.Popen(command, stdout=subprocess.PIPE, text=True)))
    results = []
    for script, process in runs:
        out = process.communicate()[0]
        script.unlink()
        results.append(json.loads(re.search(r"JSON (\{.*\})", out).group(1)))
    assert all(r["errors"] == 0 and r["non2xx"] == 0 for r in results), results
    listed = {n["name"] for n in call("GET", nodes[0].url("/v1/namespaces"))["namespaces"]}
    made = sum(1 for name in listed if name.startswith(f"{prefix}-"))
    acknowledged = sum(r["requests"] for r in results)
    assert made >= acknowledged, f"{acknowledged} creates acknowledged, {made} listed"
    rate = sum(r["requests"] / r["seconds"] for r in results)
    return rate, sum(r["p50"] for r in results) / len(results), max(r["p99"] for r in results), made


def three_nodes(work: Path, base: int) -> list[BenchNode]:
    """Three nodes on 127.0.0.1-3 (certificates from a new CA under `work`) that found one cluster
    together, joining through the first one's gossip port; not started."""
    subprocess.run([str(BIN / "turso-server"), "certs", "ca", "--out", str(work / "tls")], check=True,
                   capture_output=True)
    nodes = [BenchNode(work, i, base, f"127.0.0.1:{base + 2}") for i in range(1, 4)]
    for node in nodes:
        node.env["TURSO_BOOTSTRAP_EXPECT"] = "3"
    return nodes


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    creates = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    with tempfile.TemporaryDirectory() as tmp:
        nodes = three_nodes(Path(tmp), 31000)
        try:
            measure(nodes, runs, creates)
        finally:
            for node in nodes:
                if node.process:
                    node.process.stop()


def measure(nodes: list[BenchNode], runs: int, creates: int):
    started = time.perf_counter()
    for node in nodes:
        node.process = Process([str(BIN / "turso-server")], env=node.env, log=node.log)
    wait_for(lambda: leader_of(nodes) and voters_agree(nodes), interval=0.02)
    formation = time.perf_counter() - started
    print("| measure | value |\n|---|---|")
    print(f"| formation of 3 nodes started together (to one leader, 3 agreed voters) | {formation:.2f} s |")
    # Creates need every member active in the directory: one warm-up create through each node.
    for node in nodes:
        wait_for(lambda: create_one(node, f"warmup-{node.id}") in (201, 409), timeout=60, interval=0.1)
    rate, latencies = create_burst(nodes, creates)
    print(f"| admin creates through the log, {creates} from 32 clients over 3 nodes | {rate:.0f} /s |")
    print(f"| ... latency p50 | {percentile(latencies, 50) * 1000:.1f} ms |")
    print(f"| ... latency p99 | {percentile(latencies, 99) * 1000:.1f} ms |")
    wrk_rate, p50, p99, made = wrk_creates(nodes)
    print(f"| admin creates through the log, wrk with 16 connections to each of 3 nodes | {wrk_rate:.0f} /s |")
    print(f"| ... latency p50 (mean over nodes) | {p50:.1f} ms |")
    print(f"| ... latency p99 (worst node) | {p99:.1f} ms |")
    print(f"| ... namespaces created | {made} |")

    failovers = []
    for _ in range(runs):
        leader, status = wait_for(lambda: leader_of(nodes))
        before = status["commitIndex"]
        others = [n for n in nodes if n is not leader]
        killed = time.perf_counter()
        leader.process.p.send_signal(signal.SIGKILL)
        leader.process.p.wait()

        def successor():
            # Only a new leader commits past what the killed one had committed.
            return next((n for n in others if (commit_index(n) or 0) > before), None)

        wait_for(successor, timeout=30, interval=0.005)
        failovers.append(time.perf_counter() - killed)
        leader.process = Process([str(BIN / "turso-server")], env=leader.env, log=leader.log)
        wait_for(lambda: voters_agree(nodes) and leader_of(nodes), timeout=60, interval=0.05)
    print(f"| leader failover, kill -9 to a commit by the next leader, {runs} runs: p50 | "
          f"{percentile(failovers, 50) * 1000:.0f} ms |")
    print(f"| ... p99 | {percentile(failovers, 99) * 1000:.0f} ms |")
    print(f"| ... max | {max(failovers) * 1000:.0f} ms |")
    print(f"| ... every run, sorted | {', '.join(f'{t * 1000:.0f}' for t in sorted(failovers))} ms |")


if __name__ == "__main__":
    main()
