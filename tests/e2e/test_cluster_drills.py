"""Fault drills for the cluster log with real `turso-server` processes on 127.0.0.x and mutual TLS:
SIGKILL of the leader under a stream of creates (no acknowledged create lost, none twice), creation
with two of five members SIGKILLed, and an iptables partition isolating a minority (it creates and
moves nothing; the majority goes on)."""

import os
import subprocess
import threading
import time

import pytest

from test_cluster import Cluster, cluster, iptables_usable, sql  # noqa: F401 (the fixture)
from test_cluster_log import log_view, settled, wait_for


def leader(nodes):
    """The node the first node's log view names leader."""
    ids = [i for i, m in log_view(nodes[0]).items() if m.get("leader")]
    return next(n for n in nodes if n.id in ids)


def listed(node) -> list[str]:
    return [e["name"] for e in node.admin("GET", "/v1/namespaces").json()["namespaces"]]


class Creator:
    """Creates fresh names one after another through the live entry nodes. A name whose attempt
    ended without an answer (connection error, 5xx) is retried; its create may have committed, so
    a 409 then is its success, but a 409 for a name never tried before is a twin."""

    def __init__(self, entries, prefix: str):
        self.entries = entries
        self.prefix = prefix
        self.created: list[tuple[str, float]] = []
        self.unknown: set[str] = set()
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        index = 0
        while not self.stopping.is_set():
            name = f"{self.prefix}{index}"
            index += 1
            for attempt in range(200):
                if self.stopping.is_set() and name not in self.unknown:
                    return
                entries = self.entries()
                node = entries[(index + attempt) % len(entries)]
                try:
                    answer = node.admin("POST", f"/v1/namespaces/{name}/create")
                except OSError:
                    self.unknown.add(name)
                    time.sleep(0.05)
                    continue
                if answer.status == 201:
                    self.created.append((name, time.time()))
                    break
                if answer.status == 409:
                    if name not in self.unknown:
                        self.errors.append(f"{name}: 409 on the first attempt: {answer.body!r}")
                    self.created.append((name, time.time()))
                    break
                self.unknown.add(name)
                time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(timeout=120)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.created]


def test_leader_sigkill_under_creates_loses_and_duplicates_none(cluster):
    nodes = cluster.start(3)
    wait_for(lambda: settled(nodes, voters=3), what="three voters")
    victim = leader(nodes)
    live = [n for n in nodes if n is not victim]
    with Creator(lambda: live, "k") as creator:
        wait_for(lambda: len(creator.created) >= 20, what="creates before the kill")
        killed_at = time.time()
        victim.kill()
        wait_for(lambda: any(t > killed_at + 0.5 for _, t in creator.created), timeout=60,
                 what="a create committed by the next leader")
        time.sleep(1)
    assert creator.errors == []
    names = creator.names
    assert len(names) == len(set(names))
    times = [t for _, t in creator.created]
    gap = max(b - a for a, b in zip(times, times[1:]) if b > killed_at)
    print(f"leader SIGKILL: longest pause between acknowledged creates {gap:.2f} s")
    # Every acknowledged create is in the directory, once, on the survivors and (restarted) the victim.
    for node in live:
        wait_for(lambda: set(names) <= set(listed(node)), what=f"every create listed on {node.id}")
    victim.start()
    cluster.wait_converged(nodes)
    for node in nodes:
        wait_for(lambda: set(names) <= set(listed(node)), what=f"every create listed on {node.id}")
        names_listed = listed(node)
        assert len(names_listed) == len(set(names_listed))
    for name in names[::7]:
        assert sql(nodes[0], name, "SELECT 1").status == 200, name


def test_creation_goes_on_with_two_of_five_members_killed(cluster):
    cluster.env["TURSO_VOTERS"] = "5"
    nodes = cluster.start(5)
    wait_for(lambda: settled(nodes, voters=5), timeout=90, what="five voters")
    first = leader(nodes)
    second = next(n for n in nodes if n is not first)
    first.kill()
    second.kill()
    live = [n for n in nodes if n not in (first, second)]
    with Creator(lambda: live, "d") as creator:
        wait_for(lambda: len(creator.created) >= 15, timeout=90, what="creates with two of five dead")
    assert creator.errors == []
    for name in creator.names[:15]:
        wait_for(lambda: sql(live[0], name, "CREATE TABLE IF NOT EXISTS t(x)").status == 200,
                 what=f"{name} serving")


@pytest.mark.skipif(not iptables_usable(), reason="needs root and iptables to cut loopback traffic")
def test_a_partitioned_minority_creates_and_moves_nothing(cluster):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    wait_for(lambda: settled(nodes, voters=3), what="three voters")
    before = [n.held() for n in nodes]
    chain = f"TURSODRILL{os.getpid()}"
    # Only the members' own traffic (gossip and peer ports): this test's client, on 127.0.0.1 too,
    # still reaches every node's admin port.
    rules = []
    for other in (n1, n2):
        for port in (n3.gossip_port, n3.peer_port):
            for proto in ("tcp", "udp"):
                rules += [["-s", n3.host, "-d", other.host, "-p", proto, "--dport", str(port)],
                          ["-s", other.host, "-d", n3.host, "-p", proto, "--dport", str(port)]]
    subprocess.run(["iptables", "-N", chain], check=True)
    subprocess.run(["iptables", "-I", "OUTPUT", "-j", chain], check=True)
    try:
        for rule in rules:
            subprocess.run(["iptables", "-A", chain, *rule, "-j", "DROP"], check=True)
        wait_for(lambda: n1.members()["n3"]["liveness"] == "dead", what="n3 dead to the majority")
        wait_for(lambda: any(m.get("leader") and i != "n3" for i, m in log_view(n1).items()),
                 what="a leader on the majority side")
        # The majority creates.
        majority = [f"maj{i}" for i in range(5)]
        for name in majority:
            wait_for(lambda: n1.admin("POST", f"/v1/namespaces/{name}/create").status in (201, 409),
                     what=f"{name} created on the majority side")
        # The minority cannot: its proposals do not commit.
        for i in range(3):
            answer = n3.admin("POST", f"/v1/namespaces/min{i}/create")
            assert answer.status >= 500, answer.body
        # Nothing moved anywhere.
        assert n3.held() == before[2]
        assert n1.held() | n2.held() == before[0] | before[1] | set(majority)
    finally:
        subprocess.run(["iptables", "-D", "OUTPUT", "-j", chain])
        subprocess.run(["iptables", "-F", chain])
        subprocess.run(["iptables", "-X", chain])
    cluster.wait_converged(nodes)
    wait_for(lambda: set(majority) <= set(listed(n3)), what="the minority catching up the log")
    held = [n.held() for n in nodes]
    assert sum(len(h) for h in held) == len(set().union(*held)), "no namespace on two nodes"
