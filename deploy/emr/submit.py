#!/usr/bin/env python3
"""Build the gio-spark wheel, upload it with the job script, bootstrap action and job config to
S3, and add the spark-submit step (deploy/emr/step.json) to a running EMR cluster.

    python deploy/emr/submit.py --cluster-id $CLUSTER_ID --s3-prefix s3://BUCKET/gio-spark \\
        --config conf/job.yaml --output s3://BUCKET/out/2026-11-28/ [-- --k 2000 --model PATH]

Everything after ``--`` is passed on to the job (the ``gio-spark run`` flags). ``--dry-run``
prints the plan as JSON on stdout and calls neither pip nor AWS. ``--upload-only`` (no cluster
id) puts the files in place before the first cluster is created, its bootstrap action among them.

S3 layout under the prefix:
    dist/gio_spark-<version>-py3-none-any.whl   installed on every node by the bootstrap action
    dist/gio_spark.zip                          the same bytes, for spark-submit --py-files (which
                                                takes .zip, not .whl): a cluster bootstrapped with
                                                an older wheel still runs the new code
    jobs/gio_select.py                          the spark-submit entry script
    bootstrap/bootstrap.sh                      the bootstrap action (for new clusters)
    conf/<config file name>                     the job config (when --config is a local file)
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STEP_TEMPLATE = HERE / "step.json"
JOB_SCRIPT = ROOT / "jobs" / "gio_select.py"
BOOTSTRAP = HERE / "bootstrap.sh"
REMOTE_SCHEMES = ("s3://", "s3a://", "s3n://", "dbfs:/")


def _fail(msg: str) -> NoReturn:
    print(f"submit: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _note(msg: str) -> None:
    print(f"submit: {msg}", file=sys.stderr)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    job_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, job_args = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cluster-id", help="EMR cluster id, j-... (required unless --upload-only)")
    p.add_argument("--s3-prefix", required=True, help="s3://bucket/prefix for the wheel, script, config")
    p.add_argument("--config", help="job config: a local YAML/JSON file (uploaded) or an s3:// URI")
    p.add_argument("--output", help="output URI passed as --output (else the config's output)")
    p.add_argument("--wheel", type=Path, help="use this wheel instead of building one")
    p.add_argument("--step-template", type=Path, default=STEP_TEMPLATE)
    p.add_argument("--step-name", default=None, help="EMR step name (default: the template's)")
    p.add_argument("--region", help="AWS region (default: from the AWS config)")
    p.add_argument("--profile", help="AWS profile")
    p.add_argument("--wait", action="store_true", help="wait for the step to finish")
    p.add_argument("--upload-only", action="store_true", help="build and upload, add no step")
    p.add_argument("--dry-run", action="store_true", help="print the plan, call neither pip nor AWS")
    args = p.parse_args(argv)
    if args.cluster_id is None and not args.upload_only:
        _fail("--cluster-id is required (or --upload-only)")
    if args.cluster_id is not None and not re.fullmatch(r"j-[A-Z0-9]+", args.cluster_id):
        _fail(f"--cluster-id {args.cluster_id!r} does not look like an EMR cluster id (j-...)")
    if not args.s3_prefix.startswith("s3://") or len(args.s3_prefix.rstrip("/")) <= len("s3://"):
        _fail(f"--s3-prefix must be s3://bucket[/prefix], got {args.s3_prefix!r}")
    args.s3_prefix = args.s3_prefix.rstrip("/")
    return args, job_args


def package_version() -> str:
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    m = re.search(r"""version\s*=\s*["']([^"']+)["']""", text)
    return m.group(1) if m else "0.0.0"


def build_command() -> list[str]:
    return [sys.executable, "-m", "pip", "wheel", "--no-deps", ".", "-w", "dist/"]


def build_wheel() -> Path:
    cmd = build_command()
    _note(f"building: {' '.join(cmd)} (in {ROOT})")
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    wheel = ROOT / "dist" / f"gio_spark-{package_version()}-py3-none-any.whl"
    if not wheel.is_file():
        _fail(f"the build did not produce {wheel}")
    return wheel


def render_steps(template: Path, values: dict[str, Optional[str]], job_args: list[str],
                 name: Optional[str]) -> list[dict[str, Any]]:
    """Fill the ``__NAME__`` placeholders of the CLI-style step template and convert it to the
    AddJobFlowSteps API shape. A flag whose value stays unset is dropped with its value."""
    steps = json.loads(template.read_text(encoding="utf-8"))
    out = []
    for step in steps:
        args: list[str] = []
        for arg in step["Args"]:
            names = re.findall(r"__([A-Z0-9_]+?)__", arg)
            if any(values.get(n) is None for n in names):
                if args and args[-1].startswith("--"):
                    args.pop()
                continue
            for n in names:
                arg = arg.replace(f"__{n}__", str(values[n]))
            args.append(arg)
        hadoop_step: dict[str, Any] = {"Jar": step["Jar"], "Args": args + list(job_args)}
        if step.get("MainClass"):
            hadoop_step["MainClass"] = step["MainClass"]
        out.append({
            "Name": name or step.get("Name", "gio-select"),
            "ActionOnFailure": step.get("ActionOnFailure", "CONTINUE"),
            "HadoopJarStep": hadoop_step,
        })
    return out


def plan(args: argparse.Namespace, job_args: list[str]) -> dict[str, Any]:
    prefix = args.s3_prefix
    wheel_name = args.wheel.name if args.wheel else f"gio_spark-{package_version()}-py3-none-any.whl"
    wheel_src = str(args.wheel) if args.wheel else str(ROOT / "dist" / wheel_name)
    uploads = [
        {"src": wheel_src, "dst": f"{prefix}/dist/{wheel_name}"},
        {"src": wheel_src, "dst": f"{prefix}/dist/gio_spark.zip"},
        {"src": str(JOB_SCRIPT), "dst": f"{prefix}/jobs/gio_select.py"},
        {"src": str(BOOTSTRAP), "dst": f"{prefix}/bootstrap/bootstrap.sh"},
    ]
    config_uri = None
    if args.config:
        if args.config.startswith(REMOTE_SCHEMES):
            config_uri = args.config
        else:
            local = Path(args.config)
            if not local.is_file():
                _fail(f"--config {args.config} is not a file")
            config_uri = f"{prefix}/conf/{local.name}"
            uploads.append({"src": str(local.resolve()), "dst": config_uri})
    values = {"S3_PREFIX": prefix, "CONFIG": config_uri, "OUTPUT": args.output}
    steps = render_steps(args.step_template, values, job_args, args.step_name)
    return {
        "build": None if args.wheel else build_command(),
        "uploads": uploads,
        "add_job_flow_steps": None if args.upload_only else {"JobFlowId": args.cluster_id, "Steps": steps},
    }


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def execute(the_plan: dict[str, Any], args: argparse.Namespace) -> None:
    import boto3  # only needed for a real run

    if the_plan["build"] is not None:
        build_wheel()
    elif not args.wheel.is_file():
        _fail(f"--wheel {args.wheel} is not a file")
    for up in the_plan["uploads"]:
        if not Path(up["src"]).is_file():
            _fail(f"{up['src']} does not exist")
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    s3 = session.client("s3")
    for up in the_plan["uploads"]:
        bucket, key = split_s3(up["dst"])
        _note(f"upload {up['src']} -> {up['dst']}")
        s3.upload_file(up["src"], bucket, key)
    if the_plan["add_job_flow_steps"] is None:
        return
    emr = session.client("emr")
    resp = emr.add_job_flow_steps(**the_plan["add_job_flow_steps"])
    step_id = resp["StepIds"][0]
    print(step_id)
    _note(f"added step {step_id} to {args.cluster_id}")
    if args.wait:
        _note("waiting for the step to finish")
        waiter = emr.get_waiter("step_complete")
        waiter.wait(ClusterId=args.cluster_id, StepId=step_id,
                    WaiterConfig={"Delay": 30, "MaxAttempts": 240})
        _note(f"step {step_id} completed")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, job_args = parse_args(sys.argv[1:] if argv is None else argv)
    the_plan = plan(args, job_args)
    if args.dry_run:
        built = the_plan["build"] is not None  # the wheel appears only after the build
        for up in the_plan["uploads"][2 if built else 0:]:
            if not Path(up["src"]).is_file():
                _note(f"warning: {up['src']} does not exist")
        print(json.dumps(the_plan, indent=2))
        _note("dry run: nothing was built, uploaded or submitted")
        return 0
    execute(the_plan, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
