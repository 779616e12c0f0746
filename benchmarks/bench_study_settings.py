"""One of the REPORT's studies at full scale with some of its settings changed, to measure a recipe before a study
takes it (round 42). Each ``--set key=value`` replaces a field of the study's ``ExperimentSettings`` (values read as
JSON, else as strings); the study runs as ``python3 -m sobolev_warmstart.experiments NAME --scale full`` would
(``run_experiment(..., settings=...)``, which records them in its summary.json), into ``--out``, and its tables are
printed:

    python3 benchmarks/bench_study_settings.py quadrotor_columns --out runs/abs42/qs_base
    python3 benchmarks/bench_study_settings.py quadrotor_columns --out runs/abs42/qs_new \\
        --set final_steps=2 final_steps_weight=3.0 sampling_temperature=0.5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import sobolev_warmstart.experiments as experiments


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=sorted(experiments.PRESETS))
    ap.add_argument("--out", required=True, help="output folder (the study writes OUT/NAME/)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="ExperimentSettings fields to change")
    args = ap.parse_args()
    fields = {f.name for f in dataclasses.fields(experiments.ExperimentSettings)}
    changes = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            ap.error(f"--set: expected KEY=VALUE with KEY an ExperimentSettings field, got {item!r}")
        changes[key] = parse_value(value)
    settings = dataclasses.replace(experiments.settings_for(args.name, "full"), **changes)
    start = time.perf_counter()
    summary = experiments.run_experiment(args.name, args.out, "full", settings=settings)
    print(f"{args.name}, full scale, {changes or 'as preset'}: {time.perf_counter() - start:.0f} s")
    for title, table in summary["tables"].items():
        print(f"\n{title}\n\n{table}")


if __name__ == "__main__":
    main()
