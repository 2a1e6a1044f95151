"""A small, fully offline demo corpus of local image-text data, with the ground truth of
what was planted in it.

The corpus feeds the ingestion sources in all three input layouts they read:

* ``ROOT/folder/``: images with sidecar captions (``x.jpg`` + ``x.txt`` + optional ``x.json``);
* ``ROOT/manifest.jsonl`` (images in ``ROOT/manifest_images/``) and ``ROOT/manifest.parquet``
  (encoded bytes in an ``image_bytes`` column);
* ``ROOT/tars/0000N.tar``: WebDataset shards as img2dataset writes them.

Besides good samples it plants what a curation pipeline must catch: duplicates (exact,
re-encoded, resized, near-duplicate caption, the same sample in two layouts), bad captions
for the rule filters, and corrupt inputs for the reject path. ``PlantedTruth`` lists them
by input name, so tests can check the pipeline found exactly those. Input names:
``folder/<image file name>`` (``folder/<name>.txt`` for a caption without image),
``manifest.jsonl#<line>``, ``manifest.parquet#<row>``, ``tars/<tar file name>#<key>``.

Everything is deterministic given the seed: building twice gives identical bytes.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from jobs import demo_images as di
from filters.dedup.phash import hamming, phash64

# Near-duplicate captions: two words changed near the end of a long caption, so that word
# shingles still overlap heavily (Jaccard of word 3-grams ~0.85) while the images differ.
NEAR_CAPTION = ("A computer-generated scene with several coloured shapes scattered loosely across the canvas, "
                "some overlapping each other, a few touching the edges, all drawn with flat colours "
                "and no outlines on a pale yellow background.")
NEAR_CAPTION_2 = NEAR_CAPTION.replace("pale yellow", "light grey")
LICENSES = ("cc-by", "cc-by-sa", "cc0", "public-domain")


@dataclass
class PlantedTruth:
    duplicate_groups: list[list[str]]  # input names that duplicate each other; first = original
    corrupt: dict[str, str]  # input name -> expected reject reason code
    bad_captions: dict[str, str]  # input name -> rule it should trip
    n_valid: int  # inputs that should become samples (all inputs but the corrupt ones)
    duplicate_kinds: list[str] = field(default_factory=list)  # per group: exact|reencoded|resized|near_caption|cross_layout
    inputs: list[str] = field(default_factory=list)  # every input name, valid or not


@dataclass
class DemoCorpus:
    root: Path
    folder: Path
    manifest_jsonl: Path
    manifest_parquet: Path
    tars: list[Path]
    truth: PlantedTruth


class _Layout:
    """Collects inputs per layout and what was planted, then writes everything at once."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, bytes] = {}  # path relative to root -> bytes
        self.manifest_lines: list[str] = []
        self.parquet_rows: list[dict] = []
        self.tar_samples: dict[str, list[tuple[str, dict[str, bytes]]]] = {"00000.tar": [], "00001.tar": []}
        self.inputs: list[str] = []
        self.corrupt: dict[str, str] = {}
        self.bad: dict[str, str] = {}
        self.groups: list[tuple[str, list[str]]] = []

    def _input(self, name: str, corrupt: str | None, bad: str | None) -> str:
        self.inputs.append(name)
        if corrupt:
            self.corrupt[name] = corrupt
        if bad:
            self.bad[name] = bad
        return name

    def folder(self, file_name: str, data: bytes | None, caption: str | bytes | None,
               meta: dict | None = None, corrupt: str | None = None, bad: str | None = None) -> str:
        """``data=None``: a caption sidecar without image. ``caption=None``: no sidecar."""
        stem = file_name.rsplit(".", 1)[0]
        if data is not None:
            self.files[f"folder/{file_name}"] = data
        if caption is not None:
            self.files[f"folder/{stem}.txt"] = caption if isinstance(caption, bytes) else caption.encode("utf-8")
        if meta is not None:
            self.files[f"folder/{stem}.json"] = json.dumps(meta, sort_keys=True).encode()
        return self._input(f"folder/{file_name if data is not None else stem + '.txt'}", corrupt, bad)

    def manifest(self, row: dict | str, image: tuple[str, bytes] | None = None,
                 corrupt: str | None = None, bad: str | None = None) -> str:
        """A JSONL row (a dict, or a raw line for malformed rows); ``image`` is (file name, bytes)."""
        if image is not None:
            self.files[f"manifest_images/{image[0]}"] = image[1]
        self.manifest_lines.append(row if isinstance(row, str) else json.dumps(row, sort_keys=True))
        return self._input(f"manifest.jsonl#{len(self.manifest_lines) - 1}", corrupt, bad)

    def parquet(self, data: bytes, caption: str, license: str, corrupt: str | None = None) -> str:
        self.parquet_rows.append({"image_bytes": data, "caption": caption, "license": license})
        return self._input(f"manifest.parquet#{len(self.parquet_rows) - 1}", corrupt, None)

    def tar(self, tar_name: str, files: dict[str, bytes], corrupt: str | None = None, bad: str | None = None) -> str:
        samples = self.tar_samples[tar_name]
        # img2dataset keys: 5-digit shard number then 4-digit index within the shard.
        key = f"{int(tar_name.split('.')[0]):05d}{len(samples):04d}"
        samples.append((key, files))
        return self._input(f"tars/{tar_name}#{key}", corrupt, bad)

    def write(self) -> list[Path]:
        for rel, data in self.files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (self.root / "manifest.jsonl").write_text("".join(line + "\n" for line in self.manifest_lines), "utf-8")
        schema = pa.schema([("image_bytes", pa.binary()), ("caption", pa.string()), ("license", pa.string())])
        pq.write_table(pa.Table.from_pylist(self.parquet_rows, schema=schema), self.root / "manifest.parquet")
        tars = []
        for tar_name, samples in self.tar_samples.items():
            path = self.root / "tars" / tar_name
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_tar(path, samples)
            tars.append(path)
        return tars


def _write_tar(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    """Plain (uncompressed: gzip would stamp a time) tar, members sorted, a sample's
    members adjacent, and no mtime/owner so the bytes depend on the content only."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, files in sorted(samples):
            for ext in sorted(files):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(files[ext]), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(files[ext]))


def _tar_sample(key_hint: str, data: bytes, caption: str, img: Image.Image, license: str) -> dict[str, bytes]:
    # img2dataset's per-sample JSON: url, status and sizes, plus the caption it wrote.
    meta = {"url": f"https://example.com/demo/{key_hint}.jpg", "status": "success", "error_message": None,
            "width": img.width, "height": img.height, "original_width": img.width,
            "original_height": img.height, "caption": caption, "license": license}
    return {"jpg": data, "txt": caption.encode("utf-8"), "json": json.dumps(meta, sort_keys=True).encode()}


class _Pool:
    """Synthetic images kept apart from each other: a drawing whose perceptual hash is
    close to an earlier image's, or whose caption repeats one, is drawn again. Without
    this, random drawings could be unplanted duplicates and the truth would be wrong."""

    def __init__(self, rng: random.Random, taken: list[int]):
        self.rng, self.hashes, self.captions = rng, list(taken), set()
        self.index = 0  # draws so far: names the images
        self.n_free = 0  # accepted draws of free size: the first ones get the fixed extreme sizes

    def draw(self, size: tuple[int, int] | None = None) -> di.DemoImage:
        """The next synthetic image; ``size=None``: the fixed extreme sizes first, then random."""
        free = size is None
        item = self.keep(lambda: di.generate(self.rng, self.index, size or di.pick_size(self.rng, self.n_free)))
        self.n_free += free
        return item

    def keep(self, make) -> di.DemoImage:
        """Call ``make()`` until its image is far from all kept ones, and keep that one."""
        while True:
            item = make()
            self.index += 1
            h = phash64(item.image)
            # Tiny images (1x20) hash almost nothing; they are kept apart by their caption only.
            far = min(item.image.size) < 8 or all(hamming(h, o) > 12 for o in self.hashes)
            if far and (not item.caption or item.caption not in self.captions):
                self.hashes.append(h)
                self.captions.add(item.caption)
                return item


def _fmt_for(img: Image.Image, choices: tuple[str, ...], i: int) -> str:
    # Large drawings go to JPEG: PNG of a 2000 px picture is slow to write and megabytes big.
    return "jpg" if img.width * img.height > 600_000 else choices[i % len(choices)]


def build_demo_corpus(root: str | Path, seed: int = 0, n_generated: int = 80) -> DemoCorpus:
    """Write the demo corpus under ``root`` and return its paths and planted truth.

    ``n_generated`` synthetic images with good captions are spread over the layouts; the
    planted duplicates, bad captions and corrupt inputs come on top. ``root/folder``,
    ``root/manifest_images`` and ``root/tars`` are replaced, so a rebuild leaves no stale file.
    """
    root = Path(root)
    for sub in ("folder", "manifest_images", "tars"):
        shutil.rmtree(root / sub, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out = _Layout(root)
    photos = di.load_photos()
    pool = _Pool(rng, [phash64(p.image) for p in photos])

    # ---- duplicates: originals from the real photos (generated ones if photos are missing)
    originals = photos[:3] + [pool.draw((640, 480)) for _ in range(max(0, 3 - len(photos)))]
    photos = photos[3:]
    a, b, c = originals
    a_bytes = di.encode(a.image, "jpg", 92)
    group = [out.folder(f"{a.name}.jpg", a_bytes, a.caption),
             out.folder(f"{a.name}_copy.jpg", a_bytes, a.caption),
             out.manifest({"image": f"manifest_images/{a.name}_copy.jpg", "caption": a.caption, "license": "cc0"},
                          (f"{a.name}_copy.jpg", a_bytes))]
    out.groups.append(("exact", group))
    out.groups.append(("reencoded", [
        out.folder(f"{b.name}.png", di.encode(b.image, "png"), b.caption),
        out.manifest({"image": f"manifest_images/{b.name}_q60.jpg", "caption": b.caption, "license": "cc0"},
                     (f"{b.name}_q60.jpg", di.encode(b.image, "jpg", 60)))]))
    small = c.image.resize((round(c.image.width * 0.7), round(c.image.height * 0.7)), Image.Resampling.LANCZOS)
    small_bytes = di.encode(small, "jpg", 90)
    out.groups.append(("resized", [
        out.folder(f"{c.name}.jpg", di.encode(c.image, "jpg", 92), c.caption),
        out.tar("00000.tar", _tar_sample(c.name + "_small", small_bytes, c.caption, small, "cc0"))]))

    d = pool.draw((600, 400))
    d_bytes = di.encode(d.image, "jpg")
    out.groups.append(("exact", [out.tar("00000.tar", _tar_sample(d.name, d_bytes, d.caption, d.image, "cc-by")),
                                 out.parquet(d_bytes, d.caption, "cc-by")]))
    e = pool.draw((900, 500))
    e_small = e.image.resize((630, 350), Image.Resampling.LANCZOS)
    out.groups.append(("resized", [
        out.manifest({"image": f"manifest_images/{e.name}.png", "caption": e.caption, "license": "cc-by"},
                     (f"{e.name}.png", di.encode(e.image, "png"))),
        out.folder(f"{e.name}_small.webp", di.encode(e_small, "webp"), e.caption)]))
    f = pool.keep(lambda: di.DemoImage("scene_yellow", di.draw_scene(rng, 512, 384, (250, 240, 170)), "", "scene"))
    g = pool.keep(lambda: di.DemoImage("scene_grey", di.draw_scene(rng, 384, 512, (205, 205, 205)), "", "scene"))
    out.groups.append(("near_caption", [
        out.folder(f"{f.name}.png", di.encode(f.image, "png"), NEAR_CAPTION),
        out.manifest({"image": f"manifest_images/{g.name}.png", "caption": NEAR_CAPTION_2, "license": "cc-by"},
                     (f"{g.name}.png", di.encode(g.image, "png")))]))
    h = pool.draw((700, 700))
    h_bytes = di.encode(h.image, "jpg")
    out.groups.append(("cross_layout", [
        out.folder(f"{h.name}.jpg", h_bytes, h.caption, {"license": "cc-by", "origin": "demo"}),
        out.tar("00001.tar", _tar_sample(h.name, h_bytes, h.caption, h.image, "cc-by"))]))

    # ---- real photos: mostly in the folder, some in the manifest and the tars
    for i, p in enumerate(photos):
        fmt = "png" if p.image.mode != "RGB" else "jpg"
        where = i % 5
        if where <= 2:
            out.folder(f"{p.name}.{fmt}", di.encode(p.image, fmt, 92), p.caption,
                       {"license": "public-domain", "origin": "scikit-image"} if where == 0 else None)
        elif where == 3:
            out.manifest({"image": f"manifest_images/{p.name}.{fmt}", "caption": p.caption,
                          "license": "public-domain", "url": f"https://example.com/photos/{p.name}.{fmt}"},
                         (f"{p.name}.{fmt}", di.encode(p.image, fmt, 92)))
        else:
            rgb = p.image.convert("RGB")
            out.tar(f"0000{i % 2}.tar", _tar_sample(p.name, di.encode(rgb, "jpg", 92), p.caption, rgb, "public-domain"))

    # ---- generated images with good captions: 4/10 folder, 3/10 manifest, 2/10 tars, 1/10 parquet
    for i in range(n_generated):
        item = pool.draw()
        license = LICENSES[i % len(LICENSES)]
        slot = i % 10
        if slot < 4:
            fmt = _fmt_for(item.image, ("png", "jpg", "webp"), i)
            meta = {"license": license, "origin": "demo", "generator": item.kind} if slot == 0 else None
            out.folder(f"{item.name}.{fmt}", di.encode(item.image, fmt), item.caption, meta)
        elif slot < 7:
            fmt = _fmt_for(item.image, ("png", "jpg"), i)
            out.manifest({"image": f"manifest_images/{item.name}.{fmt}", "caption": item.caption, "license": license,
                          "url": f"https://example.com/demo/{item.name}.{fmt}"},
                         (f"{item.name}.{fmt}", di.encode(item.image, fmt)))
        elif slot < 9:
            out.tar(f"0000{slot - 7}.tar", _tar_sample(item.name, di.encode(item.image, "jpg"), item.caption,
                                                        item.image, license))
        else:
            out.parquet(di.encode(item.image, _fmt_for(item.image, ("png", "jpg"), i)), item.caption, license)

    # ---- bad captions on otherwise good images, in every layout
    bad = di.bad_captions(rng)
    carriers = [pool.draw((rng.randint(200, 800), rng.randint(200, 800))) for _ in range(9)]
    enc = [di.encode(x.image, "jpg") for x in carriers]
    n = [x.name for x in carriers]
    out.folder(f"{n[0]}.jpg", enc[0], bad["caption_too_short"], bad="caption_too_short")
    out.manifest({"image": f"manifest_images/{n[1]}.jpg", "caption": bad["caption_empty"]}, (f"{n[1]}.jpg", enc[1]),
                 bad="caption_too_short")
    out.folder(f"{n[2]}.jpg", enc[2], None, bad="caption_too_short")  # no sidecar: empty caption
    out.folder(f"{n[3]}.jpg", enc[3], bad["garbled_text"], bad="garbled_text")
    out.tar("00001.tar", _tar_sample(n[4], enc[4], bad["garbled_text_2"], carriers[4].image, "cc0"), bad="garbled_text")
    out.manifest({"image": f"manifest_images/{n[5]}.jpg", "caption": bad["nonprintable_text"]},
                 (f"{n[5]}.jpg", enc[5]), bad="nonprintable_text")
    out.tar("00000.tar", _tar_sample(n[6], enc[6], bad["repetitive_ngrams"], carriers[6].image, "cc0"),
            bad="repetitive_ngrams")
    out.folder(f"{n[7]}.jpg", enc[7], bad["repetitive_lines"], bad="repetitive_lines")
    out.manifest({"image": f"manifest_images/{n[8]}.jpg", "caption": bad["caption_too_long"]},
                 (f"{n[8]}.jpg", enc[8]), bad="caption_too_long")

    # ---- corrupt inputs: each should become one reject with the given reason
    photo_like = [di.encode(pool.draw((640, 480)).image, "jpg") for _ in range(3)]
    out.folder("corrupt_truncated.jpg", di.truncated(photo_like[0]), "A picture cut off half way.", corrupt="truncated")
    out.folder("corrupt_empty.jpg", b"", "A zero-byte file.", corrupt="empty")
    out.folder("corrupt_random.png", di.random_bytes(rng, 4096), "Random bytes named png.", corrupt="not_an_image")
    out.folder("corrupt_bomb.png", di.png_bomb(), "A tiny file declaring 30000 by 30000 pixels.",
               corrupt="decompression_bomb")
    out.folder("corrupt_caption.jpg", photo_like[1], "A caf\xe9 caption in Latin-1 \xff".encode("latin-1"),
               corrupt="undecodable_text")
    out.folder("orphan_caption.jpg", None, "A caption whose image was never saved.", corrupt="missing_file")
    out.manifest('{"image": "manifest_images/broken.jpg", "caption": "a line cut', corrupt="malformed_row")
    out.manifest({"caption": "A row that names no image.", "license": "cc0"}, corrupt="malformed_row")
    out.manifest({"image": "manifest_images/does_not_exist.jpg", "caption": "The file of this row is missing."},
                 corrupt="missing_file")
    out.parquet(di.random_bytes(rng, 2048), "Random bytes in the image column.", "cc0", corrupt="not_an_image")
    out.tar("00001.tar", {"jpg": di.truncated(photo_like[2]), "txt": b"A truncated download."}, corrupt="truncated")
    out.tar("00001.tar", {"txt": b"A sample whose image member is missing.", "json": b"{}"}, corrupt="missing_file")

    tars = out.write()
    truth = PlantedTruth(duplicate_groups=[g for _, g in out.groups], corrupt=out.corrupt, bad_captions=out.bad,
                         n_valid=len(out.inputs) - len(out.corrupt), duplicate_kinds=[k for k, _ in out.groups],
                         inputs=out.inputs)
    (root / "truth.json").write_text(json.dumps(asdict(truth), indent=1, sort_keys=True) + "\n", "utf-8")
    return DemoCorpus(root, root / "folder", root / "manifest.jsonl", root / "manifest.parquet", tars, truth)


def load_truth(root: str | Path) -> PlantedTruth:
    """The truth a previous build wrote to ``root/truth.json``."""
    return PlantedTruth(**json.loads((Path(root) / "truth.json").read_text("utf-8")))
