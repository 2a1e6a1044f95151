"""Hand-made inline SVG charts for the funnel report: histograms and (stacked) bar charts.

Plain SVG keeps the page self-contained and dependency-free (no plotting library, no
JavaScript, no fonts to fetch) and greppable: every chart is ``<svg class="plot"
data-plot="ID">`` and every drawn value a ``<rect class="bar">`` or ``<path
class="series">`` carrying ``data-series`` and ``data-value``, so a test can check
what a browser rendered. Every text is escaped: captions and source names are user data.
"""
from __future__ import annotations

import math
from html import escape

PALETTE = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e",
           "#9498a0"]
KEPT, DROPPED = "#3ca951", "#ff725c"
W, H = 520, 240  # chart size in px
ML, MR, MT, MB = 52, 12, 28, 40  # margins: left, right, top, bottom


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10000 or abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if step * mag >= v:
            return step * mag
    return 10 * mag


def _frame(plot_id: str, title: str, ymax: float, xlabel: str, height: int = H, extra: int = 0) -> list[str]:
    ph = height - MT - MB - extra  # extra: room under the axis for slanted category labels
    out = [f'<svg class="plot" data-plot="{escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" width="{W}" '
           f'height="{height}" viewBox="0 0 {W} {height}" role="img" aria-label="{escape(title)}">',
           f'<title>{escape(title)}</title>',
           f'<text x="{ML}" y="16" class="t">{escape(title)}</text>',
           f'<text x="{(ML + W - MR) / 2}" y="{height - 6}" class="ax" text-anchor="middle">{escape(xlabel)}</text>']
    for k in range(5):  # horizontal grid lines with y labels
        y = MT + ph - ph * k / 4
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 4}" y="{y + 4:.1f}" class="ax" text-anchor="end">{_fmt(ymax * k / 4)}</text>')
    return out


def _legend(labels: list[str], colors: list[str]) -> list[str]:
    out, x = [], W - MR
    for label, c in reversed(list(zip(labels, colors))):
        text = escape(label[:24])
        x -= 14 + 7 * len(label[:24])
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{c}"/>'
                   f'<text x="{x + 13}" y="17" class="ax">{text}</text>')
    return out


def histogram(plot_id: str, title: str, lo: float, hi: float, series: dict[str, list[int]], xlabel: str = "",
              colors: dict[str, str] | None = None) -> str:
    """Overlaid step histograms on shared bins [lo, hi], one per series (e.g. per source)."""
    colors = colors or {label: color(i) for i, label in enumerate(series)}
    bins = len(next(iter(series.values()))) if series else 1
    ymax = _nice_max(max((max(c) for c in series.values() if c), default=1))
    ph, pw = H - MT - MB, W - ML - MR
    out = _frame(plot_id, title, ymax, xlabel)
    for label, counts in series.items():
        pts, bw = [], pw / bins
        for b, n in enumerate(counts):
            y = MT + ph - ph * n / ymax
            pts += [f"{ML + b * bw:.1f},{y:.1f}", f"{ML + (b + 1) * bw:.1f},{y:.1f}"]
        d = f"M{ML},{MT + ph} L" + " L".join(pts) + f" L{ML + pw},{MT + ph} Z"
        out.append(f'<path class="series" data-series="{escape(label)}" data-value="{sum(counts)}" d="{d}" '
                   f'fill="{colors[label]}" fill-opacity="0.18" stroke="{colors[label]}" stroke-width="1.5"/>')
    for k in range(5):  # x tick labels at the bin range quartiles
        x = ML + pw * k / 4
        out.append(f'<text x="{x:.1f}" y="{MT + ph + 14}" class="ax" text-anchor="middle">'
                   f'{_fmt(lo + (hi - lo) * k / 4)}</text>')
    out += _legend(list(series), [colors[label] for label in series])
    out.append("</svg>")
    return "\n".join(out)


def bars(plot_id: str, title: str, categories: list[str], series: dict[str, list[float]],
         colors: list[str] | None = None, xlabel: str = "", log: bool = False) -> str:
    """Vertical bars per category, the series stacked (kept over dropped, sources of a shard set...).

    ``log`` puts the y axis on log10(1 + n) so a cluster-size tail of ones stays visible
    next to thousands of singletons.
    """
    colors = colors or [color(i) for i in range(len(series))]
    totals = [sum(float(s[c]) for s in series.values()) for c in range(len(categories))]
    scale = (lambda v: math.log10(1 + v)) if log else (lambda v: v)
    ymax = _nice_max(scale(max(totals, default=1)))
    slant = 60 if len(categories) > 5 else 0  # many labels: slant them instead of overlapping
    ph, pw = H - MT - MB, W - ML - MR
    out = _frame(plot_id, title + (" (log scale)" if log else ""), 10 ** ymax - 1 if log else ymax, xlabel,
                 height=H + slant, extra=slant)
    slot = pw / max(1, len(categories))
    bw = max(2.0, slot * 0.7)
    for c, cat in enumerate(categories):
        base = 0.0
        x = ML + c * slot + (slot - bw) / 2
        for (label, values), col in zip(series.items(), colors):
            v = values[c]
            y0, y1 = MT + ph - ph * scale(base) / ymax, MT + ph - ph * scale(base + v) / ymax
            base += v
            out.append(f'<rect class="bar" data-series="{escape(label)}" data-category="{escape(cat)}" '
                       f'data-value="{_fmt(v)}" x="{x:.1f}" y="{y1:.1f}" width="{bw:.1f}" height="{max(0.0, y0 - y1):.1f}" '
                       f'fill="{col}"><title>{escape(cat)} / {escape(label)}: {_fmt(v)}</title></rect>')
        if len(categories) <= 24:  # beyond that the labels would overlap: hover titles name them
            lx, ly = x + bw / 2, MT + ph + 14
            turn = f' transform="rotate(-35 {lx:.1f} {ly})"' if slant else ""
            out.append(f'<text x="{lx:.1f}" y="{ly}" class="ax" text-anchor="{"end" if slant else "middle"}"{turn}>'
                       f'{escape(cat[:22] if slant else cat[:14])}</text>')
    out += _legend(list(series), colors)
    out.append("</svg>")
    return "\n".join(out)
