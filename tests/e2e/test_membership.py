"""Membership over mutual TLS with real processes (`turso-server membership-agent`) on loopback."""

import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SERVER_BIN, free_port


def certs(*args):
    subprocess.run([str(SERVER_BIN), "certs", *args], check=True, capture_output=True)


class Agent:
    def __init__(self, tmp: Path, node_id: str, tls_dir: Path | None, join=(), ca_file: Path | None = None, extra=None):
        self.id = node_id
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = tmp / f"agent-{node_id}-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TURSO")}
        env.update({
            "TURSO_NODE_ID": node_id,
            "TURSO_GOSSIP_ADDR": self.address,
            "TURSO_JOIN": ",".join(join),
            "TURSO_MEMBERSHIP_PRESET": "local-testing",
            "TURSO_TLS_RELOAD_INTERVAL": "500ms",
        })
        if tls_dir is not None:
            env["TURSO_TLS_CA"] = str(ca_file or tls_dir / "ca.pem")
            env["TURSO_TLS_CERT"] = str(tls_dir / f"{node_id}.pem")
            env["TURSO_TLS_KEY"] = str(tls_dir / f"{node_id}-key.pem")
        env.update(extra or {})
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(SERVER_BIN), "membership-agent"], stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def lines(self):
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def view(self) -> dict:
        views = [l for l in self.lines() if l.get("event") == "view"]
        if not views or not views[-1]["members"]:
            return {}
        return dict(item.split("=") for item in views[-1]["members"].split(","))

    def alive(self) -> set:
        return {k for k, v in self.view().items() if v == "alive"}

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def wait_until(condition, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture
def agents(tmp_path):
    started = []

    def start(*args, **kwargs):
        agent = Agent(tmp_path, *args, **kwargs)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop(signal.SIGKILL)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    certs("ca", "--out", str(d))
    for name in ["node-1", "node-2", "node-3", "node-4"]:
        certs("node", "--ca-dir", str(d), "--name", name, "--host", "127.0.0.1", "--out", str(d))
    return d


def test_three_processes_form_a_cluster_and_detect_a_crash(pki, agents):
    a = agents("node-1", pki)
    b = agents("node-2", pki, join=[a.address])
    c = agents("node-3", pki, join=[a.address])
    everyone = {"node-1", "node-2", "node-3"}
    assert wait_until(lambda: all(x.alive() == everyone for x in (a, b, c))), [x.view() for x in (a, b, c)]
    c.stop(signal.SIGKILL)
    assert wait_until(lambda: a.view().get("node-3") == "dead" and b.view().get("node-3") == "dead", 15)
    # A graceful leave is seen as left, not dead.
    b.stop(signal.SIGTERM)
    assert wait_until(lambda: a.view().get("node-2") == "left", 10), a.view()


def test_certificates_from_another_ca_expired_or_missing_are_refused(tmp_path, pki, agents):
    other = tmp_path / "other"
    certs("ca", "--out", str(other))
    certs("node", "--ca-dir", str(other), "--name", "node-9", "--host", "127.0.0.1", "--out", str(other))
    a = agents("node-1", pki)
    b = agents("node-2", pki, join=[a.address])
    assert wait_until(lambda: a.alive() == {"node-1", "node-2"})
    # Another CA: trusts our CA too, so only its own certificate is the problem.
    bundle = tmp_path / "bundle.pem"
    bundle.write_text((pki / "ca.pem").read_text() + (other / "ca.pem").read_text())
    foreign = agents("node-9", other, join=[a.address], ca_file=bundle)
    # No certificate at all.
    bare = agents("node-8", None, join=[a.address], extra={"TURSO_INSECURE_CLUSTER": "true"})
    time.sleep(4)
    assert foreign.process.poll() is None and bare.process.poll() is None  # running, just not admitted
    assert a.alive() == {"node-1", "node-2"}
    assert "node-9" not in a.view() and "node-8" not in a.view()
    assert foreign.alive() <= {"node-9"} and bare.alive() <= {"node-8"}
    assert a.process.poll() is None and b.process.poll() is None


def test_expired_certificate_is_refused(tmp_path, pki, agents):
    # Build an expired certificate with the same CA through Python's cryptography package.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
    import datetime
    import ipaddress

    ca_cert = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca-key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node-7")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10))
        .not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("node-7"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    (pki / "node-7.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (pki / "node-7-key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    a = agents("node-1", pki)
    expired = agents("node-7", pki, join=[a.address])
    time.sleep(4)
    assert expired.process.poll() is None
    assert "node-7" not in a.view()
    assert a.process.poll() is None


def test_garbage_and_oversized_frames_are_dropped(pki, agents):
    a = agents("node-1", pki)
    b = agents("node-2", pki, join=[a.address])
    assert wait_until(lambda: a.alive() == {"node-1", "node-2"})
    # Plain TCP garbage (no TLS handshake).
    with socket.create_connection(("127.0.0.1", a.port)) as s:
        s.sendall(os.urandom(4096))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
    # A valid client certificate, then an oversized frame and a garbage frame.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "node-3.pem"), str(pki / "node-3-key.pem"))
    context.check_hostname = False
    for payload in [struct.pack(">I", 0x7FFFFFF0) + b"x" * 64, struct.pack(">I", 16) + os.urandom(16)]:
        with socket.create_connection(("127.0.0.1", a.port)) as raw:
            with context.wrap_socket(raw, server_hostname="node-1") as s:
                s.sendall(payload)
                s.settimeout(5)
                closed = False
                try:
                    closed = s.recv(1) == b""
                except (ssl.SSLError, OSError):
                    closed = True
                assert closed
    time.sleep(1)
    assert a.process.poll() is None
    assert a.alive() == {"node-1", "node-2"}
    assert "node-3" not in a.view()


def test_replaced_certificate_files_are_picked_up_without_a_restart(tmp_path, pki, agents):
    other = tmp_path / "other"
    certs("ca", "--out", str(other))
    certs("node", "--ca-dir", str(other), "--name", "node-4", "--host", "127.0.0.1", "--out", str(other))
    bundle = tmp_path / "bundle.pem"
    bundle.write_text((pki / "ca.pem").read_text() + (other / "ca.pem").read_text())
    ca_file = tmp_path / "node-1-ca.pem"
    ca_file.write_text((pki / "ca.pem").read_text())
    a = agents("node-1", pki, ca_file=ca_file)
    newcomer = agents("node-4", other, join=[a.address], ca_file=bundle)
    time.sleep(3)
    assert newcomer.process.poll() is None
    assert "node-4" not in a.view()
    # The operator rotates in a CA bundle that also trusts the second CA: no restart needed.
    ca_file.write_text(bundle.read_text())
    assert wait_until(lambda: a.alive() == {"node-1", "node-4"}, 15), a.view()
    assert any(l.get("msg") == "reloaded TLS certificates" for l in a.lines())
