"""The cluster log across real `turso-server` processes on 127.0.0.x with mutual TLS: nodes started at
once found exactly one cluster, nodes started one at a time end with three voters, a whole-cluster
restart on new addresses recovers from the persisted logs, and a node that comes back with a wiped
data directory is not trusted as its old self."""

import shutil
import subprocess
import time

from conftest import SERVER_BIN
from test_cluster import ADMIN, Cluster, cluster, prepare, rows, sql  # noqa: F401 (the fixture)


def log_view(node) -> dict:
    """This node's members, by id, as its admin API shows them (role, leader, cluster id...)."""
    return node.members()


def wait_for(predicate, timeout=45, interval=0.25, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, AssertionError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def settled(nodes, voters: int):
    """True when every node shows one cluster id, one leader, `voters` voters and the rest learners."""
    views = [log_view(n) for n in nodes]
    ids = {n.id for n in nodes}
    for view in views:
        members = [view[i] for i in ids if i in view]
        if len(members) != len(ids):
            return False
        if len({m.get("clusterId") for m in members}) != 1 or None in {m.get("clusterId") for m in members}:
            return False
        if sum(1 for m in members if m.get("leader")) != 1:
            return False
        roles = sorted(m.get("role") for m in members)
        if roles != sorted(["voter"] * voters + ["learner"] * (len(ids) - voters)):
            return False
    return views[0]


def test_five_nodes_started_at_once_form_exactly_one_cluster(cluster):
    cluster.env["TURSO_BOOTSTRAP_EXPECT"] = "5"
    seed = f"127.0.0.1:{cluster.base + 2}"
    nodes = [cluster.node(i, join=[seed]) for i in range(1, 6)]
    for node in nodes:
        node.start(wait=False)
    view = wait_for(lambda: settled(nodes, voters=3), timeout=60, what="one cluster with 3 voters")
    cluster_id = next(iter(view.values()))["clusterId"]
    founders = [n.id for n in nodes if "founding the cluster log" in n.log_path.read_text()]
    assert founders == ["n1"], founders
    # Everyone bootstrapped as a voter (5), then the autopilot demoted two to reach TURSO_VOTERS=3.
    assert "raft.founders" in nodes[0].log_path.read_text()
    for node in nodes:
        assert {m["clusterId"] for m in log_view(node).values()} == {cluster_id}
    # Every member announces the directory format it applies; the leader raised the log to it.
    assert all(m["version"].endswith("+directory.3") for m in log_view(nodes[0]).values())
    wait_for(lambda: all(log_view(n)[n.id].get("directoryFormat") == 3 for n in nodes), what="format 3 raised")
    assert sum("directory format raised" in n.log_path.read_text() for n in nodes) >= 1


def regenerate_certificate(cluster, index: int, hosts: list[str]):
    subprocess.run(
        [str(SERVER_BIN), "certs", "node", "--ca-dir", str(cluster.tls), "--name", f"n{index}",
         *sum((["--host", h] for h in hosts), []), "--out", str(cluster.tls)],
        check=True, capture_output=True,
    )


def move(node, host: str):
    """Points a stopped node's listeners at another loopback address."""
    node.host = host
    for key, port in (("TURSO_DATA_ADDR", node.data_port), ("TURSO_ADMIN_ADDR", node.admin_port),
                      ("TURSO_GOSSIP_ADDR", node.gossip_port), ("TURSO_PEER_ADDR", node.peer_port)):
        node.env[key] = f"{host}:{port}"


def test_one_at_a_time_then_a_whole_cluster_restart_on_new_addresses(cluster):
    nodes = []
    for i in range(1, 4):
        node = cluster.node(i)
        regenerate_certificate(cluster, i, [f"127.0.0.{i}", f"127.0.0.{20 + i}"])
        nodes.append(node.start())
    # n1 founded alone; n2 and n3 joined as learners and were promoted once stable.
    view = wait_for(lambda: settled(nodes, voters=3), what="three voters")
    cluster_id = view["n1"]["clusterId"]
    # Namespaces with data, created through each node (so held across all three).
    names = [f"keep{i}" for i in range(6)]
    for i, name in enumerate(names):
        prepare(nodes[i % 3], [name])
        assert sql(nodes[i % 3], name, f"INSERT INTO t VALUES ('{name}', 'before')").status == 200
    before = max(log_view(n)[n.id]["commitIndex"] for n in nodes)
    for node in nodes:
        node.kill()
    for node in nodes:
        move(node, f"127.0.0.{20 + node.index}")
        # Only the old addresses are known: the restarted nodes find each other through TURSO_JOIN.
        node.env["TURSO_JOIN"] = f"127.0.0.21:{cluster.base + 2}"
    for node in nodes:
        node.start(wait=False)
    view = wait_for(lambda: settled(nodes, voters=3), timeout=60, what="the restarted cluster")
    assert {m["clusterId"] for m in view.values()} == {cluster_id}
    for node in nodes:
        assert "founding the cluster log" not in node.log_path.read_text().split("turso-server starting")[-1]
    wait_for(lambda: all(log_view(n)[n.id]["appliedIndex"] >= before for n in nodes), what="the log replayed")
    # Every namespace and its data, from every node (forwarded to its owner at its new address).
    for node in nodes:
        for name in names:
            wait_for(lambda: rows(node, name, "SELECT id, writer FROM t") == [[name, "before"]],
                     what=f"{name} through {node.id}")


def test_a_wiped_node_is_not_trusted_as_its_old_self(cluster):
    nodes = [cluster.node(i).start() for i in range(1, 4)]
    view = wait_for(lambda: settled(nodes, voters=3), what="three voters")
    old_storage = view["n3"]["storageId"]
    n3 = nodes[2]
    n3.kill()
    shutil.rmtree(n3.data_dir)
    n3.start()

    def replaced():
        view = settled(nodes, voters=3)
        return view if view and view["n3"]["storageId"] != old_storage else False

    view = wait_for(replaced, timeout=60, what="n3's new self voting and its old self gone")
    assert view["n3"]["role"] == "voter"
    logs = "".join(n.log_path.read_text() for n in nodes)
    assert "removeMember" in logs, "the old storage id was removed through the log"


def test_two_members_and_a_witness_keep_a_quorum_and_the_witness_holds_nothing(cluster):
    n1, n2 = cluster.node(1).start(), cluster.node(2).start()
    witness = cluster.node(3)
    witness.env["TURSO_ROLE"] = "witness"
    witness.start()
    nodes = [n1, n2, witness]
    view = wait_for(lambda: settled(nodes, voters=3), what="three voters, the witness among them")
    assert view["n3"]["weight"] == 0
    names = [f"w{i}" for i in range(12)]
    prepare(witness, names)  # created through the witness, placed on the two members
    assert not witness.held()
    assert n1.held() | n2.held() == set(names)
    assert rows(witness, names[0], "SELECT count(*) FROM t") == [["0"]]
    # One member down: the other and the witness still make a quorum of the cluster log.
    n2.kill()
    wait_for(lambda: any(m.get("leader") and m["liveness"] == "alive" for m in log_view(n1).values()),
             what="a leader among the two that are left")
