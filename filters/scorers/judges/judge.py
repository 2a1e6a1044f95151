"""``LLMJudge``: a rubric, a backend and a cache behind the ``Scorer`` interface.

Per sample: a cached judgment is reused for free; otherwise the model is asked, and an
unusable answer is sent back with the reason and asked again, up to ``attempts`` times.
What comes out is either integer scores or an error, never a guess:

* ``ok``: every criterion in ``<name>_<criterion>``, their mean in ``<name>_overall``;
* ``unparseable: REASON``: the model answered ``attempts`` times, never validly (cached:
  it was paid for; ``retry_failed`` asks again);
* ``backend: ...``: the model could not be reached (not cached, a re-run asks again);
* ``budget_exhausted``: ``max_calls`` was spent before this sample (not cached).

``max_calls`` is counted in the cache's ledger, per (judge, prompt version, model), by
every process sharing the cache file: it caps what this judge ever spends there, so a
re-run or a second Ray actor cannot exceed it. Without a cache it counts per instance.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from filters.scorers.base import ScoreInput
from filters.scorers.judges.backend import Backend, BackendError, FatalBackendError, JudgeRequest, Message
from filters.scorers.judges.cache import FAILED, OK, CacheKey, JudgeCache, Judgment
from filters.scorers.judges.parse import AnswerError, parse_answer
from filters.scorers.judges.rubrics import RETRY_PROMPT, get_rubric, render_sample, user_prompt

BUDGET_EXHAUSTED = "budget_exhausted"


@dataclass
class JudgeConfig:
    rubric: str = "caption"  # "caption" (caption + interleaved data) or "qa" (instruction/QA data)
    name: str | None = None  # scorer name and column prefix; default "judge_" + rubric
    attempts: int = 3  # answers asked for per sample before it is recorded as unparseable
    max_calls: int | None = None  # total model calls allowed (see above); cache hits are free
    retry_failed: bool = False  # ask again for samples whose cached answer was unparseable
    send_images: bool = True  # attach images when the backend takes them
    max_text_chars: int = 6000
    max_new_tokens: int = 200
    retry_temperature: float = 0.7  # a retry at temperature 0 would often repeat the same bad answer


@dataclass
class JudgeStats:
    calls: int = 0  # model calls made (each retry counts)
    cache_hits: int = 0
    ok: int = 0
    unparseable: int = 0
    backend_errors: int = 0
    budget_skipped: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class LLMJudge:
    def __init__(self, config: JudgeConfig, backend: Backend, cache: JudgeCache | str | None = None):
        self.config = config
        self.rubric = get_rubric(config.rubric)
        self.name = config.name or f"judge_{self.rubric.name}"
        self.version = self.rubric.prompt_version
        self.backend = backend
        self._cache_src = cache
        self._cache = cache if isinstance(cache, JudgeCache) else None  # a path opens on first use
        self.needs_images = bool(config.send_images and backend.takes_images)
        self.key = CacheKey(self.name, self.version, backend.model_id)
        self.stats = JudgeStats()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def cache(self) -> JudgeCache | None:
        if self._cache is None and isinstance(self._cache_src, str):
            self._cache = JudgeCache(self._cache_src)
        return self._cache

    # -- Scorer interface ---------------------------------------------------------------
    def schema(self) -> pa.Schema:
        p = self.name + "_"
        return pa.schema([*(pa.field(p + c, pa.int8()) for c in self.rubric.criteria),
                          pa.field(p + "overall", pa.float32()), pa.field(p + "error", pa.string()),
                          pa.field(p + "model", pa.string())])

    def score(self, batch: list[ScoreInput]) -> list[dict[str, Any]]:
        # One loop for the judge's lifetime, so the HTTP connection pool survives across batches.
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        start = time.perf_counter()
        try:
            return self._loop.run_until_complete(self._score_batch(batch))
        finally:
            self.stats.seconds += time.perf_counter() - start

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self.backend.aclose())
            self._loop.close()
            self._loop = None
        if self._cache is not None and isinstance(self._cache_src, str):  # ours to close; reopens if used again
            self._cache.close()
            self._cache = None

    # -- rows ---------------------------------------------------------------------------
    def row(self, scores: dict[str, int] | None, error: str | None) -> dict[str, Any]:
        p = self.name + "_"
        row = {p + c: (scores[c] if scores else None) for c in self.rubric.criteria}
        row[p + "overall"] = sum(scores.values()) / len(scores) if scores else None
        row[p + "error"] = error
        row[p + "model"] = self.backend.model_id
        return row

    def row_of(self, j: Judgment) -> dict[str, Any]:
        return self.row(j.scores, None) if j.status == OK else self.row(None, j.error)

    # -- judging ------------------------------------------------------------------------
    async def _score_batch(self, batch: list[ScoreInput]) -> list[dict[str, Any]]:
        cached = self.cache.get_many(self.key, [s.sample_id for s in batch]) if self.cache else {}
        rows: list[dict[str, Any] | None] = [None] * len(batch)
        todo = []
        for i, s in enumerate(batch):
            j = cached.get(s.sample_id)
            if j is not None and (j.status == OK or not self.config.retry_failed):
                self.stats.cache_hits += 1
                rows[i] = self.row_of(j)
            else:
                todo.append(i)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = {i: tg.create_task(self._judge_one(batch[i])) for i in todo}
        except* FatalBackendError as group:
            raise group.exceptions[0] from None
        for i, task in tasks.items():
            rows[i] = task.result()
        return rows  # type: ignore[return-value]

    def _error(self, error: str) -> dict[str, Any]:
        kind = error.split(":", 1)[0]
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        return self.row(None, error)

    def _first_request(self, s: ScoreInput) -> JudgeRequest:
        text = render_sample(s.text, s.conversation, self.config.max_text_chars)
        images = list(s.images) if self.needs_images else []
        messages = [Message("system", self.rubric.system_prompt()),
                    Message("user", user_prompt(text, bool(images)), images)]
        return JudgeRequest(messages, max_new_tokens=self.config.max_new_tokens, temperature=0.0)

    async def _judge_one(self, s: ScoreInput) -> dict[str, Any]:
        if not (s.text.strip() or any(t.content.strip() for t in s.conversation)):
            return self._error("empty_sample")
        request = self._first_request(s)
        start = time.perf_counter()
        answer, reason = "", "no answer"
        for attempt in range(self.config.attempts):
            if not self._take_call():
                self.stats.budget_skipped += 1
                return self._error(BUDGET_EXHAUSTED)
            self.stats.calls += 1
            try:
                answer = await self.backend.complete(request)
            except FatalBackendError:
                raise
            except BackendError as exc:
                self.stats.backend_errors += 1
                return self._error(f"backend: {exc}")
            try:
                scores = parse_answer(answer, self.rubric)
            except AnswerError as exc:
                reason = exc.reason
                # Show the model its own answer and what was wrong with it, then ask again.
                retry = RETRY_PROMPT.format(reason=str(exc)[:120], template=self.rubric.answer_template())
                request = JudgeRequest(
                    request.messages[:2] + [Message("assistant", answer[:2000]), Message("user", retry)],
                    max_new_tokens=request.max_new_tokens, temperature=self.config.retry_temperature)
                continue
            self.stats.ok += 1
            self._remember(Judgment(s.sample_id, OK, scores, answer, None, attempt + 1, time.perf_counter() - start))
            return self.row(scores, None)
        self.stats.unparseable += 1
        error = f"unparseable: {reason} after {self.config.attempts} attempts"
        self._remember(Judgment(s.sample_id, FAILED, None, answer, error, self.config.attempts,
                                time.perf_counter() - start))
        return self._error(error)

    def _take_call(self) -> bool:
        if self.cache is not None:
            return self.cache.reserve_call(self.key, self.config.max_calls)
        return self.config.max_calls is None or self.stats.calls < self.config.max_calls

    def _remember(self, j: Judgment) -> None:
        if self.cache is not None:
            self.cache.put(self.key, j)
