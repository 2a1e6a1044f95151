"""Spec entries for ``tessera demo``: a few samples of each of the newer source types, offline.

``demo_sources(root, ...)`` writes small inputs under ``root`` and returns the source
entries to append to the demo spec's ``sources`` (one dataset for everything):

- ``scans`` (ocr_images): real scanned text shipped with scikit-image, labelled by RapidOCR;
- ``synth-ocr`` (synthetic_ocr) and ``charts`` (charts): generated from a seed;
- ``docs`` (html_documents): generated pages plus user HTML files, one of which hangs and
  must end up as a ``render/timeout`` reject; left out, with a warning, without chromium;
- ``articles`` (interleaved): OBELICS and MINT records over generated images, one of
  them naming an image that does not exist (dropped from its document, as OBELICS does);
- ``clips`` (video): synthetic videos with a scene cut and a caption, and one corrupt file;
- ``web`` (web_urls): URLs of a few images on a loopback server the caller runs
  (``serve_folder``), one of them dead; left out when no ``url_base`` is given.

``count`` is the number of generated samples per source; the fixed inputs come on top.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sys

USER_HTML = {
    "notice.html": "<h2>Library notice</h2><p>The reading room opens at nine and closes at six.</p>"
                   "<table><tr><th>Day</th><th>Hours</th></tr><tr><td>Mon-Fri</td><td>9-18</td></tr></table>",
    "spin.html": "<p>This page never finishes loading.</p><script>while (true) {}</script>",
}
ARTICLE_TEXT = ("A short note about the picture above, written as a web page would put it.",
                "The next paragraph goes on after a second picture, as interleaved documents do.",
                "It ends with a closing sentence and no picture after it.")


def _generated_images(folder: str, n: int, seed: int, prefix: str) -> list[str]:
    """``n`` generated pictures (JPEG) in ``folder``; returns their file names."""
    from jobs import demo_images as di

    os.makedirs(folder, exist_ok=True)
    rng, names = random.Random(seed), []
    for i in range(n):
        item = di.generate(rng, i, (rng.randint(240, 480), rng.randint(200, 400)))
        names.append(f"{prefix}{i:02d}.jpg")
        with open(os.path.join(folder, names[-1]), "wb") as f:
            f.write(di.encode(item.image, "jpg"))
    return names


def _articles(folder: str, count: int) -> str:
    images = _generated_images(folder, 2 * count, seed=11, prefix="figure")
    rows = []
    for i in range(count):
        a, b = images[2 * i], images[2 * i + 1]
        if i % 2 == 0:  # OBELICS: parallel lists
            rows.append({"texts": [None, ARTICLE_TEXT[0], None, ARTICLE_TEXT[1], ARTICLE_TEXT[2]],
                         "images": [a, None, b, None, None], "url": f"https://example.com/articles/{i}"})
        else:  # MINT: typed content blocks
            rows.append({"content": [{"type": "text", "text": ARTICLE_TEXT[0]}, {"type": "image", "path": a},
                                     {"type": "text", "text": ARTICLE_TEXT[1]}, {"type": "image", "path": b}]})
    rows.append({"content": [{"type": "text", "text": "Its only other picture was never saved."},
                             {"type": "image", "path": images[0]}, {"type": "image", "path": "lost.jpg"}]})
    path = os.path.join(folder, "articles.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    return path


def _videos(folder: str, count: int) -> None:
    from pipeline.video.synth import cfr_pts, write_video

    os.makedirs(folder, exist_ok=True)
    for i in range(count):  # 3 s at 10 fps with a cut at 1.5 s: two clips each
        write_video(os.path.join(folder, f"clip{i:02d}.mp4"), cfr_pts(3, 10), width=192, height=112, cut_at_ms=[1500])
        with open(os.path.join(folder, f"clip{i:02d}.txt"), "w", encoding="utf-8") as f:
            f.write("A white square slides across a red background, then across a green one.\n")
    with open(os.path.join(folder, "broken.mp4"), "wb") as f:
        f.write(bytes(range(256)) * 16)  # not a video: one decode reject


def _url_list(folder: str, url_base: str, count: int) -> str:
    names = _generated_images(os.path.join(folder, "site"), count, seed=12, prefix="photo")
    rows = [{"url": f"{url_base}/{n}", "caption": f"A generated picture published as {n}.", "license": "cc0"}
            for n in names] + [{"url": f"{url_base}/gone.jpg", "caption": "A picture that was taken down."}]
    path = os.path.join(folder, "urls.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    return path


def serve_folder(folder: str):
    """A started loopback HTTP server for the files of ``folder`` (404 for anything else); ``.stop()`` it."""
    from aiohttp import web

    from pipeline.sources.fetch_testing import LoopbackServer

    async def handler(request):
        path = os.path.join(folder, os.path.basename(request.path))
        if not os.path.isfile(path):
            return web.Response(status=404)
        with open(path, "rb") as f:
            return web.Response(body=f.read(), content_type="image/jpeg")

    return LoopbackServer(handler).start()


def web_folder(root: str) -> str:
    return os.path.join(root, "web", "site")


def demo_sources(root: str, chromium: str = "/usr/bin/chromium", *, count: int = 8, url_base: str | None = None,
                 hanging_page: bool = True, page_timeout_s: float = 5.0) -> list[dict]:
    scans, html = os.path.join(root, "scans"), os.path.join(root, "html")
    for folder in (scans, html):
        shutil.rmtree(folder, ignore_errors=True)  # a rebuild leaves no stale input
        os.makedirs(folder)
    try:  # real scanned text shipped in the scikit-image wheel
        import skimage

        for name in ("page.png", "text.png"):
            src = os.path.join(os.path.dirname(skimage.__file__), "data", name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(scans, name))
    except ImportError:
        pass
    for name, body in USER_HTML.items():
        if hanging_page or name != "spin.html":
            with open(os.path.join(html, name), "w", encoding="utf-8") as f:
                f.write(body)
    _videos(os.path.join(root, "videos"), max(1, count // 4))
    sources = [
        {"name": "synth-ocr", "type": "synthetic_ocr", "count": count, "seed": 1},
        {"name": "charts", "type": "charts", "count": count, "seed": 1},
        {"name": "articles", "type": "interleaved", "path": _articles(os.path.join(root, "articles"), count)},
        {"name": "clips", "type": "video", "path": os.path.join(root, "videos")},
    ]
    if os.listdir(scans):
        sources.append({"name": "scans", "type": "ocr_images", "path": scans, "threads": 1})
    if os.path.exists(chromium):
        sources.append({"name": "docs", "type": "html_documents", "count": count, "seed": 1, "path": html,
                        "page_timeout_s": page_timeout_s, "executable_path": chromium})
    else:
        print(f"warning: {chromium} not found: the html_documents source is left out of the demo", file=sys.stderr)
    if url_base:
        sources.append({"name": "web", "type": "web_urls", "path": _url_list(os.path.join(root, "web"), url_base, count)})
    return sources
