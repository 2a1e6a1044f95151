"""Shared fixtures: the demo corpus, a trained tokenizer, and one local Ray per test session."""
from __future__ import annotations

import os

import pytest

# Keep Ray and tokenizers quiet and light on a 2-core CI machine.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    from jobs.demo_corpus import build_demo_corpus

    return build_demo_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def ray_local():
    """A real Ray local cluster for the end-to-end tests, started once."""
    import ray

    from pipeline.executor import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: OpenMP threads spinning against other processes
    made training steps ~20x slower than one thread."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """Options of a random tiny open_clip model saved as a local checkpoint (tests/test_clip.py)."""
    from tests.test_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
