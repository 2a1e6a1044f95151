"""The rendered sources on the real ingest path (Ray workers): OCR, HTML documents, charts."""
from __future__ import annotations

import json
import os

import pytest
from PIL import Image, ImageDraw, ImageFont

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from pipeline import catalog
from pipeline.dataset import Dataset

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="needs Debian's chromium")]


def test_ocr_html_and_chart_sources_ingest_end_to_end(ray_local, tmp_path):
    scans, html = tmp_path / "scans", tmp_path / "html"
    scans.mkdir()
    html.mkdir()
    img = Image.new("RGB", (420, 90), "white")
    ImageDraw.Draw(img).text((10, 25), "Invoice number 4711", font=ImageFont.truetype(
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 30), fill="black")
    img.save(scans / "invoice.png")
    (html / "page.html").write_text("<h2>Notice</h2><p>The library opens at nine.</p>")
    (html / "spin.html").write_text("<script>while(true){}</script>")
    spec = parse_spec({
        "name": "rendered", "dataset": str(tmp_path / "ds"), "partition_size": 3,
        "sources": [
            {"name": "synth", "type": "synthetic_ocr", "count": 3, "seed": 1},
            {"name": "scans", "type": "ocr_images", "path": str(scans), "threads": 1},
            {"name": "docs", "type": "html_documents", "count": 2, "path": str(html), "page_timeout_s": 3.0},
            {"name": "charts", "type": "charts", "count": 3},
        ],
    })
    summary = run_ingest(spec, mode="ray")
    ds = Dataset(spec.dataset)
    rows = catalog.query(ds, "SELECT source, kind, count(*) AS n FROM samples GROUP BY ALL ORDER BY source").to_pylist()
    assert {(r["source"], r["kind"]): r["n"] for r in rows} == {
        ("charts", "document"): 3, ("docs", "document"): 3, ("scans", "ocr"): 1, ("synth", "ocr"): 3}
    rejects = catalog.query(ds, "SELECT input_ref, stage, reason FROM rejects").to_pylist()
    assert [(r["stage"], r["reason"]) for r in rejects] == [("render", "timeout")]
    assert rejects[0]["input_ref"].endswith("spin.html") and summary.rejects == 1
    # OCR quality measures are selectable in SQL straight from extra.
    sel = catalog.query(ds, "SELECT text FROM samples WHERE source = 'scans' AND "
                            "CAST(json_extract(extra, '$.ocr_mean_confidence') AS DOUBLE) > 0.8 AND "
                            "CAST(json_extract(extra, '$.ocr_text_area_ratio') AS DOUBLE) > 0.05").to_pylist()
    assert len(sel) == 1 and "4711" in sel[0]["text"]
    for r in catalog.query(ds, "SELECT conversation, n_images, text_tokens FROM samples").to_pylist():
        assert r["n_images"] == 1 and r["text_tokens"] > 0
        assert sum(t["content"].count("<image>") for t in r["conversation"]) == 1
