"""The job against a real local S3 server (moto in server mode on 127.0.0.1): Spark reads and
writes s3a:// and s3:// through the S3A connector; boto3 handles the config, manifest and marker."""
import json
import os
import socket

import pytest

from gio_spark.cli import main

from .test_job import POOL, TARGET

pytestmark = [pytest.mark.spark, pytest.mark.spark35]


SERVER: dict = {}  # the running local S3 server (a test stops and restarts it) and its port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(spark):
    if "hadoop-aws" not in spark.sparkContext.getConf().get("spark.jars", ""):
        pytest.skip("S3A jars not on the Spark classpath: export GIO_SPARK_JARS=$(bash .ci/s3a_jars.sh)")
    from moto.server import ThreadedMotoServer

    import boto3

    from gio_spark.job.session import configure_s3a

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    SERVER["server"], SERVER["port"] = server, port
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # the JVM started before this fixture: give the AWS chain its credentials as system properties
    system = spark.sparkContext._jvm.java.lang.System
    system.setProperty("aws.accessKeyId", "testing")
    system.setProperty("aws.secretKey", "testing")
    configure_s3a(spark, endpoint)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="gio")
    yield client
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    SERVER["server"].stop()


def put_pairs(client, key, rows):
    client.put_object(Bucket="gio", Key=f"{key}.en", Body="".join(e + "\n" for e, _ in rows).encode())
    client.put_object(Bucket="gio", Key=f"{key}.de", Body="".join(d + "\n" for _, d in rows).encode())


def test_job_reads_and_writes_s3(s3, capsys):
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    put_pairs(s3, "in/train", POOL)
    put_pairs(s3, "in/dev", TARGET)
    config = "train: {path: s3a://gio/in/train}\ntarget: {path: s3://gio/in/dev}\nsrc_lang: en\ntgt_lang: de\n" \
             "quantize: {k: 30, seed: 3}\ngio: {max_iter: 30}\n"
    s3.put_object(Bucket="gio", Key="conf/job.yaml", Body=config.encode())
    assert main(["run", "--config", "s3://gio/conf/job.yaml", "--output", "s3a://gio/out/run"]) == 0
    assert "s3a://gio/out/run/manifest.json" in capsys.readouterr().out

    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="gio", Prefix="out/run/")["Contents"]}
    assert {"out/run/_SUCCESS", "out/run/manifest.json", "out/run/report.png"} <= keys
    assert not any(k.startswith("out/run/_tmp") for k in keys)
    manifest = json.loads(s3.get_object(Bucket="gio", Key="out/run/manifest.json")["Body"].read())
    assert manifest["rows"]["train_kept"] == len(POOL) and manifest["rows"]["target_kept"] == len(TARGET)
    text = json.dumps(manifest)
    assert "testing" not in text  # no credentials in the manifest

    fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http",
                           access_key="testing", secret_key="testing", region="us-east-1")
    table = ds.dataset("gio/out/run/selected", filesystem=fs, format="parquet").to_table().to_pandas()
    assert len(table) == manifest["rows"]["selected"] > 0
    assert set(zip(table.src, table.tgt)) <= set(POOL)
    assert table.pair_id.is_unique

    # a complete run is there: skip returns it, fail refuses
    assert main(["run", "--config", "s3://gio/conf/job.yaml", "--output", "s3a://gio/out/run", "--if-exists", "skip"]) == 0
    assert main(["run", "--config", "s3://gio/conf/job.yaml", "--output", "s3a://gio/out/run"]) == 2
    assert "already holds a complete run" in capsys.readouterr().err


def test_missing_s3_input_is_named(s3, capsys):
    code = main(["run", "--train", "s3a://gio/nothing/train", "--target", "s3a://gio/nothing/dev",
                 "--src-lang", "en", "--tgt-lang", "de", "--output", "s3a://gio/out/missing"])
    assert code == 2
    assert "no file matches s3a://gio/nothing/train.en" in capsys.readouterr().err


def test_s3_keys_with_a_space_and_their_etags(s3, spark):
    from gio_spark.job.config import InputConfig
    from gio_spark.job.fs import FileSystem
    from gio_spark.job.readers import reader_for

    put_pairs(s3, "in/sp ace #1/train", POOL)
    inp = InputConfig(path="s3a://gio/in/sp ace #1/train")
    fs = FileSystem(spark)
    files = reader_for("text").list(fs, inp, "en", "de", "train")
    etags = {o["Key"]: o["ETag"].strip('"') for o in s3.list_objects_v2(Bucket="gio", Prefix="in/sp ace")["Contents"]}
    fingerprint = files.fingerprint(fs)
    assert [f[0] for f in fingerprint] == ["s3a://gio/in/sp ace #1/train.de", "s3a://gio/in/sp ace #1/train.en"]
    assert [f[-1] for f in fingerprint] == [f"etag:{etags['in/sp ace #1/train.de']}", f"etag:{etags['in/sp ace #1/train.en']}"]
    rows = reader_for("text").read(spark, fs, inp, "en", "de", "train", files).df.toPandas().sort_values("pair_id")
    assert list(zip(rows.src, rows.tgt)) == POOL


def test_s3_lock_is_a_conditional_put(s3, spark):
    from gio_spark.errors import UserError
    from gio_spark.job.fs import FileSystem
    from gio_spark.job.lock import OutputLock

    fs = FileSystem(spark)
    assert fs.create_exclusive("s3://gio/x/_LOCK", b"one")
    assert not fs.create_exclusive("s3a://gio/x/_LOCK", b"two")  # If-None-Match: * refused it
    assert s3.get_object(Bucket="gio", Key="x/_LOCK")["Body"].read() == b"one"
    first = OutputLock(fs, "s3a://gio/out/lock")
    first.acquire()
    with pytest.raises(UserError, match=rf"output s3://gio/out/lock is in use by run {first.info.owner}"):
        OutputLock(fs, "s3://gio/out/lock").acquire()
    first.release()
    left = [o["Key"] for o in s3.list_objects_v2(Bucket="gio", Prefix="out/lock/").get("Contents", [])]
    assert [k for k in left if not k.endswith("/")] == []  # S3A may leave a folder marker, never the lock


def test_an_output_bucket_that_does_not_exist_is_one_line_before_any_spark_job(s3, capsys, caplog):
    put_pairs(s3, "in/train", POOL)
    put_pairs(s3, "in/dev", TARGET)
    code = main(["run", "--train", "s3a://gio/in/train", "--target", "s3a://gio/in/dev", "--src-lang", "en",
                 "--tgt-lang", "de", "--output", "s3a://nobucket/out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == ("gio-spark: error: cannot check s3a://nobucket/out: the bucket nobucket does not "
                                     "exist (create it, or check the name)")
    assert not [r for r in caplog.records if r.getMessage().startswith("stage ")]  # no stage started


def test_the_endpoint_going_away_during_the_write(s3, spark, capsys, monkeypatch):
    """The S3 server stops while the write stage runs: one line naming the output and the cause,
    exit 2, no _SUCCESS, the lock named as left; once the server is back, a rerun completes with
    each pair once."""
    from moto.server import ThreadedMotoServer

    from gio_spark.job.stages import write

    s3.create_bucket(Bucket="flaky")
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in {"attempts.maximum": "1", "retry.limit": "1", "retry.interval": "100",  # give up in seconds
                       "connection.establish.timeout": "2000", "connection.timeout": "5000"}.items():
        hadoop.set(f"fs.s3a.bucket.flaky.{key}", value)
    put_pairs(s3, "in/train", POOL)
    put_pairs(s3, "in/dev", TARGET)
    args = ["run", "--train", "s3a://gio/in/train", "--target", "s3a://gio/in/dev", "--src-lang", "en", "--tgt-lang",
            "de", "--output", "s3a://flaky/out", "--k", "30", "--set", "quantize.seed=3", "--set", "gio.max_iter=30"]
    write_pairs = write.write_pairs

    def stop_then_write(*args, **kwargs):  # the selected pairs' write starts with the server gone
        SERVER["server"].stop()
        return write_pairs(*args, **kwargs)

    monkeypatch.setattr(write, "write_pairs", stop_then_write)
    try:
        assert main(args) == 2
    finally:
        SERVER["server"] = ThreadedMotoServer(ip_address="127.0.0.1", port=SERVER["port"])
        SERVER["server"].start()
    monkeypatch.setattr(write, "write_pairs", write_pairs)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("gio-spark: error: cannot write s3a://flaky/out: its filesystem cannot be reached "
                              "(ConnectException: Connection refused); its lock s3a://flaky/out/_LOCK stays (its "
                              "filesystem cannot be reached): once that answers again, rerun with --force-unlock"), err[-1]
    assert "Traceback" not in "\n".join(err)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="flaky", Prefix="out/").get("Contents", [])}
    assert "out/_SUCCESS" not in keys and "out/_LOCK" in keys
    assert main(args) == 2  # the lock is named as left, not taken over unasked
    assert "its run in this process has ended); rerun with --force-unlock" in capsys.readouterr().err
    assert main([*args, "--force-unlock"]) == 0
    manifest = json.loads(s3.get_object(Bucket="flaky", Key="out/manifest.json")["Body"].read())
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http",
                           access_key="testing", secret_key="testing", region="us-east-1")
    table = ds.dataset("flaky/out/selected", filesystem=fs, format="parquet").to_table().to_pandas()
    assert table.pair_id.is_unique and len(table) == manifest["rows"]["selected"] > 0
