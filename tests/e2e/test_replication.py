"""WAL shipping across real `turso-server` processes on 127.0.0.x with mutual TLS: with
TURSO_REPLICAS=3 each namespace's owner ships its WAL to two followers, whose copies under
`_replicas/<name>/` hold the owner's database file, WAL and change history byte for byte across
thousands of commits and several checkpoints; a follower killed with SIGKILL catches up when it
comes back."""

import hashlib
import os
import signal
import time

from test_cluster import ADMIN, cluster, rows, sql  # noqa: F401 (the fixture)
from test_cluster_log import wait_for


def digest(path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return hashlib.sha256(b"").hexdigest()


def owner_files(node, name):
    base = node.data_dir / f"{name}.db"
    return [base, base.with_name(f"{name}.db-wal"), base.with_name(f"{name}.db-history")]


def follower_files(node, name):
    copy = node.data_dir / "_replicas" / name
    return [copy / "db", copy / "db-wal", copy / "db-history"]


def identical(owner, followers, name) -> bool:
    want = [digest(p) for p in owner_files(owner, name)]
    return all([digest(p) for p in follower_files(f, name)] == want for f in followers)


def metric(node, name) -> float:
    text = node.admin("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def write(nodes, name, start, count):
    for i in range(start, start + count):
        result = sql(nodes[i % len(nodes)], name, "INSERT INTO t(id, v) VALUES (?, randomblob(900))",
                     [{"type": "integer", "value": str(i)}])
        assert result.status == 200, result.body


def test_followers_hold_the_owners_bytes_across_checkpoints_and_a_kill(cluster):
    cluster.env.update({"TURSO_REPLICAS": "3", "TURSO_SYNC_WAL_LIMIT": "256KiB", "TURSO_MAX_RUNNING": "1"})
    nodes = cluster.start(3)
    # Every member announces format 3 and the leader raises the log to it before replica sets exist.
    wait_for(lambda: all(n.members()[n.id].get("directoryFormat") == 3 for n in nodes), what="format 3")
    assert nodes[0].admin("POST", "/v1/namespaces/rep/create").status == 201
    info = nodes[1].admin("GET", "/v1/namespaces/rep").json()
    owner = next(n for n in nodes if n.id == info["owner"])
    followers = [n for n in nodes if n is not owner]
    replication = info["replication"]
    assert sorted(replication["followers"]) == sorted(f.id for f in followers), info
    assert replication["isr"][0] == owner.id and sorted(replication["isr"][1:]) == sorted(f.id for f in followers)
    assert replication["epoch"] == 1 and replication["isrVersion"] == 1
    assert sorted(info["replicas"]) == sorted(f.id for f in followers)

    assert sql(nodes[2], "rep", "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)").status == 200
    write(nodes, "rep", 0, 1500)
    wait_for(lambda: identical(owner, followers, "rep"), timeout=60, what="byte-identical followers")
    lag = wait_for(lambda: owner.admin("GET", "/v1/namespaces/rep").json()["replication"].get("lagBytes"),
                   what="the owner reports its followers' lag")
    assert sorted(lag) == sorted(f.id for f in followers) and all(v in (0, None) for v in lag.values()), lag
    assert metric(owner, "turso_checkpoints_total") >= 2, "the WAL limit makes the owner checkpoint"
    assert metric(owner, "turso_replication_shipped_bytes_total") > 1_000_000
    # A follower never runs SQLite on its copy: no shared-memory file, no backend for it.
    assert not (followers[0].data_dir / "_replicas" / "rep" / "db-shm").exists()
    assert not (followers[0].data_dir / "rep.db").exists()

    # A follower killed under writes catches up when it comes back.
    victim = followers[0]
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    write([owner, followers[1]], "rep", 1500, 800)
    victim.start()
    cluster.wait_converged(nodes)
    write(nodes, "rep", 2300, 200)
    wait_for(lambda: identical(owner, followers, "rep"), timeout=60, what="the restarted follower caught up")
    # Generations it missed were retired meanwhile: it took the pages changed since its copy's base,
    # not the whole database file.
    installs = [line for line in victim.log_path.read_text().splitlines() if "follower copy installed" in line]
    assert installs and all('"replication.delta":"true"' in line for line in installs[-1:]), installs
    assert rows(nodes[0], "rep", "SELECT count(*) FROM t") == [["2500"]]

    # A follower that comes back while its owner's backend is stopped catches up all the same.
    other = followers[1]
    other.process.send_signal(signal.SIGKILL)
    other.process.wait()
    write([owner, victim], "rep", 2500, 300)
    others = iter(range(1000))
    # One backend at a time (TURSO_MAX_RUNNING=1): using other namespaces on the owner stops rep's.
    wait_for(lambda: sql(owner, f"idle{next(others)}", "SELECT 1").status == 200
             and owner.admin("GET", "/v1/namespaces/rep").json()["state"] == "dormant", what="rep's backend stopped")
    other.start()
    cluster.wait_converged(nodes)
    wait_for(lambda: identical(owner, followers, "rep"), timeout=60, what="a follower caught up from an idle owner")
    assert owner.admin("GET", "/v1/namespaces/rep").json()["state"] == "dormant"

    # Deleting the namespace drops the followers' copies.
    assert nodes[0].admin("DELETE", "/v1/namespaces/rep").status == 200
    wait_for(lambda: all(not (f.data_dir / "_replicas" / "rep").exists() for f in followers), timeout=40,
             what="the copies dropped")
