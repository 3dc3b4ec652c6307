"""The one-node cluster log: creates through the log, restart and size (directory-bench), then a
node started over the result and GET /v1/namespaces timed whole and by page. Release binaries."""

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from conftest import free_port, wait_for_port  # noqa: E402

BIN = ROOT / ".build" / "release"
COUNT = int(os.environ.get("NAMESPACES", "100000"))


def timed_get(url):
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


with tempfile.TemporaryDirectory() as data:
    env = dict(os.environ, TURSO_NODE_ID="bench")
    print(subprocess.run([BIN / "directory-bench", str(COUNT), "64", data], env=env, check=True,
                         capture_output=True, text=True).stdout)
    admin = free_port()
    node = subprocess.Popen(
        [BIN / "turso-server"],
        env=dict(env, TURSO_DATA_DIR=data, TURSO_MAX_NAMESPACES="0", TURSO_DATA_ADDR=f"127.0.0.1:{free_port()}",
                 TURSO_ADMIN_ADDR=f"127.0.0.1:{admin}", TURSODB_BIN="/nonexistent"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.perf_counter()
        wait_for_port(admin, timeout=60, process=node)
        print(f"node start over {COUNT} namespaces: {(time.perf_counter() - started) * 1000:.0f} ms to listening")
        whole = sorted(timed_get(f"http://127.0.0.1:{admin}/v1/namespaces") for _ in range(5))
        print(f"GET /v1/namespaces ({whole[0][1] // 1024} KiB): best {whole[0][0] * 1000:.0f} ms, "
              f"median {whole[2][0] * 1000:.0f} ms")
        page = sorted(timed_get(f"http://127.0.0.1:{admin}/v1/namespaces?limit=1000&after=ns-5")[0] for _ in range(5))
        print(f"GET /v1/namespaces?limit=1000: median {page[2] * 1000:.1f} ms")
    finally:
        node.terminate()
        node.wait(timeout=30)
