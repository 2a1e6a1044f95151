"""Local image-text sources: manifests in every format, WebDataset tars with hostile members."""
from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import os
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from pipeline.sources import SOURCE_TYPES
from pipeline.sources.base import RawInput


def jpeg(color=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def read_all(kind: str, name: str = "s", **options) -> list[RawInput]:
    config_cls, source_cls = SOURCE_TYPES[kind]
    source = source_cls(name, config_cls(**options))
    return [raw for p in source.partitions(2) for raw in source.read(p)]


def test_manifest_formats_give_the_same_inputs(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg())
    rows = [{"image": "a.jpg", "caption": "a red square", "license": "cc0"},
            {"image": "missing.jpg", "caption": "gone", "license": "cc0"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with gzip.open(tmp_path / "m.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    with open(tmp_path / "m.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "caption", "license"])
        writer.writeheader()
        writer.writerows(rows)
    for name in ("m.jsonl", "m.jsonl.gz", "m.csv"):
        got = read_all("manifest", path=str(tmp_path / name))
        assert [g.failure[1] if g.failure else None for g in got] == [None, "missing_file"], name
        assert got[0].media[0] == jpeg() and got[0].text == "a red square"
        assert got[0].extra == {"license": "cc0"}  # other columns carried through
        assert got[1].input_ref.endswith(f"{name}#1")


def test_manifest_with_bytes_and_malformed_rows(tmp_path):
    table = pa.table({"img": [jpeg(), b"not an image"], "caption": ["one", "two"]})
    pq.write_table(table, tmp_path / "m.parquet")
    got = read_all("manifest", path=str(tmp_path / "m.parquet"), image_column="img")
    assert [g.media[0] for g in got] == [jpeg(), b"not an image"]  # decoding is a later step
    lines = [json.dumps({"image": base64.b64encode(jpeg()).decode(), "caption": "b64"}), "{not json", json.dumps({"caption": "no image"}), ""]
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    got = read_all("manifest", path=str(tmp_path / "m.jsonl"))
    assert got[0].media[0] == jpeg() and got[0].failure is None
    assert [g.failure[1] for g in got[1:]] == ["malformed_row"] * 2  # the empty last line is not a row


def test_image_folder_pairs_sidecars_and_reports_orphans(tmp_path):
    (tmp_path / "x.jpg").write_bytes(jpeg())
    (tmp_path / "x.txt").write_text("caption x\n")
    (tmp_path / "x.json").write_text('{"origin": "test"}')
    (tmp_path / "y.png").write_bytes(jpeg())  # no caption: allowed, empty text
    (tmp_path / "z.txt").write_text("caption without image")
    (tmp_path / "bad.jpg").write_bytes(jpeg())
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa not utf-8")
    got = {os.path.basename(g.input_ref): g for g in read_all("image_folder", path=str(tmp_path))}
    assert got["x.jpg"].text == "caption x" and got["x.jpg"].extra == {"origin": "test"}
    assert got["y.png"].text == "" and got["y.png"].failure is None
    assert got["z.txt"].failure[1] == "missing_file"
    assert got["bad.jpg"].failure[1] == "undecodable_text"


def add(tar, name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def test_tar_member_paths_are_never_trusted(tmp_path):
    path = tmp_path / "hostile.tar"
    with tarfile.open(path, "w") as tar:
        add(tar, "../../escape.jpg", jpeg())
        add(tar, "../../escape.txt", b"climbing out")
        add(tar, "/abs/key.jpg", jpeg((0, 0, 255)))
        add(tar, "/abs/key.txt", b"absolute")
        add(tar, "link.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add(tar, "link.txt", b"symlink caption")
        add(tar, "dev.jpg", kind=tarfile.CHRTYPE)
    before = set(os.listdir(tmp_path))
    got = read_all("webdataset", path=str(path))
    assert set(os.listdir(tmp_path)) == before  # nothing extracted anywhere
    assert not (tmp_path.parent.parent / "escape.jpg").exists()
    by_key = {g.input_ref.split("#", 1)[1]: g for g in got}
    assert by_key["../../escape"].text == "climbing out"  # the name is only a label
    assert by_key["/abs/key"].media[0] == jpeg((0, 0, 255))
    assert by_key["link"].failure[1] == "missing_file"  # the symlink image was skipped, not followed
    assert "dev" not in by_key


def test_damaged_tar_keeps_what_was_read_and_rejects_the_rest(tmp_path):
    path = tmp_path / "t.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(4):
            add(tar, f"{i:04d}.jpg", jpeg((i * 40, 0, 0), (300, 300)))
            add(tar, f"{i:04d}.txt", f"sample {i}".encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 5 // 8])  # cut inside a later member
    got = read_all("webdataset", path=str(path))
    good = [g for g in got if g.failure is None]
    assert 0 < len(good) < 4  # the samples before the damage survive
    assert all(g.media[0].startswith(b"\xff\xd8") for g in good)
    assert got[-1].failure[:2] == ("read", "corrupt_tar")
