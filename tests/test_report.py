"""The funnel report: its numbers against the catalog, self-containment, and a headless Chromium render."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pyarrow as pa
import pytest

from jobs.cli import main
from jobs.demo import corpus_texts, demo_spec
from jobs.ingest_job import run_ingest
from jobs.shard_job import ShardOptions, run_shard
from jobs.spec import parse_spec
from model.tokenizer import build_tokenizer
from pipeline import catalog
from pipeline.dataset import Dataset
from pipeline.report import ReportOptions
from pipeline.report_html import render
from pipeline.scores import write_scores

WHERE = "true OR text = '<script>alert(1)</script>'"  # user text reaches the page: it must be escaped
THRESHOLD = "judge_caption_overall >= 3"


@pytest.fixture(scope="module")
def dataset(corpus, tmp_path_factory) -> Dataset:
    out = str(tmp_path_factory.mktemp("report"))
    build_tokenizer(os.path.join(out, "tokenizer"), texts=corpus_texts(str(corpus.root)), vocab_size=600)
    spec = parse_spec(demo_spec(out, corpus))
    run_ingest(spec, mode="local")
    ds = Dataset(spec.dataset)
    ids = catalog.query(ds, "SELECT sample_id FROM samples ORDER BY sample_id").column("sample_id").to_pylist()
    # A model score table, as a judge would write it (every 7th sample without a score).
    overall = [None if i % 7 == 0 else 1.0 + (i % 5) for i in range(len(ids))]
    write_scores(ds, "judge_caption", "p0", pa.table({"sample_id": ids, "judge_caption_overall": overall}))
    run_shard(ds.root, ShardOptions(out=os.path.join(out, "shards-all"), where="NOT is_duplicate"))
    run_shard(ds.root, ShardOptions(out=os.path.join(out, "shards-photos"), where="source = 'photos'"))
    return ds


@pytest.fixture(scope="module")
def page(dataset, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("html") / "report.html")
    assert main(["report", dataset.root, "--where", WHERE, "--threshold", THRESHOLD, "--out", out]) == 0
    return out


def n(ds, sql) -> int:
    return catalog.query(ds, sql).to_pylist()[0]["n"]


EXPECTED_PLOTS = ["funnel", "filters", "dup-cluster-sizes", "score:rules.caption_words", "score:rules.min_side",
                  "score:judge_caption.judge_caption_overall", "size:size.total_tokens", "size:size.n_tiles",
                  "shards-samples", "shards-tokens"]


def test_report_numbers_match_the_catalog(dataset, page):
    html = open(page, encoding="utf-8").read()
    for plot in EXPECTED_PLOTS:
        assert f'data-plot="{plot}"' in html, plot
    total = n(dataset, "SELECT count(*) AS n FROM samples")
    # Histograms: one series per source, counting every sample of that source.
    svg = html.split('data-plot="score:rules.caption_words"')[1].split("</svg>")[0]
    per_source = dict(re.findall(r'class="series" data-series="([^"]+)" data-value="(\d+)"', svg))
    expected = {r["source"]: r["n"] for r in catalog.query(
        dataset, "SELECT source, count(*) AS n FROM samples GROUP BY source").to_pylist()}
    assert {k: int(v) for k, v in per_source.items()} == expected
    judged = html.split('data-plot="score:judge_caption.judge_caption_overall"')[1].split("</svg>")[0]
    assert sum(map(int, re.findall(r'data-value="(\d+)"', judged))) == n(
        dataset, "SELECT count(judge_caption_overall) AS n FROM samples")
    # Kept + dropped per filter = all samples; dropped duplicates and threshold as in SQL.
    filters = html.split('data-plot="filters"')[1].split("</svg>")[0]
    bars = re.findall(r'data-series="(kept|dropped)" data-category="([^"]+)" data-value="(\d+)"', filters)
    by_filter: dict[str, dict[str, int]] = {}
    for series, cat, value in bars:
        by_filter.setdefault(cat, {})[series] = int(value)
    assert all(v["kept"] + v["dropped"] == total for v in by_filter.values())
    assert by_filter["duplicate"]["dropped"] == n(dataset, "SELECT count(*) AS n FROM samples WHERE is_duplicate") > 0
    assert by_filter[THRESHOLD.replace(">", "&gt;")]["kept"] == n(dataset, f"SELECT count(*) AS n FROM samples WHERE {THRESHOLD}")
    flags = n(dataset, "SELECT count(DISTINCT f) AS n FROM (SELECT unnest(rule_flags) AS f FROM samples)")
    assert len(by_filter) == flags + 2 and flags > 0
    # Dropped examples come with thumbnails of their images.
    assert html.count('<img src="data:image/jpeg;base64,') >= 4
    # Shard composition: both shard sets, samples summing to the shards view.
    comp = html.split('data-plot="shards-samples"')[1].split("</svg>")[0]
    values = re.findall(r'data-category="(shards-[a-z]+)" data-value="(\d+)"', comp)
    assert {c for c, _ in values} == {"shards-all", "shards-photos"}
    assert sum(int(v) for _, v in values) == n(dataset, "SELECT count(*) AS n FROM shards")


def test_report_is_self_contained_and_escaped(page):
    html = open(page, encoding="utf-8").read()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "url(" not in html and "@import" not in html and "<link" not in html
    assert "<script" not in html and "&lt;script&gt;" in html


def test_report_where_restricts_the_population(dataset, tmp_path):
    html = render(dataset, ReportOptions(where="source = 'photos'"))
    svg = html.split('data-plot="score:rules.caption_words"')[1].split("</svg>")[0]
    assert set(re.findall(r'class="series" data-series="([^"]+)"', svg)) == {"photos"}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium(*args: str, profile: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (the Makefile installs it: apt-get install chromium)")
def test_report_renders_in_headless_chromium(page, tmp_path):
    from PIL import Image

    dom = chromium("--dump-dom", f"file://{page}", profile=str(tmp_path / "p1"))
    assert dom.returncode == 0, dom.stderr[-2000:]
    for plot in EXPECTED_PLOTS:  # the rendered DOM holds every chart, with its drawn marks
        m = re.search(rf'<svg[^>]*data-plot="{re.escape(plot)}".*?</svg>', dom.stdout, re.DOTALL)
        assert m, plot
        assert re.search(r'class="(bar|series)"', m.group(0)), plot
    shot = tmp_path / "report.png"
    res = chromium(f"--screenshot={shot}", "--window-size=1200,2400", f"file://{page}", profile=str(tmp_path / "p2"))
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20) or []
    assert img.size == (1200, 2400) and len(colors) > 50  # charts and thumbnails, not a blank page
