"""A persistent judgment cache: one SQLite file, keyed by (judge, prompt version, model, sample).

Judge calls are the expensive part of curation (GPU time or API money), so a re-run,
a resumed job or a second judge pass over an overlapping selection must never pay for
the same answer twice. Both outcomes the model paid for are cached: a valid judgment
("ok") and an answer that stayed unparseable after every retry ("failed", never a
score). Transport errors (timeouts, 5xx, a dead server) are not cached: the model
never answered, so a later run asks again.

SQLite in WAL mode with a busy timeout lets several worker processes share one file;
an upsert makes concurrent writes of the same key harmless (equal key, equal meaning).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass

OK, FAILED = "ok", "failed"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    judge TEXT NOT NULL, prompt_version TEXT NOT NULL, model TEXT NOT NULL, sample_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    scores TEXT,          -- JSON object of criterion -> int, only when status = 'ok'
    answer TEXT,          -- the model's last raw answer, for audits
    error TEXT,           -- why it failed, only when status = 'failed'
    attempts INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (judge, prompt_version, model, sample_id)
);
CREATE TABLE IF NOT EXISTS spent (  -- the budget ledger: model calls made per key, all processes together
    judge TEXT NOT NULL, prompt_version TEXT NOT NULL, model TEXT NOT NULL, calls INTEGER NOT NULL,
    PRIMARY KEY (judge, prompt_version, model)
)"""


@dataclass(frozen=True)
class CacheKey:
    judge: str
    prompt_version: str
    model: str


@dataclass
class Judgment:
    sample_id: str
    status: str  # OK or FAILED
    scores: dict[str, int] | None
    answer: str
    error: str | None
    attempts: int
    seconds: float


class JudgeCache:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        # One connection shared by the judge's threads, serialized by a lock: writes are
        # tiny next to a model call, and sqlite3 objects must not be used concurrently.
        self._con = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.executescript(_SCHEMA)

    def get_many(self, key: CacheKey, sample_ids: Iterable[str]) -> dict[str, Judgment]:
        ids = list(dict.fromkeys(sample_ids))
        found: dict[str, Judgment] = {}
        for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            with self._lock:
                rows = self._con.execute(
                    "SELECT sample_id, status, scores, answer, error, attempts, seconds FROM judgments "
                    f"WHERE judge = ? AND prompt_version = ? AND model = ? AND sample_id IN ({marks})",
                    [key.judge, key.prompt_version, key.model, *chunk],
                ).fetchall()
            for r in rows:
                found[r[0]] = Judgment(r[0], r[1], json.loads(r[2]) if r[2] else None, r[3] or "", r[4], r[5], r[6])
        return found

    def put(self, key: CacheKey, j: Judgment) -> None:
        if (j.status == OK) != (j.scores is not None):
            raise ValueError("an ok judgment has scores and a failed one has none")
        with self._lock:
            self._con.execute(
                "INSERT INTO judgments VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET "
                "status=excluded.status, scores=excluded.scores, answer=excluded.answer, error=excluded.error, "
                "attempts=excluded.attempts, seconds=excluded.seconds, created_at=excluded.created_at",
                [key.judge, key.prompt_version, key.model, j.sample_id, j.status,
                 json.dumps(j.scores, sort_keys=True) if j.scores is not None else None, j.answer, j.error,
                 j.attempts, j.seconds, dt.datetime.now(dt.timezone.utc).isoformat()],
            )

    def reserve_call(self, key: CacheKey, max_calls: int | None) -> bool:
        """Count one model call against ``max_calls`` for ``key``; False when the budget is spent.

        The check and the increment are one write transaction, so Ray actors sharing the
        file never overspend together (each would with a budget of its own).
        """
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                row = self._con.execute("SELECT calls FROM spent WHERE judge = ? AND prompt_version = ? AND model = ?",
                                        [key.judge, key.prompt_version, key.model]).fetchone()
                spent = row[0] if row else 0
                if max_calls is not None and spent >= max_calls:
                    return False
                self._con.execute("INSERT INTO spent VALUES (?,?,?,1) ON CONFLICT DO UPDATE SET calls = calls + 1",
                                  [key.judge, key.prompt_version, key.model])
                return True
            finally:
                self._con.execute("COMMIT")

    def spent(self, key: CacheKey) -> int:
        with self._lock:
            row = self._con.execute("SELECT calls FROM spent WHERE judge = ? AND prompt_version = ? AND model = ?",
                                    [key.judge, key.prompt_version, key.model]).fetchone()
        return row[0] if row else 0

    def all(self, key: CacheKey) -> list[Judgment]:
        """Every cached judgment under ``key``, ordered by sample id."""
        with self._lock:
            rows = self._con.execute(
                "SELECT sample_id FROM judgments WHERE judge = ? AND prompt_version = ? AND model = ? "
                "ORDER BY sample_id", [key.judge, key.prompt_version, key.model]).fetchall()
        found = self.get_many(key, [r[0] for r in rows])
        return [found[r[0]] for r in rows]

    def count(self, key: CacheKey | None = None) -> int:
        with self._lock:
            if key is None:
                return self._con.execute("SELECT count(*) FROM judgments").fetchone()[0]
            return self._con.execute(
                "SELECT count(*) FROM judgments WHERE judge = ? AND prompt_version = ? AND model = ?",
                [key.judge, key.prompt_version, key.model]).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __getstate__(self):  # a judge shipped to a Ray worker reopens the file there
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])
