"""Run a worker over partitions: on Ray Data (embedded or a cluster) or in-process.

The worker is a class built once per Ray actor (so models and tokenizers load once)
and called once per partition; results stream back as partitions finish and drive
a progress bar with rate and ETA. With no cluster address (argument or RAY_ADDRESS)
Ray starts embedded on this machine; the same code runs unchanged on a cluster.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterator
from typing import Any

from tqdm import tqdm

log = logging.getLogger("tessera")


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
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
        ray.init(num_cpus=num_cpus, **kwargs)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


class _RayAdapter:
    """Ray Data batch UDF around a worker class: one pickled item in, one pickled result out.

    Subclassed per job with the worker class and its arguments as class attributes, so
    they travel with the class definition rather than as actor constructor arguments in
    the object store (which Ray warns cannot survive an actor restart).
    """

    worker_cls: type
    worker_kwargs: dict

    def __init__(self):
        self.worker = self.worker_cls(**self.worker_kwargs)

    def __call__(self, batch: dict) -> dict:
        out = [pickle.dumps(self.worker(pickle.loads(item))) for item in batch["item"]]
        return {"result": out}


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
) -> Iterator[Any]:
    """Yield ``worker_cls(**worker_kwargs)(item)`` for every item, in completion order."""
    bar = tqdm(total=len(items), desc=desc, unit="part", dynamic_ncols=True, disable=not items)
    try:
        for result in _results(worker_cls, worker_kwargs, items, mode, address, workers):
            bar.update(1)
            if on_result:
                on_result(result, bar)
            yield result
    finally:
        bar.close()


def _results(worker_cls, worker_kwargs, items, mode, address, workers) -> Iterator[Any]:
    if not items:
        return
    if mode == "local":
        worker = worker_cls(**worker_kwargs)
        for item in items:
            yield worker(item)
        return
    if mode != "ray":
        raise ValueError(f"mode must be 'ray' or 'local', not {mode!r}")
    import ray
    import ray.data

    ensure_ray(address)
    size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = min(size, len(items))
    ds = ray.data.from_items([{"item": pickle.dumps(i)} for i in items], override_num_blocks=len(items))
    adapter = type(f"{worker_cls.__name__}Actor", (_RayAdapter,), {"worker_cls": worker_cls, "worker_kwargs": worker_kwargs})
    ds = ds.map_batches(
        adapter,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=1,
    )
    for row in ds.iter_rows():
        yield pickle.loads(row["result"])
