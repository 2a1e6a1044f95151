"""charts: matplotlib charts whose ground truth is the very table they were drawn from."""
from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from pipeline.sources.charts import CHART_TYPES, ChartsConfig, ChartsSource, format_table
from schemas.config import ConfigError, from_dict


def first_with(kind: str, **kw):
    src = ChartsSource("charts", from_dict(ChartsConfig, {"chart_types": [kind], "count": 1, **kw}))
    return src.generate(0)


@pytest.mark.parametrize("kind", CHART_TYPES)
def test_each_chart_type_renders_with_its_table(kind):
    raw = first_with(kind, formats=["chart_to_table"], seed=3)
    img = Image.open(io.BytesIO(raw.media[0]))
    assert img.format == "PNG" and img.width > 200 and img.height > 150
    table = raw.extra["table"]
    assert raw.conversation[1].content == format_table(table["header"], table["rows"], "markdown") == raw.text
    assert all(len(r) == len(table["header"]) for r in table["rows"])
    if kind == "pie":
        assert sum(r[1] for r in table["rows"]) == 100


def test_qa_answers_follow_from_the_table():
    checked = 0
    src = ChartsSource("charts", from_dict(ChartsConfig, {"chart_types": ["bar", "line"], "formats": ["chart_qa"],
                                                         "n_questions": 5}))
    for i in range(6):
        raw = src.generate(i)
        header, rows = raw.extra["table"]["header"], raw.extra["table"]["rows"]
        for qa in raw.extra["qa"]:
            m = re.fullmatch(r'What is the value of "(.+)" for "(.+)"\?', qa["question"])
            if m:
                col = header.index(m.group(1))
                row = next(r for r in rows if r[0] == m.group(2))
                assert qa["answer"] == str(row[col])
                checked += 1
            if qa["question"].startswith("How many"):
                assert qa["answer"] == str(len(rows))
        turns = raw.conversation
        assert turns[0].content.startswith("<image>\n") and sum(t.content.count("<image>") for t in turns) == 1
    assert checked >= 3


def test_deterministic_and_validated():
    assert first_with("line", seed=9).media == first_with("line", seed=9).media
    assert format_table(["a", "b"], [[1, 2]], "csv") == "a,b\n1,2"
    with pytest.raises(ConfigError):
        from_dict(ChartsConfig, {"chart_types": ["radar"]})
