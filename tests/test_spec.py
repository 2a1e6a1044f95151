"""Job spec validation: bad specs fail before any work, naming the key and what is allowed."""
from __future__ import annotations

import pytest
import yaml

from jobs.cli import main
from jobs.spec import load_spec, parse_spec
from schemas.config import ConfigError


def base(tmp_path) -> dict:
    (tmp_path / "imgs").mkdir(exist_ok=True)
    return {"name": "t", "dataset": str(tmp_path / "ds"),
            "sources": [{"name": "a", "type": "image_folder", "path": str(tmp_path / "imgs")}]}


def test_valid_spec_resolves_paths_and_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = parse_spec({"name": "t", "dataset": "ds", "tiling": {"max_tiles": 6},
                       "sources": [{"name": "a", "type": "image_folder", "path": "imgs"}]})
    assert spec.dataset == str(tmp_path / "ds")
    assert spec.sources[0].options["path"] == str(tmp_path / "imgs")
    assert spec.tiling.max_tiles == 6 and spec.tiling.tile_size == 448
    assert spec.filters.min_caption_words == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(colour="red"), "unknown key(s) ['colour']"),
        (lambda d: d["tiling"].update(max_tile=3) if "tiling" in d else d.update(tiling={"max_tile": 3}), "max_tile"),
        (lambda d: d.update(filters={"min_caption_words": "five"}), "expected an integer"),
        (lambda d: d.update(partition_size=0), "partition_size"),
        (lambda d: d["sources"][0].update(type="ftp"), "unknown source type 'ftp'"),
        (lambda d: d["sources"][0].update(colour=1), "sources.a: unknown key(s) ['colour']"),
        (lambda d: d["sources"].append(dict(d["sources"][0])), "must be unique"),
        (lambda d: d.update(sources=[]), "non-empty list"),
        (lambda d: d.update(dedup={"duplicate_signals": ["telepathy"]}), "telepathy"),
        (lambda d: d.update(tiling={"min_tiles": 5, "max_tiles": 2}), "min_tiles"),
    ],
)
def test_invalid_specs_are_refused_with_a_clear_message(tmp_path, change, message):
    data = base(tmp_path)
    change(data)
    with pytest.raises((ConfigError, ValueError)) as err:
        parse_spec(data)
    assert message in str(err.value)


def test_job_id_is_stable_and_changes_with_the_spec(tmp_path):
    a, b = parse_spec(base(tmp_path)), parse_spec(base(tmp_path))
    assert a.job_id == b.job_id
    changed = base(tmp_path)
    changed["filters"] = {"min_caption_words": 9}
    assert parse_spec(changed).job_id != a.job_id


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\ndataset: x\nsources: []\n")
    with pytest.raises(yaml.YAMLError):
        load_spec(str(path))


def test_cli_reports_spec_errors_without_traceback(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    data = base(tmp_path)
    data["bogus"] = 1
    path.write_text(yaml.safe_dump(data))
    assert main(["ingest", str(path), "--local"]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['bogus']" in err and "Traceback" not in err


def test_every_subcommand_explains_itself(capsys):
    for argv in (["--help"], ["ingest", "--help"], ["query", "--help"], ["shard", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0
        assert "usage: tessera" in capsys.readouterr().out
