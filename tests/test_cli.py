"""The command line: select-vectors on .npy files, and run's config resolution and errors."""
import json

import numpy as np
import pytest

from gio_spark.cli import main


@pytest.fixture()
def vectors(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8))
    pool = (centers[rng.integers(0, 4, 150)] + rng.normal(scale=0.3, size=(150, 8))).astype(np.float32)
    target = (centers[rng.integers(0, 2, 50)] + rng.normal(scale=0.3, size=(50, 8))).astype(np.float32)
    np.save(tmp_path / "G.npy", pool)
    np.save(tmp_path / "X.npy", target)
    return tmp_path


def test_select_vectors_writes_the_result(vectors, capsys):
    out = vectors / "r.json"
    code = main(["select-vectors", "--train", str(vectors / "G.npy"), "--target", str(vectors / "X.npy"),
                 "--max-iter", "7", "--stop-criterion", "data_size", "--v-init", "prev_opt", "--k", "3",
                 "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert len(result["selected_indices"]) == 7 and all(isinstance(i, int) for i in result["selected_indices"])
    assert len(result["kl_curve"]) == 7
    assert result["stop_reason"] == "max_iter"
    assert result["config"]["v_init"] == "prev_opt" and result["config"]["k"] == 3
    assert np.isfinite(result["knn_kl_selected"])
    assert "selected 7 of 150 rows" in capsys.readouterr().err


def test_select_vectors_with_initial_set_and_exact(vectors):
    np.save(vectors / "D.npy", np.zeros((3, 8), np.float32) + np.arange(3)[:, None])
    code = main(["select-vectors", "--train", str(vectors / "G.npy"), "--target", str(vectors / "X.npy"),
                 "--init", str(vectors / "D.npy"), "--optimizer", "exact", "--resets-allowed", "false",
                 "--out", str(vectors / "r.json")])
    assert code == 0
    result = json.loads((vectors / "r.json").read_text())
    assert result["init_size"] == 3 and result["config"]["optimizer"] == "exact"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--v-init", "middle"], "invalid option --v-init='middle': choose one of 'mean', 'prev_opt' or 'jump'"),
        (["--max-data-size", "3"], "invalid option --max-data-size='3': must be <= 1.0"),
        (["--max-iter", "1e3"], "invalid option --max-iter='1e3': must be an integer"),
        (["--resets-allowed", "maybe"], "--resets-allowed='maybe': must be true or false"),
    ],
)
def test_select_vectors_bad_option_is_one_line(vectors, capsys, extra, message):
    code = main(["select-vectors", "--train", str(vectors / "G.npy"), "--target", str(vectors / "X.npy"),
                 "--out", "-", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_select_vectors_missing_and_bad_files(vectors, capsys):
    assert main(["select-vectors", "--train", str(vectors / "nope.npy"), "--target", str(vectors / "X.npy"), "--out", "-"]) == 2
    assert "--train file not found" in capsys.readouterr().err
    bad = np.load(vectors / "X.npy")
    bad[3, 1] = np.inf
    np.save(vectors / "Xbad.npy", bad)
    assert main(["select-vectors", "--train", str(vectors / "G.npy"), "--target", str(vectors / "Xbad.npy"), "--out", "-"]) == 2
    assert "target has 1 row(s) with NaN or infinite values (first: row 3)" in capsys.readouterr().err


def test_run_config_file_flags_and_set(tmp_path, capsys):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("train: {path: a/train}\ntarget: {path: a/dev}\noutput: o\nquantize: {k: 50}\ngio: {max_iter: 9}\n")
    code = main(["run", "--config", str(cfg), "--k", "70", "--src-lang", "en", "--tgt-lang", "de",
                 "--set", "gio.v_init=jump", "--set", "quantize.enabled=false", "--print-config"])
    assert code == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["quantize"] == {**resolved["quantize"], "k": 70, "enabled": False}
    assert resolved["gio"]["max_iter"] == 9 and resolved["gio"]["v_init"] == "jump"
    assert resolved["train"]["path"] == "a/train" and resolved["src_lang"] == "en"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "gio.max_iters=3"], "unknown config key gio.max_iters (did you mean gio.max_iter?)"),
        (["--set", "quantize.kk=3"], "unknown config key quantize.kk"),
        (["--set", "output_format=csv"], "invalid option output_format='csv': choose one of 'parquet', 'tsv' or 'text'"),
        (["--set", "gio.stop_criterion=never"], "invalid option gio.stop_criterion='never': choose one of"),
        (["--k", "1"], "invalid option quantize.k='1': must be >= 2"),
        (["--set", "embedding.side=left"], "invalid option embedding.side='left': choose one of 'src', 'tgt' or 'both'"),
    ],
)
def test_run_bad_config_is_one_line(capsys, args, message):
    code = main(["run", "--train", "t", "--target", "d", "--output", "o", "--print-config", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert err.startswith("gio-spark: error: ") and len(err.strip().splitlines()) == 1


def test_run_needs_inputs(capsys):
    assert main(["run", "--output", "o", "--print-config"]) == 2
    assert "train.path" in capsys.readouterr().err
