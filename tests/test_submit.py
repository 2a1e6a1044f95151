"""`tessera submit` and `tessera jobs` against a real Ray cluster on loopback: a head (with the
Jobs API and token auth) plus a worker node, both started here and torn down by process group.
"""
from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from jobs.cli import main
from jobs.jobs_cli import manifest_lines
from jobs.ray_jobs_client import JobsApi, auth_token
from jobs.spec import load_spec
from jobs.submit_package import SHIPPED_DIR, plan_submission, stage_package
from jobs.train_config import load_train_config
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.image_io import ImageDecodeError, decode_image

BIN = Path(sys.executable).parent
N_VALID = 5


def write_corpus(root: Path) -> tuple[Path, str]:
    """A manifest of N_VALID distinct noise images and one truncated JPEG; returns (spec, reject reason)."""
    rng = np.random.default_rng(0)
    (root / "corpus").mkdir(parents=True)
    rows = []
    for i in range(N_VALID):
        img = Image.fromarray(rng.integers(0, 255, (64 + 8 * i, 96, 3), dtype=np.uint8))
        img.save(root / "corpus" / f"img{i}.jpg", quality=90)
        rows.append({"image": f"img{i}.jpg", "caption": f"noise picture number {i} with {i + 3} random colour blocks"})
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(buf, format="JPEG")
    bad = buf.getvalue()[: len(buf.getvalue()) // 3]
    (root / "corpus" / "broken.jpg").write_bytes(bad)
    rows.append({"image": "broken.jpg", "caption": "a picture whose file was cut off in the middle"})
    (root / "corpus" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ImageDecodeError) as err:
        decode_image(bad)
    # Relative paths on purpose: submit must resolve them here, as `tessera ingest` would.
    spec = {"name": "submitted", "dataset": "ds", "partition_size": 3,
            "sources": [{"name": "pics", "type": "manifest", "path": "corpus/manifest.jsonl"}]}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    return root / "spec.yaml", err.value.reason


# -- without a cluster ---------------------------------------------------------------------------

def test_plan_makes_paths_absolute_and_keeps_the_job_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path)
    plan = plan_submission(["ingest", "spec.yaml", "--dataset", "other-ds"])
    local = load_spec("spec.yaml", dataset_override="other-ds")
    (name,) = plan.files
    assert plan.argv == ["ingest", f"{SHIPPED_DIR}/{name}", "--dataset", str(tmp_path / "other-ds")]
    assert plan.metadata["tessera_job_id"] == local.job_id
    assert plan.metadata["tessera_dataset"] == str(tmp_path / "other-ds")
    stage = Path(stage_package(plan))
    try:
        shipped = stage / SHIPPED_DIR / name
        monkeypatch.chdir(stage)  # where the job runs on the cluster
        assert load_spec(str(shipped), dataset_override=str(tmp_path / "other-ds")).job_id == local.job_id
        assert (stage / "jobs" / "cli.py").exists() and (stage / "pipeline" / "ingest.py").exists()
        assert not (stage / ".venv").exists() and not (stage / ".git").exists()
        assert not list(stage.rglob("__pycache__"))
    finally:
        shutil.rmtree(stage.parent)


def test_shipped_training_file_resolves_like_the_local_one(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    example = "jobs/examples/train_internvl25.yaml"
    plan = plan_submission(["train", example, "--stop-after", "3"])
    local = load_train_config(example)
    ((name, content),) = plan.files.items()
    assert plan.argv == ["train", f"{SHIPPED_DIR}/{name}", "--stop-after", "3"]
    (tmp_path / name).write_text(yaml.safe_dump(content))
    monkeypatch.chdir(tmp_path)  # another current directory, as on the cluster
    assert load_train_config(name) == local


def test_bad_addresses_are_one_line_errors(monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert main(["jobs", "list"]) == 2
    assert "dashboard URL" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    t0 = time.monotonic()
    assert main(["jobs", "status", "x", "--address", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and len(err.strip().splitlines()) == 1 and time.monotonic() - t0 < 10


# -- on a real cluster ---------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def ray_start(args: list[str], env: dict, groups: list[int]) -> None:
    """Run `ray start` in a new session; its daemons keep that process group, which teardown kills."""
    proc = subprocess.Popen([str(BIN / "ray"), "start", "--disable-usage-stats", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    groups.append(proc.pid)
    out, _ = proc.communicate(timeout=120)
    if proc.returncode:
        raise RuntimeError(f"ray start failed:\n{out[-3000:]}")


def kill_groups(pgids: list[int]) -> None:
    """SIGTERM every group, then SIGKILL what is left after a few seconds."""
    def alive() -> list[int]:
        out = []
        for pgid in pgids:
            try:
                os.killpg(pgid, 0)
                out.append(pgid)
            except ProcessLookupError:
                pass
        return out

    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        for pgid in alive():
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)


def state_api(url: str, resource: str) -> list[dict]:
    """Rows of Ray's state API (nodes, actors, ...), authenticated like the CLI."""
    import requests

    token, _ = auth_token()
    r = requests.get(f"{url}/api/v0/{resource}?limit=1000&detail=1", headers={"Authorization": f"Bearer {token}"},
                     timeout=30)
    r.raise_for_status()
    return r.json()["data"]["result"]["result"]


@pytest.fixture(scope="module")
def cluster():
    # Short path: Ray's unix sockets live under the temp dir and their names are length-limited.
    root = Path(f"/tmp/tsub-{uuid.uuid4().hex[:8]}")
    root.mkdir()
    (root / "token").write_text(secrets.token_hex(16))
    gcs, dash, client, agent_head, agent_worker = free_ports(5)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(root / "token"), "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_TOKEN", None)
    groups = []
    try:
        ray_start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
                   "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
                   "--ray-client-server-port", str(client), "--dashboard-agent-listen-port",
                   str(agent_head), "--temp-dir", str(root / "ray"), "--num-cpus", "1",
                   "--include-dashboard", "true"], env, groups)
        ray_start(["--address", f"127.0.0.1:{gcs}", "--num-cpus", "1",
                   "--dashboard-agent-listen-port", str(agent_worker)], env, groups)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RAY_AUTH_TOKEN_PATH", str(root / "token"))
            mp.delenv("RAY_AUTH_TOKEN", raising=False)
            url = f"http://127.0.0.1:{dash}"
            deadline = time.monotonic() + 60
            while sum(n["state"] == "ALIVE" for n in state_api(url, "nodes")) < 2:  # the worker joined
                assert time.monotonic() < deadline, state_api(url, "nodes")
                time.sleep(1)
            yield url
    finally:
        kill_groups(groups)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def submitted(cluster, tmp_path_factory):
    """`tessera submit -- ingest spec.yaml` from the corpus folder, waited for."""
    work = tmp_path_factory.mktemp("submit")
    _, reason = write_corpus(work)
    cwd = os.getcwd()
    os.chdir(work)
    out, err = io.StringIO(), io.StringIO()
    try:
        from contextlib import redirect_stderr, redirect_stdout

        with redirect_stdout(out), redirect_stderr(err):
            rc = main(["submit", "--address", cluster, "--", "ingest", "spec.yaml"])
    finally:
        os.chdir(cwd)
    return work, reason, rc, out.getvalue(), err.getvalue()


def job_manifest(work: Path) -> dict:
    (path,) = (work / "ds" / "jobs").glob("*/manifest.json")
    return json.loads(path.read_text())


@pytest.mark.slow
def test_submitted_ingest_fills_the_catalog(submitted, cluster):
    work, reason, rc, out, err = submitted
    assert rc == 0, out + err
    job = out.split()[1]
    assert out.startswith(f"submitted {job} to {cluster}")
    assert f"{job}: SUCCEEDED" in out
    ds = Dataset(str(work / "ds"))
    assert catalog.query(ds, "SELECT count(*) AS n FROM samples").to_pylist() == [{"n": N_VALID}]
    assert catalog.query(ds, "SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL").to_pylist() == \
        [{"stage": "decode", "reason": reason, "n": 1}]
    manifest = job_manifest(work)
    assert manifest["status"] == "succeeded"
    assert "\n".join(manifest_lines(manifest)) in out  # the summary, after Ray's status
    assert f"rejected decode/{reason}: 1" in out
    # Two partitions, one CPU per node, one CPU per ingest actor: the pool spans both nodes.
    actors = [a for a in state_api(cluster, "actors") if "MapWorker" in a.get("class_name", "")]
    assert len({a["node_id"] for a in actors}) == 2, [(a.get("class_name"), a.get("node_id")) for a in actors]


@pytest.mark.slow
def test_jobs_status_logs_and_list(submitted, cluster, capsys):
    work, reason, rc, out, _ = submitted
    job = out.split()[1]
    assert main(["jobs", "status", job, "--address", cluster]) == 0
    status = capsys.readouterr().out
    assert status.startswith(f"{job}: SUCCEEDED (command ingest, dataset {work / 'ds'}")
    assert "\n".join(manifest_lines(job_manifest(work))) in status
    assert f"rejected decode/{reason}: 1" in status
    assert main(["jobs", "logs", job, "--address", cluster]) == 0
    logs = capsys.readouterr().out
    assert f"rejected decode/{reason}: 1" in logs  # the job's own summary print, from the cluster
    assert main(["jobs", "list", "--address", cluster]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [job, "SUCCEEDED", "ingest", str(work / "ds")] in [row[:4] for row in listed]


@pytest.mark.slow
def test_submit_follow_shard_streams_logs_and_shows_the_shard_summary(submitted, cluster, capsys, monkeypatch):
    work = submitted[0]
    monkeypatch.chdir(work)
    assert main(["submit", "--follow", "--address", cluster, "--", "shard", "ds", "--out", "shards"]) == 0
    out = capsys.readouterr().out
    job = out.split()[1]
    assert "Running entrypoint for job" in out  # the streamed log, before the status block
    manifest = json.loads((work / "shards" / "manifest.json").read_text())  # --out resolved here
    assert sorted(p.name for p in (work / "shards").glob("*.tar")) == sorted(manifest["shards"])
    assert out.index("Running entrypoint") < out.index(f"{job}: SUCCEEDED (command shard")
    assert "\n".join(manifest_lines(manifest)) in out


@pytest.mark.slow
def test_jobs_stop_stops_a_running_job(cluster, capsys):
    api = JobsApi(cluster)
    job = api.client.submit_job(entrypoint="python -c 'import time; time.sleep(600)'")
    deadline = time.monotonic() + 60
    while str(api.client.get_job_status(job).value) != "RUNNING":
        assert time.monotonic() < deadline, "the sleeping job never started"
        time.sleep(0.5)
    assert main(["jobs", "stop", job, "--address", cluster]) == 0
    assert capsys.readouterr().out.strip() == f"{job}: STOPPED"
    assert str(api.client.get_job_status(job).value) == "STOPPED"
    assert main(["jobs", "stop", job, "--address", cluster]) == 2
    assert "already ended: STOPPED" in capsys.readouterr().err


@pytest.mark.slow
def test_unknown_job_and_bad_tokens_are_one_line_errors(cluster, capsys, monkeypatch, tmp_path):
    for verb in ("status", "logs", "stop"):
        assert main(["jobs", verb, "raysubmit_nosuchjob", "--address", cluster]) == 2
        err = capsys.readouterr().err
        assert "no job 'raysubmit_nosuchjob'" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    assert main(["jobs", "list", "--address", cluster]) == 2
    assert "rejected the auth token from RAY_AUTH_TOKEN" in capsys.readouterr().err
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
    assert main(["jobs", "list", "--address", cluster]) == 2
    assert "requires an auth token and none was found" in capsys.readouterr().err
