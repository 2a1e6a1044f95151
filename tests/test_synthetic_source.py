"""The ``synthetic`` scale-test source: deterministic, distinct, planted duplicates, cheap partitions."""
from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image

from pipeline.sources import SOURCE_TYPES
from pipeline.sources.synthetic import SyntheticConfig, SyntheticSource


def source(**options) -> SyntheticSource:
    config_cls, source_cls = SOURCE_TYPES["synthetic"]
    return source_cls("synth", config_cls(**options))


def test_partitions_cover_every_index_exactly_once():
    for count, size in [(0, 4), (1, 4), (10, 3), (10, 10), (1000, 7)]:
        parts = source(count=count).partitions(size)
        covered = [i for p in parts for i in range(*p.args)]
        assert covered == list(range(count))
        assert len({p.partition_id for p in parts}) == len(parts)
        assert all(0 < p.args[1] - p.args[0] <= size for p in parts)


def test_listing_a_million_inputs_is_cheap():
    parts = source(count=1_000_000).partitions(2048)
    assert len(parts) == 489 and parts[-1].args == (999_424, 1_000_000)
    assert all(isinstance(a, int) for p in parts[:3] for a in p.args)  # ranges, not lists of indices


def test_same_seed_same_bytes_other_seed_other_bytes():
    a, b, c = source(seed=1), source(seed=1), source(seed=2)
    for i in (0, 7, 12345):
        ra, rb, rc = a.generate(i), b.generate(i), c.generate(i)
        assert ra.media == rb.media and ra.text == rb.text and ra.input_ref == rb.input_ref
        assert ra.media != rc.media and ra.text != rc.text
    # A partition read twice (resume, retry) gives the same inputs.
    part = a.partitions(16)[3]
    assert [r.media for r in a.read(part)] == [r.media for r in a.read(part)]


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_images_are_distinct_decodable_and_of_the_asked_size(fmt):
    src = source(count=3000, format=fmt, image_size=20, text_duplicate_every=0)
    raws = [r for p in src.partitions(512) for r in src.read(p)]
    assert len({hashlib.sha256(r.media[0]).digest() for r in raws}) == len(raws)
    assert len({r.text for r in raws}) == len(raws)
    img = Image.open(io.BytesIO(raws[5].media[0]))
    assert img.format == fmt.upper() and img.size == (20, 20)


def test_planted_duplicates():
    src = source(count=200, text_duplicate_every=10, image_duplicate_every=25)
    raws = [src.generate(i) for i in range(200)]
    text_dups = {i for i in range(1, 200) if raws[i].text == raws[i - 1].text}
    image_dups = {i for i in range(1, 200) if raws[i].media == raws[i - 1].media}
    assert text_dups == set(range(9, 200, 10))
    assert image_dups == set(range(24, 200, 25))
    assert all(raws[i].media != raws[i - 1].media for i in text_dups - image_dups)  # caption only


def test_bad_options_are_refused():
    for bad in [dict(count=-1), dict(format="gif"), dict(image_size=2), dict(min_words=5, max_words=3)]:
        with pytest.raises(ValueError):
            SyntheticConfig(**bad)
