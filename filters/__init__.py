"""Rule filters: per-sample scores and threshold flags (see ``filters.rules``)."""
from filters.rules import FLAG_NAMES, RuleConfig, flags, measure

__all__ = ["FLAG_NAMES", "RuleConfig", "flags", "measure"]
