"""LLM judges through the HTTP backend, against a scripted OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import json
import os
import threading

import pytest
from PIL import Image

from filters.scorers.base import ScoreInput
from filters.scorers.judge import build_judge_scorer
from filters.scorers.judges import FatalBackendError, JudgeCache
from filters.scorers.judges.cache import FAILED, OK, CacheKey, Judgment
from filters.scorers.judges.fake_server import FakeOpenAIServer
from filters.scorers.judges.parse import AnswerError, parse_answer
from filters.scorers.judges.rubrics import CAPTION, QA
from schemas import Turn
from schemas.config import ConfigError


def inp(sid: str, text: str, images: list | None = None) -> ScoreInput:
    return ScoreInput(sid, "image_text", text, [Turn("user", "<image>\nDescribe."), Turn("assistant", text)], [],
                      images=images or [])


def judge(server, tmp_path, **opts):
    j = build_judge_scorer({"url": server.url, "model": "fake-judge", "cache": str(tmp_path / "cache.sqlite"),
                            "timeout_s": 2.0, "retries": 2, **opts})
    j.backend.config.backoff_s = 0.01  # the schedule is tested below; keep the suite fast
    return j


@pytest.fixture
def server():
    with FakeOpenAIServer(slow_s=3.0) as s:
        yield s


def test_parse_is_strict():
    good = {"correctness": 4, "completeness": 5, "relevance": 1}
    assert parse_answer(json.dumps(good), QA) == good
    assert parse_answer("```json\n" + json.dumps({**good, "rationale": "ok"}) + "\n```", QA) == good
    assert parse_answer(json.dumps({**good, "relevance": 3.0}), QA)["relevance"] == 3
    bad = {
        "The answer is correct, 4/5.": "not_json",
        "": "empty_answer",
        "[4, 5, 1]": "not_an_object",
        json.dumps({"correctness": 4, "completeness": 5}): "missing_keys",
        json.dumps({**good, "verdict": "keep"}): "unexpected_keys",
        json.dumps({**good, "relevance": 4.5}): "not_an_integer",
        json.dumps({**good, "relevance": True}): "not_an_integer",
        json.dumps({**good, "relevance": "4"}): "not_an_integer",
        json.dumps({**good, "relevance": 7}): "out_of_range",
        json.dumps({**good, "relevance": 0}): "out_of_range",
        'Sure! {"correctness": 4, "completeness": 5, "relevance": 1}': "not_json",
    }
    for answer, reason in bad.items():
        with pytest.raises(AnswerError) as err:
            parse_answer(answer, QA)
        assert err.value.reason == reason, answer


def test_prompt_version_changes_with_the_prompt():
    from dataclasses import replace

    assert CAPTION.prompt_version != QA.prompt_version
    edited = replace(CAPTION, criteria={**CAPTION.criteria, "text_quality": "fluent text"})
    assert edited.version == CAPTION.version and edited.prompt_version != CAPTION.prompt_version


def test_every_answer_path_then_the_cache(server, tmp_path):
    names = ["GOOD", "GARBAGE", "FIXABLE", "FLAKY", "DOWN", "SLOW"]
    batch = [inp(f"s{i}", f"A red bus on a street. JUDGE:{n}") for i, n in enumerate(names)]
    j = judge(server, tmp_path, timeout_s=0.5, retries=1)
    rows = dict(zip(names, j.score(batch)))
    crit = [f"judge_caption_{c}" for c in CAPTION.criteria]
    for ok in ("GOOD", "FIXABLE", "FLAKY"):
        assert rows[ok]["judge_caption_error"] is None, rows[ok]
        assert all(1 <= rows[ok][c] <= 5 for c in crit)
        assert rows[ok]["judge_caption_overall"] == pytest.approx(sum(rows[ok][c] for c in crit) / 4)
    for failed in ("GARBAGE", "DOWN", "SLOW"):
        assert all(rows[failed][c] is None for c in crit + ["judge_caption_overall"]), rows[failed]
    assert rows["GARBAGE"]["judge_caption_error"].startswith("unparseable: not_json after 3 attempts")
    assert rows["DOWN"]["judge_caption_error"].startswith("backend: HTTP 503")
    assert rows["SLOW"]["judge_caption_error"].startswith("backend:")

    by_sample = {n: [r for r in server.requests if f"JUDGE:{n}" in r["messages"][1]["content"]] for n in names}
    assert len(by_sample["GARBAGE"]) == 3  # asked, corrected twice, then recorded as a failure
    assert len(by_sample["FIXABLE"]) == 2
    retry = by_sample["FIXABLE"][1]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert "not_json" in retry[3]["content"] and retry[2]["content"] == "Score: 4/5"
    assert by_sample["FIXABLE"][1]["temperature"] > 0 == by_sample["FIXABLE"][0]["temperature"]
    assert len(by_sample["FLAKY"]) == 2 and len(by_sample["DOWN"]) == 2  # 1 try + 1 transport retry

    cache = JudgeCache(str(tmp_path / "cache.sqlite"))
    stored = cache.get_many(j.key, [s.sample_id for s in batch])
    assert {s: stored[s].status for s in stored} == {"s0": OK, "s1": FAILED, "s2": OK, "s3": OK}
    assert stored["s1"].scores is None and stored["s1"].attempts == 3

    # A new judge on the same cache (a re-run): paid answers are free, transport failures are asked again.
    j.close()
    before = len(server.requests)
    again = judge(server, tmp_path, timeout_s=0.5, retries=1)
    rows2 = dict(zip(names, again.score(batch)))
    assert again.stats.cache_hits == 4
    asked = [r["messages"][1]["content"] for r in server.requests[before:]]
    assert asked and all("JUDGE:DOWN" in a or "JUDGE:SLOW" in a for a in asked)
    for n in ("GOOD", "GARBAGE", "FIXABLE", "FLAKY"):
        assert rows2[n] == rows[n]
    # retry_failed re-asks only the cached failure.
    before = len(server.requests)
    judge(server, tmp_path, retry_failed=True).score(batch[:4])
    assert len(server.requests) - before == 3 and all("GARBAGE" in r["messages"][1]["content"]
                                                       for r in server.requests[before:])


def test_budget_is_shared_through_the_cache(server, tmp_path):
    batch = [inp(f"b{i}", f"A cat number {i}.") for i in range(6)]
    first = judge(server, tmp_path, max_calls=4, concurrency=3)
    rows = first.score(batch[:3])
    assert all(r["judge_caption_error"] is None for r in rows)
    second = judge(server, tmp_path, max_calls=4)  # another worker with the same budget
    rows = second.score(batch)
    errors = [r["judge_caption_error"] for r in rows]
    assert errors.count(None) == 4 and errors.count("budget_exhausted") == 2
    assert len(server.requests) == 4 and second.stats.cache_hits == 3
    assert second.cache.spent(second.key) == 4


def test_concurrency_limit_and_connection_reuse(tmp_path):
    with FakeOpenAIServer(latency_s=0.15) as server:
        j = judge(server, tmp_path, concurrency=3, cache="none")
        rows = j.score([inp(f"c{i}", f"Caption {i}.") for i in range(12)])
        assert all(r["judge_caption_error"] is None for r in rows)
        assert server.max_in_flight == 3  # never more than asked, and it did overlap
        j.close()


def test_images_are_sent_only_when_asked(server, tmp_path):
    img = Image.new("RGB", (1600, 800), (200, 30, 30))
    j = judge(server, tmp_path, cache="none")
    assert j.needs_images
    j.score([inp("i0", "A red flag.", [img])])
    parts = server.requests[-1]["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "attached" in parts[0]["text"]
    text_only = judge(server, tmp_path, cache="none", send_images=False)
    assert not text_only.needs_images
    text_only.score([inp("i1", "A red flag.", [img])])
    assert isinstance(server.requests[-1]["messages"][1]["content"], str)
    assert "not shown" in server.requests[-1]["messages"][1]["content"]


def test_config_errors_stop_the_run(server, tmp_path):
    j = build_judge_scorer({"url": server.url, "model": "no-such-model", "cache": "none"})
    with pytest.raises(FatalBackendError, match="404"):
        j.score([inp("f0", "x"), inp("f1", "y")])
    with pytest.raises(ConfigError, match="url"):
        build_judge_scorer({"model": "m"})
    with pytest.raises(ConfigError, match="unknown key"):
        build_judge_scorer({"model": "m", "url": "http://127.0.0.1:1", "temperature": 1})
    with pytest.raises(ConfigError, match="rubric"):
        build_judge_scorer({"model": "m", "url": "http://127.0.0.1:1", "rubric": "vibes"})


def test_backoff_grows_and_honours_retry_after(server, tmp_path):
    b = judge(server, tmp_path).backend
    b.config.backoff_s, b.config.backoff_max_s = 1.0, 5.0
    waits = [b._backoff(i, None) for i in range(6)]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and all(w <= 5.0 for w in waits)
    assert b._backoff(0, "3") == 3.0 and b._backoff(0, "120") == 5.0


def test_cache_is_safe_under_concurrent_writers(tmp_path):
    key = CacheKey("judge_caption", "v", "m")
    path = str(tmp_path / "shared.sqlite")

    def write(worker: int):
        cache = JudgeCache(path)  # its own connection, as another process would have
        for i in range(100):
            cache.put(key, Judgment(f"{worker}-{i}", OK, {"text_quality": 3}, "{}", None, 1, 0.0))
            cache.reserve_call(key, None)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache = JudgeCache(path)
    assert cache.count(key) == 400 and cache.spent(key) == 400
    with pytest.raises(ValueError):
        cache.put(key, Judgment("x", OK, None, "", None, 1, 0.0))
    assert os.path.getsize(path) > 0
