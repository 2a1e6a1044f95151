"""``charts``: bar, line, pie, scatter, heat-map and table images drawn with matplotlib,
with the data table they were drawn from as ground truth.

The table is generated first and the chart drawn from it, so chart-to-table answers
and QA answers (computed from the same numbers) are exact. Values are rounded to
what the generator prints, never to what a reader would estimate. Generated in the
partition reader from ``(seed, index)``: re-runs give the same samples.

Spec example::

    - {name: charts, type: charts, count: 1000, seed: 7, chart_types: [bar, line, pie],
       formats: [chart_to_table, chart_qa], table_format: markdown}
"""
from __future__ import annotations

import functools
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipeline.render import text_corpus as tc
from pipeline.render.conversations import CHART_FORMATS, chart_conversation
from pipeline.sources.base import Partition, RawInput, chunk

CHART_TYPES = ("bar", "line", "pie", "scatter", "heatmap", "table")
LATIN_FONTS = ("DejaVu Sans", "DejaVu Serif", "Liberation Sans")
CJK_FONT = {"zh": "Noto Sans CJK SC", "ja": "Noto Sans CJK JP", "ko": "Noto Sans CJK KR"}


@dataclass
class ChartsConfig:
    count: int = 100
    seed: int = 0
    chart_types: list[str] = field(default_factory=lambda: list(CHART_TYPES))
    formats: list[str] = field(default_factory=lambda: list(CHART_FORMATS))
    languages: list[str] = field(default_factory=lambda: ["en", "fr", "de", "es"])
    table_format: str = "markdown"  # or "csv"
    dpi: int = 100
    n_questions: int = 3

    def __post_init__(self):
        for name, allowed in (("chart_types", CHART_TYPES), ("formats", CHART_FORMATS), ("languages", tc.LANGUAGES)):
            bad = [v for v in getattr(self, name) if v not in allowed]
            if bad or not getattr(self, name):
                raise ValueError(f"{name}: {bad} unknown; choose from {allowed}")
        if self.table_format not in ("markdown", "csv"):
            raise ValueError("table_format must be markdown or csv")


def format_table(header: list[str], rows: list[list], table_format: str) -> str:
    cells = [[str(c) for c in r] for r in rows]
    if table_format == "csv":
        return "\n".join(",".join(r) for r in [header] + cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def _labels(lang: str, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct short labels (category or series names)."""
    out: list[str] = []
    while len(out) < n:
        word = tc.token(lang, rng)[:12]
        if word not in out:
            out.append(word)
    return out


def make_data(kind: str, lang: str, rng: random.Random) -> dict:
    """The table behind a chart: header, rows, and the pieces the plot and QA need."""
    decimals = rng.choice((0, 0, 1))
    scale = rng.choice((10, 100, 1000))
    val = lambda: round(rng.uniform(0.05, 1.0) * scale, decimals) if decimals else rng.randint(1, scale)  # noqa: E731
    if kind == "pie":
        cats = _labels(lang, rng.randint(3, 6), rng)
        weights = [rng.randint(5, 40) for _ in cats]
        shares = [round(100 * w / sum(weights)) for w in weights]
        shares[-1] = 100 - sum(shares[:-1])  # the table must add up to what the pie shows
        return {"header": ["Category", "Share (%)"], "rows": [[c, s] for c, s in zip(cats, shares)],
                "cats": cats, "series": ["Share (%)"], "values": [shares]}
    if kind == "scatter":
        series = _labels(lang, rng.randint(1, 2), rng)
        rows = [[s, rng.randint(0, 100), val()] for s in series for _ in range(rng.randint(4, 9))]
        return {"header": ["Series", "x", "y"], "rows": rows, "series": series, "cats": [], "values": []}
    if kind == "line":
        start = rng.randint(2000, 2020)
        cats = [str(start + i) for i in range(rng.randint(4, 9))]
    else:
        cats = _labels(lang, rng.randint(3, 7 if kind != "heatmap" else 6), rng)
    series = _labels(lang, rng.randint(3, 5) if kind == "heatmap" else rng.randint(1, 3), rng)
    values = [[val() for _ in cats] for _ in series]
    rows = [[c] + [values[j][i] for j in range(len(series))] for i, c in enumerate(cats)]
    return {"header": [tc.title(lang, rng)[:20] or "Category"] + series, "rows": rows, "cats": cats,
            "series": series, "values": values}


@functools.lru_cache(maxsize=1)
def latin_families() -> tuple[str, ...]:
    """The Latin chart families installed here: naming a missing one makes matplotlib warn on every
    text and fall back silently, so the label would not say which face drew the chart."""
    from pipeline.render.fonts import available_faces

    installed = {face.family for face in available_faces()}
    return tuple(f for f in LATIN_FONTS if f in installed) or ("DejaVu Sans",)


def draw(kind: str, data: dict, lang: str, rng: random.Random, dpi: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display; set before pyplot is imported
    import matplotlib.pyplot as plt

    style = rng.choice(("default", "ggplot", "bmh", "seaborn-v0_8-whitegrid", "fivethirtyeight", "grayscale"))
    font = CJK_FONT.get(lang) or rng.choice(latin_families())
    with plt.style.context(style), plt.rc_context({"font.family": font, "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(rng.uniform(4.5, 8), rng.uniform(3.2, 5.5)), dpi=dpi)
        cats, series, values = data["cats"], data["series"], data["values"]
        if kind == "bar":
            width = 0.8 / len(series)
            horizontal = rng.random() < 0.3
            for j, (s, vs) in enumerate(zip(series, values)):
                pos = [i + j * width for i in range(len(cats))]
                bars = (ax.barh if horizontal else ax.bar)(pos, vs, width, label=s)
                if rng.random() < 0.5:
                    ax.bar_label(bars, fontsize=7)
            (ax.set_yticks if horizontal else ax.set_xticks)([i + width * (len(series) - 1) / 2 for i in range(len(cats))], cats)
        elif kind == "line":
            for s, vs in zip(series, values):
                ax.plot(cats, vs, marker=rng.choice("os^D"), label=s)
        elif kind == "pie":
            ax.pie(values[0], labels=cats, autopct="%d%%" if rng.random() < 0.7 else None, startangle=rng.randint(0, 360))
            ax.axis("equal")
        elif kind == "scatter":
            for s in series:
                pts = [r for r in data["rows"] if r[0] == s]
                ax.scatter([p[1] for p in pts], [p[2] for p in pts], label=s)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        elif kind == "heatmap":
            im = ax.imshow(values, cmap=rng.choice(("viridis", "magma", "Blues", "YlGnBu")), aspect="auto")
            ax.set_xticks(range(len(cats)), cats, rotation=30)
            ax.set_yticks(range(len(series)), series)
            for j in range(len(series)):
                for i in range(len(cats)):
                    ax.text(i, j, str(values[j][i]), ha="center", va="center", fontsize=7, color="w")
            fig.colorbar(im, ax=ax)
        elif kind == "table":
            ax.axis("off")
            t = ax.table(cellText=[[str(c) for c in r] for r in data["rows"]], colLabels=data["header"], loc="center")
            t.scale(1, 1.4)
        if kind in ("bar", "line", "scatter") and len(series) > 1:
            ax.legend(fontsize=8)
        ax.set_title(tc.title(lang, rng))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
    return buf.getvalue()


def make_questions(kind: str, data: dict, rng: random.Random, n: int) -> list[tuple[str, str]]:
    cats, series, values = data["cats"], data["series"], data["values"]
    qa: list[tuple[str, str]] = []
    if kind == "scatter":
        for s in series:
            qa.append((f'How many points does the series "{s}" have?', str(sum(r[0] == s for r in data["rows"]))))
        top = max(data["rows"], key=lambda r: r[2])
        qa.append(("What is the largest y value in the plot?", str(top[2])))
    else:
        qa.append(("How many categories are shown?" if kind != "line" else "How many time points are plotted?", str(len(cats))))
        for j, s in enumerate(series):
            vs = values[j]
            if vs.count(max(vs)) == 1:  # only ask when the answer is unique
                qa.append((f'Which category has the highest value of "{s}"?', cats[vs.index(max(vs))]))
            i = rng.randrange(len(cats))
            qa.append((f'What is the value of "{s}" for "{cats[i]}"?', str(vs[i]) + ("%" if kind == "pie" else "")))
            a, b = rng.sample(range(len(cats)), 2)
            diff = round(abs(vs[a] - vs[b]), 1)
            qa.append((f'What is the difference in "{s}" between "{cats[a]}" and "{cats[b]}"?', f"{diff:g}"))
    rng.shuffle(qa)
    return qa[:n]


class ChartsSource:
    def __init__(self, name: str, config: ChartsConfig):
        self.name = name
        self.config = config

    def partitions(self, partition_size: int) -> list[Partition]:
        ranges = chunk(list(range(self.config.count)), partition_size)
        return [Partition(f"{self.name}-{i:05d}", self.name, (r[0], r[-1] + 1)) for i, r in enumerate(ranges)]

    def read(self, partition: Partition) -> Iterator[RawInput]:
        for index in range(*partition.args):
            yield self.generate(index)

    def generate(self, index: int) -> RawInput:
        cfg = self.config
        ref = f"charts://{self.name}/seed={cfg.seed}/{index}"
        rng = random.Random(f"charts:{cfg.seed}:{index}")
        kind, lang = rng.choice(cfg.chart_types), rng.choice(cfg.languages)
        data = make_data(kind, lang, rng)
        try:
            png = draw(kind, data, lang, rng, cfg.dpi)
        except Exception as exc:  # a plotting failure is this input's, not the partition's
            return RawInput(ref, self.name, failure=("render", "chart_error", f"{type(exc).__name__}: {exc}"))
        table = format_table(data["header"], data["rows"], cfg.table_format)
        qa = make_questions(kind, data, rng, cfg.n_questions)
        fmt = rng.choice(cfg.formats)
        extra = {"generator": "charts", "seed": cfg.seed, "index": index, "chart_type": kind, "language": lang,
                 "format": fmt, "table": {"header": data["header"], "rows": data["rows"]},
                 "qa": [{"question": q, "answer": a} for q, a in qa]}
        return RawInput(ref, self.name, media=[png], text=table, extra=extra, kind="document",
                        conversation=chart_conversation(fmt, table, qa, rng))
