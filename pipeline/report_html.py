"""The funnel report as one self-contained HTML file: inline CSS, inline SVG, data-URL thumbnails.

No script, no stylesheet, font or image is fetched: the file can be mailed, archived
next to a shard set, or opened on an air-gapped machine. Everything that came from the
data (captions, source names, predicates) is HTML-escaped.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
from html import escape

from PIL import Image

from pipeline import report, report_svg, storage
from pipeline.dataset import Dataset
from pipeline.image_io import ImageDecodeError, decode_image

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1120px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{background:#fff;border:1px solid #eee}
.t{font-size:13px;font-weight:600}.ax{font-size:10px;fill:#555}.grid{stroke:#eee}
.thumbs{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0 16px}
figure{margin:0;width:120px;font-size:11px;color:#555}figure img{max-width:120px;max-height:120px;display:block}
code{background:#f4f4f4;padding:1px 4px}.empty{color:#888;font-style:italic}
"""


def thumbnail(ds: Dataset, uri: str | None, size: int = 120) -> str | None:
    """A small JPEG data URL of a payload image, or None when it cannot be read."""
    if not uri:
        return None
    try:
        img = decode_image(storage.read_bytes(ds.uri(uri))).image
    except (ImageDecodeError, FileNotFoundError, OSError):
        return None
    img.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    columns = columns or list(rows[0])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(r[c]))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v) -> str:
    if v is None:
        return ""
    return f"{v:,.4g}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v))


def _examples(ds: Dataset, fc: report.FilterCount) -> str:
    figs = []
    for ex in fc.examples:
        src = thumbnail(ds, ex["uri"])
        img = f'<img src="{src}" alt="">' if src else '<div class="empty">no image</div>'
        text = (ex["text"] or "")[:80]
        figs.append(f'<figure data-sample="{escape(ex["sample_id"])}">{img}<figcaption>{escape(ex["source"])}: '
                    f"{escape(text)}</figcaption></figure>")
    return f'<h3>{escape(fc.name)}: dropped examples</h3><div class="thumbs">{"".join(figs)}</div>' if figs else ""


def _hist_section(hists: list[report.Histogram], prefix: str, colors: dict[str, str]) -> str:
    if not hists:
        return '<p class="empty">no measurements</p>'
    plots = [report_svg.histogram(f"{prefix}:{h.group}.{h.name}", f"{h.group} / {h.name}", h.lo, h.hi,
                                  h.by_source, xlabel=h.name, colors={s: colors[s] for s in h.by_source})
             for h in hists]
    return '<div class="plots">' + "\n".join(plots) + "</div>"


def render(ds: Dataset, opts: report.ReportOptions) -> str:
    sources = report.by_source(ds, opts)
    colors = {s["source"]: report_svg.color(i) for i, s in enumerate(sources)}
    parts = [f"<h1>Tessera funnel report</h1><p>Dataset <code>{escape(ds.root)}</code>, selection "
             f"<code>{escape(opts.where)}</code>, generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.</p>"]

    parts.append('<h2 id="overview">Samples and rejects</h2>' + table(sources) + table(report.rejects(ds)))
    steps = report.funnel(ds, opts)
    parts.append(report_svg.bars("funnel", "Funnel (cumulative)", [s for s, _ in steps],
                                 {"samples": [n for _, n in steps]}, colors=[report_svg.KEPT]))

    parts.append('<h2 id="scores">Score histograms per source</h2>'
                 + _hist_section(report.score_histograms(ds, opts), "score", colors))

    filters = report.filter_counts(ds, opts)
    parts.append('<h2 id="filters">Kept and dropped per filter</h2>')
    parts.append(report_svg.bars("filters", "Each filter on its own", [f.name for f in filters],
                                 {"kept": [f.kept for f in filters], "dropped": [f.dropped for f in filters]},
                                 colors=[report_svg.KEPT, report_svg.DROPPED]))
    parts.append(table([{"filter": f.name, "kind": f.kind, "kept": f.kept, "dropped": f.dropped} for f in filters]))
    parts += [_examples(ds, f) for f in filters]

    sizes = report.cluster_sizes(ds, opts)
    parts.append('<h2 id="duplicates">Duplicate cluster sizes</h2>')
    parts.append(report_svg.bars("dup-cluster-sizes", "Clusters per size", [str(r["size"]) for r in sizes],
                                 {"clusters": [r["clusters"] for r in sizes]}, xlabel="samples in cluster", log=True))

    parts.append('<h2 id="sizes">Token and tile distributions</h2>'
                 + _hist_section(report.size_histograms(ds, opts), "size", colors))

    parts.append('<h2 id="shards">Shard sets</h2>' + table(report.shard_sets(ds)))
    comp = report.shard_composition(ds)
    sets = sorted({r["shard_set"] for r in comp})
    all_sources = sorted({r["source"] for r in comp})
    for measure in ("samples", "tokens"):
        series = {s: [sum(r[measure] for r in comp if r["shard_set"] == k and r["source"] == s) for k in sets]
                  for s in all_sources}
        if sets:
            parts.append(report_svg.bars(f"shards-{measure}", f"Shard set composition: {measure} by source", sets,
                                         series, colors=[colors.get(s, report_svg.color(7)) for s in all_sources]))
    parts.append(table(comp))
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tessera funnel report</title>"
            f"<style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def write_report(dataset: str, out: str, opts: report.ReportOptions | None = None) -> dict:
    ds = Dataset(dataset)
    html = render(ds, opts or report.ReportOptions())
    storage.atomic_write_bytes(out, html.encode("utf-8"))
    return {"out": out, "bytes": len(html.encode("utf-8")), "plots": html.count('<svg class="plot"')}
