import os
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "multidomain-de-en"
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a GPU visible to JAX or torch; skipped elsewhere")
    config.addinivalue_line("markers", "spark: starts a local SparkSession")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "cluster: starts a Spark standalone cluster (master and workers on 127.0.0.1)")
    config.addinivalue_line("markers", "airflow: loads the DAGs with Airflow (GIO_AIRFLOW_PYTHON); skipped without it")
    config.addinivalue_line("markers", "spark35: its outcome rests on an API that differs between Spark versions; CI "
                                       "runs it again on pyspark 3.5 (.ci/run says which APIs)")
    config.addinivalue_line("markers", "shared_spark: uses the session's one SparkSession (the spark fixture); set "
                                       "at collection, CI runs the other tests in a process of their own (.ci/run)")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pyspark")
    # Spark starts its JVM with fork+exec after JAX has threads; exec right away makes it safe
    config.addinivalue_line("filterwarnings", "ignore:os.fork\\(\\) was called:RuntimeWarning")


def _has_gpu() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    import jax

    return any(d.platform == "gpu" for d in jax.devices())


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers set here
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker("shared_spark")
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if gpu_items and not _has_gpu():
        skip = pytest.mark.skip(reason="needs a GPU (none visible to torch or JAX)")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# CI gives the tests' JVMs the JIT's first tier only (-XX:TieredStopAtLevel=1 in SPARK_SUBMIT_OPTS,
# see .ci/run): drivers of a minute compile less. The session's own JVM runs every in-process test
# for twenty minutes and is faster with the optimizing tier, so it starts without that option.
FIRST_TIER_ONLY = "-XX:TieredStopAtLevel=1"


@pytest.fixture(scope="session")
def spark():
    """One local Spark for the session: 2 cores, a failed task is retried once (local[2,2])."""
    from gio_spark.job.session import get_spark

    opts = os.environ.get("SPARK_SUBMIT_OPTS")
    if opts is not None:
        os.environ["SPARK_SUBMIT_OPTS"] = " ".join(o for o in opts.split() if o != FIRST_TIER_ONLY)
    try:
        s = get_spark("local[2,2]", extra_conf={"spark.sql.shuffle.partitions": "2"})
    finally:
        if opts is not None:
            os.environ["SPARK_SUBMIT_OPTS"] = opts
    yield s
    s.stop()
