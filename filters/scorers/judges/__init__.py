"""LLM judges: rubric-prompted models that score samples with strict JSON (see judge.py)."""
from filters.scorers.judges.backend import BackendError, FatalBackendError
from filters.scorers.judges.cache import JudgeCache
from filters.scorers.judges.judge import JudgeConfig, LLMJudge
from filters.scorers.judges.rubrics import RUBRICS, Rubric

__all__ = ["BackendError", "FatalBackendError", "JudgeCache", "JudgeConfig", "LLMJudge", "RUBRICS", "Rubric"]
