"""Multi-process: 2 local processes x 4 CPU devices (gloo on loopback) run one sharded train step whose loss and
updated params equal the single-process run on 8 devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from lcjax.config import MeshConfig
from lcjax.sharding.mesh import create_mesh

WORKER = os.path.join(os.path.dirname(__file__), "multiprocess_worker.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
  from tests.sharding.multiprocess_worker import train_once

  want = train_once(create_mesh(MeshConfig(fsdp=4, dcn_data=2)))
  port, out = _free_port(), tmp_path / "result.json"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  procs = [subprocess.Popen([sys.executable, WORKER, "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                             "--process-id", str(i), "--local-devices", "4", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("multi-process run timed out")
  assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
  got = json.loads(out.read_text())
  assert (got["processes"], got["devices"], got["local_devices"]) == (2, 8, 4)
  np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
  np.testing.assert_allclose(got["checksum"], want["checksum"], rtol=1e-5)
