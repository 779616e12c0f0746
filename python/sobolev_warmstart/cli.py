"""Command line: ``sobolev-warmstart COMMAND``.

tasks        list the tasks and their variants (``--describe`` prints weights and settings)
solve        solve a seeded batch of instances of a task and print a summary table
bench-solve  run the C++ batch-solve benchmark (throughput vs threads, setup share)
collect      solve seeded instances with TO alone and save the converged ones as a dataset (.npz)
train        train a policy (mlp, sob_mlp, diff, sob_diff) on a dataset and save it (policy.pt)
export       export a saved policy for the C++ runner: native (.safetensors), TorchScript (.pt) or AOTInductor (.pt2)
evaluate     TO alone vs warm starts from exported policies on held-out instances, over rollout seeds
loop         the whole collect/train loop (Algorithm 1) in a resumable run directory
bench        run the C++ warm-start benchmark on an exported policy
experiment   run the experiment presets (sample efficiency, action length, UR5 loop, quadrotor)
report       assemble REPORT.md from experiment results
scorecard    every method vs TO alone on every task variant: scorecard.md/.csv/.png, resumable

Configs (collect, train, loop) come from presets, ``--config FILE`` (.toml/.json) and ``--set KEY=VALUE``
(dotted keys, JSON values); a bad config prints ``error: <message>`` and exits with status 2. See docs/loop.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import _core
from .config import PRESETS, CollectConfig, apply_overrides, from_dict, load_config_file, load_loop_config, to_dict
from .solver import VARIANT_SOLVER_SETTINGS, SolverOptions, solve
from .tasks import available_tasks, make_task, robots_dir
from .train import TrainConfig


def _summary_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cmd_tasks(args: argparse.Namespace) -> int:
    for name, variants in available_tasks().items():
        print(f"{name}: {', '.join(variants)}")
        if args.describe:
            print(make_task(name).describe())
    return 0


def _variant_options(task, args: argparse.Namespace, **fields) -> SolverOptions:
    """The variant's measured solver settings (``SolverOptions.for_task``: the pendubot's initial penalty, the UR5s'
    stall switch), under ``fields`` and the ``--mu-init`` / ``--stall-iters`` flags given."""
    for flag in ("mu_init", "stall_iters"):
        if getattr(args, flag, None) is not None:
            fields[flag] = getattr(args, flag)
    return SolverOptions.for_task(task, **fields)


def cmd_solve(args: argparse.Namespace) -> int:
    task = make_task(args.task, args.variant)
    x0s, params = task.sample_instances(args.n, seed=args.seed)
    options = _variant_options(task, args, tol=args.tol, max_iters=args.max_iters, num_threads=args.threads,
                               step_acceptance=args.step_acceptance, dual_init=args.dual_init)
    print(task.describe())
    start = time.perf_counter()
    result = solve(task, x0s, params, options=options)
    wall = time.perf_counter() - start
    conv = result.converged
    it = result.iterations
    rows = [
        ("task", f"{task.name}/{task.variant}"),
        ("instances", f"{len(result)} (seed {args.seed})"),
        ("solver", f"mu_init {options.mu_init:g}, stall_iters {options.stall_iters}, max_iters {options.max_iters}, "
                   f"step_acceptance {options.step_acceptance}"),
        ("converged", f"{conv.sum()}/{len(result)} ({100.0 * conv.mean():.0f}%)"),
        ("iterations", f"median {np.median(it):.0f}, mean {it.mean():.1f}, max {it.max()}"),
        ("cost (converged)", f"median {np.median(result.cost[conv]):.4f}" if conv.any() else "-"),
        ("solve time / instance", f"median {1e3 * np.median(result.solve_time):.1f} ms, mean {1e3 * result.solve_time.mean():.1f} ms"),
        ("wall time", f"{wall:.2f} s with {options.num_threads or 'all'} threads ({len(result) / wall:.1f} problems/s)"),
    ]
    errors = [e for e in result.errors if e]
    if errors:
        rows.append(("errors", f"{len(errors)}: {errors[0]}"))
    print(_summary_table(rows))
    return 0


def cmd_bench_solve(args: argparse.Namespace) -> int:
    exe = Path(_core.__file__).parent / "bin" / "sw_bench_batch_solve"
    if not exe.exists():
        print(f"benchmark executable not found: {exe} (build with SW_BUILD_BENCHMARKS=ON)", file=sys.stderr)
        return 2
    cmd = [str(exe), str(robots_dir()), args.task, args.variant, str(args.n), str(args.max_threads)]
    return subprocess.call(cmd)


def _config_data(args: argparse.Namespace, flags: dict) -> dict:
    """``--config`` file, then the command's explicit flags (``flags``: dotted key -> value or None), then
    ``--set`` overrides."""
    data = load_config_file(args.config) if getattr(args, "config", None) else {}
    given = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    return apply_overrides(data, [*given, *(args.set or [])], args.command)


def _with_variant_solver(data: dict) -> dict:
    """``data`` (a collect configuration) with its variant's measured solver settings (``VARIANT_SOLVER_SETTINGS``, as
    ``solve``, ``evaluate``, the scorecard and the loop presets solve it) wherever the configuration does not set
    them. An unknown task or variant is left to ``CollectConfig``'s own error."""
    try:
        task = make_task(data.get("task", CollectConfig.task), data.get("variant", CollectConfig.variant))
    except (TypeError, ValueError):
        return data
    measured = VARIANT_SOLVER_SETTINGS.get(f"{task.name}/{task.variant}", {})
    solver = data.setdefault("solver", {})
    if isinstance(solver, dict):
        for key, value in measured.items():
            solver.setdefault(key, value)
    return data


def cmd_collect(args: argparse.Namespace) -> int:
    from .loop import collect_dataset
    flags = {"task": args.task, "variant": args.variant, "instances": args.n, "seed": args.seed,
             "solver.max_iters": args.max_iters, "solver.mu_init": args.mu_init,
             "solver.stall_iters": args.stall_iters, "solver.num_threads": args.threads,
             "chunk.horizon": args.horizon,
             "chunk.history": args.history, "chunk.action_steps": args.action_steps,
             "consolidate_neighbours": args.consolidate, "symmetry_copies": args.symmetry_copies,
             **_backend_flags(args)}
    config = from_dict(CollectConfig, _with_variant_solver(_config_data(args, flags)), "collect")
    dataset, m = collect_dataset(config, args.output, progress=not args.quiet)
    d = m["default"]
    print(_summary_table([
        ("task", f"{m['task']}/{m['variant']}"),
        ("instances", f"{m['instances']} (seed {m['seed']})"),
        ("converged (kept)", f"{m['accepted']}/{m['instances']} ({m['rejected']} rejected, budget {m['max_iters']})"),
        ("solver", f"mu_init {config.solver.mu_init:g}, stall_iters {config.solver.stall_iters}, "
                   f"step_acceptance {config.solver.step_acceptance}"),
        ("iterations", f"mean {d['iterations_mean']:.1f}, median {d['iterations_median']:.0f}"),
        ("solve time / instance", f"mean {1e3 * d['solve_time_mean']:.1f} ms"),
        ("dataset", f"{args.output}: {dataset.data.num_instances} trajectories, {len(dataset)} chunks "
                    f"(H={config.chunk.horizon}, h={config.chunk.history}, A={config.chunk.action_steps})"),
        *([("consolidated", f"cost mean {c['cost_mean_before']:.4g} -> {c['cost_mean_after']:.4g}, {c['improved']} "
                               f"trajectories at least 1% cheaper ({c['solves']} solves, {c['time_s']:.1f} s)")]
          if (c := m.get("consolidation")) else []),
        *([("symmetry copies", f"{c['kept']} of {c['copies'] * c['solved']} confirmed (mean {c['iterations_mean']:.2f} "
                                 f"iterations, {c['time_s']:.1f} s)")]
          if (c := m.get("symmetry")) else []),
        ("wall time", f"{m['collect_time_s']:.2f} s"),
    ]))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .policy import save_policy
    from .train import train
    flags = {"policy": args.policy, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
             "sobolev_weight": args.sobolev_weight, "seed": args.seed, "num_threads": args.threads,
             "checkpoint_dir": args.checkpoint_dir}
    data = _config_data(args, flags)
    data.setdefault("progress", not args.quiet)
    config = from_dict(TrainConfig, data, "train")
    dataset = load_dataset(args.dataset)
    start = time.perf_counter()
    policy = train(dataset, config)
    wall = time.perf_counter() - start
    save_policy(policy, args.output)
    last = policy.train_history[-1] if policy.train_history else {}
    print(_summary_table([
        ("policy", f"{config.policy} -> {args.output}"),
        ("dataset", f"{args.dataset}: {dataset.data.num_instances} trajectories, {len(dataset)} samples"),
        ("epochs", f"{config.epochs} (batch {config.batch_size}, lr {config.lr:g}, lambda {config.sobolev_weight:g})"),
        ("final loss", ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "epoch") or "-"),
        ("wall time", f"{wall:.1f} s"),
    ]))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_backend, export_policy
    from .policy import load_policy
    backend = export_backend(args.output, "output")  # before loading the policy
    policy = load_policy(args.policy)
    for flag, value in (("--sampling-steps", args.sampling_steps), ("--sampling-temperature", args.sampling_temperature)):
        if value is not None and policy.kind != "diffusion":
            raise ValueError(f"{flag}: {args.policy} holds an {policy.kind} policy, which does not sample")
    # DDIM takes no temperature but 1: set the temperature before switching to DDIM, after switching to DDPM
    temperature_first = args.sampling_steps not in (None, "ddpm")
    if args.sampling_temperature is not None and temperature_first:
        policy.set_sampling_temperature(args.sampling_temperature)
    if args.sampling_steps is not None:
        policy.set_sampling_steps(None if args.sampling_steps == "ddpm" else args.sampling_steps)
    if args.sampling_temperature is not None and not temperature_first:
        policy.set_sampling_temperature(args.sampling_temperature)
    start = time.perf_counter()
    if backend == "aoti":
        print("compiling with AOTInductor (about a minute)...", file=sys.stderr, flush=True)
    export_policy(policy, args.output)
    names = {"native": "native", "torchscript": "TorchScript", "aoti": "AOTInductor"}
    sampling = ""
    if policy.kind == "diffusion":
        meta = policy.metadata()
        sampling = f", {meta['sampler'].upper()} on steps {meta['sampling_steps']}"
        if meta["sampling_temperature"] != 1:
            sampling += f", temperature {meta['sampling_temperature']:g}"
    print(f"exported {policy.kind} policy for {policy.task.name} to {args.output} "
          f"({names[backend]}{sampling}, {time.perf_counter() - start:.1f} s)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import METHODS, evaluate_methods
    policies = {}
    for item in args.policy:
        method, sep, path = item.partition("=")
        if not sep or method not in METHODS[1:] or not path:
            raise ValueError(f"--policy {item!r}: expected METHOD=PATH with METHOD one of {', '.join(METHODS[1:])} "
                             f"and PATH an exported .safetensors/.pt/.pt2 file (for nn, nn_feedback: the training set's dataset "
                             f".npz, e.g. from collect)")
        if not Path(path).is_file():
            raise ValueError(f"--policy {item!r}: no such file {path!r}")
        policies[method] = path
    task = make_task(args.task, args.variant)
    x0s, params = task.sample_instances(args.n, seed=args.seed)
    options = _variant_options(task, args, max_iters=args.max_iters, num_threads=args.threads)
    fallback = None
    if args.fallback:
        from .baselines import LookupFallback, NearestNeighbourLookup
        lookup = NearestNeighbourLookup.load(args.fallback)
        if args.fallback_cost_ratio is not None:
            fallback = LookupFallback(lookup, args.fallback_cost_ratio)
        elif "sob_diff_nn" in policies:  # the bound follows the policy's precision on fresh instances (round 47)
            fallback = LookupFallback.calibrated(lookup, task, policies["sob_diff_nn"], action_steps=args.action_steps,
                                                 num_threads=args.threads)
            print(f"fallback: {fallback!r}")
        else:
            fallback = LookupFallback(lookup)
    result = evaluate_methods(task, policies, x0s, params, seeds=args.seeds, action_steps=args.action_steps,
                              options=options, fallback=fallback)
    print(f"{task.name}/{task.variant}: {args.n} instances (seed {args.seed}), rollout seeds {list(args.seeds)}, "
          f"budget {args.max_iters} iterations; mean ± 95% t interval over seeds")
    print(result.table("text"))
    if args.json:
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    return 0


def cmd_loop(args: argparse.Namespace) -> int:
    from .loop import run_loop
    fields = {"run_dir": args.run_dir} if args.run_dir else {}
    preset_name = args.preset if args.preset else (None if args.config else "default")
    flags = [f"{k}={json.dumps(v)}" for k, v in _backend_flags(args).items() if v is not None]
    config = load_loop_config(preset_name, args.config, [*flags, *(args.set or [])], **fields)
    if config.run_dir is None:
        name = Path(args.config).stem if args.config and not args.preset else (args.preset or "default")
        config = dataclasses.replace(config, run_dir=str(Path("runs") / name))
    if args.print_config:
        print(json.dumps(to_dict(config), indent=2))
        return 0
    print(f"loop: {config.task}/{config.variant or 'default'}, {config.iterations} iterations x {config.instances} "
          f"instances, {config.train.policy} policy, run directory {config.run_dir}", flush=True)
    try:
        result = run_loop(config, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {config.run_dir}", file=sys.stderr)
        return 130
    if args.quiet and result.table:
        print(result.table)
    print(f"done in {result.wall_time:.1f} s; final policy {result.export_path}; summary {result.run_dir}/summary.json")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    exe = Path(_core.__file__).parent / "bin" / "sw_bench_warm_start"
    if not exe.exists():
        raise RuntimeError(f"benchmark executable not found: {exe} (build with SW_BUILD_BENCHMARKS=ON)")
    if not Path(args.policy).is_file():
        raise ValueError(f"policy: no such file {args.policy!r} (an exported .safetensors, .pt or .pt2 policy)")
    threads = args.threads or os.cpu_count() or 1
    task = make_task(args.task, args.variant)
    options = SolverOptions.for_task(task)  # the variant's measured settings, as solve and evaluate use them
    cmd = [str(exe), str(robots_dir()), str(args.policy), args.task, args.variant, str(args.n), str(threads),
           str(args.action_steps), str(args.seed), f"--mu-init={options.mu_init!r}",
           f"--stall-iters={options.stall_iters}", f"--max-iters={options.max_iters}"]
    if args.lookup is None:
        return subprocess.call(cmd)
    from .baselines import LookupFallback, NearestNeighbourLookup
    source, ratio = Path(args.lookup), args.fallback_cost_ratio
    if ratio is not None:
        LookupFallback.check_cost_ratio(ratio, "--fallback-cost-ratio")
    if not source.is_file():
        raise ValueError(f"--lookup: no such file {args.lookup!r} (a dataset .npz, e.g. from collect, or a lookup "
                         ".safetensors from NearestNeighbourLookup.export)")
    with tempfile.TemporaryDirectory(prefix="sw_bench_") as tmp:
        lookup = source
        if source.suffix != ".safetensors":  # a training set: the C++ benchmark reads the exported lookup
            lookup = NearestNeighbourLookup.load(source).export(Path(tmp) / "lookup.safetensors", task)
        _core.Lookup(str(lookup)).check_task(task)  # a clear error here rather than in the executable
        # auto: the executable calibrates the bound to the policy, as LookupFallback.calibrated does (round 47)
        return subprocess.call(cmd + [f"--lookup={lookup}", f"--cost-ratio={'auto' if ratio is None else repr(ratio)}"])


def _experiments():
    try:
        from . import experiments
    except ImportError as exc:  # pragma: no cover - a partial installation
        raise RuntimeError(f"the experiments module is not available: {exc}") from None
    return experiments


def cmd_experiment(args: argparse.Namespace) -> int:
    exp = _experiments()
    for name in args.names:
        if name not in exp.PRESETS:
            raise ValueError(f"name: unknown experiment {name!r}; expected one of {', '.join(exp.PRESETS)}")
    for name in args.names:
        summary = exp.run_experiment(name, args.out, args.scale)
        print(f"{name} ({args.scale}): {summary['run_time_s']:.1f} s -> {Path(args.out) / name}")
        for title, table in summary.get("tables", {}).items():
            print(f"\n{title}\n{table}")
    if args.report:
        print(f"report: {exp.write_report(args.out)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    print(_experiments().write_report(args.out))
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    from .scorecard import scorecard
    try:
        files = scorecard(args.out, args.scale, args.tasks, threads=args.threads, progress=not args.quiet,
                          test_seed=args.test_seed, test_instances=args.test_instances,
                          trained_from=args.trained_from)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume (finished stages are kept)", file=sys.stderr)
        return 130
    print(files["markdown"].read_text())
    print(f"wrote {files['markdown']}, {files['csv']}, {files['figure']}")
    for key, message in files["failed"].items():
        print(f"error: {key}: {message}", file=sys.stderr)
    return 1 if files["failed"] else 0


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["local", "ray"], help="where the solves run (backend.name; default: local)")
    p.add_argument("--ray-address", metavar="ADDRESS", help="Ray cluster to join (backend.address; default: "
                   "RAY_ADDRESS, else a new local instance)")


def _backend_flags(args: argparse.Namespace) -> dict:
    return {"backend.name": args.backend, "backend.address": args.ray_address}


def _add_config_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", metavar="FILE", help=f"{what} config file (.toml or .json)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (dotted, e.g. solver.max_iters=200; JSON values); repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sobolev-warmstart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tasks", help="list tasks and variants")
    p.add_argument("--describe", action="store_true", help="print each task's settings")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("solve", help="solve a seeded batch of instances and print a summary")
    p.add_argument("--task", default="double_pendulum", choices=sorted(available_tasks()))
    p.add_argument("--variant", default="", help="variant of the task (default: its first)")
    p.add_argument("-n", type=_positive_int, default=32, help="number of instances")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_non_negative_int, default=0, help="0: all cores")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--max-iters", type=_positive_int, default=500)
    p.add_argument("--mu-init", type=_positive_float, help=_MU_INIT_VARIANT_HELP)
    p.add_argument("--step-acceptance", choices=["filter", "linesearch"], default="filter")
    p.add_argument("--dual-init", choices=["adjoint", "costates", "zero"], default="adjoint")
    p.add_argument("--stall-iters", type=_non_negative_int, help=_STALL_ITERS_HELP)
    p.set_defaults(func=cmd_solve)

    p = sub.add_parser("bench-solve", help="C++ benchmark: problems/s vs threads, setup share")
    p.add_argument("--task", default="pendulum", choices=sorted(available_tasks()))
    p.add_argument("--variant", default="")
    p.add_argument("-n", type=_positive_int, default=64)
    p.add_argument("--max-threads", type=_positive_int, default=2)
    p.set_defaults(func=cmd_bench_solve)

    p = sub.add_parser("collect", help="TO-alone dataset: solve seeded instances, keep the converged ones")
    p.add_argument("-o", "--output", required=True, help="dataset file to write (.npz)")
    p.add_argument("--task", help="task name (default: pendulum)")
    p.add_argument("--variant", help="variant (default: the task's first)")
    p.add_argument("-n", type=_positive_int, help="number of instances (default 64)")
    p.add_argument("--seed", type=_non_negative_int, help="instance seed (default 0)")
    p.add_argument("--max-iters", type=_positive_int, help="solver budget (default 500)")
    p.add_argument("--mu-init", type=_positive_float, help=_MU_INIT_VARIANT_HELP)
    p.add_argument("--stall-iters", type=_non_negative_int, help=_STALL_ITERS_HELP)
    p.add_argument("--threads", type=_non_negative_int, help="solver threads (0: all cores)")
    p.add_argument("--horizon", type=_positive_int, help="chunk horizon H (default 16)")
    p.add_argument("--history", type=_positive_int, help="chunk history h (default 1)")
    p.add_argument("--action-steps", type=_positive_int, help="executed actions A (default 8)")
    p.add_argument("--consolidate", type=_non_negative_int, metavar="K",
                   help="re-solve each kept instance from its K nearest instances' solutions, keep the cheapest "
                        "(default 0: off; the scorecard uses 8)")
    p.add_argument("--symmetry-copies", type=_non_negative_int, metavar="K",
                   help="follow each kept trajectory by K copies rotated about the family's symmetry, each confirmed "
                        "by the solver (default 0: off; only ur5/*random_start_random_target)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_backend_args(p)
    _add_config_args(p, "collect")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("train", help="train a policy on a dataset and save it")
    p.add_argument("dataset", help="dataset file (.npz, from collect or a loop's trajectories.npz)")
    p.add_argument("-o", "--output", required=True, help="policy file to write (policy.pt)")
    p.add_argument("--policy", choices=["mlp", "sob_mlp", "diff", "sob_diff"], help="policy kind (default sob_diff)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument("--sobolev-weight", type=float, help="lambda (default 1 for sob_*, 0 otherwise)")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=_positive_int, help="torch threads")
    p.add_argument("--checkpoint-dir", help="resumable checkpoints here (rerun to resume)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_config_args(p, "training (TrainConfig keys)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a saved policy: .safetensors (native), .pt (TorchScript) or .pt2 "
                                      "(AOTInductor)")
    p.add_argument("policy", help="saved policy (policy.pt) or training checkpoint")
    p.add_argument("output", help="exported file: .safetensors (native C++ forward, fastest), .pt (TorchScript, ~1 s) "
                                  "or .pt2 (AOTInductor, ~1 min)")
    p.add_argument("--sampling-steps", metavar="K-1,...", help="diffusion policies: sample deterministically (DDIM) "
                   "on these of the trained steps, e.g. 4,0 (two network calls instead of K = 5); 'ddpm': the DDPM "
                   "posterior on all K steps (default: the policy's own setting)")
    p.add_argument("--sampling-temperature", type=float, metavar="TAU",
                   help="diffusion policies sampled with DDPM: scale the posterior noise by TAU >= 0 (1: as trained; "
                        "default: the policy's own setting)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="TO alone vs warm starts from exported policies, over rollout seeds")
    p.add_argument("--policy", action="append", required=True, metavar="METHOD=PATH",
                   help="an exported policy and its method (mlp, sob_mlp, diff, sob_diff, sob_diff_nn: Sob+Diff with "
                        "the lookup fallback, needs --fallback), or the training set's dataset .npz for the "
                        "nearest-neighbour baselines (nn, nn_feedback); repeatable")
    p.add_argument("--fallback", metavar="DATASET",
                   help="the training set's dataset .npz: sob_diff_nn replaces a rollout that diverged or costs more "
                        "than --fallback-cost-ratio times its nearest training solution by that solution")
    p.add_argument("--fallback-cost-ratio", type=_positive_float, default=None,
                   help="sob_diff_nn's bound on a rollout's cost, in multiples of its nearest training solution's "
                        "(default: 3 times the policy's median such ratio on 64 fresh instances, "
                        "LookupFallback.calibrated)")
    p.add_argument("--task", default="pendulum", choices=sorted(available_tasks()))
    p.add_argument("--variant", default="")
    p.add_argument("-n", type=_positive_int, default=32, help="number of held-out instances")
    p.add_argument("--seed", type=_non_negative_int, default=1_000_000, help="instance seed (held out)")
    p.add_argument("--seeds", type=_non_negative_int, nargs="+", default=[0, 1, 2], help="rollout noise seeds")
    p.add_argument("--action-steps", type=_positive_int, help="executed actions per replan (diffusion)")
    p.add_argument("--max-iters", type=_positive_int, default=500)
    p.add_argument("--mu-init", type=_positive_float, help=_MU_INIT_VARIANT_HELP)
    p.add_argument("--stall-iters", type=_non_negative_int,
                   help="the stall switch (default: the variant's, 10 on the UR5s, else 0; see solve --help)")
    p.add_argument("--threads", type=_non_negative_int, default=0)
    p.add_argument("--json", help="write the evaluation as JSON here")
    p.add_argument("--csv", help="write the table as CSV here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("loop", help="the collect/train loop (Algorithm 1), resumable")
    p.add_argument("--preset", choices=sorted(PRESETS), help="embedded config to start from (default: 'default' "
                   "unless --config is given)")
    p.add_argument("--run-dir", help="run directory (default: the config's run_dir, else runs/<preset>)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _add_backend_args(p)
    _add_config_args(p, "loop")
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser("bench", help="C++ benchmark of the warm-start path on an exported policy")
    p.add_argument("policy", help="exported policy (.safetensors, .pt or .pt2)")
    p.add_argument("--task", default="pendulum", choices=sorted(available_tasks()))
    p.add_argument("--variant", default="")
    p.add_argument("-n", type=_positive_int, default=64)
    p.add_argument("--threads", type=_non_negative_int, default=0, help="0: all cores")
    p.add_argument("--action-steps", type=_non_negative_int, default=0, help="0: the policy's own")
    p.add_argument("--seed", type=_non_negative_int, default=1)
    p.add_argument("--lookup", metavar="FILE",
                   help="the training set's dataset .npz (or a lookup exported with NearestNeighbourLookup.export): "
                        "adds the lookup's guess (NN) and the warm start with the NN fallback, all in C++")
    p.add_argument("--fallback-cost-ratio", type=float, default=None,
                   help="with --lookup: a rollout costing more than this many times its nearest training solution "
                        "starts from that solution (default: 3 times the policy's median such ratio on 64 fresh "
                        "instances, at most 100, calibrated in C++ as LookupFallback.calibrated does)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("experiment", help="run experiment presets (sobolev_warmstart.experiments)")
    p.add_argument("names", nargs="+", help="sample_efficiency, action_length, ur5_loop, quadrotor_columns")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--scale", choices=["smoke", "full"], default="smoke")
    p.add_argument("--report", action="store_true", help="then write OUT/REPORT.md")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("report", help="assemble OUT/REPORT.md from experiment results")
    p.add_argument("--out", default="results")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("scorecard", help="every method vs TO alone on every task variant (resumable)",
                       description="Per task variant: collect with TO alone, train Diff and Sob+Diff on the same "
                       "trajectories, evaluate TO alone / NN / NN+feedback / Diff / Sob+Diff on held-out instances, "
                       "and find how many trajectories Sob+Diff needs to reach Diff's policy cost. Writes "
                       "OUT/scorecard.md, scorecard.csv, scorecard.png; rerun to resume.")
    p.add_argument("--scale", choices=["smoke", "full"], default="full",
                   help="smoke: two cheap variants in seconds; full (default): all variants, ~48 min on 2 cores")
    p.add_argument("--tasks", nargs="+", metavar="TASK/VARIANT",
                   help="restrict to these variants (a bare task name: its default variant)")
    p.add_argument("--out", default=None, help="output folder (default: runs/scorecard-<scale>)")
    p.add_argument("--threads", type=_non_negative_int, default=0,
                   help="solver/rollout threads of the untimed stages (0: all cores); the timed evaluation runs on one")
    p.add_argument("--test-seed", type=_non_negative_int, default=None, metavar="SEED",
                   help="seed of the held-out instances (default: 1000000), to check the figures on instances of "
                   "your own choosing; use a fresh --out (with --trained-from, nothing is trained again)")
    p.add_argument("--test-instances", type=_positive_int, default=None, metavar="N",
                   help="number of held-out instances of every variant (default: its own, 256 at full scale); "
                   "warm-start iterations are heavy-tailed, and 32 instances decide only large gaps")
    p.add_argument("--trained-from", default=None, metavar="DIR",
                   help="a finished scorecard's --out with the same scale: reuse its training sets and policies "
                   "(hard links), so a new --test-seed or --test-instances costs only the evaluation")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_scorecard)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


_STALL_ITERS_HELP = ("with the filter, switch to the merit linesearch once the iterate is primal-feasible and its dual "
                     "infeasibility, within 10 tol, has not halved in this many iterations (0: never; default: the "
                     "variant's, 10 on the UR5s, else 0)")
_MU_INIT_VARIANT_HELP = ("ProxDDP's initial augmented-Lagrangian penalty (default: the variant's measured one, "
                         "SolverOptions.for_task: 0.1 on the pendubot, TO alone's best there, round 23; else 1e-3)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, OSError) as exc:  # ConfigError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
