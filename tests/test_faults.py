"""The executor under faults: a killed driver, a killed worker process, a hung partition.

Killed runs must end, row for row, with the catalog of one uninterrupted run (the module's
baseline): a killed driver after a re-run, a killed worker with no re-run at all.
"""
from __future__ import annotations

import io
import logging
import os
import random
import re
import signal
import time

import psutil
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from pipeline.dataset import Dataset
from pipeline.executor import PartitionsFailed, map_partitions
from schemas.config import ConfigError
from tests.test_resume import assert_same_catalog, catalog_rows, spec_dict, start_ingest, total_partitions, wait_for_markers

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory):
    """One uninterrupted run, in-process: a faulty run on Ray must also match the plain path."""
    root = str(tmp_path_factory.mktemp("baseline") / "dataset")
    run_ingest(parse_spec(spec_dict(corpus, root)), mode="local")
    return catalog_rows(Dataset(root))


def descendants(pid: int) -> list[int]:
    """Every process the driver started, Ray's own and its workers included."""
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def kill_all(proc, pids) -> None:
    """The driver's process group and every process it started (Ray's own included)."""
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


@pytest.mark.parametrize("seed", SEEDS)
def test_driver_killed_at_random_then_rerun(corpus, baseline, tmp_path, seed):
    rng = random.Random(seed)
    root = str(tmp_path / "dataset")
    spec = spec_dict(corpus, root)
    job_id, total = parse_spec(spec).job_id, total_partitions(spec)
    ds = Dataset(root)
    proc, log = start_ingest(spec, tmp_path)
    wait_for_markers(ds, job_id, rng.randint(1, total // 2), proc, log)
    time.sleep(rng.uniform(0, 0.5))  # most likely in the middle of partitions
    kill_all(proc, descendants(proc.pid))
    done_at_kill = len(ds.done_partitions(job_id))
    assert 0 < done_at_kill < total
    for f in ds.sample_files() + ds.reject_files():  # no half-written catalog file is visible
        pq.read_table(f)

    resumed = run_ingest(parse_spec(spec), mode="local")  # the re-run's mode does not matter; local is quick
    assert resumed.partitions_skipped == done_at_kill
    assert resumed.inputs == resumed.samples + resumed.rejects
    assert_same_catalog(catalog_rows(ds), baseline)


OPENAT = {"x86_64": "257", "aarch64": "56"}.get(os.uname().machine)


def gates_folder(folder, seeds) -> dict[str, bytes]:
    """Three plain images per seed and a gate at a seed-chosen position among them: path -> the
    gate image's bytes. Written as plain files here; ``close_gates`` turns them into FIFOs."""
    folder.mkdir(exist_ok=True)
    gates = {}
    for k, seed in enumerate(seeds):
        at = random.Random(seed).randint(0, 3)
        for j in range(4):
            name = f"{k}{j}"
            (folder / f"{name}.txt").write_text(f"a flat colour field, number {k} {j}, made for the worker kill test")
            buf = io.BytesIO()
            Image.new("RGB", (64, 48), (40 * k + 60 * j, 200 - 50 * j, 90)).save(buf, "PNG")
            (folder / f"{name}.png").write_bytes(buf.getvalue())
            if j == at:
                gates[str(folder / f"{name}.png")] = buf.getvalue()
    return gates


def close_gates(gates: dict[str, bytes]) -> None:
    """Each gate a FIFO no one writes to: a worker reading it blocks in open(), mid-partition."""
    for path in gates:
        os.unlink(path)
        os.mkfifo(path)


def open_gate(path: str, data: bytes) -> None:
    """The gate's image as a plain file again (atomically over the FIFO), for the retry."""
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def blocked_on_fifo(driver_pid: int) -> dict[str, int]:
    """path -> pid of each descendant with a thread blocked opening a FIFO (no writer yet): the
    kernel says so in ``wchan``; the path is read from the process's memory at openat's argument."""
    out = {}
    for pid in descendants(driver_pid):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                base = f"/proc/{pid}/task/{tid}"
                with open(f"{base}/wchan") as f:
                    if f.read() != "wait_for_partner":
                        continue
                with open(f"{base}/syscall") as f:
                    args = f.read().split()
                if args[0] != OPENAT:
                    continue
                with open(f"/proc/{pid}/mem", "rb") as mem:
                    mem.seek(int(args[2], 16))
                    out[mem.read(4096).split(b"\0")[0].decode()] = pid
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not blocked any more
    return out


@pytest.mark.skipif(OPENAT is None, reason="needs the openat syscall number of this architecture")
def test_workers_killed_mid_partition_job_still_completes(corpus, tmp_path):
    """One run, one worker SIGKILLed per seed while it is inside a partition (blocked opening a
    gate image placed at a seed-chosen position): the job must redo exactly those partitions,
    lose nothing else, and end with the catalog of an uninterrupted run, without a re-run."""
    gates_dir = tmp_path / "gates"
    gates = gates_folder(gates_dir, SEEDS)

    def spec_for(root: str) -> dict:
        spec = spec_dict(corpus, root)
        spec["sources"].append({"name": "gates", "type": "image_folder", "path": str(gates_dir)})
        return spec

    run_ingest(parse_spec(spec_for(str(tmp_path / "baseline"))), mode="local")
    baseline = catalog_rows(Dataset(str(tmp_path / "baseline")))

    root = str(tmp_path / "dataset")
    spec = spec_for(root)
    job_id, total = parse_spec(spec).job_id, total_partitions(spec)
    gate_partitions = {p.partition_id for p in parse_spec(spec).sources[-1].build().partitions(2)
                       if any(a[1] in gates for a in p.args)}
    close_gates(gates)
    proc, log = start_ingest(spec, tmp_path)
    pending, deadline = set(gates), time.time() + 180
    try:
        while pending:  # in whatever order the workers reach them (two may wait at once)
            assert time.time() < deadline and proc.poll() is None, log.read_text()[-3000:]
            for path, pid in blocked_on_fifo(proc.pid).items():
                if path in pending:
                    os.kill(pid, signal.SIGKILL)
                    open_gate(path, gates[path])
                    pending.discard(path)
            time.sleep(0.05)
        assert proc.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            kill_all(proc, descendants(proc.pid))
        for path in pending:
            open_gate(path, gates[path])
    text = log.read_text()
    lost = re.findall(r"partition \d+ \(([\w-]+)\), attempt 1: worker_lost; retrying", text)
    assert len(gate_partitions) == len(SEEDS)
    assert sorted(lost) == sorted(gate_partitions)  # each kill cost its partition's attempt, nothing else
    assert "giving up" not in text
    assert len(Dataset(root).done_partitions(job_id)) == total
    assert_same_catalog(catalog_rows(Dataset(root)), baseline)


def test_hung_partition_times_out_into_a_reject(ray_local, tmp_path, caplog):
    """A read that never returns (a FIFO no one writes: like a dead network mount, where
    no per-request timeout applies) costs its partition, not the job."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, color in enumerate(["red", "blue", "green"]):
        Image.new("RGB", (64, 48), color).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"a plain {color} rectangle on its own, number {i}")
    fifo = folder / "zz_hung.jpg"
    os.mkfifo(fifo)
    spec = parse_spec({
        "name": "hung", "dataset": str(tmp_path / "dataset"), "partition_size": 2, "partition_timeout_s": 2,
        "sources": [{"name": "photos", "type": "image_folder", "path": str(folder)}],
    })
    hung = [p.partition_id for p in spec.sources[0].build().partitions(2) if any(str(fifo) in a[1] for a in p.args)]
    start = time.time()
    with caplog.at_level(logging.WARNING, logger="tessera"):
        run_ingest(spec, mode="ray")
    assert time.time() - start < 120

    samples, rejects = catalog_rows(Dataset(spec.dataset))
    assert sorted(r["input_ref"].rsplit("/", 1)[1] for r in samples) == ["0.png", "1.png"]  # the other partition
    assert rejects == [{"input_ref": f"{hung[0]}@0", "stage": "partition", "reason": "timeout"}]
    messages = [r.getMessage() for r in caplog.records if r.name == "tessera"]
    assert sum("timeout; retrying" in m for m in messages) == 2
    assert sum("timeout, giving up" in m for m in messages) == 1
    assert len(Dataset(spec.dataset).done_partitions(spec.job_id)) == 2
    # Every abandoned attempt was stopped with its actor: no process still waits on the FIFO.
    deadline = time.time() + 15
    while True:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only while someone reads
        except OSError:
            break
        assert time.time() < deadline, "an abandoned attempt is still reading"
        time.sleep(0.2)


class Flaky:
    """Toy worker: item -> item * 10, after ``fails[item]`` raising calls or ``hangs`` sleeps."""

    def __init__(self, fails: dict | None = None, hangs: tuple = ()):
        self.fails, self.hangs, self.calls = dict(fails or {}), hangs, {}

    def __call__(self, item):
        self.calls[item] = self.calls.get(item, 0) + 1
        if item in self.hangs:
            time.sleep(2)
        if self.calls[item] <= self.fails.get(item, 0):
            raise ValueError(f"item {item} failed")
        return item * 10


def test_in_process_timeouts_are_retried_then_given_up():
    bars = []

    def on_result(result, bar):
        bar.set_postfix(last=result, refresh=False)
        bars.append(bar)

    got = list(map_partitions(
        Flaky, {"hangs": (3,)}, [0, 1, 2, 3, 4], mode="local", partition_timeout_s=0.3, retries=2,
        on_give_up=lambda item, reason, detail: (item, reason), on_result=on_result,
    ))
    assert sorted(got, key=str) == sorted([0, 10, 20, 40, (3, "timeout")], key=str)
    # Three attempts at item 3: two retried, then given up; the caller's postfix stays beside the counts.
    assert bars[-1].counts == {"retried": 2, "failed": 1}
    assert "retried=2" in bars[-1].postfix and "last=" in bars[-1].postfix


def test_in_process_errors_are_retried_then_fail_the_job_last():
    done = []
    with pytest.raises(PartitionsFailed, match="item 2 failed"):
        for result in map_partitions(Flaky, {"fails": {1: 1, 2: 99}}, [0, 1, 2, 3], mode="local", retries=1):
            done.append(result)
    assert sorted(done) == [0, 10, 30]  # item 1 passed on its retry; all finished before the job failed


def test_partition_time_limit_is_validated_and_keeps_the_job_id(tmp_path):
    spec = {"name": "t", "dataset": str(tmp_path), "sources": [{"name": "p", "type": "image_folder", "path": str(tmp_path)}]}
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="partition_timeout_s"):
            parse_spec({**spec, "partition_timeout_s": bad})
    # How long a partition may take changes how the job runs, not what it holds: a re-run
    # with another limit resumes the same job.
    assert parse_spec({**spec, "partition_timeout_s": 5}).job_id == parse_spec(spec).job_id
