"""LLM judges through a tiny local transformers model and the real generate() path.

The model is a 2-layer Qwen2 built from a config with the byte-level tokenizer of
model/tokenizer.py, saved with save_pretrained and loaded back by the backend, as a
user's model directory would be. Its answers are noise, so the judge must retry and
then record a failure, never a score; a LogitsProcessor that forces a JSON string
(constrained decoding) then checks the success path through the same generate().
"""
from __future__ import annotations

import json

import pyarrow as pa
import pytest
import torch

from filters.scorers.base import ScoreInput
from filters.scorers.judges import JudgeCache, JudgeConfig, LLMJudge
from filters.scorers.judges.local_backend import CHATML_TEMPLATE, LocalBackend, LocalConfig
from model.tokenizer import build_tokenizer
from schemas import Turn

ANSWER = {"correctness": 4, "completeness": 5, "relevance": 3}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    path = str(tmp_path_factory.mktemp("tiny-judge"))
    build_tokenizer(path)  # untrained byte-level BPE: every byte a token
    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = CHATML_TEMPLATE
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


class ForceText:
    """A logits processor that makes generate() emit ``text`` and then end."""

    def __init__(self, tokenizer, text: str):
        self.target = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        self.start: int | None = None

    def __call__(self, input_ids, scores):
        self.start = input_ids.shape[1] if self.start is None else self.start
        step = min(input_ids.shape[1] - self.start, len(self.target) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.target[step]] = 0.0
        return forced


def qa_sample(sid: str) -> ScoreInput:
    conv = [Turn("user", "<image>\nWhat colour is the bus?"), Turn("assistant", "The bus is red.")]
    return ScoreInput(sid, "image_text", "", conv, [])


def test_noise_is_retried_then_recorded_as_a_failure(tiny_model, tmp_path):
    backend = LocalBackend(LocalConfig(path=tiny_model))
    assert backend.model is None and not backend.takes_images  # building is cheap: weights load on use
    cache = JudgeCache(str(tmp_path / "c.sqlite"))
    judge = LLMJudge(JudgeConfig(rubric="qa", max_new_tokens=16), backend, cache)
    (row,) = judge.score([qa_sample("q0")])
    assert backend.calls == 3  # the first answer and two corrected retries, all through generate()
    assert row["judge_qa_error"].startswith("unparseable:") and "after 3 attempts" in row["judge_qa_error"]
    assert all(row[f"judge_qa_{c}"] is None for c in ANSWER) and row["judge_qa_overall"] is None
    assert row["judge_qa_model"] == backend.model_id and backend.model_id.startswith("local:")
    stored = cache.get_many(judge.key, ["q0"])["q0"]
    assert stored.status == "failed" and stored.scores is None and stored.attempts == 3
    # The table the runner writes keeps the failure as a null score with its reason.
    table = pa.Table.from_pylist([{"sample_id": "q0", **row}],
                                 schema=pa.schema([pa.field("sample_id", pa.string()), *judge.schema()]))
    assert table.column("judge_qa_overall").null_count == 1
    judge.score([qa_sample("q0")])
    assert backend.calls == 3 and judge.stats.cache_hits == 1  # paid once, never again


def test_forced_json_through_generate_is_a_score(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = json.dumps(ANSWER)
    backend = LocalBackend(LocalConfig(path=tiny_model, logits_processors=lambda: [ForceText(tok, text)]))
    judge = LLMJudge(JudgeConfig(rubric="qa", max_new_tokens=64), backend, None)
    rows = judge.score([qa_sample("q1"), qa_sample("q2")])
    assert backend.calls == 2
    for row in rows:
        assert row["judge_qa_error"] is None
        assert {c: row[f"judge_qa_{c}"] for c in ANSWER} == ANSWER
        assert row["judge_qa_overall"] == pytest.approx(4.0)


def test_the_cache_key_follows_the_model_not_the_folder(tiny_model, tmp_path):
    import shutil

    a, b = tmp_path / "a" / "judge", tmp_path / "b" / "judge"
    shutil.copytree(tiny_model, a)
    shutil.copytree(tiny_model, b)
    assert LocalBackend(LocalConfig(path=str(a))).model_id == LocalBackend(LocalConfig(path=str(b))).model_id
    config = json.loads((b / "config.json").read_text())
    config["rope_theta"] = 5000.0  # a different model under the same name
    (b / "config.json").write_text(json.dumps(config))
    assert LocalBackend(LocalConfig(path=str(a))).model_id != LocalBackend(LocalConfig(path=str(b))).model_id
