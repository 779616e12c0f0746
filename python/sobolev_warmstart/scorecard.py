"""The scorecard: every method against TO alone on every task variant, in one resumable command.

``scorecard(out_dir, scale, tasks)`` (command line: ``sobolev-warmstart scorecard``) runs, for each
``task/variant`` of :data:`DEFAULT_VARIANTS` (or ``tasks``):

1. **collect**: ``train_instances`` instances (seed ``train_seed``) solved with TO alone, in saved batches (the
   loop's collection code, :func:`~sobolev_warmstart.loop._collect`); only the converged solves are kept, with
   their chained derivatives and feedback gains (``trajectories.npz``, a chunk dataset);
2. **train**: Diff and Sob+Diff on the same trajectories with the same budget (network, epochs, batch, learning
   rate, seed; only the Sobolev term differs), each resumable from its checkpoint, exported to TorchScript;
3. **evaluate**: on ``test_instances`` held-out instances (seed ``test_seed``, never used for training),
   :func:`~sobolev_warmstart.evaluate.evaluate_methods` with TO alone, ``nn``, ``nn_feedback`` (a
   :class:`~sobolev_warmstart.baselines.NearestNeighbourLookup` of the training trajectories), Diff and Sob+Diff;
   the per-instance results are kept (``per_instance.npz``);
4. **sample efficiency**: Sob+Diff trained on nested subsets of the training trajectories (the first
   ``fraction * N`` of them, smallest first, same number of gradient steps as on the full set) until the median
   policy-cost ratio of its rollouts on the held-out instances is at most Diff's on the full set: "trajectories
   Sob+Diff needs to reach Diff's final policy cost" (the full set's Sob+Diff comes from step 3; "not reached"
   when even that one is worse).

Metrics per variant and method (:func:`variant_rows`), from the per-instance results pooled over the
(rollout seed, instance) pairs:

====================================  ========================================================================
``policy_cost_ratio_median/_mean``    per instance, the task objective along the method's guess (the policy's
                                      rollout, the lookup's trajectory; for TO alone the task's default guess)
                                      over TO alone's converged cost on that instance; over the instances where
                                      TO alone converged. A diverged rollout is scored with its states clipped
                                      to the divergence bound (large and finite, as in the evaluation)
``diverged``                          fraction of guesses whose state left the bound (1e3) or turned non-finite;
                                      they are not refined and count as not converged
``infeasible``                        fraction of the guesses that did not diverge whose largest path- or
                                      terminal-constraint violation (:func:`~sobolev_warmstart.warmstart.
                                      guess_violations`, as the solver measures primal infeasibility) exceeds the
                                      solver's tolerance: among the quadrotor's columns, a guess that flies through
                                      a column. The objective (``policy_cost``) has no constraint term, so a cheap
                                      guess may be an infeasible one; NaN for folders evaluated before it existed
``violation_median``                  the median of that largest violation over the same guesses
``iterations_mean/_median``           solver iterations of the refined instances (a failed solve counts its
                                      whole budget); diverged guesses are left out, as in ``evaluate_methods``
``total_time_mean``                   rollout (or lookup) + solve time per refined instance [s]
``converged``                         convergence rate over all instances
``refined_cost_mean``                 refined cost, mean over the converged instances
``refined_cost_ratio_median``         per instance refined cost / TO alone's cost, where both converged
====================================  ========================================================================

Files under ``out_dir`` (all written atomically; rerunning the same command skips what is done, an interruption
loses at most one collection batch or one training epoch)::

    <task>/<variant>/settings.json       the variant's settings (another scale or settings there is refused)
    <task>/<variant>/collect/batch_*.npz, trajectories.npz, collect.json
    <task>/<variant>/{diff,sob_diff}/checkpoint/, policy_export.safetensors, train.json
    <task>/<variant>/evaluation.json, per_instance.npz
    <task>/<variant>/subsets/n<k>/...     Sob+Diff on the first k trajectories: checkpoint, export, result.json
    <task>/<variant>/result.json         the variant's rows (written last: the variant is done)
    scorecard.md, scorecard.csv, scorecard.png   rebuilt from every finished variant requested

With ``trained_from`` (``--trained-from``), ``collect/``, the policies and the subsets' policies are hard links to
another finished scorecard's, and only the held-out evaluation (stages 3-4's rollouts) runs: how the same policies
fare on another ``test_seed`` or on more ``test_instances``.

Scales (:func:`settings_for`): ``smoke`` runs two cheap variants on a handful of instances in seconds (the
tests); ``full`` runs :data:`DEFAULT_VARIANTS` in about 48 minutes on two cores (measured per variant in
:data:`FULL_ESTIMATES_S`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .baselines import BASELINES, LookupFallback, NearestNeighbourLookup
from .config import _check_int, _check_symmetry
from .consolidate import consolidate_dataset
from .data import (ChunkDataset, ChunkSpec, Normalisers, TaskInfo, TrajectoryData, atomic_write_bytes, build_dataset,
                   check_normaliser_mode, link_tree, load_dataset, save_dataset)
from .evaluate import METHOD_LABELS, evaluate_methods, write_rows_csv
from .export import export_native
from .diffusion import DiffusionConfig, check_sampling_steps
from .models import MLPConfig, UNetConfig
from .rollout import load_policy_runner, rollout
from .solver import VARIANT_SOLVER_SETTINGS, SolverOptions
from .sensitivities import RESOLVE_SETTINGS, with_parameter_jacobians
from .symmetry import augment_dataset
from .tasks import Task, available_tasks, make_task
from .train import TrainConfig, load_checkpoint, train
from .warmstart import default_guesses, diverged_rollouts, guess_costs

__all__ = ["SCALES", "DEFAULT_VARIANTS", "SMOKE_VARIANTS", "SCORECARD_METHODS", "FULL_ESTIMATES_S",
           "ScorecardSettings", "settings_for", "load_settings", "parse_variants", "scorecard", "run_variant",
           "variant_rows", "write_scorecard", "main"]

SCALES = ("smoke", "full")
#: The variants of a full scorecard, in report order.
DEFAULT_VARIANTS = (
    "pendulum/default", "double_pendulum/default",
    "ur5/fixed_start_fixed_target", "ur5/fixed_start_random_target", "ur5/random_start_fixed_target",
    "ur5/random_start_random_target",
    "quadrotor/columns_0", "quadrotor/columns_9",
    "double_pendulum/reference", "ur5/reference_random_start_random_target", "quadrotor/reference_columns_9",
)
#: The variants of a smoke scorecard (cheap solves).
SMOKE_VARIANTS = ("pendulum/default", "ur5/fixed_start_fixed_target")
#: Methods of the scorecard, in report order.
SCORECARD_METHODS = ("to", "nn", "nn_feedback", "diff", "sob_diff", "sob_diff_nn")
_LEARNED = ("diff", "sob_diff")
_EXPORT = "policy_export.safetensors"  # the native C++ forward (export.export_native)
_FORMAT = "sobolev_warmstart.scorecard"
_FORMAT_VERSION = 1
#: Settings only the held-out evaluation reads (stages 3 and 4's rollouts): a scorecard that differs from another in
#: nothing else reuses its training set and policies (``trained_from``).
EVALUATION_KEYS = frozenset({"test_instances", "test_seed", "seeds", "fallback_cost_ratio", "fallback_factor"})

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScorecardSettings:
    """Everything one variant's scorecard depends on; saved as ``settings.json`` in its folder.

    train_instances / train_seed: instances solved with TO alone for training (the converged ones are kept).
    test_instances / test_seed: held-out instances (a seed never used for training). seeds: rollout noise seeds
    of the evaluation (the per-instance metrics pool the (seed, instance) pairs). horizon / history /
    action_steps: the chunk (H, h, A); unet_dims / n_groups / step_embed_dim: the U-Net (the main job's tiny
    one by default). train_steps: gradient steps of every policy (epochs = train_steps / batches per epoch,
    at least 1: Diff and Sob+Diff on the full set get the same epochs; a subset gets the same steps).
    weight_decay: AdamW's decoupled weight decay of every policy (:class:`~sobolev_warmstart.train.TrainConfig`).
    sobolev_weight: λ of Sob+Diff on normalised quantities; sobolev_fraction: the share of each batch with
    the Sobolev term; sobolev_cap_quantile: the quantile above which a sample's Sobolev residual is relative to its
    target; sobolev_cap_entries: the action entries with stiffer derivative targets than the
    average entry's are matched as if average; sobolev_schedule: λ constant or decaying to zero; final_steps /
    final_steps_weight: the regression residual of the samples starting in the last final_steps steps weighs
    final_steps_weight, for Diff and Sob+Diff (:class:`~sobolev_warmstart.train.TrainConfig`). subset_fractions:
    the nested subsets of the sample-efficiency step (the full set is the main Sob+Diff). collect_batch: instances
    per saved batch.
    max_iters / mu_init / stall_iters: the solver's budget, initial augmented-Lagrangian penalty and stall switch
    (:class:`~sobolev_warmstart.solver.SolverOptions`; :data:`~sobolev_warmstart.solver.VARIANT_SOLVER_SETTINGS`
    sets them per variant), for every solve of the variant (TO alone's collection, consolidation, every method's
    refinement).
    policy_seed: the training seed of the policies (None: ``train_seed``), to repeat a scorecard over training
    runs on the same trajectories (``benchmarks/ablation.py --policy-seeds``). denoiser: ``"unet"`` or ``"mlp"``
    (hidden widths ``mlp_dims``); past_actions: the diffusion policies condition on their executed actions
    (:class:`~sobolev_warmstart.diffusion.DiffusionConfig`); diffusion_steps: K, the diffusion policies' denoising
    steps (training, and sampling: every rollout call runs the network K times, unless sampling_steps is set);
    sampling_steps: None to sample the diffusion policies with the DDPM posterior on the K trained steps, or a
    descending subsequence of K-1..0 starting at K-1 to sample them deterministically (DDIM) in that many network
    calls per replan, e.g. ``(4, 0)`` (:class:`~sobolev_warmstart.diffusion.DiffusionConfig`; Diff and Sob+Diff
    alike, training unchanged); sampling_temperature: the DDPM posterior's noise scale (1: as trained; Diff and
    Sob+Diff alike, training unchanged); time_to_go: the policies condition on the time to go; relative_actions: the
    diffusion policies learn each chunk relative to the last known action (both
    :class:`~sobolev_warmstart.data.ChunkSpec`).
    action_normaliser: ``"minmax"`` (Diffusion Policy's: the actions' range onto [-1, 1]) or ``"standard"`` (mean and
    standard deviation; :meth:`~sobolev_warmstart.data.Normalisers.fit`); clip_sample: the diffusion policies clip
    their clean estimate to [-1, 1] while sampling (:class:`~sobolev_warmstart.diffusion.DiffusionConfig`; turn it off
    with a standard normaliser, whose actions reach beyond). observation_normaliser: the same choice for the
    observation normaliser, the network's input (the derivative targets do not depend on it).
    shuffle_exchangeable_params: training sees the quadrotor's
    columns in a random order per sample; ema_power: Diff and Sob+Diff are the moving average of their
    weights (:class:`~sobolev_warmstart.train.TrainConfig`, None: the last weights). consolidate_neighbours /
    consolidate_rounds: the collected trajectories are consolidated before anything trains on them or looks them up
    (:func:`~sobolev_warmstart.consolidate.consolidate`: each instance re-solved from its k nearest instances'
    solutions, the cheapest converged kept; 0 neighbours: the TO-alone solutions as they are). symmetry_copies: each
    (consolidated) training trajectory is followed by this many copies rotated about the task's symmetry, each
    confirmed by the solver (:func:`~sobolev_warmstart.symmetry.augment_by_symmetry`; only variants with a declared
    symmetry); every method, the lookups included, sees them, and the sample-efficiency subsets count solved
    trajectories (a subset of k holds their copies too). parameter_sobolev (w >= 0; 0: off): Sob+Diff also matches
    the derivatives of the solutions with respect to the task parameters (target, columns) at a fixed state, their
    block weighted by w against the state's (``TrainConfig.parameter_sobolev_weight``), computed by re-solving each
    training trajectory at perturbed parameters (:func:`~sobolev_warmstart.sensitivities.parameter_jacobians`; only
    variants with parameters; Diff and the lookups do not use them). fallback_cost_ratio: the method
    ``sob_diff_nn`` (Sob+Diff with the lookup fallback, :class:`~sobolev_warmstart.baselines.LookupFallback`) replaces
    a rollout costing more than this many times its nearest training solution by the lookup's guess (evaluation
    only); None (the default since round 47): ``fallback_factor`` times the policy's median such ratio on fresh
    instances (:meth:`~sobolev_warmstart.baselines.LookupFallback.calibrated`).
    """

    task: str
    variant: str
    scale: str
    train_instances: int
    test_instances: int
    seeds: tuple[int, ...] = (0,)
    train_seed: int = 0
    test_seed: int = 1_000_000
    collect_batch: int = 8
    max_iters: int = 500
    mu_init: float = 1e-3
    stall_iters: int = 0
    divergence_bound: float = 1e3
    horizon: int = 8
    history: int = 1
    action_steps: int = 1
    unet_dims: tuple[int, ...] = (16, 32)
    n_groups: int = 4
    step_embed_dim: int = 16
    train_steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-6
    sobolev_weight: float = 0.01
    sobolev_fraction: float = 1.0
    sobolev_cap_quantile: float | None = None
    sobolev_cap_entries: bool = False
    sobolev_schedule: str = "constant"
    final_steps: int = 0
    final_steps_weight: float = 1.0
    subset_fractions: tuple[float, ...] = (0.125, 0.25, 0.5)
    policy_seed: int | None = None
    denoiser: str = "mlp"
    mlp_dims: tuple[int, ...] = (256, 256)
    past_actions: bool = False
    diffusion_steps: int = 5
    sampling_steps: tuple[int, ...] | None = None
    sampling_temperature: float = 1.0
    time_to_go: bool = False
    relative_actions: bool = False
    action_normaliser: str = "minmax"
    clip_sample: bool = True
    observation_normaliser: str = "minmax"
    shuffle_exchangeable_params: bool = False
    ema_power: float | None = None
    consolidate_neighbours: int = 0
    consolidate_rounds: int = 2
    symmetry_copies: int = 0
    parameter_sobolev: float = 0.0
    fallback_cost_ratio: float | None = None
    fallback_factor: float = 3.0

    def __post_init__(self) -> None:
        _check_int("train_seed", self.train_seed, 0)
        _check_int("test_seed", self.test_seed, 0)
        _check_int("test_instances", self.test_instances, 1)
        if self.test_seed == self.train_seed:  # the held-out instances would be the training ones
            raise ValueError(f"test_seed: expected a seed other than the training instances' (train_seed = "
                             f"{self.train_seed}), got {self.test_seed!r}")
        _check_int("consolidate_neighbours", self.consolidate_neighbours, 0)
        _check_int("consolidate_rounds", self.consolidate_rounds, 1)
        if self.fallback_cost_ratio is not None:
            LookupFallback.check_cost_ratio(self.fallback_cost_ratio, "fallback_cost_ratio")
        LookupFallback.check_factor(self.fallback_factor, "fallback_factor")
        _check_symmetry(self.task, self.variant, self.symmetry_copies)
        check_normaliser_mode("action_normaliser", self.action_normaliser)
        check_normaliser_mode("observation_normaliser", self.observation_normaliser)
        if self.action_normaliser == "standard" and self.clip_sample:
            # standardised actions reach beyond [-1, 1] (the braking steps: several deviations); clipping the clean
            # estimate there would cut the very steps the scale is chosen for, silently
            raise ValueError("clip_sample: expected False with action_normaliser='standard' (its actions reach "
                             "beyond [-1, 1], which clipping would cut), got True")
        w = self.parameter_sobolev
        if not (isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0):
            raise ValueError(f"parameter_sobolev: expected a non-negative weight (0: off), got {w!r}")
        if w > 0 and make_task(self.task, self.variant).nz == 0:
            raise ValueError(f"parameter_sobolev: {self.key} has no task parameters (nz = 0) to differentiate")
        object.__setattr__(self, "sampling_steps", check_sampling_steps(self.sampling_steps, self.diffusion_steps))
        self.options()  # the solver's settings (max_iters, mu_init, stall_iters), checked by SolverOptions
        self.train_config("sob_diff", 1, Path("."))  # what TrainConfig checks (lr, sampling_temperature...)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.variant}"

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def chunk(self) -> ChunkSpec:
        return ChunkSpec(horizon=self.horizon, history=self.history, action_steps=self.action_steps,
                         time_to_go=self.time_to_go, relative_actions=self.relative_actions)

    def options(self, num_threads: int = 0) -> SolverOptions:
        return SolverOptions(max_iters=self.max_iters, mu_init=self.mu_init, stall_iters=self.stall_iters,
                             num_threads=num_threads)

    def fallback(self, lookup: NearestNeighbourLookup, task: Task, policy: str) -> LookupFallback:
        """The variant's "Sob+Diff, NN fallback": ``fallback_cost_ratio`` when set, else the bound calibrated to
        ``policy`` (the exported Sob+Diff) on fresh unsolved instances, ``fallback_factor`` times its median ratio
        (round 47)."""
        if self.fallback_cost_ratio is not None:
            return LookupFallback(lookup, self.fallback_cost_ratio)
        return LookupFallback.calibrated(lookup, task, policy, factor=self.fallback_factor,
                                         action_steps=self.action_steps, divergence_bound=self.divergence_bound,
                                         num_threads=1)

    def train_config(self, method: str, num_samples: int, checkpoint_dir: Path) -> TrainConfig:
        per_epoch = math.ceil(num_samples / self.batch_size)
        return TrainConfig(policy=method, epochs=max(1, round(self.train_steps / per_epoch)),
                           batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           seed=self.train_seed if self.policy_seed is None else self.policy_seed,
                           sobolev_weight=self.sobolev_weight if method == "sob_diff" else None,
                           sobolev_fraction=self.sobolev_fraction,
                           sobolev_cap_quantile=self.sobolev_cap_quantile if method == "sob_diff" else None,
                           sobolev_cap_entries=self.sobolev_cap_entries and method == "sob_diff",
                           sobolev_schedule=self.sobolev_schedule,
                           final_steps=self.final_steps, final_steps_weight=self.final_steps_weight,
                           shuffle_exchangeable_params=self.shuffle_exchangeable_params,
                           ema_power=self.ema_power,
                           # off: the data hold no parameter derivatives; the default keeps older checkpoints' config
                           parameter_sobolev_weight=self.parameter_sobolev or 1.0,
                           unet=UNetConfig(down_dims=self.unet_dims, n_groups=self.n_groups,
                                           step_embed_dim=self.step_embed_dim),
                           denoiser=self.denoiser, mlp=MLPConfig(hidden_dims=tuple(self.mlp_dims)),
                           diffusion=DiffusionConfig(num_steps=self.diffusion_steps, past_actions=self.past_actions,
                                                     sampling_steps=self.sampling_steps, clip_sample=self.clip_sample,
                                                     sampling_temperature=self.sampling_temperature),
                           checkpoint_dir=str(checkpoint_dir), resume=True, progress=False, num_threads=1)


# Sizes. Full: 1000 gradient steps per policy (batch 64; 10 epochs on 64 pendulum trajectories, 20 on 64 UR5 ones),
# subsets 1/4 and 1/2, one rollout seed, 64 training / 256 held-out instances; the reference variants solve slower and
# get fewer. 256 held-out instances, not 32 (round 36): refine iterations are heavy-tailed, and on 32 instances one or
# two hard ones decide a method's mean (round 35: 32-instance blocks of one seed put Sob+Diff's iterations at 0.48-1.64x
# the lookup's on ur5/random_start_random_target, where 256 instances of two unseen seeds give 0.69x both times); 128
# still flip ur5/random_start_fixed_target's verdict (0.84x and 1.08x in two blocks of one seed). They add about 9
# minutes. Training dominates (about 25 ms per Diff step and 42 ms per Sob+Diff step on one thread of the project's
# 2-core machine kind, measured while loaded): Diff 25 s, Sob+Diff 42 s, at most two subsets 84 s per variant.
_SMOKE = dict(train_instances=6, test_instances=3, max_iters=60, train_steps=3, batch_size=256, unet_dims=(8, 16),
              mlp_dims=(32, 32), n_groups=4, step_embed_dim=8, subset_fractions=(0.5,), collect_batch=4)
# Full scale consolidates the training solutions (round 18: Sob+Diff's policy cost and warm start improve on every
# variant whose TO-alone solutions mix strategies, pendubot 1.33x -> 1.03x TO's cost; no change where they do not).
# The diffusion policies are sampled deterministically on two of their five steps (DDIM on 4, 0; round 26: on scorecard
# v17's policies Sob+Diff's cost and refine iterations stay those of the trained DDPM sampler on every default variant
# but the random-start fixed-target UR5, which keeps DDPM; Diff's too; the rollout's network calls fall 2.5-fold;
# quadrotor/columns_9 keeps DDPM too, where the check on a second held-out set cost 9 refine iterations).
# The reference variants keep DDPM: their solves take seconds, the rollout is under 1% of the warm start, and in
# scorecard v18 DDIM took double_pendulum/reference's Sob+Diff warm start from 8 to 6 converged of 16.
_FULL = dict(train_instances=64, test_instances=256, train_steps=1000, subset_fractions=(0.25, 0.5),
             consolidate_neighbours=8, sampling_steps=(4, 0))
_FULL_VARIANT: dict[str, dict[str, Any]] = {
    # two actions executed per chunk (round 25: Sob+Diff 1.04-1.06x -> 1.02-1.04x TO's cost over three training seeds
    # and two held-out sets; the refine iterations stay TO alone's, held by the torque bound, "Active control bounds")
    "pendulum/default": {"action_steps": 2},
    # the pendubot's U-Net needs the main job's data and budget (docs/results/ablations.md, round 3: Sob+Diff
    # 1.33x TO's cost over three training seeds, against 455x with 64 instances and 1000 steps)
    # ... and, on data collected at TO alone's best penalty (round 23), 5000 steps, rolled out executing two actions of
    # each chunk (round 24: over three training seeds and two held-out sets, 2500 steps and A = 1 give Sob+Diff
    # 1.02x to 1220x TO's cost with 5-48% of the rollouts diverging; 5000 steps and A = 2 give 1.01-1.06x and 0-6%)
    "double_pendulum/default": {"train_instances": 96, "train_steps": 5000, "action_steps": 2},
    # the Sobolev term's tail capped at the 0.9 quantile of the derivative targets' scales (round 9: UR5 Sob+Diff
    # 25.5x -> 14.1x TO's cost, 17.6 -> 12.6 refine iterations; quadrotor 1.91x -> 1.66x, 66 -> 53 iterations;
    # it hurts the pendubot and the random-start UR5, which keep None)
    # ... and 5000 steps (round 19: at lambda 0.001, Sob+Diff 8.56x -> 2.48x TO's cost over three training seeds, 6.65x
    # -> 2.33x on a second held-out set; warm-start iterations 9.4 -> 8.8 and 8.3 -> 7.2). With the task-space
    # observation (round 20) lambda 0.001 gives 1.76x but 11.8 iterations, lambda 0.01 2.17x and 7.5 (the lookup 8.0)
    # ... and two actions executed per chunk (round 24: Sob+Diff 1.51-2.42x -> 1.35-1.68x TO's cost over three training
    # seeds and two held-out sets, the same iterations, half the rollout)
    # ... and four times the instances and the steps, four actions executed per chunk (round 30: Sob+Diff 1.35-1.68x ->
    # 1.08-1.16x TO's cost over three training seeds and three held-out sets, 4.8-4.9 refine iterations against the
    # lookup's 6.5-6.7 (which 256 instances help too) and 12.2 against 13.3 on the third; 10000 steps: the same cost,
    # 13.6 iterations on the third set; 64 instances at 20000 steps: 11.4 iterations on held-out seed 1e6)
    # ... and the actions scaled by their standard deviation instead of their range, sampled unclipped, with lambda
    # 0.0001 (round 33: the executed velocities get the loss's resolution the first steps' range took from them;
    # Sob+Diff 1.11x [1.10, 1.13] -> 1.04x [1.03, 1.05] TO's cost, 4.8 -> 4.2 refine iterations, Diff 1.12x -> 1.05x,
    # over three training seeds; lambda 0.01 with that scale: 1.17x, 0.001: 1.07x)
    # ... and the time to go observed (round 39: the excess is the last braking step, which a policy that does not
    # know the step cannot place; Sob+Diff 1.053 / 1.061 / 1.054 -> 1.047 / 1.039 / 1.045 TO's cost on the three
    # training seeds, 256 instances of 1e6, the same refine iterations)
    "ur5/fixed_start_random_target": {"sobolev_cap_quantile": 0.9, "train_instances": 256, "train_steps": 20000,
                                      "action_steps": 4, "sobolev_weight": 0.0001, "action_normaliser": "standard",
                                      "clip_sample": False, "time_to_go": True},
    # one problem, solved 64 times: Sob+Diff at lambda 0.01 gets worse the longer it trains (1.08x TO's cost at 1000
    # steps, 1.39x at 3000); at lambda 0.001 and 5000 steps it reaches 1.00x [1.00, 1.00] over three training seeds
    # (round 19; the MLP denoiser trains 5000 steps in about 30 s). With the task-space observation (round 20) lambda
    # 0.001 gives 1.05x [1.03, 1.16], 0.0003 1.03x [1.03, 1.04], 0.01 1.48x
    # ... and four actions executed per chunk (round 25: Sob+Diff 1.03-1.04x -> 1.01x TO's cost on every training seed
    # and both held-out sets, 2.0-2.8 -> 2.0 refine iterations, a third of the rollout)
    "ur5/fixed_start_fixed_target": {"train_steps": 5000, "sobolev_weight": 0.0003, "action_steps": 4},
    # random starts: with the task-space observation (round 20) the policies improve with data, as they did not
    # before (round 12): 256 trajectories and 4000 steps take Sob+Diff from 28x to 7.3x TO's cost (random target: 50x
    # -> 25x) and its warm start from 27.5 to 25.3 iterations (36.6 -> 23.8) over three training seeds; lambda 0.001
    # then gives 6.35x and 23.5 iterations (random target: 20.8x and 20.5, 19.8 on a second held-out set, where the
    # lookup needs 35.3 and 23.7)
    # ... and two actions executed per chunk (round 25: over three training seeds, Sob+Diff 5.9-7.5x -> 4.9-7.4x TO's
    # cost and 22.0 -> 21.5 refine iterations on average on held-out seed 1e6, 4.8-5.4x -> 3.7-4.9x and 32.7 -> 31.8 on
    # 2e6)
    # ... sampled with the DDPM posterior on all five steps (round 26: DDIM on 4, 0 takes Sob+Diff from 7.37x to 8.29x
    # TO's cost at the same iterations)
    "ur5/random_start_fixed_target": {"train_instances": 256, "train_steps": 4000, "sobolev_weight": 0.001,
                                      "action_steps": 2, "sampling_steps": None},
    # ... and, where the family is invariant under a rotation about the base axis, three rotated copies of each solved
    # trajectory, confirmed by the solver, with twice the steps (round 21: Sob+Diff 20.8x -> 11.3x TO's cost, Diff
    # 24.8x -> 12x, about what 1024 collected trajectories gave; warm start 20.5 iterations either way, the lookups
    # with the copies 23.4 and 28.1 instead of 35.3 and 38.0)
    # ... and the actions scaled by their standard deviation instead of their range, sampled unclipped, with lambda
    # 0.0001 (round 33: the min-max range is set by the first steps' braking and shrinks the executed velocities to a
    # few percent of [-1, 1]; Sob+Diff 11.5x [9.96, 13.1] -> 7.74x [6.7, 9.1] TO's cost, warm start 21.4 -> 18.0
    # iterations, Diff 14x -> 11.5x, over three training seeds; lambda 0.001 with that scale: 12.6x)
    "ur5/random_start_random_target": {"train_instances": 256, "train_steps": 8000, "sobolev_weight": 0.0001,
                                       "symmetry_copies": 3, "action_normaliser": "standard", "clip_sample": False},
    # free flight: 5000 steps at lambda 0.3 (round 19: Sob+Diff 1.23x -> 1.08x TO's cost over three training seeds,
    # 1.24x -> 1.11x on a second held-out set; Diff 17.9x -> 1.9x at 5000 steps)
    # ... and four actions executed per chunk (round 24: Sob+Diff 1.07-1.16x -> 1.02-1.07x TO's cost over three
    # training seeds and two held-out sets, a quarter of the rollout)
    "quadrotor/columns_0": {"train_steps": 5000, "sobolev_weight": 0.3, "action_steps": 4},
    # with the columns in every order (round 16: Sob+Diff 1.64x -> 1.25x, 1.74x -> 1.21x, 1.66x -> 1.18x TO's cost on
    # three held-out sets; warm-start iterations 53.4 -> 61.7, 47.3 -> 45.8, 87.4 -> 67.4)
    # ... and two actions executed per chunk (round 24: Sob+Diff 1.14-1.15x -> 1.09-1.12x TO's cost, warm start 46.5 ->
    # 42.3 iterations, over three training seeds and two held-out sets)
    # ... sampled with the DDPM posterior on all five steps (round 26: DDIM on 4, 0 kept the cost but took the warm
    # start from 40.9 to 50.1 refine iterations on held-out seed 2e6, 44.9 -> 46.4 in scorecard v18)
    # ... and the regression of the last two starts (the final replan's chunk) weighted 3x (round 41: the whole
    # median excess was the final angular velocity, the solver's last braking step; Sob+Diff 1.073 / 1.082 / 1.081 ->
    # 1.046 / 1.055 / 1.056 TO's cost over three training seeds on 1e6, the same refine iterations; weights 5 and 10
    # help too, 30 ruins the policy, the last eight starts at 5 hurt)
    # ... with the DDPM posterior's noise at half its scale (round 42: Sob+Diff 1.046 / 1.055 / 1.056 -> 1.035 /
    # 1.043 / 1.045 over three training seeds on 1e6, 1.035-1.050 on all three sets; a quarter 1.032 / 1.039 / 1.039
    # on 1e6 but two seeds' refines 5-9 iterations longer, where half costs them 2-5)
    "quadrotor/columns_9": {"sobolev_cap_quantile": 0.9, "shuffle_exchangeable_params": True, "action_steps": 2,
                            "sampling_steps": None, "final_steps": 2, "final_steps_weight": 3.0,
                            "sampling_temperature": 0.5},
    # the reference's solver budget of 1000 on its difficulty variants (README, "Reference-difficulty variants"); their
    # training solutions are not consolidated (round 18: on so few trajectories it helps the lookup, not the policies)
    "double_pendulum/reference": {"train_instances": 32, "test_instances": 16, "max_iters": 1000,
                                  "consolidate_neighbours": 0, "sampling_steps": None},
    # (the UR5's with seven rotated copies of each of its 48 trajectories, round 21: Sob+Diff 117x -> 51.3x TO's cost,
    # warm start 33.1 -> 28.2 iterations; three copies: 53.1x, 29.8)
    "ur5/reference_random_start_random_target": {"train_instances": 48, "test_instances": 24, "max_iters": 1000,
                                                 "consolidate_neighbours": 0, "symmetry_copies": 7,
                                                 "sampling_steps": None},
    # the columns in every order at the reference's difficulty (round 16: with 19 trajectories Sob+Diff converges on
    # 44-69% instead of 38-50%, Diff on 44-50% instead of 19-25%, on every training seed)
    "quadrotor/reference_columns_9": {"train_instances": 24, "test_instances": 8, "max_iters": 1000,
                                      "shuffle_exchangeable_params": True, "consolidate_neighbours": 0,
                                      "sampling_steps": None},
}
#: Wall time per variant of ``--scale full`` on two cores [s], as measured by scorecard v17 (round 25: every variant
#: from scratch at the default ``threads``, the collection, consolidation and subsets on both cores, the evaluation on
#: one; 41 minutes in all, with nothing else running). The committed run, v18 (round 26: the same stages, two network
#: calls per replan instead of five), took 48 minutes with other jobs on the cores, so its times are not used here. Training (one torch thread)
#: dominates the double pendulum's U-Net; the TO solves dominate the random-start UR5 variants' 256 trajectories
#: (collection and consolidation, 3.6-4.2 minutes) and the reference variants. Since round 36 the default variants
#: evaluate 256 held-out instances instead of 32: their figures add the evaluation's growth measured in scorecard v21
#: (one thread each, beside one other single-threaded job; 7-144 s instead of 2-25 s per variant), about 48 minutes
#: in all.
FULL_ESTIMATES_S: dict[str, float] = {
    "pendulum/default": 80, "double_pendulum/default": 574, "ur5/fixed_start_fixed_target": 96,
    "ur5/fixed_start_random_target": 175, "ur5/random_start_fixed_target": 365,
    "ur5/random_start_random_target": 467, "quadrotor/columns_0": 91, "quadrotor/columns_9": 234,
    "double_pendulum/reference": 305, "ur5/reference_random_start_random_target": 54,
    "quadrotor/reference_columns_9": 429,
}


def _variant_defaults(task: str) -> dict[str, Any]:
    """Per task, as measured over three training seeds (docs/results/ablations.md): lambda = 0.1 on the quadrotor
    (Sob+Diff 1.9x TO's cost, 3.5x at 0.01), 0.01 elsewhere (UR5: 25.5x and 223x against 85x and 389x at 0.1);
    the U-Net conditioned on past actions on the double pendulum, where Sob+Diff with the MLP denoiser diverges
    (94% of the pendubot's rollouts) and past actions help the U-Net (408x vs 690x, 142 vs 198 iterations)."""
    if task == "quadrotor":
        return {"sobolev_weight": 0.1}
    return {"denoiser": "unet", "past_actions": True} if task == "double_pendulum" else {}


def settings_for(key: str, scale: str) -> ScorecardSettings:
    """The settings of ``key`` (``"task/variant"``) at ``scale`` (``"smoke"`` or ``"full"``). Variants outside
    :data:`DEFAULT_VARIANTS` get their task's defaults at that scale."""
    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
    (task, variant), = parse_variants([key])
    base = {**(_SMOKE if scale == "smoke" else _FULL), **_variant_defaults(task),
            **VARIANT_SOLVER_SETTINGS.get(f"{task}/{variant}", {})}  # at every scale
    if scale == "full":
        base.update(_FULL_VARIANT.get(f"{task}/{variant}", {}))
    return ScorecardSettings(task=task, variant=variant, scale=scale, **base)


def parse_variants(tasks: Iterable[str]) -> list[tuple[str, str]]:
    """``["ur5/fixed_start_fixed_target", "pendulum", ...]`` -> ``[(task, variant), ...]`` (a bare task name is
    its default variant); unknown tasks or variants raise ``ValueError`` naming the argument."""
    if isinstance(tasks, str):
        tasks = [tasks]
    known = available_tasks()
    out: list[tuple[str, str]] = []
    for item in tasks:
        if not isinstance(item, str) or not item:
            raise ValueError(f"tasks: expected 'task/variant' strings, got {item!r}")
        name, _, variant = item.partition("/")
        if name not in known:
            raise ValueError(f"tasks: unknown task {name!r} in {item!r}; expected one of {', '.join(known)}")
        variant = variant or known[name][0]
        if variant not in known[name]:
            raise ValueError(f"tasks: unknown variant {variant!r} of task {name!r} in {item!r}; expected one of "
                             f"{', '.join(known[name])}")
        if (name, variant) not in out:
            out.append((name, variant))
    if not out:
        raise ValueError("tasks: expected at least one 'task/variant', got none")
    return out


# ---------------------------------------------------------------------------------------------- file helpers
def _write_json(path: Path, doc: Any) -> None:
    from .evaluate import _nan_to_none
    from .loop import _json_default
    text = (json.dumps(_nan_to_none(doc), indent=2, default=_json_default) + "\n").encode()
    atomic_write_bytes(path, lambda f: f.write(text))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


#: Settings whose default differs from what the code did before they existed.
_BEFORE_SETTING = {"past_actions": True, "denoiser": "unet"}


def _completed_settings(saved: dict) -> dict:
    """A ``settings.json``'s contents completed: a setting added after the folder was written counts as its
    default, or as what the code did before it."""
    defaults = json.loads(json.dumps({f.name: f.default for f in dataclasses.fields(ScorecardSettings)
                                      if f.default is not dataclasses.MISSING}))
    defaults.update(_BEFORE_SETTING)
    return {**defaults, **saved}


def load_settings(folder: str | os.PathLike) -> ScorecardSettings:
    """The settings of a variant's scorecard folder (``<out>/<task>/<variant>``, holding ``settings.json``), for
    diagnostics that retrain or re-evaluate on its data."""
    path = Path(folder) / "settings.json"
    if not path.is_file():
        raise FileNotFoundError(f"folder: no scorecard settings.json in {folder}")
    names = {f.name for f in dataclasses.fields(ScorecardSettings)}
    saved = _completed_settings(_read_json(path))
    return ScorecardSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in names})


def _settings_diffs(path: Path, settings: ScorecardSettings, ignore: frozenset = frozenset()) -> str:
    """The settings (not in ``ignore``) in which the ``settings.json`` at ``path`` differs from ``settings``, listed
    as ``key (saved ..., now ...)``; empty if none."""
    now = settings.to_dict()
    raw = _read_json(path)
    saved = {k: v for k, v in _completed_settings(raw).items() if k in now or k in raw}
    diffs = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k) and k not in ignore]
    if saved.get("denoiser") == now.get("denoiser") == "unet":  # the MLP's widths do not shape a U-Net
        diffs = [k for k in diffs if k != "mlp_dims"]
    return "; ".join(f"{k} (saved {saved.get(k)!r}, now {now.get(k)!r})" for k in diffs)


def _check_settings(folder: Path, settings: ScorecardSettings) -> None:
    """Write ``settings.json`` on first use; refuse a folder holding results of other settings."""
    path = folder / "settings.json"
    if path.exists():
        listed = _settings_diffs(path, settings)
        if listed:
            hint = ("; only held-out settings differ, so another out_dir with trained_from (--trained-from) set to "
                    "this one evaluates its policies again without training" if not
                    _settings_diffs(path, settings, EVALUATION_KEYS) else "")
            raise ValueError(f"out_dir: {folder} holds a scorecard of other settings, differing in {listed}; use "
                             f"another out_dir (or delete {folder} to redo the variant){hint}")
    else:
        _write_json(path, settings.to_dict())


def _check_trained_from(source: Path, settings: ScorecardSettings) -> None:
    """Refuse to reuse ``source`` (a variant's folder in another scorecard) unless it finished with the same settings
    but :data:`EVALUATION_KEYS`."""
    if not (source / "settings.json").is_file():
        raise ValueError(f"trained_from: {source.parent.parent} holds no scorecard of {settings.key} "
                         f"(no {source / 'settings.json'})")
    listed = _settings_diffs(source / "settings.json", settings, EVALUATION_KEYS)
    if listed:
        raise ValueError(f"trained_from: {source} was trained with other settings, differing in {listed}; only "
                         f"{', '.join(sorted(EVALUATION_KEYS))} may differ")
    if not (source / "result.json").is_file():
        raise ValueError(f"trained_from: {source} has not finished (no result.json); run its own command to the end "
                         "first")


def _reuse_training(source: Path, folder: Path) -> None:
    """Hard-link (or copy) a finished variant's training set (``collect/``), its Diff and Sob+Diff policies and its
    sample-efficiency subsets' policies into ``folder``, where not there yet. The held-out results (``result.json``,
    ``per_instance.npz``, the subsets' ``result.json``) are not: they are evaluated again on the new instances."""
    for name in ("collect", *_LEARNED):
        if not (folder / name).exists():
            link_tree(source / name, folder / name)
    for sub in sorted((source / "subsets").glob("n*")):
        if (sub / "train.json").exists() and not (folder / "subsets" / sub.name).exists():
            link_tree(sub, folder / "subsets" / sub.name, ignore=lambda _d, names: [n for n in names
                                                                                   if n == "result.json"])


# ------------------------------------------------------------------------------------------------ stages
def _collect(task: Task, s: ScorecardSettings, folder: Path, threads: int, say: Progress) -> ChunkDataset:
    """Stage 1: TO alone on the training instances, in saved batches; the converged solves with their chained
    derivatives and gains (``collect/trajectories.npz``), consolidated if the settings say so. The dataset's
    normalisers are fitted on TO alone's solutions: consolidated data gather on a few cheap strategies, and
    normalisers fitted on them scale the states a rollout leaves them for far out of the network's range
    (docs/results/ablations.md, round 18: the pendubot's rollouts diverge on 69-94% of instances, 0-6% with these)."""
    from .config import BackendConfig
    from .loop import _collect as collect_batches, _merge, collect_metrics
    done = folder / "trajectories.npz"
    if done.exists():
        return load_dataset(done)
    x0s, params = task.sample_instances(s.train_instances, seed=s.train_seed)
    say(f"  collect: {s.train_instances} instances with TO alone")
    t0 = time.perf_counter()
    batches = collect_batches(task, x0s, params, folder / "batches", s.collect_batch, s.options(threads), None,
                              lambda b: 0, None, s.horizon - s.history, f"{s.key} TO alone", False, None, {},
                              s.divergence_bound, BackendConfig())
    per, traj = _merge(batches)
    # the merged arrays are copies: the batches' would otherwise stay in memory through the consolidation (4096 UR5
    # trajectories, 3.2 GB each copy, peaked past 24 GB at its end and were killed, round 48)
    del batches
    if not traj:
        raise RuntimeError(f"tasks: {s.key}: none of the {s.train_instances} training solves converged within "
                           f"max_iters = {s.max_iters}: nothing to train on")
    dataset = build_dataset(TrajectoryData(task=TaskInfo.from_task(task), **traj), s.chunk(),
                            action_mode=s.action_normaliser, observation_mode=s.observation_normaliser)
    del traj
    metrics = collect_metrics(per)
    info = {"instances": s.train_instances, "seed": s.train_seed, "accepted": metrics["accepted"],
            "default": metrics["default"]}
    if s.consolidate_neighbours > 0:
        say(f"  consolidate {dataset.data.num_instances} trajectories ({s.consolidate_neighbours} neighbours, "
            f"{s.consolidate_rounds} rounds)")
        dataset, report = consolidate_dataset(task, dataset, neighbours=s.consolidate_neighbours,
                                              rounds=s.consolidate_rounds, options=s.options(threads))
        info["consolidation"] = report.to_dict()
    if s.symmetry_copies > 0:
        say(f"  symmetry: {s.symmetry_copies} rotated copies of each of the {dataset.data.num_instances} trajectories, "
            "confirmed by the solver")
        dataset, report = augment_dataset(task, dataset, s.symmetry_copies, seed=s.train_seed,
                                          options=s.options(threads))
        info["symmetry"] = {**report.to_dict(), "origin": report.origin.tolist()}
    if s.parameter_sobolev > 0:
        say(f"  parameter derivatives of the {dataset.data.num_instances} trajectories ({2 * task.nz} re-solves each)")
        t1 = time.perf_counter()
        data, pj = with_parameter_jacobians(task, dataset.data,
                                            options=dataclasses.replace(s.options(threads), **RESOLVE_SETTINGS))
        dataset = ChunkDataset(data=data, spec=dataset.spec, normalisers=dataset.normalisers)
        info["parameter_jacobians"] = {"converged": int(pj.converged.sum()), "instances": len(pj.converged),
                                       "mean_iterations": float(pj.iterations.mean()),
                                       "time_s": time.perf_counter() - t1}
    _write_json(folder / "collect.json", {**info, "time_s": time.perf_counter() - t0})
    save_dataset(dataset, done)  # last: the stage is done
    return dataset


def _train(data: TrajectoryData, method: str, s: ScorecardSettings, folder: Path, say: Progress,
           normalisers: Normalisers | None = None) -> Path:
    """Train ``method`` on ``data`` (resumable from ``folder/checkpoint``) and export it to
    ``folder/policy_export.safetensors``; the meta data in ``folder/train.json`` (written last). ``normalisers``:
    the collection's (consolidated data), or None to fit them on ``data``."""
    export = folder / _EXPORT
    meta_path = folder / "train.json"
    if meta_path.exists() and export.exists():
        return export
    if meta_path.exists() and (folder / "checkpoint").exists():  # trained before the native export existed
        policy, _, _ = load_checkpoint(folder / "checkpoint")
        export_native(policy, export)
        return export
    dataset = build_dataset(data, s.chunk(), normalisers=normalisers, action_mode=s.action_normaliser,
                            observation_mode=s.observation_normaliser)
    config = s.train_config(method, len(dataset), folder / "checkpoint")
    say(f"  train {METHOD_LABELS[method]} on {data.num_instances} trajectories ({len(dataset)} chunks, "
        f"{config.epochs} epochs)")
    t0 = time.perf_counter()
    policy = train(dataset, config)
    train_time = time.perf_counter() - t0
    export_native(policy, export)
    last = policy.train_history[-1] if policy.train_history else {}
    _write_json(meta_path, {"method": method, "trajectories": int(data.num_instances), "samples": len(dataset),
                            "epochs": config.epochs, "steps": config.epochs * math.ceil(len(dataset) / s.batch_size),
                            "seed": config.seed, "sobolev_weight": config.sobolev_weight,
                            "final_loss": last.get("loss"), "final_mse": last.get("mse"),
                            "time_s": train_time, "config": config.to_dict()})
    return export


_FIELDS = ("policy_cost", "violation", "cost", "converged", "iterations", "rollout_time", "solve_time", "diverged",
           "seed")


def _evaluate(task: Task, s: ScorecardSettings, folder: Path, data: TrajectoryData, exports: dict[str, Path],
              threads: int, say: Progress) -> dict[str, np.ndarray]:
    """Stage 3: evaluate_methods on the held-out instances; per-instance arrays ``<method>_<field>`` pooled over
    the rollout seeds (``per_instance.npz``). The solves and rollouts run on one thread whatever ``threads`` is: their
    per-instance times are what the scorecard reports, and they should not depend on what runs on the other cores."""
    path = folder / "per_instance.npz"
    if path.exists():
        return _load_npz(path)
    x_te, p_te = task.sample_instances(s.test_instances, seed=s.test_seed)
    lookup = NearestNeighbourLookup.from_data(data)
    policies = {**{m: lookup for m in BASELINES}, **{m: str(exports[m]) for m in _LEARNED},
                "sob_diff_nn": str(exports["sob_diff"])}
    say(f"  evaluate on {s.test_instances} held-out instances (seed {s.test_seed}), rollout seeds {list(s.seeds)}")
    t0 = time.perf_counter()
    fallback = s.fallback(lookup, task, str(exports["sob_diff"]))
    ev = evaluate_methods(task, policies, x_te, p_te, seeds=s.seeds, action_steps=s.action_steps,
                          options=s.options(1), divergence_bound=s.divergence_bound, fallback=fallback)
    # the objective along TO alone's starting guess, scored as every other guess is
    guess_cost = guess_costs(task, x_te, p_te, *default_guesses(task, x_te, p_te), s.divergence_bound, threads)
    per: dict[str, list[np.ndarray]] = {}
    for method in SCORECARD_METHODS:
        for seed in s.seeds:
            res = ev.raw[(method, seed)]
            if method == "to":
                solved, rollout_time = res, np.zeros(len(res))
                policy_cost, diverged = guess_cost, np.zeros(len(res), bool)
            else:
                solved, rollout_time = res.warm, np.asarray(res.rollout.time, dtype=np.float64)
                policy_cost = np.asarray(res.policy_cost, dtype=np.float64)
                diverged = diverged_rollouts(res.rollout.xs, s.divergence_bound)
            values = {"policy_cost": policy_cost, "violation": ev.violations[(method, seed)],
                      "cost": np.asarray(solved.cost, dtype=np.float64),
                      "converged": np.asarray(solved.converged, bool) & ~diverged,
                      "iterations": np.asarray(solved.iterations, dtype=np.float64), "rollout_time": rollout_time,
                      "solve_time": np.asarray(solved.solve_time, dtype=np.float64), "diverged": diverged,
                      "seed": np.full(len(res), seed)}
            if getattr(res, "replaced", None) is not None:
                values["replaced"] = np.asarray(res.replaced, bool)
            for k, v in values.items():
                per.setdefault(f"{method}_{k}", []).append(v)
    arrays = {k: np.concatenate(v) for k, v in per.items()}
    arrays["eval_time_s"] = np.asarray(time.perf_counter() - t0)
    # the fallback's bound, in multiples of the nearest training solution's cost, and the policy's median such ratio
    # it was calibrated on (NaN: a fixed bound)
    arrays["sob_diff_nn_bound_ratio"] = np.asarray(fallback.cost_ratio)
    arrays["sob_diff_nn_median_ratio"] = np.asarray(
        np.nan if fallback.calibration is None else fallback.calibration["median_ratio"])
    ev.to_json(folder / "evaluation.json")
    _save_npz(path, arrays)
    return arrays


def _fallback_bounds(docs: Sequence[dict]) -> str:
    """The report's words for the fallback's bound per variant: calibrated (round 47) or the fixed ratio of older
    runs (30)."""
    bounds = {f"{d['task']}/{d['variant']}": d.get("fallback_bound_ratio") for d in docs}
    if not any(b is not None for b in bounds.values()):
        return "bound 30, fixed"
    settings = [d["settings"] for d in docs if "settings" in d]
    factors = {st.get("fallback_factor", 3.0) for st in settings}
    calibrated = all(st.get("fallback_cost_ratio") is None for st in settings) and len(factors) == 1
    how = (f"the bound is {factors.pop():g} times the policy's median such ratio on 64 fresh instances "
           "(LookupFallback.calibrated, fallback_factor): " if calibrated else "bound: ")
    return how + ", ".join(f"{k} {b:.3g}" for k, b in bounds.items() if b is not None)


def _ratios(policy_cost: np.ndarray, to_cost: np.ndarray, to_converged: np.ndarray) -> np.ndarray:
    ok = np.asarray(to_converged, bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(policy_cost, dtype=np.float64)[ok] / np.asarray(to_cost, dtype=np.float64)[ok]


def _median(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.median(x)) if x.size else float("nan")


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    if not x.size:
        return float("nan")
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.mean(x))


def _policy_cost_ratio_median(per: dict[str, np.ndarray], method: str) -> float:
    return _median(_ratios(per[f"{method}_policy_cost"], per["to_cost"], per["to_converged"]))


def _subset_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    sizes = sorted({max(1, min(n, int(round(f * n)))) for f in fractions})
    return [k for k in sizes if k < n]


def _sample_efficiency(task: Task, s: ScorecardSettings, folder: Path, data: TrajectoryData,
                       per: dict[str, np.ndarray], threads: int, say: Progress,
                       normalisers: Normalisers | None = None) -> dict:
    """Stage 4: Sob+Diff on nested subsets, smallest first, until its median policy-cost ratio on the held-out
    instances is at most Diff's on the full set (``normalisers``: as :func:`_train`). Subsets count solved
    trajectories; with ``symmetry_copies`` a subset of k holds the copies of its k (``collect.json``'s origins)."""
    info = _read_json(folder.parent / "collect" / "collect.json")
    origin = np.asarray(info["symmetry"]["origin"]) if "symmetry" in info else np.arange(data.num_instances)
    n = int(origin.max()) + 1
    target = _policy_cost_ratio_median(per, "diff")
    full = _policy_cost_ratio_median(per, "sob_diff")
    out = {"diff_ratio_median": target, "training_trajectories": n, "subsets": [],
           "trajectories_needed": None, "fraction_needed": None}
    if not math.isfinite(target):
        out["note"] = "undefined: TO alone converged on no held-out instance, or Diff's ratio is not finite"
        return out
    x_te, p_te = task.sample_instances(s.test_instances, seed=s.test_seed)
    to_cost = {int(seed): per["to_cost"][per["to_seed"] == seed] for seed in s.seeds}
    to_conv = {int(seed): per["to_converged"][per["to_seed"] == seed] for seed in s.seeds}
    for k in _subset_sizes(n, s.subset_fractions):
        sub = folder / f"n{k}"
        result_path = sub / "result.json"
        if result_path.exists():
            entry = _read_json(result_path)
        else:
            t0 = time.perf_counter()
            export = _train(data.select(origin < k), "sob_diff", s, sub, say, normalisers)
            runner = load_policy_runner(export)
            ratios = []
            for seed in s.seeds:
                ro = rollout(task, x_te, p_te, runner, action_steps=s.action_steps, seed=int(seed),
                             num_threads=threads)
                ratios.append(_ratios(guess_costs(task, x_te, p_te, ro.xs, ro.us, s.divergence_bound, threads),
                                      to_cost[int(seed)], to_conv[int(seed)]))
            entry = {"trajectories": k, "fraction": k / n, "ratio_median": _median(np.concatenate(ratios)),
                     "time_s": time.perf_counter() - t0}
            _write_json(result_path, entry)
        entry = {k2: (float("nan") if v is None else v) for k2, v in entry.items()}
        out["subsets"].append(entry)
        if entry["ratio_median"] <= target:
            out.update(trajectories_needed=k, fraction_needed=k / n)
            return out
    out["subsets"].append({"trajectories": n, "fraction": 1.0, "ratio_median": full, "time_s": 0.0})
    if full <= target:
        out.update(trajectories_needed=n, fraction_needed=1.0)
    return out


def variant_rows(per: dict[str, np.ndarray], tol: float = SolverOptions.tol) -> list[dict[str, Any]]:
    """One row per method of :data:`SCORECARD_METHODS` from the per-instance arrays of one variant (module
    docstring for the metrics); ``tol``: the violation above which a guess counts as infeasible (the solver's
    primal tolerance)."""
    rows = []
    to_cost, to_conv = per["to_cost"], per["to_converged"].astype(bool)
    for method in SCORECARD_METHODS:
        if f"{method}_converged" not in per:  # evaluated before the method existed (Sob+Diff's NN fallback)
            continue
        size = len(per[f"{method}_converged"])
        g = {k: per.get(f"{method}_{k}", np.full(size, np.nan)) for k in _FIELDS}  # older folders: no violation
        conv, div = g["converged"].astype(bool), g["diverged"].astype(bool)
        ok = ~div
        violation = np.asarray(g["violation"], dtype=np.float64)[ok]
        infeasible = float(np.mean(violation > tol)) if violation.size and np.isfinite(violation).all() else float("nan")
        ratios = _ratios(g["policy_cost"], to_cost, to_conv)
        both = conv & to_conv
        with np.errstate(divide="ignore", invalid="ignore"):
            refined_ratio = g["cost"][both] / to_cost[both]
        total = (g["rollout_time"] + g["solve_time"])[ok]
        rows.append({"method": method, "label": METHOD_LABELS[method], "instances": int(len(conv)),
                     "policy_cost_ratio_median": _median(ratios), "policy_cost_ratio_mean": _mean(ratios),
                     "diverged": float(div.mean()) if div.size else float("nan"),
                     "infeasible": infeasible, "violation_median": _median(violation),
                     "iterations_mean": _mean(g["iterations"][ok]), "iterations_median": _median(g["iterations"][ok]),
                     "total_time_mean": _mean(total), "rollout_time_mean": _mean(g["rollout_time"][ok]),
                     "solve_time_mean": _mean(g["solve_time"][ok]),
                     "converged": float(conv.mean()) if conv.size else float("nan"),
                     "refined_cost_mean": _mean(g["cost"][conv]), "refined_cost_ratio_median": _median(refined_ratio)})
    return rows


def run_variant(key: str, out_dir: str | os.PathLike, scale: str = "smoke", *, threads: int = 0,
                progress: Progress | None = None, settings: ScorecardSettings | None = None,
                trained_from: str | os.PathLike | None = None) -> dict:
    """Run (or resume) the scorecard of one ``task/variant`` under ``out_dir/<task>/<variant>/``; returns its
    ``result.json`` document (rows, sample efficiency, times). ``settings`` replaces :func:`settings_for`'s.
    ``trained_from``: another scorecard's folder whose finished variant differs only in :data:`EVALUATION_KEYS`; its
    training set and policies are reused (hard links) and only the held-out evaluation runs."""
    s = settings if settings is not None else settings_for(key, scale)
    say = progress or (lambda _msg: None)
    folder = Path(out_dir) / s.task / s.variant
    source = Path(trained_from) / s.task / s.variant if trained_from is not None else None
    if source is not None:
        _check_trained_from(source, s)
    folder.mkdir(parents=True, exist_ok=True)
    _check_settings(folder, s)
    result_path = folder / "result.json"
    if result_path.exists():
        say(f"{s.key}: done (skipped)")
        return _read_json(result_path)
    say(f"{s.key} ({s.scale})")
    if source is not None:
        say(f"  training set and policies from {source}")
        _reuse_training(source, folder)
    t0 = time.perf_counter()
    task = make_task(s.task, s.variant)
    collected = _collect(task, s, folder / "collect", threads, say)
    data = collected.data
    normalisers = collected.normalisers if s.consolidate_neighbours > 0 else None
    exports = {m: _train(data, m, s, folder / m, say, normalisers) for m in _LEARNED}
    per = _evaluate(task, s, folder, data, exports, threads, say)
    efficiency = _sample_efficiency(task, s, folder / "subsets", data, per, threads, say, normalisers)
    rows = variant_rows(per, s.options(1).tol)
    times = {"collect_s": _read_json(folder / "collect" / "collect.json")["time_s"],
             **{f"train_{m}_s": _read_json(folder / m / "train.json")["time_s"] for m in _LEARNED},
             "evaluate_s": float(per["eval_time_s"]),
             "subsets_s": sum(e.get("time_s", 0.0) for e in efficiency["subsets"])}
    doc = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "task": s.task, "variant": s.variant,
           "scale": s.scale, "settings": s.to_dict(), "training_trajectories": int(efficiency["training_trajectories"]),
           "trained_trajectories": int(data.num_instances),
           "epochs": _read_json(folder / "sob_diff" / "train.json")["epochs"], "rows": rows,
           "sample_efficiency": efficiency, "times": times, "stage_time_s": sum(times.values()),
           "fallback_bound_ratio": float(per["sob_diff_nn_bound_ratio"]) if "sob_diff_nn_bound_ratio" in per else None,
           "wall_time_s": time.perf_counter() - t0, "trained_from": None if source is None else str(source)}
    _write_json(result_path, doc)
    say(f"{s.key}: done in {doc['wall_time_s']:.1f} s (stages {doc['stage_time_s']:.1f} s)")
    return doc


# ------------------------------------------------------------------------------------------------- report
def _fmt(x, scale: float = 1.0, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x * scale, spec)


def _needed(eff: dict) -> str:
    if eff.get("trajectories_needed") is None:
        return eff.get("note", "not reached").split(":")[0]
    return f"{eff['trajectories_needed']} of {eff['training_trajectories']} ({100 * eff['fraction_needed']:.0f}%)"


def _csv_rows(docs: Sequence[dict]) -> list[dict]:
    out = []
    for d in docs:
        eff = d["sample_efficiency"]
        for r in d["rows"]:
            needed = eff.get("trajectories_needed")
            if needed is None:
                needed = "undefined" if eff.get("note") else "not reached"
            out.append({"task": d["task"], "variant": d["variant"], "scale": d["scale"],
                        "training_trajectories": d["training_trajectories"], "epochs": d["epochs"],
                        "seeds": len(d["settings"]["seeds"]), **r,
                        "trajectories_to_reach_diff": needed if r["method"] == "sob_diff" else ""})
    return out


def write_scorecard(out_dir: str | os.PathLike, docs: Sequence[dict], command: str,
                    machine: str | None = None, failed: dict[str, str] | None = None) -> dict[str, Path]:
    """``scorecard.md``, ``scorecard.csv`` and ``scorecard.png`` in ``out_dir`` from variants' result documents."""
    from .experiments import describe_machine
    from .evaluate import _aligned
    if not docs:
        raise ValueError("docs: no finished variant to report")
    out = Path(out_dir)
    machine = machine if machine is not None else describe_machine()
    rows = _csv_rows(docs)
    write_rows_csv(rows, out / "scorecard.csv")
    head = ["variant", "method", "policy/TO median", "policy/TO mean", "diverged [%]", "infeasible [%]", "iters mean",
            "iters median", "total [ms]", "converged [%]", "refined cost", "refined/TO median"]
    body = []
    for r in rows:
        body.append([f"{r['task']}/{r['variant']}", r["label"], _fmt(r["policy_cost_ratio_median"]),
                     _fmt(r["policy_cost_ratio_mean"]), _fmt(r["diverged"], 100, ".0f"),
                     _fmt(r.get("infeasible", float("nan")), 100, ".0f"),
                     _fmt(r["iterations_mean"], 1, ".1f"),
                     _fmt(r["iterations_median"], 1, ".1f"), _fmt(r["total_time_mean"], 1e3, ".1f"),
                     _fmt(r["converged"], 100, ".0f"), _fmt(r["refined_cost_mean"], 1, ".4g"),
                     _fmt(r["refined_cost_ratio_median"], 1, ".4f")])
    eff_head = ["variant", "trained on", "epochs", "Diff policy/TO median", "Sob+Diff policy/TO median by subset",
                "Sob+Diff needs"]
    eff_body = []
    for d in docs:
        e = d["sample_efficiency"]
        subsets = ", ".join(f"{s['trajectories']}: {_fmt(s['ratio_median'])}" for s in e["subsets"]) or "—"
        eff_body.append([f"{d['task']}/{d['variant']}", str(d["training_trajectories"]), str(d["epochs"]),
                         _fmt(e["diff_ratio_median"]), subsets, _needed(e)])
    time_head = ["variant", "train / test instances", "collect [s]", "train Diff [s]", "train Sob+Diff [s]",
                 "evaluate [s]", "subsets [s]", "total [s]"]
    time_body = [[f"{d['task']}/{d['variant']}", f"{d['settings']['train_instances']} / "
                  f"{d['settings']['test_instances']}", *(_fmt(d["times"][k], 1, ".1f") for k in
                  ("collect_s", "train_diff_s", "train_sob_diff_s", "evaluate_s", "subsets_s")),
                  _fmt(d["stage_time_s"], 1, ".1f")] for d in docs]
    total = sum(d["stage_time_s"] for d in docs)
    scales = sorted({d["scale"] for d in docs})
    test_seeds = ", ".join(str(v) for v in sorted({int(d["settings"]["test_seed"]) for d in docs}))
    consolidated = [f"{d['task']}/{d['variant']}" for d in docs if d["settings"].get("consolidate_neighbours", 0) > 0]
    consolidation = (" The training solutions are consolidated (each re-solved from its nearest instances' solutions, "
                     "the cheapest converged kept; normalisers of TO alone's solutions) on "
                     f"{'every variant' if len(consolidated) == len(docs) else ', '.join(consolidated)}; the collect "
                     "time includes it." if consolidated else "")
    sources = sorted({str(Path(d["trained_from"]).parent.parent) for d in docs if d.get("trained_from")})
    from_elsewhere = [f"{d['task']}/{d['variant']}" for d in docs if d.get("trained_from")]
    which = ("" if len(from_elsewhere) == len(docs) else f" of {', '.join(from_elsewhere)}")
    reused = (f" Training sets and policies{which} reused from {', '.join(f'`{p}`' for p in sources)} (its collect "
              f"and train times are those of its run); only {'their' if which else 'the'} held-out evaluation ran here."
              if sources else "")
    lines = ["# sobolev_warmstart scorecard", "",
             f"Command: `{command}` (scale {', '.join(scales)}; rerunning it skips finished variants).{reused}", "",
             f"Machine: {machine}", "",
             "Per variant: TO alone collects the training trajectories (converged solves only); Diff and Sob+Diff are "
             "trained on the same trajectories with the same budget (network, epochs, seed); every method is "
             f"evaluated on held-out instances (seed {test_seeds}, never used for training), its guess refined by the same "
             "solver. NN / NN+feedback: the nearest training trajectory / its feedback law from the new start. "
             "Sob+Diff, NN fallback (where evaluated): Sob+Diff's rollouts, those that diverged or cost more than "
             f"a bound times their nearest training solution replaced by the NN guess before the refine "
             f"(sw.LookupFallback; {_fallback_bounds(docs)}; its policy/TO is the policy's own rollouts', its total "
             "includes the lookup)."
             + consolidation, "",
             "- policy/TO: per instance, the objective along the method's guess over TO alone's converged cost "
             "(TO alone's row: the task's default guess), median and mean over the instances where TO alone "
             "converged; a diverged guess is scored with its states clipped to 1e3.",
             "- diverged: guesses that left the bound (not refined, counted as not converged). infeasible: guesses "
             "that did not diverge but break a path or terminal constraint by more than the solver's tolerance (among "
             "the quadrotor's columns: fly through one), which the objective does not see. iters, total "
             "(rollout + solve, per instance): over the refined instances; a failed solve counts its whole budget. "
             "refined cost: mean over the converged instances; refined/TO: per instance where both converged.", "",
             _aligned(head, body, "markdown"), "",
             "**Trajectories Sob+Diff needs to reach Diff's policy cost** (Sob+Diff trained on the first k training "
             "trajectories with the same gradient steps, smallest k first, until its median policy/TO ratio is at "
             "most Diff's on all of them):", "",
             _aligned(eff_head, eff_body, "markdown"), "",
             f"**Measured time per variant** (total {total:.0f} s = {total / 60:.1f} min; stages that were resumed "
             "count their first run):", "",
             _aligned(time_head, time_body, "markdown"), "",
             "![policy cost ratio and total time per method](scorecard.png)", ""]
    if failed:
        lines += ["**Variants without results** (rerun the command after fixing the cause):", ""]
        lines += [f"- `{k}`: {msg}" for k, msg in failed.items()] + [""]
    text = "\n".join(lines).encode()
    atomic_write_bytes(out / "scorecard.md", lambda f: f.write(text))
    png = _plot(rows, out / "scorecard.png")
    return {"markdown": out / "scorecard.md", "csv": out / "scorecard.csv", "figure": png}


def _plot(rows: Sequence[dict], path: Path) -> Path:
    """Two log-scale panels over the variants: the median guess-cost ratio (markers; 1 = TO alone's optimum) and
    the mean total time per instance (bars), one colour per method."""
    from .plots import _COLORS, _save
    import matplotlib.pyplot as plt
    variants = list(dict.fromkeys(f"{r['task']}/{r['variant']}" for r in rows))
    by = {(f"{r['task']}/{r['variant']}", r["method"]): r for r in rows}
    methods = [m for m in SCORECARD_METHODS if any(r["method"] == m for r in rows)]
    x = np.arange(len(variants))
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.1 * len(variants) + 2), 7.0), sharex=True)

    def values(key: str, method: str, scale: float = 1.0) -> np.ndarray:
        v = np.array([by.get((k, method), {}).get(key, np.nan) for k in variants], dtype=float) * scale
        return np.where(np.isfinite(v) & (v > 0), v, np.nan)

    for j, m in enumerate(methods):
        offset = (j - (len(methods) - 1) / 2) * width
        axes[0].plot(x + offset, values("policy_cost_ratio_median", m), "o", color=_COLORS[m], ms=6,
                     label=METHOD_LABELS[m] + (" (default guess)" if m == "to" else ""))
        axes[1].bar(x + offset, values("total_time_mean", m, 1e3), width, color=_COLORS[m])
    axes[0].axhline(1.0, color="k", lw=0.8)
    axes[0].set_ylabel("guess cost / TO cost\n(median over instances)", fontsize=9)
    axes[1].set_ylabel("total time per instance [ms]\n(rollout + solve, mean)", fontsize=9)
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3, which="both")
        for b in x[:-1] + 0.5:
            ax.axvline(b, color="0.85", lw=0.8)
    axes[0].legend(fontsize=7, ncol=len(methods), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    axes[1].set_xticks(x, variants, rotation=30, ha="right", fontsize=8)
    axes[1].set_xlim(-0.5, len(variants) - 0.5)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------ runner
def _command(out_dir, scale: str, tasks: Sequence[str] | None, threads: int, test_seed: int | None = None,
             test_instances: int | None = None, trained_from=None) -> str:
    parts = ["sobolev-warmstart", "scorecard", "--scale", scale, "--out", str(out_dir)]
    if tasks is not None:
        parts += ["--tasks", *tasks]
    if test_seed is not None:
        parts += ["--test-seed", str(test_seed)]
    if test_instances is not None:
        parts += ["--test-instances", str(test_instances)]
    if trained_from is not None:
        parts += ["--trained-from", str(trained_from)]
    if threads:
        parts += ["--threads", str(threads)]
    return " ".join(shlex.quote(p) for p in parts)


def scorecard(out_dir: str | os.PathLike | None = None, scale: str = "full",
              tasks: Sequence[str] | None = None, *, threads: int = 0, progress: bool = True,
              machine: str | None = None, test_seed: int | None = None, test_instances: int | None = None,
              trained_from: str | os.PathLike | None = None) -> dict[str, Path]:
    """Run (or resume) the scorecard of ``tasks`` (``"task/variant"`` strings, a bare task name meaning its default
    variant; default: :data:`DEFAULT_VARIANTS` at ``scale="full"``, :data:`SMOKE_VARIANTS` at ``"smoke"``) into
    ``out_dir`` (default ``runs/scorecard-<scale>``), then write ``scorecard.md``, ``scorecard.csv`` and
    ``scorecard.png`` there; returns their paths. ``threads``: solver and rollout threads of the untimed stages
    (collection, consolidation, the sample-efficiency subsets; 0: all cores; results do not depend on it); the
    timed evaluation runs on one thread, and training uses one torch thread. ``test_seed``: the seed of every
    variant's held-out instances instead of its default (1,000,000), to check the figures on instances of your own
    choosing (collection and training do not depend on it: a fresh ``out_dir`` trains the default run's policies
    again; a folder of the default seed is refused, as a folder of any other settings). ``test_instances``: the number
    of every variant's held-out instances instead of its default (256 at full scale, fewer on the reference
    variants): a warm-start comparison's mean iterations are heavy-tailed, and 32 instances decide only large gaps.
    ``trained_from``: a finished scorecard's
    folder (same scale and settings but :data:`EVALUATION_KEYS`) whose training sets and policies are reused (hard
    links; nothing is trained again unless a sample-efficiency subset it never needed is needed now), so a new
    ``test_seed`` or ``test_instances`` costs only the evaluation. Bad arguments raise ``ValueError`` naming them
    before anything runs. A variant that fails at run time (``RuntimeError``: none of its training
    solves converged) is listed in ``scorecard.md`` and in the returned ``"failed"`` ({variant: message}); the others
    go on."""
    if scale not in SCALES:
        raise ValueError(f"scale: expected one of {', '.join(SCALES)}, got {scale!r}")
    if out_dir is None:
        out_dir = Path("runs") / f"scorecard-{scale}"
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads: expected an integer >= 0 (0: all cores), got {threads!r}")
    if tasks is not None and isinstance(tasks, str):
        tasks = [tasks]
    keys = [f"{t}/{v}" for t, v in parse_variants(tasks if tasks is not None else
                                                   (SMOKE_VARIANTS if scale == "smoke" else DEFAULT_VARIANTS))]
    settings = [settings_for(k, scale) for k in keys]  # validates every variant before anything runs
    if test_seed is not None:
        settings = [dataclasses.replace(s, test_seed=test_seed) for s in settings]  # validated by the settings
    if test_instances is not None:
        settings = [dataclasses.replace(s, test_instances=test_instances) for s in settings]
    if trained_from is not None:
        if not Path(trained_from).is_dir():
            raise ValueError(f"trained_from: expected a finished scorecard's folder, got {str(trained_from)!r} "
                             "(not a folder)")
        if Path(trained_from).resolve() == Path(out_dir).resolve():
            raise ValueError("trained_from: expected another scorecard's folder than out_dir, got "
                             f"{str(trained_from)!r}")
    for s in settings:  # a folder of other settings, or a source that does not match, is refused before anything runs
        folder = Path(out_dir) / s.task / s.variant
        if (folder / "settings.json").exists():
            _check_settings(folder, s)
        if trained_from is not None:
            _check_trained_from(Path(trained_from) / s.task / s.variant, s)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda _msg: None)
    docs, failed = [], {}
    for key, s in zip(keys, settings):
        try:
            docs.append(run_variant(key, out_dir, scale, threads=threads, progress=say, settings=s,
                                    trained_from=trained_from))
        except RuntimeError as exc:  # e.g. no converged training solve: report it, go on with the others
            failed[key] = str(exc)
            say(f"{key}: failed: {exc}")
    if not docs:
        raise RuntimeError(f"tasks: no variant finished: {failed}")
    files = write_scorecard(out_dir, docs, _command(out_dir, scale, tasks, threads, test_seed, test_instances,
                                                    trained_from), machine, failed)
    return {**files, "failed": failed}


def main(argv: list[str] | None = None) -> int:
    """``python3 -m sobolev_warmstart.scorecard`` (the same as ``sobolev-warmstart scorecard``)."""
    from .cli import main as cli_main
    return cli_main(["scorecard", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
