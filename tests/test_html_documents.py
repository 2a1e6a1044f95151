"""html_documents: seeded synthetic pages and user HTML files rendered into document samples."""
from __future__ import annotations

import io
import json
import os
import random

import pytest
from PIL import Image

from pipeline.sources.html_documents import HTMLDocumentsConfig, HTMLDocumentsSource
from pipeline.sources.html_generator import generate_document
from schemas.config import ConfigError, from_dict


def test_generator_is_seeded_and_varied():
    a = generate_document(random.Random("s:1"), ["en", "zh"])
    assert a == generate_document(random.Random("s:1"), ["en", "zh"])
    docs = [generate_document(random.Random(f"s:{i}"), ["en", "de", "ja"], max_blocks=12)[0] for i in range(30)]
    joined = "".join(docs)
    for needle in ("column-count", "rowspan=", "colspan=", "<math", "application/x-tex", "<svg", "data:image/png",
                   "<ul>", "<ol>", "Noto Sans CJK JP", "DejaVu"):
        assert needle in joined, needle
    assert "http" not in joined.replace('http-equiv', '')  # nothing a contained renderer would have to fetch


def test_config_needs_an_input():
    with pytest.raises(ConfigError):
        from_dict(HTMLDocumentsConfig, {})
    with pytest.raises(ConfigError):
        from_dict(HTMLDocumentsConfig, {"count": 2, "formats": ["chart_qa"]})


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium at /usr/bin/chromium")
def test_synthetic_and_user_pages_become_samples_or_render_rejects(tmp_path):
    (tmp_path / "memo.html").write_text("<h1>Memo</h1><p>Meeting moved to Friday.</p>")
    (tmp_path / "hang.html").write_text("<p>x</p><script>while(true){}</script>")
    (tmp_path / "notes.txt").write_text("not html")
    cfg = from_dict(HTMLDocumentsConfig, {"path": str(tmp_path), "count": 3, "seed": 4, "page_timeout_s": 2.0,
                                          "formats": ["html", "grounded"], "device_scale_factor": 1.5})
    src = HTMLDocumentsSource("docs", cfg)
    parts = src.partitions(2)
    out = {r.input_ref.rsplit("/", 1)[1]: r for p in parts for r in src.read(p)}
    assert sorted(out) == ["0", "1", "2", "hang.html", "memo.html"]
    assert out["hang.html"].failure[:2] == ("render", "timeout")
    memo = out["memo.html"]
    assert memo.kind == "document" and memo.text.split() == "Memo Meeting moved to Friday.".split()
    for key in ("0", "1", "2", "memo.html"):
        raw = out[key]
        img = Image.open(io.BytesIO(raw.media[0]))
        assert abs(img.width - raw.extra["viewport_width"] * 1.5) <= 0.5  # CSS px x device scale
        answer = raw.conversation[1].content
        if raw.extra["format"] == "html":
            assert answer.startswith("<html><body>") and 'data-bbox="' in answer
        else:
            for item in json.loads(answer):
                x1, y1, x2, y2 = item["bbox_2d"]
                assert 0 <= x1 < x2 <= img.width and 0 <= y1 < y2 <= img.height
        assert raw.extra["blocked_requests"] == []  # synthetic pages are self-contained
