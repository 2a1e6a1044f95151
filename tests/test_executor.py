"""The executor's actor pool asks Ray for CPUs/GPUs per actor and sizes itself by them;
with nothing to do it starts nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import executor
from pipeline.executor import map_partitions

# A Ray of its own that declares one GPU (Ray does not check the hardware): half a GPU
# per actor gives two actors, each told by Ray which device is its own.
PROBE = r"""
import json, os
from pipeline.executor import ensure_ray, map_partitions

class Probe:
    def __init__(self):
        self.pid = os.getpid()
    def __call__(self, item):
        import time; time.sleep(0.5)  # both actors get work
        return {"item": item, "pid": self.pid, "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

ensure_ray(num_cpus=2, num_gpus=1)
out = list(map_partitions(Probe, {}, list(range(6)), num_gpus=0.5, num_cpus=0.5, progress=False))
print(json.dumps(out))
"""


@pytest.mark.slow
def test_gpu_actors_are_sized_by_gpus_and_see_their_device():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(r["item"] for r in out) == list(range(6))
    assert len({r["pid"] for r in out}) == 2  # one GPU / 0.5 per actor
    assert {r["devices"] for r in out} == {"0"}


@pytest.mark.slow
def test_gpu_request_on_a_cluster_without_gpus_fails_fast(ray_local):
    with pytest.raises(ValueError, match="GPU"):
        list(map_partitions(dict, {}, [1, 2], num_gpus=1, progress=False))


def test_no_items_starts_no_ray_and_builds_no_worker(monkeypatch):
    def no_ray(*a, **k):
        raise AssertionError("Ray started for an empty partition list")

    def no_worker(**kw):
        raise AssertionError("worker built for an empty partition list")

    monkeypatch.setattr(executor, "ensure_ray", no_ray)
    assert list(map_partitions(no_worker, {}, [], mode="ray")) == []
    assert list(map_partitions(no_worker, {}, [], mode="local")) == []
    with pytest.raises(ValueError, match="mode"):
        list(map_partitions(no_worker, {}, [], mode="spark"))
