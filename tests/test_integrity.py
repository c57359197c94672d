"""No silent wrong result and no lost rows: inputs changed in place, paths with URL-special
characters, line ends, aligned output, checks from counts, and one-line errors."""
import csv
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gio_spark.cli import main
from gio_spark.errors import UserError
from gio_spark.job import pipeline, stage
from gio_spark.job.config import InputConfig
from gio_spark.job.fs import FileSystem
from gio_spark.job.pipeline import run_job
from gio_spark.job.readers import numbered_lines
from gio_spark.job.stage import Runner, Table
from gio_spark.job.stages.read import figures, summarize
from gio_spark.job.stages.embed import EmbedStage
from gio_spark.job.stages.write import id_hash_sum, verify_output
from gio_spark.job.tally import observed

from .test_job import POOL, STAGES, TARGET, job, read_input, write_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.spark

ODD = "sp ace %41 #x;y"  # a space, a percent sign that looks like an escape, '#' and ';'


@pytest.fixture()
def target(tmp_path):
    return write_text(tmp_path, "target", TARGET)


@pytest.fixture()
def stage_log(monkeypatch):
    """Names of the reusable stages each run_job call computed (not reused), in order."""
    computed: list[str] = []
    real = Runner.run

    def spy(self, st):
        result = real(self, st)
        if st.reusable and not self.records[st.name].reused:
            computed.append(st.name)
        return result

    monkeypatch.setattr(Runner, "run", spy)
    return computed


def selected(out):
    return pd.read_parquet(out / "selected")


# 1. stage reuse is keyed by the input files and the package version, not only the config

def test_an_input_replaced_in_place_is_read_again(spark, tmp_path, target, stage_log):
    train = write_text(tmp_path, "train", POOL)
    run_job(job(tmp_path, train, target), spark)
    for name in ("train.en", "train.de"):  # the same bytes written again (a fresh download, a copy)
        path = tmp_path / name
        path.write_bytes(path.read_bytes())
        os.utime(path, (path.stat().st_atime + 60, path.stat().st_mtime + 60))
    stage_log.clear()
    again = run_job(job(tmp_path, train, target, if_exists="overwrite"), spark)
    assert stage_log == [] and again["stages_reused"] == STAGES  # the content decides, not the time
    revised = [(e + " (revised)", d + " (überarbeitet)") for e, d in POOL]
    write_text(tmp_path, "train", revised)  # same paths, other sentences
    stage_log.clear()
    manifest = run_job(job(tmp_path, train, target, if_exists="overwrite"), spark)
    assert stage_log == ["pairs_train", "embed_train", "quantize_train", "density_ratio", "guard", "select"]
    assert set(manifest["stages_reused"]) == {"pairs_target", "embed_target", "quantize_target"}
    out = selected(tmp_path / "out")
    assert len(out) == manifest["rows"]["selected"] > 0
    assert set(zip(out.src, out.tgt)) <= set(revised)


def test_another_package_version_recomputes_from_the_read_stage(spark, tmp_path, target, stage_log, monkeypatch):
    train = write_text(tmp_path, "train", POOL)

    class Stop(Exception):
        pass

    def stop(*args):
        raise Stop()

    monkeypatch.setattr(pipeline, "check_counts", stop)  # every later stage hangs off the read stages' keys
    with pytest.raises(Stop):
        run_job(job(tmp_path, train, target), spark)
    assert stage_log == ["pairs_train", "pairs_target"]
    stage_log.clear()
    with pytest.raises(Stop):
        run_job(job(tmp_path, train, target), spark)
    assert stage_log == []  # same files, same version: both read stages reused
    monkeypatch.setattr(stage, "__version__", "9.9.9")
    with pytest.raises(Stop):
        run_job(job(tmp_path, train, target), spark)
    assert stage_log == ["pairs_train", "pairs_target"]


# 2. paths with a space, '%', '#' and ';' in every input format

def test_text_prefix_in_a_folder_with_url_special_characters(spark, tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    write_text(folder, f"a {ODD}", POOL[:50])
    write_text(folder, "b", POOL[50:], gz=True)
    raw = read_input(spark, InputConfig(path=str(folder / "*")))
    rows = raw.df.toPandas().sort_values("pair_id")
    assert len(rows) == len(POOL) and rows._skip.isna().all()
    assert rows.pair_id.tolist() == list(range(50)) + [(1 << 40) + i for i in range(len(POOL) - 50)]
    assert list(zip(rows.src, rows.tgt)) == POOL


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "hf"])
def test_pair_files_with_url_special_characters(spark, tmp_path, fmt):
    folder = tmp_path / ODD
    folder.mkdir()
    names = ["part1", f"part2 {ODD}"]
    for name, rows in zip(names, (POOL[:60], POOL[60:])):
        df = pd.DataFrame(rows, columns=["src", "tgt"])
        if fmt == "tsv":
            df.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
        elif fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet")
        else:
            pd.DataFrame({"translation": [{"en": e, "de": d} for e, d in rows]}).to_parquet(folder / f"{name}.parquet")
    raw = read_input(spark, InputConfig(path=str(folder), format=fmt))
    rows = raw.df.toPandas().sort_values("pair_id")
    assert len(rows) == len(POOL) and rows._skip.isna().all()
    first_row = 1 if fmt == "tsv" else 0  # TSV rows count the header line
    assert rows.pair_id.tolist() == [i + first_row for i in range(60)] + [(1 << 40) + i + first_row for i in range(60)]
    assert list(zip(rows.src, rows.tgt)) == POOL


def test_vector_files_with_url_special_characters(spark, tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, name in enumerate(["a.parquet", f"b {ODD}.parquet"]):
        pd.DataFrame({"id": np.arange(i * 10, i * 10 + 10), "features": list(rng.normal(size=(10, 4)))}).to_parquet(folder / name)
    raw = read_input(spark, InputConfig(path=str(folder), format="vectors"))
    assert raw.rows == 20 and sorted(r[0] for r in raw.df.select("pair_id").collect()) == list(range(20))


@pytest.mark.spark35
def test_lines_are_numbered_across_split_boundaries(spark, tmp_path):
    lines = [f"line {i} " + "x" * (i % 37) for i in range(4000)]
    path = tmp_path / f"{ODD}.txt"
    path.write_text("\n".join(lines) + "\n")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "8192")
    try:
        numbered = numbered_lines(spark, FileSystem(spark), [f"file:{path}"])
        got = numbered.df.select("line", "value").toPandas().sort_values("line")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert numbered.counts == [4000]
    assert got.line.tolist() == list(range(4000)) and got.value.tolist() == lines


# 3. every output format is one line per pair on every side, checked before _SUCCESS

SPECIAL = ["a\nnewline", "a\ttab", "a lone\rreturn", "a back\\slash", "two\n\nlines\r\n"]


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_text_and_tsv_output_escape_line_breaks_and_tabs(spark, tmp_path, target):
    pool = [(e + SPECIAL[i % 5], d + SPECIAL[(i + 2) % 5]) for i, (e, d) in enumerate(POOL)]
    pd.DataFrame(pool, columns=["src", "tgt"]).to_parquet(tmp_path / "pool.parquet")
    train = {"path": str(tmp_path / "pool.parquet"), "format": "parquet"}
    out = tmp_path / "out" / "selected"

    manifest = run_job(job(tmp_path, train, target, output_format="text"), spark)
    n = manifest["rows"]["selected"]
    en = "".join(p.read_text() for p in sorted((out / "en").glob("part-*"))).split("\n")[:-1]
    de = "".join(p.read_text() for p in sorted((out / "de").glob("part-*"))).split("\n")[:-1]
    assert len(en) == len(de) == n > 0
    pairs = list(zip(map(unescape, en), map(unescape, de)))
    assert set(pairs) <= set(pool)
    assert any("\n" in e or "\r" in e for e, _ in pairs)

    manifest = run_job(job(tmp_path, train, target, output_format="tsv", if_exists="overwrite"), spark)
    assert manifest["stages_reused"] == STAGES
    tsv = pd.concat(pd.read_csv(p, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
                    for p in out.glob("part-*"))
    assert len(tsv) == n and list(tsv.columns) == ["pair_id", "src", "tgt"]
    assert set(zip(tsv.src.map(unescape), tsv.tgt.map(unescape))) == set(pairs)


def test_output_check_counts_both_sides(spark, tmp_path):
    cfg = job(tmp_path, "t", "d", output_format="text")
    for lang, lines in (("en", "a\nb\nc\n"), ("de", "x\ny\n")):
        (tmp_path / "sel" / lang).mkdir(parents=True)
        (tmp_path / "sel" / lang / "part-00000.txt").write_text(lines)
    with pytest.raises(RuntimeError, match=r"wrote \{'en': 3, 'de': 2\} lines, the selection holds 3 pairs"):
        verify_output(spark, cfg, str(tmp_path / "sel"), {"rows": 3})
    (tmp_path / "tsv").mkdir()
    (tmp_path / "tsv" / "part-0.csv").write_text("pair_id\tsrc\ttgt\n1\ta\tb\n2\tc\n3\td\te\tf\n4\tg\th\n")
    ids = spark.range(1, 5).withColumnRenamed("id", "pair_id").agg(id_hash_sum().alias("ids")).first()["ids"]
    with pytest.raises(RuntimeError, match=r"read back 4 rows \(2 malformed\) of the 4 pairs written"):
        verify_output(spark, job(tmp_path, "t", "d", output_format="tsv"), str(tmp_path / "tsv"), {"rows": 4, "ids": ids})
    (tmp_path / "tsv" / "part-0.csv").write_text("pair_id\tsrc\ttgt\n1\ta\tb\n2\tc\td\n3\td\te\n3\tg\th\n")
    with pytest.raises(RuntimeError, match=r"read back 4 rows \(0 malformed, other pair ids\) of the 4 pairs"):
        verify_output(spark, job(tmp_path, "t", "d", output_format="tsv"), str(tmp_path / "tsv"), {"rows": 4, "ids": ids})


# 6. what the counts rule out is refused before embedding

def test_count_checks_come_before_embedding(spark, tmp_path, monkeypatch):
    def no_embedding(*args, **kwargs):
        raise AssertionError("embedding started")

    monkeypatch.setattr(EmbedStage, "run", no_embedding)
    train = write_text(tmp_path, "train", POOL)
    small = write_text(tmp_path, "small", TARGET[:4])
    with pytest.raises(UserError, match=r"target has 4 usable pairs; .*k=5 needs at least 6"):
        run_job(job(tmp_path, train, small), spark)
    target = write_text(tmp_path, "target", TARGET)
    with pytest.raises(UserError, match=r"train: .* 120 rows is over quantize\.max_direct_rows=100"):
        run_job(job(tmp_path, train, target, quantize={"enabled": False, "max_direct_rows": 100}), spark)


# 7. line ends, blank lines, internal columns

def test_a_lone_carriage_return_stays_inside_its_line(spark, tmp_path):
    en = ["one\rhalf", "two", "three\r"]
    de = ["eins", "zwei\rhalb", "drei"]
    (tmp_path / "cr.en").write_bytes("".join(s + "\r\n" for s in en).encode())  # Windows line ends
    (tmp_path / "cr.de").write_bytes("".join(s + "\n" for s in de).encode())
    rows = read_input(spark, InputConfig(path=str(tmp_path / "cr"))).df.toPandas().sort_values("pair_id")
    assert list(zip(rows.src, rows.tgt)) == list(zip(en, de))


def test_a_tsv_ending_in_a_blank_line_is_read(spark, tmp_path):
    (tmp_path / "t.tsv").write_text("src\ttgt\n" + "".join(f"{e}\t{d}\n" for e, d in POOL[:10]) + "\n")
    raw = read_input(spark, InputConfig(path=str(tmp_path / "t.tsv"), format="tsv"))
    df, seen = observed(raw.df, **figures(raw.df))
    df.write.parquet(str(tmp_path / "pairs"))
    stats = summarize(Table(str(tmp_path / "pairs")), raw, seen.get, False, "t")
    assert stats.rows_kept == 10 and stats.skipped == {"empty_line": 1}


def test_missing_parquet_column_lists_only_the_files_columns(spark, tmp_path):
    pd.DataFrame(POOL, columns=["english", "german"]).assign(_note="n").to_parquet(tmp_path / "p.parquet")
    with pytest.raises(UserError, match=r"no column 'src' in .*p\.parquet \(columns: english, german, _note\)$"):
        read_input(spark, InputConfig(path=str(tmp_path / "p.parquet"), format="parquet"))
    raw = read_input(spark, InputConfig(path=str(tmp_path / "p.parquet"), format="parquet", src_col="english",
                                        tgt_col="german"))
    assert raw.df.columns == ["pair_id", "src", "tgt", "english", "german", "_note", "_skip"]


# 5. one line and exit 2 instead of a traceback

def run_cli(capsys, *args):
    code = main(["run", "--src-lang", "en", "--tgt-lang", "de", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("gio-spark: error: ")]
    assert "Traceback" not in err and errors == lines[-1:], err  # one error line, after any progress lines
    return err


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_corrupt_gz_input_is_one_line(spark, tmp_path, target, capsys, damage):
    write_text(tmp_path, "train", POOL, gz=True)
    path = tmp_path / "train.de.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"plain text, not gzip\n")
    err = run_cli(capsys, "--train", str(tmp_path / "train"), "--target", target, "--output", str(tmp_path / "out"))
    assert f"train: cannot read {path} (" in err and "corrupt or truncated" in err


def test_output_that_is_a_file_is_one_line(spark, tmp_path, target, capsys):
    (tmp_path / "taken").write_text("x")
    err = run_cli(capsys, "--train", target, "--target", target, "--output", str(tmp_path / "taken"))
    assert f"output {tmp_path / 'taken'} is an existing file, not a folder" in err
    err = run_cli(capsys, "--train", target, "--target", target, "--output", str(tmp_path / "taken" / "sub"))
    assert f"lies under {tmp_path / 'taken'}, which is an existing file" in err


def test_output_and_inputs_must_be_apart(spark, tmp_path, target, capsys):
    (tmp_path / "data").mkdir()
    pd.DataFrame(POOL, columns=["src", "tgt"]).to_parquet(tmp_path / "data" / "p.parquet")
    args = ["--train", str(tmp_path / "data"), "--train-format", "parquet", "--target", target]
    err = run_cli(capsys, *args, "--output", str(tmp_path / "data" / "out"))
    assert f"output {tmp_path / 'data' / 'out'} is inside the train input {tmp_path / 'data'}" in err
    assert not (tmp_path / "data" / "out").exists()
    previous = tmp_path / "prev" / "selected"  # a former selection read back into the same output
    err = run_cli(capsys, "--train", str(previous), "--train-format", "parquet", "--target", target,
                  "--output", str(tmp_path / "prev"))
    assert f"train input {previous} lies in {previous}, which this run rewrites" in err


def test_credentials_in_a_uri_are_refused_without_repeating_them(tmp_path, target, capsys):
    err = run_cli(capsys, "--train", "s3a://AKIAEXAMPLEKEY:wJalrSECRETexample@bucket/in/train", "--target", target,
                  "--output", str(tmp_path / "out"))
    assert "train.path: s3a://***@bucket/in/train holds credentials" in err
    assert "AKIAEXAMPLEKEY" not in err and "SECRET" not in err


def test_unreachable_filesystem_is_one_line(spark, tmp_path, target, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop.set("ipc.client.connect.max.retries", "0")
    try:
        err = run_cli(capsys, "--train", f"hdfs://127.0.0.1:{port}/in/train", "--target", target,
                      "--output", str(tmp_path / "out"))
    finally:
        hadoop.unset("ipc.client.connect.max.retries")
    assert f"hdfs://127.0.0.1:{port}/in/train" in err and "cannot be reached" in err and "Connection refused" in err


def test_a_failed_task_is_one_console_line_in_a_real_process(tmp_path, target):
    """The command line in a process of its own (its own session and JVM): a task that fails shows
    as one line on the console (Spark's "Lost task", with the cause), the stacks go to Spark's log
    file, which the error line names."""
    write_text(tmp_path, "train", POOL, gz=True)
    path = tmp_path / "train.de.gz"
    path.write_bytes(path.read_bytes()[:200])  # truncated: reading it fails inside a task
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-m", "gio_spark.cli", "run", "--master", "local[1]", "--train",
                           str(tmp_path / "train"), "--target", target, "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert lines[-1].startswith("gio-spark: error: train: cannot read") and "Spark's log, with its stack traces: " in lines[-1]
    assert any("Lost task" in line and "[spark]" in line for line in lines), proc.stderr[-3000:]
    event = re.compile(r"^(\d\d:\d\d:\d\d |gio-spark: |WARNING: Using incubator modules)")
    assert all(event.match(line) for line in lines), proc.stderr[-3000:]  # no stack, no continuation line
