"""The trainer: frozen modules, stages, exact resume, 2-process gloo == 1 process, tokenizer checks."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import webdataset as wds
import yaml
from transformers import InternVLForConditionalGeneration

from jobs.demo import corpus_texts
from jobs.train_config import DataSource, parse_train_config
from jobs.train_data import decode_pack, open_shard_set
from jobs.train_demo import TILING, demo_train_config, prepare_train_data
from jobs.train_log import read_log
from jobs.train_loop import run_train
from model.build import build_model
from model.config import ModelConfig
from model.freeze import apply_freezing, group_of, make_optimizer
from model.packed import collate_packed, weighted_loss_sum
from model.tokenizer import build_tokenizer, load_tokenizer
from pipeline.tiling import TilingConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def train_data(corpus, tmp_path_factory):
    """Same shared folder as tests/test_model.py's fixture: whichever runs first builds it."""
    base = tmp_path_factory.getbasetemp() / "train-data"
    tok = str(base / "tokenizer")
    if not os.path.exists(os.path.join(tok, "tokenizer_config.json")):
        build_tokenizer(tok, texts=corpus_texts(str(corpus.root)), vocab_size=600)
    return {"tokenizer": tok, "shards": prepare_train_data(str(base), corpus, tok)}


def two_stage_config(out, shards, **top) -> dict:
    cfg = demo_train_config(str(out), shards, save_every=2, **top)
    first, _, last = cfg["stages"]
    first["steps"], last["steps"] = 3, 4
    cfg["stages"] = [first, last]
    return cfg


@pytest.mark.parametrize("train,last_layers", [(["projector"], 0), (["vision", "projector"], 1)])
def test_frozen_parameters_get_no_gradient_and_no_optimizer_state(train_data, train, last_layers):
    tok = load_tokenizer(train_data["tokenizer"])
    tiling = TilingConfig(**TILING)
    model = build_model(ModelConfig(preset="tiny"), tok, tiling)
    groups = apply_freezing(model, train, last_layers)
    optimizer = make_optimizer(groups, {g: 1e-3 for g in train}, 0.0)
    raw = next(iter(wds.WebDataset(open_shard_set(DataSource("x", train_data["shards"])).urls, shardshuffle=False)))
    weighted_loss_sum(model, collate_packed(decode_pack(raw, tok, tiling, None, None))).backward()
    optimizer.step()
    trained = {id(p) for ps in groups.values() for p in ps}
    last_layer = f"encoder.layer.{model.config.vision_config.num_hidden_layers - 1}."
    for name, p in model.named_parameters():
        should = group_of(name) in train and (not last_layers or group_of(name) != "vision" or last_layer in name)
        assert (id(p) in trained) == should, name
        assert (p.grad is not None) == should, name
        assert (p in optimizer.state) == should, name
    assert len(optimizer.state) == len(trained) > 0


@pytest.fixture(scope="module")
def uninterrupted(train_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run-full")
    results = run_train(parse_train_config(two_stage_config(out, train_data["shards"])))
    return out, results, read_log(str(out / "train_log.jsonl"))


def losses(log: list[dict]) -> list[tuple[str, int, float]]:
    return [(r["stage"], r["step"], r["loss"]) for r in log]


def test_stages_chain_and_frozen_modules_do_not_move(train_data, uninterrupted):
    out, results, log = uninterrupted
    assert [r.name for r in results] == ["projector-warmup", "full"] and [r.steps for r in results] == [3, 4]
    assert [(r["stage"], r["step"]) for r in log] == [("projector-warmup", i) for i in (1, 2, 3)] + [
        ("full", i) for i in (1, 2, 3, 4)]
    for r in log:
        assert set(r) >= {"loss", "lr", "tokens_per_s", "images_per_s", "fill", "data_wait_s"}
        assert r["images_per_s"] > 0 and 0.5 < r["fill"] <= 1
    assert set(log[0]["lr"]) == {"projector"} and set(log[-1]["lr"]) == {"vision", "projector", "llm"}
    initial = build_model(ModelConfig(preset="tiny"), load_tokenizer(train_data["tokenizer"]), TilingConfig(**TILING))
    warmed = InternVLForConditionalGeneration.from_pretrained(results[0].final)
    final = InternVLForConditionalGeneration.from_pretrained(results[1].final)
    before, after, end = initial.state_dict(), warmed.state_dict(), final.state_dict()
    for name in before:
        moved = not torch.equal(before[name], after[name])
        assert moved == (group_of(name) == "projector"), name  # stage 1 trained the projector only
    assert not torch.equal(after["model.language_model.layers.0.mlp.up_proj.weight"],
                           end["model.language_model.layers.0.mlp.up_proj.weight"])  # stage 2 started from stage 1


def test_resume_after_a_crash_reproduces_the_losses(train_data, uninterrupted, tmp_path):
    _, _, expected = uninterrupted
    cfg = parse_train_config(two_stage_config(tmp_path, train_data["shards"]))
    # Crash after 3 + 3 steps: stage 2's last checkpoint is its step 2, so step 3 runs again after resuming.
    stopped = run_train(cfg, stop_after=6)
    assert stopped[-1].final is None and stopped[-1].steps == 3
    resumed = run_train(cfg)
    assert [r.name for r in resumed] == ["full"]  # the finished stage is not trained again
    assert losses(read_log(str(tmp_path / "train_log.jsonl"))) == losses(expected)


def test_bf16_autocast_trains_close_to_fp32(train_data, uninterrupted, tmp_path, monkeypatch):
    """precision: bf16 is the GPU default; torch's CPU autocast runs the same code path here.
    Losses must differ from float32 (autocast really engaged) yet stay close (nothing broke:
    masks, loss weights and optimizer state work under bf16 compute)."""
    import jobs.train_loop as loop

    _, _, fp32_log = uninterrupted
    seen = []
    real = loop.weighted_loss_sum

    def spy(model, batch, attn, mask_dtype):
        loss = real(model, batch, attn, mask_dtype)
        seen.append((mask_dtype, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return loss

    monkeypatch.setattr(loop, "weighted_loss_sum", spy)
    run_train(parse_train_config(two_stage_config(tmp_path, train_data["shards"], precision="bf16")))
    bf16_log = read_log(str(tmp_path / "train_log.jsonl"))
    assert seen and all(s == (torch.bfloat16, True, torch.bfloat16) for s in seen)
    assert [(r["stage"], r["step"]) for r in bf16_log] == [(r["stage"], r["step"]) for r in fp32_log]
    pairs = [(a["loss"], b["loss"]) for a, b in zip(bf16_log, fp32_log)]
    assert any(a != b for a, b in pairs)
    assert all(abs(a - b) <= 0.05 * abs(b) for a, b in pairs), pairs


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_gloo_processes_match_one_process(train_data, uninterrupted, tmp_path, mode):
    _, results, expected = uninterrupted
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(two_stage_config(tmp_path / "out", train_data["shards"], distributed=mode)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
         "-m", "jobs.train", str(config)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = read_log(str(tmp_path / "out" / "train_log.jsonl"))
    assert [(r["stage"], r["step"], r["world"]) for r in got] == [(r["stage"], r["step"], 2) for r in expected]
    for a, b in zip(got, expected):
        assert a["tokens_seen"] == b["tokens_seen"]  # the same packs made the global batches
        assert abs(a["loss"] - b["loss"]) / b["loss"] < 1e-4, (a, b)
    final = InternVLForConditionalGeneration.from_pretrained(str(tmp_path / "out" / "stages" / "01-full" / "final"))
    single = InternVLForConditionalGeneration.from_pretrained(results[-1].final)
    for (name, p), q in zip(final.state_dict().items(), single.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_shards_of_another_tokenizer_are_refused(train_data, tmp_path):
    other = build_tokenizer(str(tmp_path / "other-tokenizer"))  # untrained byte-level BPE
    cfg = parse_train_config(two_stage_config(tmp_path / "out", train_data["shards"], tokenizer=other))
    with pytest.raises(ValueError, match="tokenizer fingerprint"):
        run_train(cfg)


@pytest.mark.parametrize("name", ["train_internvl25.yaml", "train_qwenvl.yaml"])
def test_example_training_files_parse(name):
    from jobs.train_config import load_train_config

    cfg = load_train_config(os.path.join(ROOT, "jobs", "examples", name))
    assert len(cfg.stages) == 3 and cfg.model.vision and cfg.model.llm
    assert any(s.train == ["projector"] or "llm" not in s.train for s in cfg.stages)


def test_bad_training_files_fail_with_clear_messages(train_data):
    from schemas.config import ConfigError

    good = two_stage_config("/tmp/x", train_data["shards"])
    bad_stage = {**good["stages"][0], "lr": {"llm": 1e-3}}
    with pytest.raises(ConfigError, match="lr for exactly the trained groups"):
        parse_train_config({**good, "stages": [bad_stage]})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_train_config({**good, "stagez": []})
