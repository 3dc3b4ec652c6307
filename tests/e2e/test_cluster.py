"""A cluster of real `turso-server` processes on 127.0.0.x with mutual TLS: forwarding, admin routing,
join and leave under writes (checked against the clients' log of acknowledged writes), SIGKILL of an
owner, and an iptables partition."""

from contextlib import closing
from http.client import HTTPSConnection
import os
import random
import re
import shutil
import signal
import sqlite3
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import turso.sync
import turso_serverless

from conftest import SERVER_BIN, Node, execute, http, kill_nodes, port_range

DATA = "data-token"
ADMIN = "admin-token"


class ClusterNode(Node):
    """A node listening on its own loopback address 127.0.0.<index>."""

    def __init__(self, root: Path, index: int, tls_dir: Path, base_port: int, join: list[str]):
        self.index = index
        self.id = f"n{index}"
        self.host = f"127.0.0.{index}"
        super().__init__(root / f"data-{self.id}")
        self.data_port, self.admin_port = base_port, base_port + 1
        self.gossip_port, self.peer_port = base_port + 2, base_port + 3
        start, end = port_range(40)
        self.env.update({
            "TURSO_NODE_ID": self.id,
            "TURSO_DATA_ADDR": f"{self.host}:{self.data_port}",
            "TURSO_ADMIN_ADDR": f"{self.host}:{self.admin_port}",
            "TURSO_GOSSIP_ADDR": f"{self.host}:{self.gossip_port}",
            "TURSO_PEER_ADDR": f"{self.host}:{self.peer_port}",
            "TURSO_JOIN": ",".join(join),
            "TURSO_TLS_CA": str(tls_dir / "ca.pem"),
            "TURSO_TLS_CERT": str(tls_dir / f"{self.id}.pem"),
            "TURSO_TLS_KEY": str(tls_dir / f"{self.id}-key.pem"),
            "TURSO_MEMBERSHIP_PRESET": "local-testing",
            "TURSO_BACKEND_PORT_START": str(start),
            "TURSO_BACKEND_PORT_END": str(end),
            "TURSO_AUTH_TOKEN": DATA,
            "TURSO_ADMIN_TOKEN": ADMIN,
            "TURSO_LEAVE_TIMEOUT": "60s",
        })
        self.log_path = root / f"node-{self.id}.log"

    @property
    def gossip(self) -> str:
        return f"{self.host}:{self.gossip_port}"

    def start(self, wait=True):
        super().start(wait=wait)
        deadline = time.time() + 30
        while wait and http("GET", self.admin_url + "/readyz", timeout=2).status != 200:
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{self.id} did not become ready (exit code {self.process.poll()})")
            time.sleep(0.1)
        return self

    def members(self) -> dict:
        result = self.admin("GET", "/v1/cluster/members")
        assert result.status == 200, result.body
        return {m["id"]: m for m in result.json()["members"]}

    def held(self) -> set[str]:
        """Namespaces this node holds: a database file in its data directory, or a held copy in its
        registry (a clustered create starts the backend, and so makes the file, on first use)."""
        if not self.data_dir.exists():
            return set()
        names = {p.name[:-3] for p in self.data_dir.glob("*.db")}
        registry = self.data_dir / "_state" / "registry.db"
        if registry.exists():
            try:
                with closing(sqlite3.connect(f"file:{registry}?mode=ro", uri=True, timeout=5)) as db:
                    names |= {row[0] for row in db.execute("SELECT name FROM copies WHERE sealed = 0")}
            except sqlite3.Error:
                pass  # no copies table: not a node of the cluster log
        return names


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.tls = root / "tls"
        self.base = random.randrange(10000, 19000, 10)
        self.nodes: dict[int, ClusterNode] = {}
        # Extra environment for every node created from now on.
        self.env: dict[str, str] = {}
        subprocess.run([str(SERVER_BIN), "certs", "ca", "--out", str(self.tls)], check=True, capture_output=True)

    def node(self, index: int, join: list[str] | None = None) -> ClusterNode:
        if index not in self.nodes:
            subprocess.run(
                [str(SERVER_BIN), "certs", "node", "--ca-dir", str(self.tls), "--name", f"n{index}",
                 "--host", f"127.0.0.{index}", "--out", str(self.tls)],
                check=True, capture_output=True,
            )
            seed = [] if index == 1 else [self.nodes[1].gossip if 1 in self.nodes else f"127.0.0.1:{self.base + 2}"]
            self.nodes[index] = ClusterNode(self.root, index, self.tls, self.base, seed if join is None else join)
            self.nodes[index].env.update(self.env)
        return self.nodes[index]

    def start(self, count: int) -> list[ClusterNode]:
        nodes = [self.node(i).start() for i in range(1, count + 1)]
        self.wait_converged(nodes)
        return nodes

    def wait_converged(self, nodes: list[ClusterNode], timeout=30):
        """Until every node sees exactly these nodes active and alive."""
        want = {n.id for n in nodes}
        deadline = time.time() + timeout
        while time.time() < deadline:
            views = []
            for n in nodes:
                members = n.members()
                views.append({i for i, m in members.items() if m["state"] == "active" and m["liveness"] == "alive"})
            if all(v == want for v in views):
                return
            time.sleep(0.2)
        raise AssertionError(f"cluster did not converge on {want}: {views}")

    def stop(self):
        kill_nodes(self.nodes.values())


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.stop()


def sql(node: ClusterNode, name: str, statement: str, args=None):
    return http("POST", f"{node.data_url}/{name}/v2/pipeline", {"requests": [execute(statement, args)]}, token=DATA)


def rows(node: ClusterNode, name: str, statement: str) -> list:
    result = sql(node, name, statement)
    assert result.status == 200, result.body
    body = result.json()["results"][0]
    assert body["type"] == "ok", body
    return [[cell.get("value") for cell in row] for row in body["response"]["result"]["rows"]]


def test_three_nodes_serve_any_namespace_from_any_node(cluster, tmp_path):
    n1, n2, n3 = cluster.start(3)
    assert n1.admin("POST", "/v1/namespaces/shop/create").status == 201
    assert sql(n2, "shop", "CREATE TABLE t(id TEXT PRIMARY KEY, v TEXT)").status == 200

    # pyturso pushes through node 2 and pulls through node 3; turso-serverless reads through node 3.
    writer = turso.sync.connect(str(tmp_path / "w.db"), remote_url=f"{n2.data_url}/shop", auth_token=DATA)
    writer.execute("INSERT INTO t VALUES ('a', 'via n2')")
    writer.commit()
    writer.push()
    reader = turso.sync.connect(str(tmp_path / "r.db"), remote_url=f"{n3.data_url}/shop", auth_token=DATA)
    assert reader.execute("SELECT id, v FROM t").fetchall() == [("a", "via n2")]
    writer.execute("INSERT INTO t VALUES ('b', 'later')")
    writer.commit()
    writer.push()
    assert reader.pull() is True
    assert reader.execute("SELECT count(*) FROM t").fetchall() == [(2,)]
    conn = turso_serverless.connect(f"{n3.data_url}/shop", auth_token=DATA)
    cur = conn.cursor()
    cur.execute("SELECT v FROM t WHERE id = ?", ("b",))
    assert cur.fetchall() == [("later",)]
    # An interactive transaction (baton) through a non-owner entry node.
    tx = turso_serverless.connect(f"{n1.data_url}/shop", auth_token=DATA)
    tcur = tx.cursor()
    tcur.execute("INSERT INTO t VALUES ('c', 'tx')")
    tcur.execute("INSERT INTO t VALUES ('d', 'tx')")
    tx.commit()
    assert rows(n2, "shop", "SELECT count(*) FROM t") == [["4"]]

    # Auto-provisioned namespaces through every entry node; every node agrees on every owner.
    names = [f"ns{i}" for i in range(12)]
    for i, name in enumerate(names):
        assert sql([n1, n2, n3][i % 3], name, "CREATE TABLE x(a)").status == 200
    for name in names + ["shop"]:
        owners = {n.admin("GET", f"/v1/namespaces/{name}").json()["owner"] for n in (n1, n2, n3)}
        holders = {n.admin("GET", f"/v1/namespaces/{name}").json()["holder"] for n in (n1, n2, n3)}
        assert len(owners) == 1 and owners == holders, (name, owners, holders)
    # Every node lists the whole directory it applied, by itself: its own namespaces with their
    # process and access time, the others' as the directory describes them; pages follow `next`.
    held = [n.held() for n in (n1, n2, n3)]
    for node, own in zip((n1, n2, n3), held):
        listed = node.admin("GET", "/v1/namespaces").json()
        assert sorted(e["name"] for e in listed["namespaces"]) == sorted(names + ["shop"])
        assert "unreachable" not in listed and "next" not in listed
        assert all(e["owner"] == e["holder"] for e in listed["namespaces"])
        for e in listed["namespaces"]:
            if e["name"] in own:
                assert e["holder"] == node.id and e["lastAccessAt"] and e["state"] in ("running", "dormant"), e
            else:
                assert e["holder"] != node.id and e["lastAccessAt"] is None and e["state"] == "remote", e
        paged, after = [], None
        while True:
            page = node.admin("GET", "/v1/namespaces?limit=5" + (f"&after={after}" if after else "")).json()
            paged += [e["name"] for e in page["namespaces"]]
            if "next" not in page:
                break
            after = page["next"]
        assert paged == sorted(names + ["shop"])
    assert sum(len(h) for h in held) == len(names) + 1, "each namespace is on exactly one node"
    members = n3.members()
    assert set(members) == {"n1", "n2", "n3"}
    assert sum(m["namespaces"] for m in members.values()) == len(names) + 1
    assert all(m["state"] == "active" and m["liveness"] == "alive" for m in members.values())

    # Admin actions from any node reach the holder.
    assert n3.admin("POST", "/v1/namespaces/ns1/lock").json()["locked"] is True
    assert n1.admin("GET", "/v1/namespaces/ns1").json()["locked"] is True
    assert n2.admin("POST", "/v1/namespaces/ns1/ttl", {"ttl": "30d"}).json()["ttl"] == "720h0m0s"
    backup = http("GET", f"{n3.admin_url}/v1/namespaces/shop/backup", token=ADMIN)
    assert backup.status == 200 and backup.body.startswith(b"SQLite format 3\x00")
    assert n1.admin("POST", "/v1/namespaces/shop/create").status == 409
    assert n2.admin("DELETE", "/v1/namespaces/ns2").status == 200
    assert all(n.admin("GET", "/v1/namespaces/ns2").status == 404 for n in (n1, n2, n3))
    # Wrong tokens are refused at the entry node and at the owner alike.
    assert http("POST", f"{n1.data_url}/shop/v2/pipeline", {"requests": []}, token="wrong").status == 401
    peer_port_checks(cluster, (n1, n2, n3), "shop")
    metrics = http("GET", f"{n1.admin_url}/metrics", token=ADMIN).body.decode()
    assert 'turso_forwarded_requests_total{outcome="ok"}' in metrics
    assert 'turso_cluster_members{state="active",liveness="alive"} 3' in metrics


def peer_call(cluster: Cluster, node: ClusterNode, path: str, headers: dict, client_cert: str | None):
    """A request to a node's peer listener (mutual TLS) with `client_cert`'s identity."""
    context = ssl.create_default_context(cafile=str(cluster.tls / "ca.pem"))
    context.check_hostname = False
    if client_cert:
        context.load_cert_chain(str(cluster.tls / f"{client_cert}.pem"), str(cluster.tls / f"{client_cert}-key.pem"))
    conn = HTTPSConnection(node.host, node.peer_port, context=context, timeout=10)
    conn.request("POST", path, body=b'{"requests":[]}', headers=headers)
    response = conn.getresponse()
    return response.status, response.getheader("x-turso-owner"), response.read()


def peer_port_checks(cluster: Cluster, nodes, name: str):
    owner = nodes[0].admin("GET", f"/v1/namespaces/{name}").json()["owner"]
    other = next(n for n in nodes if n.id != owner)
    headers = {"Authorization": f"Bearer {DATA}", "x-turso-forwarded": "n1", "Content-Type": "application/json",
               "x-turso-peer-protocol": "2"}
    # A forwarded request that reaches a node which does not own the namespace is not forwarded
    # again: 421 naming the owner.
    status, hinted, _ = peer_call(cluster, other, f"/{name}/v2/pipeline", headers, client_cert=other.id)
    assert (status, hinted) == (421, owner)
    # Without a certificate from the cluster CA the peer listener refuses the connection.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        peer_call(cluster, other, f"/{name}/v2/pipeline", headers, client_cert=None)


class Writers:
    """Clients writing unique ids to several namespaces through random entry nodes, logging each
    write the server acknowledged."""

    def __init__(self, names: list[str], entries, threads=4):
        self.names = names
        self.entries = entries  # callable returning the nodes to use now
        self.acked = {name: set() for name in names}
        self.attempted = {name: set() for name in names}
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, worker: int):
        rng = random.Random(worker)
        while not self.stop.is_set():
            name = rng.choice(self.names)
            node = rng.choice(self.entries())
            key = uuid.uuid4().hex
            with self.lock:
                self.attempted[name].add(key)
            try:
                result = sql(node, name, "INSERT INTO t(id, writer) VALUES (?, ?)",
                             [{"type": "text", "value": key}, {"type": "text", "value": f"w{worker}"}])
                ok = result.status == 200 and result.json()["results"][0]["type"] == "ok"
            except Exception:
                ok = False
            with self.lock:
                if ok:
                    self.acked[name].add(key)
                else:
                    self.errors += 1
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def verify(self, node: ClusterNode):
        for name in self.names:
            ids = [r[0] for r in rows(node, name, "SELECT id FROM t")]
            assert len(ids) == len(set(ids)), f"{name}: duplicated writes"
            missing = self.acked[name] - set(ids)
            assert not missing, f"{name}: {len(missing)} acknowledged writes lost"
            assert set(ids) <= self.attempted[name]


class Replica:
    """A pyturso embedded replica pulling in a loop; records every revision it reached."""

    def __init__(self, path: Path, url: str):
        self.client = turso.sync.connect(str(path), remote_url=url, auth_token=DATA)
        self.revisions = [self.client.stats().revision]
        self.pulls = 0
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            try:
                self.client.pull()
                self.pulls += 1
                self.revisions.append(self.client.stats().revision)
            except Exception:
                self.failures += 1
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def assert_incremental(self):
        """Same lineage throughout (`<lineage>:<epoch>:<sequence>:<checksum>`), sequences only moving
        forward: no re-bootstrap, also across checkpoints."""
        parsed = [r.split(":") for r in self.revisions]
        lineages = {p[0] for p in parsed}
        sequences = [int(p[2]) for p in parsed]
        assert len(lineages) == 1, f"the replica's lineage changed: {sorted(set(self.revisions))}"
        assert sequences == sorted(sequences)
        assert sequences[-1] > sequences[0]


def checkpoint_count(node: ClusterNode) -> float:
    match = re.search(r"^turso_checkpoints_total (\S+)$", node.admin("GET", "/metrics").body.decode(), re.M)
    return float(match.group(1)) if match else 0.0


def wait_settled(node: ClusterNode, names: list[str], timeout=30):
    """Until every namespace is held by its owner."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        listed = {e["name"]: e for e in node.admin("GET", "/v1/namespaces").json()["namespaces"]}
        if sorted(listed) == sorted(names) and all(e["owner"] == e["holder"] for e in listed.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"namespaces did not settle on their owners: {listed}")


def prepare(node: ClusterNode, names: list[str]):
    for name in names:
        assert node.admin("POST", f"/v1/namespaces/{name}/create").status == 201
        assert sql(node, name, "CREATE TABLE t(id TEXT, writer TEXT)").status == 200


def test_join_under_writes_loses_nothing(cluster, tmp_path):
    # A tiny WAL limit: namespaces are checkpointed again and again while they move, and the replica
    # keeps pulling incrementally from the new owner (the history moves with the files).
    cluster.env["TURSO_SYNC_WAL_LIMIT"] = "64KiB"
    nodes = cluster.start(3)
    names = [f"w{i}" for i in range(10)]
    prepare(nodes[0], names)
    for name in names:
        assert nodes[1].admin("POST", f"/v1/namespaces/{name}/ttl", {"ttl": "30d"}).status == 200
    live = list(nodes)
    with Writers(names, lambda: live) as writers, Replica(tmp_path / "rep.db", f"{nodes[1].data_url}/w0") as replica:
        time.sleep(1.5)
        # The seed is a DNS name (as a Kubernetes headless Service is): resolved, then joined.
        n4 = cluster.node(4, join=[f"localhost:{cluster.base + 2}"]).start()
        cluster.wait_converged(nodes + [n4])
        live.append(n4)
        deadline = time.time() + 30
        while time.time() < deadline and not n4.held():
            time.sleep(0.2)
        assert n4.held(), "the new node took over no namespace"
        time.sleep(1.5)
    writers.verify(n4)
    assert sum(len(w) for w in writers.acked.values()) > 100
    # Every namespace ends on exactly one node, its owner.
    wait_settled(n4, names)
    held = [n.held() for n in nodes + [n4]]
    assert sorted(sum((sorted(h) for h in held), [])) == sorted(names)
    for name in names:
        described = n4.admin("GET", f"/v1/namespaces/{name}").json()
        assert described["owner"] == described["holder"]
        # The metadata moved with the data (the new holder's GC honours the TTL and the lock).
        assert described["ttl"] == "720h0m0s" and described["locked"] is True and described["origin"] == "explicit"
    replica.client.pull()
    replica.revisions.append(replica.client.stats().revision)
    replica.assert_incremental()
    assert replica.pulls > 5
    final = replica.client.execute("SELECT count(*) FROM t").fetchall()[0][0]
    assert final == int(rows(n4, "w0", "SELECT count(*) FROM t")[0][0])
    logs = "\n".join(n4.log_path.read_text().splitlines())
    assert "joined the cluster" in logs
    checkpoints = sum(checkpoint_count(n) for n in nodes + [n4])
    assert checkpoints > 0, "no checkpoint ran while the namespaces moved"


def test_graceful_leave_under_writes_loses_nothing(cluster, tmp_path):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    names = [f"l{i}" for i in range(10)]
    prepare(n1, names)
    assert n3.held(), "pick names so that the leaving node holds some"
    live = [n1, n2, n3]
    replica_name = sorted(n3.held())[0]
    with Writers(names, lambda: live) as writers, \
            Replica(tmp_path / "rep.db", f"{n1.data_url}/{replica_name}") as replica:
        time.sleep(1.5)
        if random.random() < 0.5:
            assert n3.admin("POST", "/v1/cluster/leave").status == 202
        else:
            n3.process.send_signal(signal.SIGTERM)
        assert n3.process.wait(timeout=90) == 0
        live.remove(n3)
        time.sleep(1.5)
    writers.verify(n1)
    wait_settled(n1, names)
    assert not n3.held(), "the leaving node handed everything off"
    assert sorted(n1.held() | n2.held()) == sorted(names)
    members = n1.members()
    assert members["n3"]["liveness"] == "left"
    replica.client.pull()
    replica.revisions.append(replica.client.stats().revision)
    replica.assert_incremental()
    logs = n3.log_path.read_text()
    assert "left the cluster" in logs and "ownership changed" in logs


def test_killed_owner_answers_503_then_comes_back_intact(cluster):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    names = [f"k{i}" for i in range(9)]
    prepare(n1, names)
    for name in names:
        assert sql(n1, name, "INSERT INTO t VALUES ('row', 'x')").status == 200
    victim_names = sorted(n2.held())
    assert victim_names
    n2.kill()
    deadline = time.time() + 20
    while time.time() < deadline and n1.members()["n2"]["liveness"] != "dead":
        time.sleep(0.2)
    for node in (n1, n3):
        result = sql(node, victim_names[0], "SELECT count(*) FROM t")
        assert result.status == 503, result.body
        assert result.json()["error"]["code"] == "OWNER_UNAVAILABLE"
        assert result.json()["error"]["owner"] == "n2"
        assert result.headers["Retry-After"]
    # Nothing of n2's was re-created anywhere else, not even empty.
    assert not (set(victim_names) & (n1.held() | n3.held()))
    # Namespaces of live owners keep working.
    other = sorted(n1.held())[0] if n1.held() else sorted(n3.held())[0]
    assert rows(n3, other, "SELECT count(*) FROM t") == [["1"]]
    n2.start()
    cluster.wait_converged(nodes)
    for name in victim_names:
        assert rows(n1, name, "SELECT id FROM t") == [["row"]]
    assert n2.held() == set(victim_names)


def iptables_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    return subprocess.run(["iptables", "-L", "OUTPUT", "-n"], capture_output=True).returncode == 0


@pytest.mark.skipif(not iptables_usable(), reason="needs root and iptables to cut loopback traffic")
def test_partition_never_yields_two_writers(cluster):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    names = [f"p{i}" for i in range(12)]
    prepare(n3, names)
    chain = f"TURSOTEST{os.getpid()}"
    rules = [["-s", n1.host, "-d", n2.host], ["-s", n2.host, "-d", n1.host]]
    subprocess.run(["iptables", "-N", chain], check=True)
    subprocess.run(["iptables", "-I", "OUTPUT", "-j", chain], check=True)
    try:
        for rule in rules:
            subprocess.run(["iptables", "-A", chain, *rule, "-j", "DROP"], check=True)
        deadline = time.time() + 20
        while time.time() < deadline and n1.members()["n2"]["liveness"] != "dead":
            time.sleep(0.2)
        assert n1.members()["n2"]["liveness"] == "dead"
        live = [n1, n2, n3]
        with Writers(names, lambda: live, threads=3) as writers:
            for _ in range(15):
                held = [n.held() for n in nodes]
                for name in names:
                    assert sum(name in h for h in held) <= 1, f"{name} held twice during the partition"
                time.sleep(0.2)
        assert sum(len(w) for w in writers.acked.values()) > 0
    finally:
        subprocess.run(["iptables", "-D", "OUTPUT", "-j", chain])
        subprocess.run(["iptables", "-F", chain])
        subprocess.run(["iptables", "-X", chain])
    cluster.wait_converged(nodes)
    writers.verify(n3)
    held = [n.held() for n in nodes]
    assert sorted(sum((sorted(h) for h in held), [])) == sorted(names)


def test_concurrent_join_and_leave_converge_without_losing_writes(cluster):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    names = [f"c{i}" for i in range(10)]
    prepare(n1, names)
    live = [n1, n2, n3]
    with Writers(names, lambda: list(live)) as writers:
        time.sleep(1)
        # A fourth node joins while the second leaves.
        n2.process.send_signal(signal.SIGTERM)
        n4 = cluster.node(4)
        n4.start()
        assert n2.process.wait(timeout=90) == 0
        live.remove(n2)
        live.append(n4)
        cluster.wait_converged([n1, n3, n4])
        time.sleep(1)
    writers.verify(n4)
    wait_settled(n1, names)
    assert not n2.held()
    held = [n.held() for n in (n1, n3, n4)]
    assert sorted(sum((sorted(h) for h in held), [])) == sorted(names)


@pytest.mark.parametrize("graceful", [False, True], ids=["killed", "stopped"])
def test_first_member_restarting_without_join_finds_its_cluster(cluster, graceful):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    assert n1.env["TURSO_JOIN"] == ""
    names = [f"r{i}" for i in range(9)]
    prepare(n2, names)
    for name in names:
        assert sql(n2, name, "INSERT INTO t VALUES ('row', 'x')").status == 200
    elsewhere = sorted(set(names) - n1.held())
    assert elsewhere
    if graceful:
        n1.process.terminate()  # leaves: hands its namespaces off, announced `left`
        n1.process.wait(timeout=60)
    else:
        n1.kill()
    departed = "left" if graceful else "dead"
    deadline = time.time() + 20
    while time.time() < deadline and n2.members()["n1"]["liveness"] != departed:
        time.sleep(0.2)
    assert n2.members()["n1"]["liveness"] == departed
    n1.start(wait=False)
    # From its first answer on, the restarted seed never serves an empty copy of another's namespace.
    answers = set()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            result = sql(n1, elsewhere[0], "SELECT id FROM t")
        except OSError:
            time.sleep(0.05)
            continue
        if result.status == 200:
            body = result.json()["results"][0]
            assert body["type"] == "ok", body
            assert [c["value"] for c in body["response"]["result"]["rows"][0]] == ["row"]
            answers.add(200)
            break
        assert result.status == 503, result.body
        answers.add(503)
        time.sleep(0.05)
    assert 200 in answers
    # No seed cache on disk: the others found it again (they retry dead members' addresses).
    cluster.wait_converged(nodes)
    assert not (set(elsewhere) & n1.held())
    assert not (n1.data_dir / "_state" / "members.json").exists()


def test_creation_needs_a_log_majority_and_remove_takes_a_dead_member_out(cluster):
    nodes = cluster.start(3)
    n1, n2, n3 = nodes
    names = [f"f{i}" for i in range(20)]
    prepare(n1, names)
    victim = sorted(n2.held())[0]
    # The three are voters of one cluster log before n2 dies.
    deadline = time.time() + 30
    while time.time() < deadline and sorted(m.get("role") for m in n1.members().values()) != ["voter"] * 3:
        time.sleep(0.2)
    n2.kill()
    deadline = time.time() + 20
    while time.time() < deadline and n1.members()["n2"]["liveness"] != "dead":
        time.sleep(0.2)
    # Creation goes through the log: a majority suffices, also for names the dead member would own.
    created = [f"new{i}" for i in range(12)]
    for i, name in enumerate(created):
        result = sql([n1, n3][i % 2], name, "CREATE TABLE t(x)")
        assert result.status == 200, result.body
        assert n1.admin("POST", f"/v1/namespaces/{name}/create").status == 409
    assert n3.admin("POST", "/v1/namespaces/admin-made/create").status == 201
    assert not (set(created) & n2.held())
    assert n1.admin("POST", "/v1/cluster/members/n3/remove").status == 409, "an alive member is not removed"
    assert n1.admin("POST", "/v1/cluster/members/n1/remove").status == 409, "a node does not remove itself"
    assert n1.admin("POST", "/v1/cluster/members/nobody/remove").status == 404
    removed = n3.admin("POST", "/v1/cluster/members/n2/remove")
    assert removed.status == 200, removed.body
    assert removed.json()["state"] == "removed"
    deadline = time.time() + 20
    while time.time() < deadline and n1.members()["n2"]["liveness"] != "left":
        time.sleep(0.2)
    assert n1.members()["n2"]["liveness"] == "left"
    # The leader took its replica out of the voters through the log.
    deadline = time.time() + 20
    while time.time() < deadline and n1.members()["n2"].get("role") != "none":
        time.sleep(0.2)
    assert n1.members()["n2"].get("role") == "none"
    assert sorted(m.get("role") for i, m in n3.members().items() if i != "n2") == ["voter", "voter"]
    assert sql(n3, "brand-new", "CREATE TABLE t(x)").status == 200
    # The removed member's namespaces stay its own in the directory: 503 (never re-created empty)
    # until failover exists or they are restored from backups.
    for node in (n1, n3):
        result = sql(node, victim, "SELECT 1")
        assert result.status == 503, result.body
        assert result.json()["error"]["owner"] == "n2"
    assert n1.admin("POST", f"/v1/namespaces/{victim}/create").status in (409, 503)
