"""The data model every Tessera stage shares: Arrow schemas and their Python records."""
from schemas.dedup import DEDUP_SCHEMA, SIGNALS
from schemas.reject import REJECT_SCHEMA, Reject, rejects_to_table
from schemas.sample import (
    IMAGE_PLACEHOLDER,
    KINDS,
    RULE_SCORE_FIELDS,
    SAMPLE_SCHEMA,
    MediaRef,
    RuleScores,
    Sample,
    Turn,
    samples_to_table,
)
from schemas.shard import PACK_FORMAT_VERSION, SHARD_INDEX_SCHEMA
from schemas.version import SCHEMA_VERSION, SchemaVersionError, check_readable, with_version

__all__ = [
    "DEDUP_SCHEMA", "SIGNALS", "REJECT_SCHEMA", "Reject", "rejects_to_table", "IMAGE_PLACEHOLDER",
    "KINDS", "RULE_SCORE_FIELDS", "SAMPLE_SCHEMA", "MediaRef", "RuleScores", "Sample", "Turn",
    "samples_to_table", "PACK_FORMAT_VERSION", "SHARD_INDEX_SCHEMA", "SCHEMA_VERSION",
    "SchemaVersionError", "check_readable", "with_version",
]
