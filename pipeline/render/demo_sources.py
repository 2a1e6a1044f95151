"""Spec entries for ``tessera demo``: a few samples of each rendered source, offline.

``demo_sources(root)`` writes two small input folders under ``root`` (real scans that
ship with scikit-image for OCR labelling, and user HTML files, one of which hangs
and must end up as a ``render/timeout`` reject) and returns the source entries to
append to the demo spec's ``sources``. Chromium-based entries are left out when
/usr/bin/chromium is missing, so the demo still runs.
"""
from __future__ import annotations

import os
import shutil

USER_HTML = {
    "notice.html": "<h2>Library notice</h2><p>The reading room opens at nine and closes at six.</p>"
                   "<table><tr><th>Day</th><th>Hours</th></tr><tr><td>Mon-Fri</td><td>9-18</td></tr></table>",
    "spin.html": "<p>This page never finishes loading.</p><script>while (true) {}</script>",
}


def demo_sources(root: str, chromium: str = "/usr/bin/chromium") -> list[dict]:
    scans, html = os.path.join(root, "scans"), os.path.join(root, "html")
    os.makedirs(scans, exist_ok=True)
    os.makedirs(html, exist_ok=True)
    try:  # real scanned text shipped in the scikit-image wheel
        import skimage

        for name in ("page.png", "text.png"):
            src = os.path.join(os.path.dirname(skimage.__file__), "data", name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(scans, name))
    except ImportError:
        pass
    for name, body in USER_HTML.items():
        with open(os.path.join(html, name), "w", encoding="utf-8") as f:
            f.write(body)
    sources = [
        {"name": "synth-ocr", "type": "synthetic_ocr", "count": 12, "seed": 1},
        {"name": "charts", "type": "charts", "count": 12, "seed": 1},
    ]
    if os.listdir(scans):
        sources.append({"name": "scans", "type": "ocr_images", "path": scans, "threads": 1})
    if os.path.exists(chromium):
        sources.append({"name": "docs", "type": "html_documents", "count": 8, "seed": 1, "path": html,
                        "page_timeout_s": 5.0})
    return sources
