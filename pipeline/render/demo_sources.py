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
- ``urls`` (web_urls): URLs of a few images on a loopback server the caller runs
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
CLIP_CAPTIONS = ({"start": 0.0, "end": 1.5, "text": "A white square slides to the right over a red background."},
                 {"start": 1.5, "end": 3.0, "text": "The scene cuts to a green background; the square keeps moving."})


def _generated_images(folder: str, n: int, seed: int, prefix: str) -> list[tuple[str, str]]:
    """``n`` generated pictures (JPEG) in ``folder``; returns (file name, caption) of each."""
    from jobs import demo_images as di

    os.makedirs(folder, exist_ok=True)
    rng, out = random.Random(seed), []
    for i in range(n):
        item = di.generate(rng, i, (rng.randint(240, 480), rng.randint(200, 400)))
        out.append((f"{prefix}{i:02d}.jpg", item.caption))
        with open(os.path.join(folder, out[-1][0]), "wb") as f:
            f.write(di.encode(item.image, "jpg"))
    return out


def _articles(folder: str, count: int) -> str:
    # Each document's text describes its own pictures, so documents are not text duplicates.
    images = _generated_images(folder, 2 * count + 1, seed=11, prefix="figure")
    rows = []
    for i in range(count):
        (a, text_a), (b, text_b) = images[2 * i], images[2 * i + 1]
        closing = f"That was the {i + 1}. article of the demo, with two pictures."
        if i % 2 == 0:  # OBELICS: parallel lists
            rows.append({"texts": [None, text_a, None, text_b, closing], "images": [a, None, b, None, None],
                         "url": f"https://example.com/articles/{i}"})
        else:  # MINT: typed content blocks
            rows.append({"content": [{"type": "image", "path": a}, {"type": "text", "text": text_a},
                                     {"type": "image", "path": b}, {"type": "text", "text": f"{text_b} {closing}"}]})
    last, text = images[-1]
    rows.append({"content": [{"type": "text", "text": f"{text} Its second picture was never saved."},
                             {"type": "image", "path": last}, {"type": "image", "path": "lost.jpg"}]})
    path = os.path.join(folder, "articles.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    return path


def _videos(folder: str, count: int) -> None:
    from pipeline.video.synth import cfr_pts, write_video

    os.makedirs(folder, exist_ok=True)
    for i in range(count):  # 3 s at 10 fps with a cut at 1.5 s: two clips each, each with its caption
        write_video(os.path.join(folder, f"clip{i:02d}.mp4"), cfr_pts(3, 10), width=320, height=192, cut_at_ms=[1500])
        with open(os.path.join(folder, f"clip{i:02d}.json"), "w", encoding="utf-8") as f:
            json.dump({"captions": list(CLIP_CAPTIONS), "license": "cc0"}, f)
    with open(os.path.join(folder, "broken.mp4"), "wb") as f:
        f.write(bytes(range(256)) * 16)  # not a video: one decode reject


def _url_list(root: str, url_base: str, count: int) -> str:
    # The images go where ``serve_folder(web_folder(root))`` serves them from.
    images = _generated_images(web_folder(root), count, seed=12, prefix="photo")
    rows = [{"url": f"{url_base}/{name}", "caption": caption, "license": "cc0"} for name, caption in images]
    rows.append({"url": f"{url_base}/gone.jpg", "caption": "A picture that was taken down."})
    path = os.path.join(root, "web", "urls.jsonl")
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
        sources.append({"name": "urls", "type": "web_urls", "path": _url_list(root, url_base, count)})
    return sources
