"""Scale: the whole job on text pools of 100k, 300k and 1M distinct pairs, stage by stage.

The pools are real pairs first (the English side and its partner of every training pair in
../shared/data/multidomain-de-en and multidomain-en-more, 154,818 pairs, shuffled), then
pairs recombined from them: the first half of one pair's words with the second half of another
pair's from the same corpus file, on both sides, kept only when new. Each size is the start of
the same sequence (100k is inside 300k is inside 1M); the target is EMEA's 500 de-en test pairs.

Each size runs in a fresh process (its own Spark session and JVM, ``local[*]``), default k,
``--method static`` (token vectors fitted to the model; the embed stages run the tokenizer only)
or ``model``, a budget of ``--budget-share`` of the pool, and for each ``--select`` method
(``density_ratio``, the default, and ``gio``: GIO's clusters, which has no density_ratio stage)
a run of its own, the ratio of their whole jobs printed. Per stage it prints: seconds,
rows per second (the pool's rows for pool stages), Spark jobs, shuffle bytes written (from
Spark's event log), and the peak resident memory of the Python driver and of the JVM (driver
and local executors) while the stage ran, sampled every 0.2 s; then the growth exponent of each
stage's seconds between sizes (1: linear in the rows).

    python benchmarks/bench_scale.py [--rows 100000 300000 1000000] [--method static|model]
        [--select density_ratio gio] [--json out.json] [--tables-only]
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DE_EN = SHARED / "multidomain-de-en"
MORE = SHARED / "multidomain-en-more"
PER_FILE = 100_000
TARGET = "EMEA"


def corpus_files() -> list[tuple[Path, Path]]:
    """(English file, partner file) of every training corpus file, in a fixed order."""
    pairs = [(p, p.with_suffix(".de")) for p in sorted(DE_EN.glob("*.train.en"))]
    for en in sorted(MORE.glob("*.train.en")):
        lang = en.name.split(".")[1].split("-")[1]
        pairs.append((en, en.with_suffix(f".{lang}")))
    return pairs


def pool_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """The first ``n`` distinct (English, partner) pairs of the sequence described above."""
    groups = []
    for en, xx in corpus_files():
        e = en.read_text(encoding="utf-8").split("\n")[:-1]
        x = xx.read_text(encoding="utf-8").split("\n")[:-1]
        groups.append(list(zip(e, x)))
    rng = random.Random(seed)
    real = [p for g in groups for p in g]
    rng.shuffle(real)
    out, seen = [], set()
    for p in real:
        if p not in seen:
            seen.add(p)
            out.append(p)
            if len(out) == n:
                return out
    while len(out) < n:
        g = groups[rng.randrange(len(groups))]
        (e1, x1), (e2, x2) = g[rng.randrange(len(g))], g[rng.randrange(len(g))]
        e1, e2, x1, x2 = e1.split(), e2.split(), x1.split(), x2.split()
        p = (" ".join(e1[: len(e1) // 2] + e2[len(e2) // 2:]), " ".join(x1[: len(x1) // 2] + x2[len(x2) // 2:]))
        if p[0] and p[1] and p not in seen:
            seen.add(p)
            out.append(p)
    return out


def write_pool(folder: Path, n: int) -> None:
    """Text pair files ``part-NNN.en``/``part-NNN.xx`` of ``PER_FILE`` lines each."""
    if (folder / "_DONE").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pairs = pool_pairs(n)
    for i, start in enumerate(range(0, n, PER_FILE)):
        chunk = pairs[start:start + PER_FILE]
        (folder / f"part-{i:03d}.en").write_text("".join(e + "\n" for e, _ in chunk), encoding="utf-8")
        (folder / f"part-{i:03d}.xx").write_text("".join(x + "\n" for _, x in chunk), encoding="utf-8")
    (folder / "_DONE").write_text(str(n))


def write_target(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DE_EN / f"{TARGET}.test.en", folder / "target.en")
    shutil.copyfile(DE_EN / f"{TARGET}.test.de", folder / "target.xx")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class StageWatch(logging.Handler):
    """Follows the runner's "stage X: running" / "done" lines; a thread samples the resident
    memory of this process and the JVM every 0.2 s and keeps each stage's peak."""

    def __init__(self, jvm_pid: int) -> None:
        super().__init__(logging.INFO)
        self.jvm_pid, self.current = jvm_pid, None
        self.spans: dict[str, list[float]] = {}
        self.peaks: dict[str, list[float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if not msg.startswith("stage "):
            return
        name = msg.split()[1].rstrip(":")
        if ": running" in msg:
            self.current = name
            self.spans[name] = [time.time() * 1000, math.inf]
        elif ": done in" in msg and name in self.spans:
            self.spans[name][1] = time.time() * 1000
            self.current = None

    def _sample(self) -> None:
        me = os.getpid()
        while not self.stop.wait(0.2):
            name = self.current
            if name:
                py, jvm = rss_mib(me), rss_mib(self.jvm_pid)
                old = self.peaks.setdefault(name, [0.0, 0.0])
                self.peaks[name] = [max(old[0], py), max(old[1], jvm)]


def shuffle_by_stage(event_dir: Path, spans: dict[str, list[float]]) -> dict[str, int]:
    """Shuffle bytes written by the tasks of the jobs submitted during each stage."""
    job_of_stage, job_time, written = {}, {}, {}
    for f in sorted(p for p in event_dir.rglob("*") if p.is_file() and not p.name.startswith("appstatus")):
        for line in f.read_text().splitlines():
            ev = json.loads(line)
            kind = ev.get("Event")
            if kind == "SparkListenerJobStart":
                job_time[ev["Job ID"]] = ev["Submission Time"]
                for s in ev["Stage IDs"]:
                    job_of_stage[s] = ev["Job ID"]
            elif kind == "SparkListenerTaskEnd":
                m = (ev.get("Task Metrics") or {}).get("Shuffle Write Metrics") or {}
                written[ev["Stage ID"]] = written.get(ev["Stage ID"], 0) + int(m.get("Shuffle Bytes Written", 0))
    out = {name: 0 for name in spans}
    for stage_id, nbytes in written.items():
        t = job_time.get(job_of_stage.get(stage_id))
        for name, (a, b) in spans.items():
            if t is not None and a <= t <= b:
                out[name] += nbytes
    return out


def run_one(args) -> dict:
    """One size, in this process."""
    from gio_spark.job.config import config_from_dict
    from gio_spark.job.pipeline import run_job
    from gio_spark.job.session import get_spark

    work = Path(args.work)
    pool = work / f"pool-{args.one}"
    write_pool(pool, args.one)
    write_target(work / "target")
    tag = f"{args.one}-{args.method}-{args.select}"
    events = work / f"events-{tag}"
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    spark = get_spark(extra_conf={"spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri(),
                                  "spark.eventLog.compress": "false",
                                  "spark.eventLog.rolling.enabled": "false"})
    jvm = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    watch = StageWatch(jvm)
    logging.getLogger("gio_spark").addHandler(watch)
    cfg = config_from_dict({
        "train": {"path": str(pool / "part-*")}, "target": {"path": str(work / "target" / "target")},
        "src_lang": "en", "tgt_lang": "xx", "output": str(work / f"out-{args.one}"), "if_exists": "overwrite",
        "stages_dir": str(work / f"stages-{tag}"),
        "embedding": {"method": args.method}, "selection": {"budget_share": args.budget_share, "method": args.select},
    })
    shutil.rmtree(work / f"stages-{tag}", ignore_errors=True)
    t = time.perf_counter()
    manifest = run_job(cfg, spark, force_unlock=True)
    total = time.perf_counter() - t
    watch.stop.set()
    watch.thread.join()
    spark.stop()
    shuffle = shuffle_by_stage(events, watch.spans)
    stages = {}
    for name, seconds in manifest["seconds"].items():
        if name == "total":
            continue
        rows = manifest["rows"]["target_kept"] if name.endswith("_target") else args.one
        stages[name] = {"seconds": seconds, "rows_per_s": rows / seconds if seconds else None,
                        "jobs": manifest["spark"]["jobs"].get(name, 0), "shuffle_mib": shuffle.get(name, 0) / 2**20,
                        "py_peak_mib": watch.peaks.get(name, [0, 0])[0], "jvm_peak_mib": watch.peaks.get(name, [0, 0])[1]}
    return {"rows": args.one, "method": args.method, "select": args.select, "seconds": total, "selected": manifest["rows"]["selected"],
            "k": manifest["quantize"]["train"]["clusters"], "stages": stages,
            "fit_rows": manifest["quantize"]["train"].get("fit_rows_target"),
            "py_peak_mib": max(p[0] for p in watch.peaks.values()), "jvm_peak_mib": max(p[1] for p in watch.peaks.values())}


def table(results: list[dict]) -> None:
    for r in results:
        names = list(r["stages"])
        print(f"\n{r['rows']:,} pairs, {r['method']}, {r.get('select', 'gio')}, k={r['k']} (fit sample "
              f"{r['fit_rows']:,}): {r['seconds']:.0f} s, "
              f"{r['selected']:,} selected; peak RSS Python driver {r['py_peak_mib']:.0f} MiB, JVM {r['jvm_peak_mib']:.0f} MiB")
        print(f"{'stage':16s} {'s':>8s} {'rows/s':>9s} {'jobs':>5s} {'shuffle MiB':>12s} {'py MiB':>7s} {'JVM MiB':>8s}")
        for name in names:
            s = r["stages"][name]
            rate = f"{s['rows_per_s']:9.0f}" if s["rows_per_s"] else f"{'-':>9s}"
            print(f"{name:16s} {s['seconds']:8.1f} {rate} {s['jobs']:5d} {s['shuffle_mib']:12.1f} "
                  f"{s['py_peak_mib']:7.0f} {s['jvm_peak_mib']:8.0f}")
    by_size: dict[int, dict[str, float]] = {}
    for r in results:
        by_size.setdefault(r["rows"], {})[r.get("select", "gio")] = r["seconds"]
    for rows, seconds in by_size.items():
        if {"density_ratio", "gio"} <= set(seconds):
            print(f"\n{rows:,} pairs: whole job by density ratio {seconds['density_ratio']:.0f} s, by GIO's clusters "
                  f"{seconds['gio']:.0f} s: {seconds['density_ratio'] / seconds['gio']:.2f}x")
    for select in dict.fromkeys(r.get("select", "gio") for r in results):
        mine = [r for r in results if r.get("select", "gio") == select]
        growth(mine)


def growth(results: list[dict]) -> None:
    """The growth exponents of each stage between consecutive sizes."""
    names = list(results[0]["stages"]) if results else []
    for a, b in itertools.pairwise(results):
        ratio = math.log(b["rows"] / a["rows"])
        print(f"\ngrowth exponent of seconds, {a['rows']:,} -> {b['rows']:,} (1 = linear in rows):")
        for name in names:
            sa, sb = a["stages"][name]["seconds"], b["stages"][name]["seconds"]
            print(f"  {name:16s} {math.log(max(sb, 0.05) / max(sa, 0.05)) / ratio:6.2f}")
        print(f"  {'total':16s} {math.log(b['seconds'] / a['seconds']) / ratio:6.2f}; Python driver peak "
              f"{b['py_peak_mib'] / a['py_peak_mib']:.2f}x, JVM peak {b['jvm_peak_mib'] / a['jvm_peak_mib']:.2f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--method", choices=["static", "model"], default="static")
    ap.add_argument("--budget-share", type=float, default=0.05)
    ap.add_argument("--select", nargs="*", default=["density_ratio"], choices=["density_ratio", "gio"],
                    help="selection.method: a run of each at every size")
    ap.add_argument("--work", default="/tmp/gio-bench-scale")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--tables-only", action="store_true",
                    help="print the tables of the sizes' results already in --work (no run)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size in this process (internal)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--select-one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not DE_EN.is_dir() or not MORE.is_dir():
        print(f"skipped: shared data not found at {SHARED}")
        return 0
    if args.one:
        args.select = args.select_one
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        logging.getLogger("gio_spark").setLevel(logging.INFO)
        Path(args.out).write_text(json.dumps(run_one(args)))
        return 0
    results = []
    for n, select in [(n, s) for n in args.rows for s in args.select]:
        out = Path(args.work) / f"result-{n}-{args.method}-{select}.json"
        if args.tables_only:
            results.append(json.loads(out.read_text()))
            continue
        cmd = [sys.executable, __file__, "--one", str(n), "--out", str(out), "--method", args.method,
               "--budget-share", str(args.budget_share), "--work", args.work, "--select-one", select]
        subprocess.run(cmd, check=True)
        results.append(json.loads(out.read_text()))
        print(f"{n:,} pairs, {select}: {results[-1]['seconds']:.0f} s", flush=True)
    table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
