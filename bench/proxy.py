#!/usr/bin/env python3
"""Benchmark of the node (issue 2): SELECT 1 pipelines through the node vs straight to the backend vs
nginx in front of the same backend; cold start of dormant namespaces; RSS of the node and backends.

    swift build -c release && bench/.venv/bin/python bench/proxy.py   (needs wrk and nginx)
"""

import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import BIN, Process, free_port, percentile, post, pss_kib, require, rss_kib, wait_port, wrk

SELECT1 = '{"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}},{"type":"close"}]}'


def backend_headers(pid: int) -> dict:
    """The header a node's built-in backend demands (its secret, read from the backend's environment,
    which only the node's user can); empty for builds without it."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(b"TURSO_SYNC_NODE_SECRET="):
            return {"x-turso-backend-secret": entry.split(b"=", 1)[1].decode()}
    return {}


def nginx_in_front_of(port: int, workdir: Path, host: str = "127.0.0.1", headers=None) -> tuple[Process, int]:
    require("nginx")
    listen = free_port()
    conf = workdir / "nginx.conf"
    for d in ("body", "proxy", "fcgi", "uwsgi", "scgi"):
        (workdir / d).mkdir(exist_ok=True)
    extra = " ".join(f'proxy_set_header {name} "{value}";' for name, value in (headers or {}).items())
    conf.write_text(f"""
worker_processes 1; pid {workdir}/nginx.pid; error_log {workdir}/error.log; daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {workdir}/body; proxy_temp_path {workdir}/proxy; fastcgi_temp_path {workdir}/fcgi;
  uwsgi_temp_path {workdir}/uwsgi; scgi_temp_path {workdir}/scgi;
  upstream up {{ server {host}:{port}; keepalive 32; }}
  server {{ listen 127.0.0.1:{listen};
    location /bench/ {{ proxy_pass http://up/; proxy_http_version 1.1; proxy_set_header Connection ""; {extra} }} }}
}}
""")
    process = Process(["nginx", "-c", str(conf)])
    wait_port(listen)
    return process, listen


def main():
    work = Path(tempfile.mkdtemp(prefix="turso-bench-"))
    data_port, admin_port = free_port(), free_port()
    start = 20000 + (data_port % 500) * 20  # below the ephemeral range (32768+)
    env = {
        "TURSO_DATA_DIR": str(work / "data"), "TURSO_DATA_ADDR": f"127.0.0.1:{data_port}",
        "TURSO_ADMIN_ADDR": f"127.0.0.1:{admin_port}", "TURSO_BACKEND_PORT_START": str(start),
        "TURSO_BACKEND_PORT_END": str(start + 400), "TURSO_MAX_NAMESPACES": "0", "TURSO_LOG_LEVEL": "warning",
        "TURSODB_BIN": "/nonexistent",
    }
    node = Process([str(BIN / "turso-server")], env=env, log=work / "node.log")
    wait_port(admin_port)
    wait_port(data_port)
    info = post(f"http://127.0.0.1:{admin_port}/v1/namespaces/bench/create", {})
    backend_port, backend_pid = info["port"], info["pid"]
    secret = backend_headers(backend_pid)
    nginx, nginx_port = nginx_in_front_of(backend_port, work, headers=secret)
    print("## SELECT 1 pipelines, wrk -t2 -c16 -d10s (one run, same machine)\n")
    print("| path | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    results = {}
    for label, url, headers in [
        ("direct to the backend", f"http://127.0.0.1:{backend_port}/v2/pipeline", secret),
        ("through turso-server", f"http://127.0.0.1:{data_port}/bench/v2/pipeline", {}),
        ("through nginx", f"http://127.0.0.1:{nginx_port}/bench/v2/pipeline", {}),
    ]:
        r = wrk(url, SELECT1, headers=headers)
        results[label] = r
        print(f"| {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors'] + r['non2xx']} |")
    nginx.stop()
    node_rss = rss_kib(node.p.pid)
    backend_rss = rss_kib(backend_pid)

    # Cold start: 200 namespaces registered and dormant (node restarted), first request to each.
    names = [f"cold-{i}" for i in range(200)]
    for name in names:
        post(f"http://127.0.0.1:{data_port}/{name}/v2/pipeline", {"requests": [{"type": "close"}]})
    node.stop()
    node = Process([str(BIN / "turso-server")], env=env, log=work / "node2.log")
    wait_port(admin_port)
    wait_port(data_port)
    latencies = []
    for name in names:
        t = time.perf_counter()
        post(f"http://127.0.0.1:{data_port}/{name}/v2/pipeline", {"requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}, {"type": "close"}]})
        latencies.append((time.perf_counter() - t) * 1000)
    warm = []
    for name in names:
        t = time.perf_counter()
        post(f"http://127.0.0.1:{data_port}/{name}/v2/pipeline", {"requests": [{"type": "execute", "stmt": {"sql": "SELECT 1"}}, {"type": "close"}]})
        warm.append((time.perf_counter() - t) * 1000)
    pids = [int(p) for p in subprocess.run(["pgrep", "-f", "--", f"--sync-server 127.0.0.1:.*{work}"], capture_output=True, text=True).stdout.split()]
    backend_rss_many = sorted(rss_kib(p) for p in pids)
    backend_pss_many = sorted(pss_kib(p) for p in pids)
    node_rss_many = rss_kib(node.p.pid)
    node.stop()
    print("\n## Cold start of a dormant namespace (first request, 200 namespaces)\n")
    print(f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms "
          f"(the same requests warm: p50 {percentile(warm, 50):.2f} ms, p99 {percentile(warm, 99):.2f} ms)")
    print("\n## Memory (RSS)\n")
    print(f"node with 1 backend after the load test: {node_rss / 1024:.1f} MiB; that backend: {backend_rss / 1024:.1f} MiB")
    print(f"node with {len(pids)} running backends: {node_rss_many / 1024:.1f} MiB; "
          f"backend median RSS {percentile(backend_rss_many, 50) / 1024:.1f} MiB (max {backend_rss_many[-1] / 1024:.1f}), "
          f"median PSS {percentile(backend_pss_many, 50) / 1024:.1f} MiB (shared pages of the binary split between processes)")


if __name__ == "__main__":
    main()
