"""Load on the embedded server: concurrent streams stay intact, and concurrent kernels share one server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from akash_nb._engine import embedded
from akash_nb._streaming import collect_stream

pytestmark = pytest.mark.live

STREAMS = 10
PROCESSES = 4


def test_ten_concurrent_streams_all_complete_intact(local_env):
    server = embedded.ensure_server()
    client = openai.OpenAI(base_url=server.base_url, api_key=server.key.reveal(), max_retries=0, timeout=120)

    def one(number: int):
        stream = client.chat.completions.create(
            model=server.model,
            max_tokens=20,
            stream=True,
            messages=[{"role": "user", "content": f"Count from {number} to {number + 5}."}],
        )
        return collect_stream(stream, "embedded model")

    with ThreadPoolExecutor(STREAMS) as pool:
        results = list(pool.map(one, range(STREAMS)))
    for result in results:
        assert result.error is None, result.error.sentence
        assert not result.cut and result.finish_reason in ("stop", "length")
        assert result.text.strip()


# Each process waits at a barrier file so all four call client() at the same moment.
CHILD = """
import json, os, sys, time
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.005)
import akash_nb
from akash_nb._engine import embedded as local
client = akash_nb.client(show=False)
server = local.ensure_server()
print(json.dumps({"pid": server.pid, "port": server.port, "url": str(client.base_url)}))
"""


def test_four_processes_starting_at_once_share_one_server(tmp_path: Path):
    state = tmp_path / "fresh-state"
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AKASH")}
    env["AKASH_NB_STATE_DIR"] = str(state)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        go.touch()
        outputs = [child.communicate(timeout=150) for child in children]
        assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
        seen = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        assert len({(s["pid"], s["port"]) for s in seen}) == 1, seen
        assert len({s["url"] for s in seen}) == 1
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AKASH_NB_STATE_DIR", str(state))
            embedded.stop_all()  # whatever configuration the children resolved (their AKASH_* are unset)
