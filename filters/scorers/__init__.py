"""Model-based scorers (CLIP, LLM judges, ...): they write score tables into the catalog."""
from filters.scorers.base import ScoreInput, Scorer

__all__ = ["ScoreInput", "Scorer"]
