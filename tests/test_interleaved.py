"""Interleaved documents: both layouts, order kept, tile budget split, missing images dropped or rejected."""
from __future__ import annotations

import io
import json

import pytest
from aiohttp import web
from PIL import Image

from jobs.ingest_job import run_ingest
from jobs.spec import parse_spec
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.sources.fetch_testing import LoopbackServer
from pipeline.sources.interleaved import Malformed, build_document, parse_blocks
from pipeline.tiling import TilingConfig, count_tiles

# Wide images: alone, a 8:1 image would get an 8x1 grid; in a 3-image document at most 12 // 3 = 4 tiles.
SIZES = {"wide.jpg": (3584, 448), "tall.jpg": (448, 1344), "square.jpg": (900, 900), "web.jpg": (2688, 448)}


def jpeg(size, color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=60)
    return buf.getvalue()


def test_parse_both_layouts_and_refuse_ambiguous_positions():
    obelics = {"texts": ["A cat.", None, "It sleeps."], "images": [None, "cat.jpg", None]}
    mint = {"content": [{"type": "text", "text": "A cat."}, {"type": "image", "url": "http://h/cat.jpg"},
                        {"type": "text", "text": "It sleeps."}]}
    assert parse_blocks(obelics) == [("text", "A cat."), ("image", "cat.jpg"), ("text", "It sleeps.")]
    assert parse_blocks(mint)[1] == ("image", "http://h/cat.jpg")
    for bad in ({"texts": ["a", "b"], "images": [None]}, {"texts": ["a"], "images": ["x.jpg"]},
                {"texts": [None], "images": [None]}, {"content": [{"type": "video", "path": "v.mp4"}]}, {"text": "x"}):
        with pytest.raises(Malformed):
            parse_blocks(bad)
    text, (turn,) = build_document([("text", "Look: <image> here"), ("image", "a"), ("text", "  "), ("image", "b")])
    assert turn.role == "assistant" and turn.content == "Look: [image] here\n<image>\n<image>"
    assert text == "Look: [image] here"


@pytest.fixture()
def corpus(tmp_path):
    colors = {}
    for i, (name, size) in enumerate(SIZES.items()):
        colors[name] = (60 * i, 200 - 40 * i, 90)
        (tmp_path / name).write_bytes(jpeg(size, colors[name]))
    web_bytes = (tmp_path / "web.jpg").read_bytes()

    async def handler(request):
        if request.path == "/web.jpg":
            return web.Response(body=web_bytes, content_type="image/jpeg")
        return web.Response(status=404)

    with LoopbackServer(handler) as srv:
        docs = [
            {"texts": ["Intro text about wide things.", None, "Middle.", None, None, "The end."],
             "images": [None, "wide.jpg", None, "tall.jpg", "square.jpg", None], "doc_id": "obelics-1"},
            {"content": [{"type": "image", "url": srv.url("/web.jpg")}, {"type": "text", "text": "Fetched first."},
                         {"type": "image", "url": srv.url("/gone.jpg")}, {"type": "text", "text": "Then a dead link."},
                         {"type": "image", "path": str(tmp_path / "square.jpg")}], "doc_id": "mint-2"},
            {"texts": ["Only dead images.", None], "images": [None, "nope.jpg"], "doc_id": "dead-3"},
            {"texts": ["No images at all."], "images": [None], "doc_id": "text-4"},
            {"texts": ["broken"], "images": ["x.jpg"], "doc_id": "bad-5"},
        ]
        (tmp_path / "docs.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
        yield tmp_path, colors, srv


def ingest(tmp_path, missing_images: str, name: str):
    spec = parse_spec({"name": name, "dataset": str(tmp_path / "ds"), "tiling": {"max_tiles": 12},
                       "sources": [{"name": name, "type": "interleaved", "path": str(tmp_path / "docs.jsonl"),
                                    "missing_images": missing_images, "timeout_s": 2.0, "retries": 0}]})
    summary = run_ingest(spec, mode="local")
    ds = Dataset(spec.dataset)
    samples = {json.loads(r["extra"])["doc_id"]: r for r in catalog.query(
        ds, f"SELECT * FROM samples WHERE source = '{name}'").to_pylist()}
    rejects = {int(r["input_ref"].rsplit("#", 1)[1]): (r["stage"], r["reason"]) for r in catalog.query(
        ds, f"SELECT input_ref, stage, reason FROM rejects WHERE source = '{name}'").to_pylist()}
    return summary, samples, rejects


def test_documents_keep_order_and_split_the_tile_budget(corpus):
    tmp_path, colors, srv = corpus
    summary, samples, rejects = ingest(tmp_path, "drop", "docs")
    assert set(samples) == {"obelics-1", "mint-2"}
    assert rejects == {2: ("read", "no_images"), 3: ("read", "no_images"), 4: ("read", "malformed_row")}

    doc = samples["obelics-1"]
    assert doc["kind"] == "interleaved" and doc["n_images"] == 3
    (turn,) = doc["conversation"]
    assert turn["role"] == "assistant"  # the loss falls on the document's text
    assert turn["content"] == "Intro text about wide things.\n<image>\nMiddle.\n<image>\n<image>\nThe end."
    assert doc["text"] == "Intro text about wide things.\nMiddle.\nThe end."
    assert [(m["width"], m["height"]) for m in doc["media"]] == [SIZES["wide.jpg"], SIZES["tall.jpg"], SIZES["square.jpg"]]

    full = TilingConfig(max_tiles=12)
    for row in samples.values():
        n = row["n_images"]
        per_image = full.for_n_images(n)
        for m in row["media"]:
            assert m["n_tiles"] == count_tiles(m["width"], m["height"], per_image)
            grid = m["n_tiles"] - 1 if m["n_tiles"] > 1 else 1  # the thumbnail is not part of the grid
            assert grid <= max(1, 12 // n)
        assert row["n_tiles"] == sum(m["n_tiles"] for m in row["media"])
        assert row["image_tokens"] == sum(m["n_tiles"] * full.tokens_per_tile + 2 for m in row["media"])
    # The split matters: alone, the 8:1 image would have had twice the grid.
    wide = doc["media"][0]
    assert count_tiles(*SIZES["wide.jpg"], full) == 9 and wide["n_tiles"] == 5

    mint = samples["mint-2"]
    assert mint["conversation"][0]["content"] == "<image>\nFetched first.\nThen a dead link.\n<image>"
    assert [m["width"] for m in mint["media"]] == [SIZES["web.jpg"][0], SIZES["square.jpg"][0]]
    assert json.loads(mint["extra"])["dropped_images"] == [{"position": 2, "ref": srv.url("/gone.jpg"), "reason": "http_404"}]
    assert summary.inputs == 5


def test_reject_mode_rejects_the_whole_document(corpus):
    tmp_path, _, _ = corpus
    _, samples, rejects = ingest(tmp_path, "reject", "strict")
    assert set(samples) == {"obelics-1"}
    assert rejects[1] == ("fetch", "http_404") and rejects[2] == ("read", "missing_image")
