"""``tessera report``: a self-contained HTML funnel report of a dataset.

    tessera report DATASET [--where SQL] [--threshold SQL ...] --out report.html

Score histograms per source, kept/dropped counts per filter with dropped examples,
duplicate cluster sizes, token and tile distributions, and the composition of each
shard set, as inline SVG in one HTML file (no external resources).
"""
from __future__ import annotations


def _report(args) -> int:
    from pipeline.report import ReportOptions
    from pipeline.report_html import write_report

    opts = ReportOptions(where=args.where, thresholds=args.threshold or [], bins=args.bins,
                         thumbnails=args.thumbnails)
    result = write_report(args.dataset, args.out, opts)
    print(f"wrote {args.out}: {result['plots']} plots, {result['bytes'] / 1e3:.0f} kB")
    return 0


def add_command(sub) -> None:
    sp = sub.add_parser("report", help="write a self-contained HTML funnel report",
                        description="Plots of what the filters and scorers measured and what each would keep: score "
                                    "histograms per source, kept/dropped per filter with example thumbnails, "
                                    "duplicate cluster sizes, token and tile distributions, shard set composition.")
    sp.add_argument("dataset", help="dataset root URI")
    sp.add_argument("--out", required=True, help="the HTML file to write")
    sp.add_argument("--where", default="true", help="SQL predicate over samples: the population to describe")
    sp.add_argument("--threshold", action="append", metavar="SQL",
                    help='an extra filter to count, repeatable, e.g. "judge_caption_overall >= 3"')
    sp.add_argument("--bins", type=int, default=24, help="histogram bins (default 24)")
    sp.add_argument("--thumbnails", type=int, default=4, help="dropped examples shown per filter (default 4)")
    sp.set_defaults(func=_report)
