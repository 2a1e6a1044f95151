"""filters/: each score on crafted texts and sizes, flags at their thresholds, config errors."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from filters import FLAG_NAMES, RuleConfig, flags, measure
from filters.caption_length import count_words, measure_length
from filters.image_geometry import measure_geometry
from filters.repetition import repeated_line_ratio, repeated_ngram_ratio
from filters.text_quality import garbled_ratio, is_garbled, nonprintable_ratio
from schemas.sample import RuleScores

CLEAN = "A brown dog catches a red frisbee in a sunny park, next to two children."


# --- image geometry ----------------------------------------------------------------------
def test_geometry_no_images_is_all_zero():
    g = measure_geometry([])
    assert (g.min_side, g.max_side, g.aspect_ratio) == (0, 0, 0.0)


def test_geometry_takes_the_most_extreme_image():
    g = measure_geometry([(640, 480), (100, 2000), (300, 300)])
    assert g.min_side == 100
    assert g.max_side == 2000
    assert g.aspect_ratio == pytest.approx(20.0)  # the 100x2000 strip, portrait counts too


def test_geometry_square_is_ratio_one():
    assert measure_geometry([(50, 50)]).aspect_ratio == 1.0


def test_geometry_rejects_empty_sizes():
    with pytest.raises(ValueError):
        measure_geometry([(0, 10)])


# --- caption length -----------------------------------------------------------------------
def test_caption_length():
    s = measure_length("  two   words\n")
    assert (s.caption_words, s.caption_chars) == (2, 14)
    assert measure_length("").caption_words == 0
    assert measure_length(CLEAN).caption_words == 15


def test_cjk_characters_count_as_words():
    assert count_words("一只猫") == 3
    assert count_words("使用Python编程") == 5  # 使 用 Python 编 程
    assert count_words("東京タワー at night") == 7
    assert count_words("한국어 문장") == 2  # Hangul is space-separated


# --- text quality -------------------------------------------------------------------------
def test_nonprintable_clean_text_and_whitespace():
    assert nonprintable_ratio(CLEAN) == 0.0
    assert nonprintable_ratio("line one\nline two\tand\r\nthree") == 0.0
    assert nonprintable_ratio("") == 0.0


def test_nonprintable_counts_controls_format_private_and_unassigned():
    assert nonprintable_ratio("ab\x00d") == pytest.approx(1 / 4)  # NUL (Cc)
    assert nonprintable_ratio("a\u200bb\u202ec\x07") == pytest.approx(3 / 6)  # ZWSP, RLO (Cf), BEL
    assert nonprintable_ratio("\ue000x") == pytest.approx(1 / 2)  # private use (Co)
    assert nonprintable_ratio("\U000e0080x") == pytest.approx(1 / 2)  # unassigned (Cn)


def test_garbled_clean_text_in_several_languages():
    assert garbled_ratio(CLEAN) == 0.0
    assert garbled_ratio("Ein Mädchen fährt Fahrrad über die Straße in Zürich.") == 0.0
    assert garbled_ratio("Un niño come una manzana; ¿qué más? Łódź, naïve, Ångström.") == 0.0
    assert garbled_ratio("Кошка спит на диване. Ο σκύλος τρέχει.") == 0.0
    assert garbled_ratio("一只猫坐在窗台上 使用Python编程 東京タワー") == 0.0
    assert garbled_ratio("10°C, ©2020, 3.5µm, 50% off - a list: 1) x 2) y") == 0.0
    assert garbled_ratio("") == 0.0


@pytest.mark.parametrize(
    "word",
    [
        "cafÃ©",  # é as UTF-8 read as latin-1
        "donâ€™t",  # ’ read as cp1252
        "ÐŸÑ€Ð¸Ð²ÐµÑ‚",  # Привет read as cp1252
        "Å‚Ã³dÅº",  # łódź
        "caf\ufffd",  # replacement character
        "#$%&@!",  # longer than 3, no letter or digit
        "pаypal",  # Cyrillic а inside a Latin word
    ],
)
def test_garbled_tokens(word):
    assert is_garbled(word)


@pytest.mark.parametrize("word", ["...", "—", "a", "x2", "使用Python", "µm", "âge", "SÃO", "Ñandú"])
def test_not_garbled_tokens(word):
    assert not is_garbled(word)


def test_mojibake_sentence_is_mostly_garbled():
    good = "The café on the corner doesn’t open before nine – says José."
    bad = good.encode("utf-8").decode("cp1252", errors="replace")
    assert garbled_ratio(good) == 0.0
    # café, doesn’t, –, José.: 4 of the 12 tokens are damaged.
    assert garbled_ratio(bad) == pytest.approx(4 / 12)


# --- repetition ---------------------------------------------------------------------------
def test_repeated_ngrams_loop():
    # "the cat" x3: 3-grams (the cat the) (cat the cat) (the cat the)* (cat the cat)*
    assert repeated_ngram_ratio("the cat the cat the cat", 3) == pytest.approx(2 / 4)
    loop = " ".join(["a cat sits on the mat"] * 20)
    assert repeated_ngram_ratio(loop) > 0.9
    assert repeated_ngram_ratio(loop) == pytest.approx(1 - 6 / (120 - 2))  # 6 distinct 3-grams


def test_repeated_ngrams_clean_short_and_case():
    assert repeated_ngram_ratio(CLEAN) == 0.0
    assert repeated_ngram_ratio("two words", 3) == 0.0  # no 3-gram at all
    assert repeated_ngram_ratio("The Cat sat the cat sat", 3) == pytest.approx(1 / 4)
    assert repeated_ngram_ratio("a a a a", 1) == pytest.approx(3 / 4)
    with pytest.raises(ValueError):
        repeated_ngram_ratio("x", 0)


def test_repeated_lines():
    assert repeated_line_ratio("a\nb\nc") == 0.0
    assert repeated_line_ratio("Buy now!\nBuy now!\n\n  Buy now!  \nother") == pytest.approx(2 / 4)
    assert repeated_line_ratio("\n\n") == 0.0
    assert repeated_line_ratio("single line") == 0.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_scores_are_ratios_for_any_text(text):
    s = measure(text, [], RuleConfig())
    for name in ("nonprintable_ratio", "garbled_ratio", "repeated_ngram_ratio", "repeated_line_ratio"):
        assert 0.0 <= getattr(s, name) <= 1.0
    assert s.caption_chars == len(text)


# --- measure + flags ----------------------------------------------------------------------
def test_clean_sample_passes():
    scores = measure(CLEAN, [(640, 480)], RuleConfig())
    assert isinstance(scores, RuleScores)
    assert scores.caption_words == 15 and scores.min_side == 480 and scores.max_side == 640
    assert scores.aspect_ratio == pytest.approx(4 / 3)
    assert flags(scores, RuleConfig()) == []


def test_text_only_sample_is_not_flagged_for_images():
    scores = measure(CLEAN, [], RuleConfig())
    assert flags(scores, RuleConfig()) == []


def test_every_flag_fires():
    # 13 tokens, 3 garbled (Ã©, ÐŸÑ€, #$%&); 3 control characters in 61; the
    # "loop" lines repeat both as lines and as 3-grams.
    text = "\x00\x01\x02 Ã© ÐŸÑ€ #$%&\n" + "\n".join(["loop loop loop"] * 3)
    scores = measure(text, [(10, 500)], RuleConfig(max_caption_words=5))
    assert set(flags(scores, RuleConfig(max_caption_words=5))) == set(FLAG_NAMES) - {"caption_too_short"}
    assert flags(measure("hi", [], RuleConfig()), RuleConfig()) == ["caption_too_short"]


def _at(**values) -> RuleScores:
    base = dict(caption_words=10, min_side=100, max_side=100, aspect_ratio=1.0)
    base.update(values)
    return RuleScores(**base)


@pytest.mark.parametrize(
    "field,at,worse,flag",
    [
        ("caption_words", 3, 2, "caption_too_short"),
        ("min_side", 32, 31, "image_too_small"),
        ("aspect_ratio", 10.0, 10.01, "extreme_aspect_ratio"),
        ("nonprintable_ratio", 0.02, 0.0201, "nonprintable_text"),
        ("garbled_ratio", 0.2, 0.2001, "garbled_text"),
        ("repeated_ngram_ratio", 0.3, 0.3001, "repetitive_ngrams"),
        ("repeated_line_ratio", 0.3, 0.3001, "repetitive_lines"),
    ],
)
def test_flags_at_threshold(field, at, worse, flag):
    cfg = RuleConfig()
    assert flags(_at(**{field: at}), cfg) == []  # exactly at the threshold passes
    assert flags(_at(**{field: worse}), cfg) == [flag]


def test_caption_too_long_threshold():
    cfg = RuleConfig(max_caption_words=2000)
    assert flags(_at(caption_words=2000), cfg) == []
    assert flags(_at(caption_words=2001), cfg) == ["caption_too_long"]


def test_repetition_ngram_config_is_used():
    text = "red blue red blue green"
    assert measure(text, [], RuleConfig(repetition_ngram=2)).repeated_ngram_ratio == pytest.approx(1 / 4)
    assert measure(text, [], RuleConfig(repetition_ngram=3)).repeated_ngram_ratio == 0.0


# --- config --------------------------------------------------------------------------------
def test_from_dict_overrides_and_defaults():
    cfg = RuleConfig.from_dict({"min_side": 64, "max_aspect_ratio": 5})
    assert cfg.min_side == 64
    assert cfg.max_aspect_ratio == 5.0 and isinstance(cfg.max_aspect_ratio, float)
    assert cfg.min_caption_words == RuleConfig().min_caption_words
    assert RuleConfig.from_dict({}) == RuleConfig()
    assert RuleConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_unknown_key_names_it_and_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        RuleConfig.from_dict({"min_caption_word": 3})
    message = str(info.value)
    assert "min_caption_word'" in message
    for f in dataclasses.fields(RuleConfig):
        assert f.name in message


@pytest.mark.parametrize(
    "d",
    [
        {"min_side": "32"},
        {"min_side": 32.5},
        {"min_side": True},
        {"max_garbled_ratio": "0.2"},
        {"max_garbled_ratio": None},
        {"repetition_ngram": 0},
        {"max_repeated_line_ratio": -0.1},
        {"min_caption_words": 10, "max_caption_words": 5},
    ],
)
def test_from_dict_bad_values(d):
    with pytest.raises(ValueError, match="RuleConfig"):
        RuleConfig.from_dict(d)


def test_from_dict_needs_a_mapping():
    with pytest.raises(ValueError):
        RuleConfig.from_dict([("min_side", 3)])
