"""Inputs and situations a careless or hostile user brings: glob characters in names, files
changed behind the job's back, whitespace pairs, the job's own output as input, partitioned
folders, colliding columns, credentials, broken filesystems and signals. Each is read right,
or refused in one line; nothing is silently lost or echoed."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from gio_spark.cli import main
from gio_spark.errors import UserError
from gio_spark.job.config import InputConfig
from gio_spark.job.pipeline import run_job

from .test_integrity import run_cli
from .test_job import POOL, TARGET, job, read_input, write_text
from .test_reliability import start_driver, wait_for_glob, wait_until

pytestmark = pytest.mark.spark


@pytest.fixture()
def target(tmp_path):
    return write_text(tmp_path, "target", TARGET)


def rows_of(raw):
    return raw.df.toPandas().sort_values("pair_id")


# globs and names

def test_each_listed_file_is_read_once_even_with_glob_characters_in_its_name(spark, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_text(folder, "pool*", POOL[:80])  # a file literally named pool*.en
    write_text(folder, "pool_other", POOL[80:])
    literal = rows_of(read_input(spark, InputConfig(path=str(folder / "pool*"))))
    assert len(literal) == 80 and literal.pair_id.is_unique  # the name that exists, as it is
    globbed = rows_of(read_input(spark, InputConfig(path=str(folder / "p*"))))
    assert len(globbed) == len(POOL) and globbed.pair_id.is_unique
    assert set(zip(globbed.src, globbed.tgt)) == set(POOL)
    assert (globbed.pair_id % (1 << 40)).max() < 80  # no line number beyond its file


def test_names_with_brackets_and_braces(spark, tmp_path, target, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_text(data, "corpus[v2]", POOL[:30])
    assert len(rows_of(read_input(spark, InputConfig(path=str(data / "corpus[v2]"))))) == 30
    err = run_cli(capsys, "--train", str(data / "pool{2024"), "--target", target, "--output", str(tmp_path / "o"))
    assert "is not a valid glob pattern" in err and "backslash" in err
    err = run_cli(capsys, "--train", str(data / "corpus[v3]"), "--target", target, "--output", str(tmp_path / "o"))
    assert "is read as a glob pattern" in err and "backslash" in err


def test_plain_and_gzipped_copies_of_one_file_are_named(spark, tmp_path):
    write_text(tmp_path, "pool", POOL[:20])
    write_text(tmp_path, "pool", POOL[:20], gz=True)
    with pytest.raises(UserError, match=r"pool\.de and .*pool\.de\.gz are two copies of one file|"
                                        r"pool\.en and .*pool\.en\.gz are two copies of one file"):
        read_input(spark, InputConfig(path=str(tmp_path / "pool")))


# changed inputs

def test_an_input_replaced_with_the_same_size_and_time_is_read_again(spark, tmp_path, target):
    train = write_text(tmp_path, "train", POOL)
    first = run_job(job(tmp_path, train, target), spark)
    swapped = POOL[60:] + POOL[:60]  # the same bytes in another order: same size
    for lang, i in (("en", 0), ("de", 1)):
        path = tmp_path / f"train.{lang}"
        stat = path.stat()
        path.write_text("".join(r[i] + "\n" for r in swapped))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = run_job(job(tmp_path, train, target, if_exists="overwrite"), spark)
    assert "pairs_train" not in again["stages_reused"] and "pairs_target" in again["stages_reused"]
    out = pd.read_parquet(tmp_path / "out" / "selected")
    by_id = dict(zip(range(len(swapped)), swapped))
    assert all(by_id[i] == (s, t) for i, s, t in zip(out.pair_id, out.src, out.tgt))
    assert first["rows"]["train_kept"] == again["rows"]["train_kept"]


# rows

def test_a_side_of_only_whitespace_is_an_empty_pair(spark, tmp_path):
    pool = list(POOL[:10])
    pool[2] = ("   \t ", pool[2][1])
    pool[5] = (pool[5][0], "\u00a0\u2003")  # no-break and em spaces
    raw = read_input(spark, InputConfig(path=write_text(tmp_path, "p", pool)))
    assert rows_of(raw)._skip.tolist() == [None, None, "empty_pair", None, None, "empty_pair"] + [None] * 4


def test_the_jobs_own_tsv_output_reads_back_as_it_was(spark, tmp_path, target):
    special = [(e + " a\\b\tc", d + " x\ny\rz") for e, d in POOL]
    pd.DataFrame(special, columns=["src", "tgt"]).to_parquet(tmp_path / "pool.parquet")
    run_job(job(tmp_path, {"path": str(tmp_path / "pool.parquet"), "format": "parquet"}, target,
                output_format="tsv"), spark)
    back = rows_of(read_input(spark, InputConfig(path=str(tmp_path / "out" / "selected"), format="tsv")))
    assert len(back) > 0 and set(zip(back.src, back.tgt)) <= set(special)
    plain = rows_of(read_input(spark, InputConfig(path=str(tmp_path / "out" / "selected"), format="tsv",
                                                  unescape=False)))
    assert all("\\t" in s for s in plain.src)  # asked not to: the escapes stay


# Parquet layouts and columns

def test_partitioned_parquet_folders_are_read_whole_with_their_columns(spark, tmp_path):
    pool = tmp_path / "pool"
    for i, domain in enumerate(("EMEA", "JRC")):
        (pool / f"domain={domain}").mkdir(parents=True)
        pd.DataFrame(POOL[i * 60:(i + 1) * 60], columns=["src", "tgt"]).to_parquet(pool / f"domain={domain}" / "part-0.parquet")
    rows = rows_of(read_input(spark, InputConfig(path=str(pool), format="parquet")))
    assert len(rows) == 120 and sorted(rows.domain.unique()) == ["EMEA", "JRC"]
    assert set(zip(rows.src, rows.tgt)) == set(POOL)
    pd.DataFrame(POOL[:5], columns=["src", "tgt"]).to_parquet(pool / "stray.parquet")
    with pytest.raises(UserError, match=r"mixes partition folders and other files .*stray\.parquet"):
        read_input(spark, InputConfig(path=str(pool), format="parquet"))


def test_a_file_that_is_not_parquet_is_named_before_spark_reads(spark, tmp_path, target, capsys):
    (tmp_path / "pool").mkdir()
    pd.DataFrame(POOL, columns=["src", "tgt"]).to_parquet(tmp_path / "pool" / "part-0.parquet")
    (tmp_path / "pool" / "README.txt").write_text("what these files are\n")
    err = run_cli(capsys, "--train", str(tmp_path / "pool"), "--train-format", "parquet", "--target", target,
                  "--output", str(tmp_path / "out"))
    assert "README.txt is not a Parquet file" in err and "Traceback" not in err and "Exception" not in err


@pytest.mark.parametrize("column", ["pair_id", "_skip", "cluster", "selection_rank", "target_distance"])
def test_input_columns_named_like_the_jobs_are_refused(spark, tmp_path, column):
    pd.DataFrame(POOL, columns=["src", "tgt"]).assign(**{column: 1}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(UserError, match=rf"column '{column}' of .*p\.parquet has the name of a column the job writes"):
        read_input(spark, InputConfig(path=str(tmp_path / "p.parquet"), format="parquet"))


# secrets

@pytest.mark.parametrize("secret", ["wJalr/SECRET/key", "wJalr+SECRET+key", "wJalr%2FSECRET"])
def test_credentials_are_refused_whatever_the_secret_holds(tmp_path, capsys, secret):
    for flag in ("--train", "--output"):
        uri = f"s3a://AKIAEXAMPLE:{secret}@bucket/in/x"
        args = {"--train": uri, "--target": "t", "--output": str(tmp_path / "o")}
        args[flag] = uri
        err = run_cli(capsys, *[v for kv in args.items() for v in kv])
        assert "***@bucket/in/x holds credentials" in err
        assert "AKIAEXAMPLE" not in err and "SECRET" not in err


def test_a_config_file_with_credentials_is_refused_before_it_is_read(tmp_path, capsys):
    assert main(["run", "--config", "s3a://AKIAEXAMPLE:wJalr/SECRET@bucket/job.yaml"]) == 2
    err = capsys.readouterr().err
    assert "--config: s3a://***@bucket/job.yaml holds credentials" in err and "SECRET" not in err


# broken filesystems and files

def test_config_that_is_a_folder_or_not_utf8(tmp_path, capsys):
    (tmp_path / "conf").mkdir()
    assert main(["run", "--config", str(tmp_path / "conf")]) == 2
    assert f"config {tmp_path / 'conf'} is a folder" in capsys.readouterr().err
    (tmp_path / "job.yaml").write_bytes("output: caf\xe9\n".encode("latin-1"))
    assert main(["run", "--config", str(tmp_path / "job.yaml")]) == 2
    assert f"config {tmp_path / 'job.yaml'} is not UTF-8 text" in capsys.readouterr().err


def test_dbfs_off_databricks_is_one_line(spark, tmp_path, target, capsys):
    err = run_cli(capsys, "--train", target, "--target", target, "--output", "dbfs:/gio/out")
    assert "this Spark has no filesystem for dbfs:" in err and "Databricks" in err
    assert not Path("/dbfs").exists()


def test_a_truncated_manifest_of_a_complete_run_is_named(spark, tmp_path, target):
    train = write_text(tmp_path, "train", POOL)
    run_job(job(tmp_path, train, target), spark)
    manifest = tmp_path / "out" / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(UserError, match=rf"{manifest} is unreadable .*--if-exists overwrite"):
        run_job(job(tmp_path, train, target, if_exists="skip"), spark)


def test_output_in_the_inputs_folder_is_refused(spark, tmp_path, capsys, monkeypatch):
    write_text(tmp_path, "pool", POOL)
    write_text(tmp_path, "dev", TARGET)
    monkeypatch.chdir(tmp_path)
    err = run_cli(capsys, "--train", "pool", "--target", "dev", "--output", ".")
    assert "output . is the folder that holds the train input pool" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.de", "dev.en", "pool.de", "pool.en"]


def _immutable(folder: Path) -> bool:
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_a_read_only_output_folder_is_one_line(spark, tmp_path, target, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    if shutil.which("chattr") is None or not _immutable(parent):
        pytest.skip("cannot make a folder read-only here (chattr +i needs root on ext4)")
    try:
        err = run_cli(capsys, "--train", target, "--target", target, "--output", str(parent / "out"))
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=True)
    assert f"cannot write {parent / 'out'}" in err and "not permitted" in err.lower()


def test_a_full_filesystem_while_embedding_is_one_line(spark, tmp_path, capsys):
    from gio_spark.demo import generate

    out = tmp_path / "small"
    out.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(out)], capture_output=True).returncode:
        pytest.skip("cannot mount a small filesystem here (needs root)")
    try:
        big = [p for d in ("medicine", "law", "software", "talk") for p in generate(d, 300, seed=5)]
        big = [(f"{e} ({i})", d) for i, (e, d) in enumerate(big)]  # 1,200 distinct texts
        train = write_text(tmp_path, "train", big)
        target = write_text(tmp_path, "target", TARGET)
        err = run_cli(capsys, "--train", train, "--target", target, "--output", str(out / "run"))
    finally:
        tracker = spark.sparkContext.statusTracker()
        for _ in range(600):  # the failed job's other tasks stop on their own
            if not tracker.getActiveStageIds():
                break
            time.sleep(0.1)
        subprocess.run(["umount", "-l", str(out)], check=True)
    assert "no space left" in err.lower() and f"{out}/run/_stages/" in err


# signals

# SIGINT while the first stage's Spark job runs (the Python workers still starting), SIGTERM
# between stages, once two are finished: each ends in one line, and finished stages stay for a rerun
@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_stops_the_run_in_one_line_and_releases_the_lock(tmp_path, sig, code, word):
    train, target = write_text(tmp_path, "train", POOL), write_text(tmp_path, "target", TARGET)
    out = tmp_path / "out"
    args = ["run", "--train", train, "--target", target, "--output", str(out), "--k", "30"]
    log = tmp_path / "run.log"
    proc = start_driver(args, log)
    try:
        if sig == signal.SIGINT:
            wait_until(lambda: "stage pairs_train: running" in log.read_text(), "the first stage running", proc, log)
        else:
            wait_for_glob(out / "_stages" / "pairs_target", "*/_stage.json", proc, log)
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=120) == code, log.read_text()[-3000:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = log.read_text().strip().splitlines()
    assert lines[-1].startswith(f"gio-spark: error: {word}") and "lock released" in lines[-1]
    assert "Traceback" not in log.read_text()
    assert not (out / "_LOCK").exists() and not (out / "_SUCCESS").exists()
    if sig == signal.SIGTERM:
        stage = next((out / "_stages" / "pairs_train").glob("*/_stage.json"))
        assert json.loads(stage.read_text())["stage"] == "pairs_train"
