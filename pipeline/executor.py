"""Run a worker over partitions: on a Ray Data actor pool (embedded or a cluster) or in-process.

The worker is a class built once per Ray actor (so models and tokenizers load once)
and called once per partition; results stream back as partitions finish and drive
a progress bar with rate, ETA and the count of retried and failed partitions. With no
cluster address (argument or RAY_ADDRESS) Ray starts embedded on this machine; the
same code runs unchanged on a cluster. Actors ask for ``num_cpus``/``num_gpus`` each.

Faults. A partition is idempotent (same files, same rows), so it is simply redone when
its attempt fails: its worker process died (a killed or crashed actor: Ray restarts the
actor, the partition is lost for this attempt), it overran ``partition_timeout_s`` (see
``pipeline/timed_worker.py``), or it raised. Failed partitions are retried after the
current pass, ``retries`` times; then a timed-out or worker-killing partition goes to
``on_give_up`` (ingest records its inputs as rejects) so the job ends, and one that kept
raising fails the job once every other partition has finished. In-process (``mode="local"``)
an overrunning call cannot be stopped, only left behind on its thread: should it finish
later, it rewrites its partition's files (whole and atomically, but over the give-up's).
"""
from __future__ import annotations

import logging
import os
import pickle
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from tqdm import tqdm

from pipeline.timed_worker import ERROR, LOST, OK, Outcome, TimedWorker

log = logging.getLogger("tessera")

# An actor that abandoned an overrunning call exits this long after handing back the
# timeout, so the stuck call dies with it (the delay lets the reply reach the driver).
STUCK_EXIT_DELAY_S = 1.0


class PartitionsFailed(RuntimeError):
    def __init__(self, failures: list[Outcome]):
        self.failures = failures
        first = failures[0]
        super().__init__(f"{len(failures)} partition(s) failed on every attempt; first ({first.status}):\n{first.detail}")


def ensure_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Connect to ``address`` (or RAY_ADDRESS), else start Ray here (``num_cpus``/``num_gpus``:
    what it may use; None: what the machine has)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    # Ray's own per-operator bars would fight ours; its info logs drown the summary.
    logging.getLogger("ray").setLevel(logging.WARNING)
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, **kwargs)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def _drop_ignored_block_errors(record: logging.LogRecord) -> bool:
    """Ray Data logs each dropped block with a full traceback; we log the partition instead."""
    return "Ignoring this exception" not in record.getMessage()


class _Progress(tqdm):
    """A bar whose postfix keeps the executor's retried/failed counts next to whatever
    the caller's ``on_result`` puts there."""

    def __init__(self, *args, **kwargs):
        self.counts: dict[str, int] = {}
        self._caller_postfix: dict = {}
        super().__init__(*args, **kwargs)

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self._caller_postfix = {**(ordered_dict or {}), **kwargs}
        super().set_postfix({**self._caller_postfix, **self.counts}, refresh=refresh)

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.set_postfix(self._caller_postfix, refresh=False)


def map_partitions(
    worker_cls: type,
    worker_kwargs: dict,
    items: list,
    *,
    mode: str = "ray",
    address: str | None = None,
    workers: int = 0,
    desc: str = "partitions",
    on_result: Callable[[Any, tqdm], None] | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    partition_timeout_s: float | None = None,
    retries: int = 2,
    on_give_up: Callable[[Any, str, str], Any] | None = None,
    progress: bool = True,
) -> Iterator[Any]:
    """Yield ``worker_cls(**worker_kwargs)(item)`` for every item, in completion order.

    ``workers``: actors (0: as many as the cluster's CPUs, or GPUs when ``num_gpus``,
    allow). ``on_give_up(item, reason, detail)`` makes the result of an item that timed
    out or lost its worker on every attempt (``reason`` "timeout" or "worker_lost");
    without it such items fail the job like items whose worker raised.
    """
    if mode not in ("local", "ray"):
        raise ValueError(f"mode must be 'ray' or 'local', not {mode!r}")
    if not items:  # e.g. a re-run with every partition done: no Ray start, no worker built
        return
    if mode == "local":
        run_pass = _local_pass(worker_cls, worker_kwargs, items, partition_timeout_s)
    else:
        run_pass = _ray_pass(worker_cls, worker_kwargs, items, address, workers, num_cpus, num_gpus, partition_timeout_s)
    bar = _Progress(total=len(items), desc=desc, unit="part", dynamic_ncols=True, disable=not progress)
    try:
        for result in _with_retries(run_pass, items, retries, on_give_up, bar):
            bar.update(1)
            if on_result:
                on_result(result, bar)
            yield result
    finally:
        bar.close()


def _with_retries(run_pass, items, retries, on_give_up, bar: _Progress) -> Iterator[Any]:
    """Passes over the items still to do, until each succeeded or used up its attempts."""
    attempts = [0] * len(items)
    todo, failures = list(range(len(items))), []
    while todo:
        again = []
        for out in run_pass(todo):
            attempts[out.index] += 1
            if out.status == OK:
                yield out.result
                continue
            where = f"partition {out.index} ({_name(items[out.index])}), attempt {attempts[out.index]}"
            if attempts[out.index] <= retries:
                log.warning("%s: %s; retrying: %s", where, out.status, out.detail.strip().splitlines()[-1])
                bar.count("retried")
                again.append(out.index)
                continue
            log.error("%s: %s, giving up: %s", where, out.status, out.detail)
            bar.count("failed")
            if out.status != ERROR and on_give_up is not None:
                yield on_give_up(items[out.index], out.status, f"{out.detail} ({attempts[out.index]} attempts)")
            else:
                failures.append(out)
        todo = again
    if failures:
        raise PartitionsFailed(failures)


def _name(item: Any) -> str:
    return str(getattr(item, "partition_id", None) or getattr(item, "part", None) or type(item).__name__)


def _local_pass(worker_cls, worker_kwargs, items, timeout_s):
    """In this process; a worker left stuck by a timeout is replaced by a fresh one."""
    current: list[TimedWorker] = []

    def run(indices: list[int]) -> Iterator[Outcome]:
        for i in indices:
            if not current or current[0].stuck:
                current[:] = [TimedWorker(worker_cls, worker_kwargs, timeout_s)]
            yield current[0](i, items[i])

    return run


class _RayAdapter:
    """Ray Data batch UDF around a worker class: pickled ``(index, item)`` in, pickled Outcome out.

    Subclassed per job with the worker class and its arguments as class attributes, so
    they travel with the class definition rather than as actor constructor arguments in
    the object store (which Ray warns cannot survive an actor restart).
    """

    worker_cls: type
    worker_kwargs: dict
    timeout_s: float | None = None

    def __init__(self):
        self.worker = TimedWorker(self.worker_cls, self.worker_kwargs, self.timeout_s)

    def __call__(self, batch: dict) -> dict:
        if self.worker.stuck:  # a task that arrived before the exit below: Ray gives it to a fresh actor
            os._exit(1)
        out = [pickle.dumps(self.worker(*pickle.loads(blob))) for blob in batch["item"]]
        if self.worker.stuck:  # exit unexpectedly (not exit_actor) so that Ray restarts the actor
            threading.Timer(STUCK_EXIT_DELAY_S, os._exit, (1,)).start()
        return {"result": out}


def _ray_pass(worker_cls, worker_kwargs, items, address, workers, num_cpus, num_gpus, timeout_s):
    import ray
    import ray.data

    ensure_ray(address)
    resources = ray.cluster_resources()
    if num_gpus:
        if resources.get("GPU", 0) < num_gpus:  # Ray Data would wait for such an actor forever
            raise ValueError(f"actors ask for {num_gpus} GPU each; the cluster has {resources.get('GPU', 0):g}")
        size = workers or max(1, int(resources.get("GPU", 0) / num_gpus))
    else:
        size = workers or max(1, int(resources.get("CPU", 1) / (num_cpus or 1)))
    logging.getLogger("ray.data._internal.execution.streaming_executor_state").addFilter(_drop_ignored_block_errors)
    attrs = {"worker_cls": worker_cls, "worker_kwargs": worker_kwargs, "timeout_s": timeout_s}
    adapter = type(f"{worker_cls.__name__}Actor", (_RayAdapter,), attrs)

    def run(indices: list[int]) -> Iterator[Outcome]:
        ctx = ray.data.DataContext.get_current()
        saved = ctx.max_errored_blocks
        # A block whose actor died is dropped, not fatal: the partition is retried by us.
        ctx.max_errored_blocks = -1
        try:
            ds = ray.data.from_items([{"item": pickle.dumps((i, items[i]))} for i in indices],
                                     override_num_blocks=len(indices))
            with warnings.catch_warnings():
                # max_task_retries has no named map_batches parameter yet (Ray 2.60 warns).
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                ds = ds.map_batches(
                    adapter, batch_size=1, num_cpus=num_cpus, num_gpus=num_gpus or None,
                    # One partition per actor at a time: a queued one would die with its actor.
                    compute=ray.data.ActorPoolStrategy(size=min(size, len(indices)), max_tasks_in_flight_per_actor=1),
                    # Restart dead actors, but let us (not Ray) redo their partitions: we count
                    # and bound the attempts, so a partition that crashes every worker ends.
                    max_restarts=-1, max_task_retries=0,
                )
            seen = set()
            for row in ds.iter_rows():
                out: Outcome = pickle.loads(row["result"])
                seen.add(out.index)
                yield out
        finally:
            ctx.max_errored_blocks = saved
        for i in indices:
            if i not in seen:
                yield Outcome(i, LOST, detail="its worker process died (killed, crashed or out of memory)")

    return run
