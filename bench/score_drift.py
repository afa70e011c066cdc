"""Benchmark: what measuring drift costs `synapse-ml-track score`: one model scored with and without its profile.

    make bench-score-drift                  # 1,000,000 and 10,000,000 rows, 3 repetitions of each case
    make bench-score-drift ARGS="--quick"   # 1,000,000 rows, one repetition
    make bench-score-drift ARGS="--help"    # --reps, --rows

bench/score.py's set-up (its generated Parquet input, whole-process timing, event-log counts and alternating
repetitions after a warm-up), with Delta Lake on in both processes. One model is trained on the bundled
penguins into this benchmark's own store (version 1, with its training profile); version 2 is the same
model directory without `training_profile.json`, as a model trained before drift was measured has it.
  drift     synapse-ml-track score --model-uri models:/bench-drift/1 (PSI per feature, in the scoring pass)
  no-drift  synapse-ml-track score --model-uri models:/bench-drift/2 (the same model, no profile, no drift)
Both write Parquet (`--mode overwrite`), each to its own path. Nothing is reported unless every drift run
logged drift and no no-drift run did. Writes the drift section of bench/results.md (its analysis block is
hand-written and kept) and bench/work/score/drift/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

from synapse_ml_track.drift import PROFILE_FILE  # noqa: E402
from synapse_ml_track.vocabulary import ARTIFACT_PATH_TAG  # noqa: E402

from score import BIN, SPARK_ARGS, event_counts, input_bytes, interleaved, parquet_input, run_score_job, spark_env  # noqa: E402
from score import WORK as SCORE_WORK  # noqa: E402
from search import library_version, run_meta  # noqa: E402
from sections import analysis_lines, write_analysed_section  # noqa: E402

WORK = SCORE_WORK / "drift"
MODEL = "bench-drift"
CASES = ("drift", "no-drift")
VERSIONS = {"drift": 1, "no-drift": 2}
TARGET = 1.05  # issue 31: drift adds at most 5% to score's wall time at 10M rows
START, END = "<!-- scoring-drift -->", "<!-- /scoring-drift -->"
ANALYSIS_START, ANALYSIS_END = "<!-- scoring-drift-analysis -->", "<!-- /scoring-drift-analysis -->"


def tracking_uri() -> str:
    return f"sqlite:///{WORK / 'mlflow.db'}"


def register_models() -> None:
    """Version 1: trained by the job, with its profile. Version 2: the same directory without it."""
    if (WORK / "mlflow.db").exists():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    train = [
        str(BIN / "synapse-ml-track"), "train", "--tracking-uri", tracking_uri(), "--experiment-name", MODEL,
        "--registered-model-name", MODEL, "--log-level", "WARNING",
    ]  # fmt: skip
    subprocess.run(train, check=True, stdout=subprocess.DEVNULL, env=spark_env(None))
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri())  # models:/ URIs resolve through the default registry
    client = MlflowClient()
    experiment = client.create_experiment(f"{MODEL}-copies", artifact_location=(WORK / "artifacts").as_uri())
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=scratch))
        (model_dir / PROFILE_FILE).unlink()
        run = client.create_run(experiment, run_name="the same model without its training profile")
        client.log_artifacts(run.info.run_id, str(model_dir), "model")
        client.set_terminated(run.info.run_id)
    version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_model_version_tag(MODEL, version.version, ARTIFACT_PATH_TAG, "model")
    if int(version.version) != 2:
        raise SystemExit(f"expected version 2 for the model without a profile, got {version.version}")


def command(case: str, source: Path, summary: Path) -> list[str]:
    return [
        str(BIN / "synapse-ml-track"), "score", "--tracking-uri", tracking_uri(), "--experiment-name", MODEL,
        "--model-uri", f"models:/{MODEL}/{VERSIONS[case]}", "--input", str(source),
        "--output-path", str(WORK / "out" / case), "--output-format", "parquet", "--mode", "overwrite",
        "--log-level", "WARNING", "--output", str(summary),
    ]  # fmt: skip


def measure(case: str, label: str, source: Path) -> dict:
    run, event_dir, outcome = run_score_job(partial(command, case, source), label, WORK)
    jobs, read, cpu, _ = event_counts(event_dir)
    if (outcome.get("drift") is not None) != (case == "drift"):
        raise SystemExit(f"{label}: drift was {'not ' if case == 'drift' else ''}measured; no report")
    psi_max = outcome["drift"]["psi_max"] if outcome.get("drift") else None
    return {**run, "jobs": jobs, "input_passes": read / input_bytes(source), "task_cpu": cpu, "psi_max": psi_max}


def summarise(rows: int, reps: int, runs: dict[str, list[dict]]) -> dict:
    seconds = {case: [run["seconds"] for run in runs[case]] for case in CASES}
    median = {case: statistics.median(seconds[case]) for case in CASES}
    return {
        "rows": rows,
        "reps": reps,
        "runs": runs,
        "min": {case: min(seconds[case]) for case in CASES},
        "median": median,
        "ratio": median["drift"] / median["no-drift"],
        "ratio_of_mins": min(seconds["drift"]) / min(seconds["no-drift"]),
        "paired": [d / n for d, n in zip(seconds["drift"], seconds["no-drift"], strict=True)],
        "task_cpu": {case: statistics.median(run["task_cpu"] for run in runs[case]) for case in CASES},
    }


def section(results: list[dict], meta: dict, analysis: str | None) -> str:
    lines = [
        START,
        "## Drift in the scoring pass: `score` with a model's training profile against the same model without it",
        "",
        f"Measured {meta['finished']} by `{meta['command']}` (bench/score_drift.py, {meta['minutes']:.1f} min); "
        "generated rows (Parquet), whole-process wall time, one unmeasured warm-up of each case, then interleaved "
        f"repetitions; Spark {' '.join(SPARK_ARGS[:2])} with Delta Lake on in both processes; both write Parquet "
        "(`--mode overwrite`). *drift*: `models:/bench-drift/1`, trained by the job, with its "
        "`training_profile.json`; *no drift*: version 2, the same model directory without it.",
        "",
        f"- Machine: {meta['machine']}",
        f"- Library: {meta['version']}.",
        f"- Load average (1 min) at start / end: {meta['load_start']:.2f} / {meta['load_end']:.2f}; after each "
        f"measured run: {meta['load_runs']}.",
        "",
        "| rows | reps | no drift min / median s | drift min / median s | ratio of medians | ratio of minimums "
        "| paired ratios drift / no drift | target | met | task CPU s no drift / drift | jobs no drift / drift "
        "| input passes no drift / drift | drift_psi_max |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | :---: | ---: | :---: | :---: | ---: |",
    ]
    for r in results:
        target = f"≤ {TARGET:.2f}×" if r["rows"] >= 10_000_000 else "—"
        met = ("yes" if r["ratio"] <= TARGET else "no") if r["rows"] >= 10_000_000 else "—"
        first = {case: r["runs"][case][0] for case in CASES}
        lines.append(
            f"| {r['rows']:,} | {r['reps']} | {r['min']['no-drift']:.1f} / {r['median']['no-drift']:.1f} "
            f"| {r['min']['drift']:.1f} / {r['median']['drift']:.1f} | **{r['ratio']:.3f}×** "
            f"| {r['ratio_of_mins']:.3f}× | {', '.join(f'{p:.3f}' for p in r['paired'])} | {target} | {met} "
            f"| {r['task_cpu']['no-drift']:.1f} / {r['task_cpu']['drift']:.1f} "
            f"| {first['no-drift']['jobs']} / {first['drift']['jobs']} "
            f"| {first['no-drift']['input_passes']:.2f} / {first['drift']['input_passes']:.2f} "
            f"| {first['drift']['psi_max']:.4f} |"
        )
    lines += ["", *analysis_lines(analysis, ANALYSIS_START, ANALYSIS_END), END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, one repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each case (default 3)")
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="generated rows (default 1M and 10M)"
    )
    args = parser.parse_args()
    reps, sizes = (1, [1_000_000]) if args.quick else (args.reps, args.rows)
    started, load_start, version = time.perf_counter(), os.getloadavg()[0], library_version()
    register_models()
    shutil.rmtree(WORK / "out", ignore_errors=True)
    results, all_runs = [], []
    for rows in sizes:
        source = parquet_input(rows)
        runs = interleaved(partial(measure, source=source), CASES, reps, f"drift-{rows}")
        results.append(summarise(rows, reps, runs))
        all_runs += [run for case in CASES for run in runs[case]]
    meta = run_meta("make bench-score-drift", started, load_start, version, all_runs)
    (WORK / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(
        write_analysed_section(
            BENCH / "results.md",
            (START, END),
            (ANALYSIS_START, ANALYSIS_END),
            lambda analysis: section(results, meta, analysis),
        )
    )


if __name__ == "__main__":
    main()
