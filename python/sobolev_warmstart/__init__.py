"""sobolev_warmstart: learned warm starts for trajectory optimization.

The C++ core (``sobolev_warmstart._core``) builds and batch-solves optimal control problems with
Aligator's ProxDDP over Pinocchio dynamics; the Python side trains Sobolev diffusion policies on
the solutions and exports them.
"""

import torch  # noqa: F401  (first: the extension and torch share one libgomp, loaded by torch)

from . import _core
from .tasks import Task, available_tasks, make_task, robots_dir
from .solver import SolverOptions, SolveResult, multiplier_sizes, solve
from .sensitivities import (ChainedDerivatives, ParameterJacobians, chained_derivatives, inverse_dynamics,
                            parameter_jacobians, with_parameter_jacobians)
from .data import (
    ChunkDataset,
    ChunkSpec,
    Normaliser,
    Normalisers,
    TaskInfo,
    TrajectoryData,
    build_dataset,
    concatenate_trajectories,
    load_dataset,
    save_dataset,
)
from .models import MLPConfig, UNetConfig
from .diffusion import DiffusionConfig
from .train import TrainConfig, load_checkpoint, train
from .policy import DiffusionPolicy, MLPPolicy, load_policy, save_policy
from .export import (export_aoti, export_native, export_policy, export_torchscript, load_aoti, load_native,
                     load_torchscript)
from .rollout import PolicyRunner, RolloutResult, load_policy_runner, rollout, rollout_noise
from .warmstart import DualSolve, WarmStartResult, perturbed_solution_guess, select_dual, warm_start
from .baselines import LookupFallback, NearestNeighbourLookup
from .evaluate import EvaluationResult, evaluate_methods
from .consolidate import ConsolidationReport, consolidate_data, consolidate_dataset
from .symmetry import SymmetryReport, augment_by_symmetry, augment_dataset, has_symmetry
from .relabel import RelabelReport, relabel_rollouts
from .scorecard import scorecard

__all__ = [
    "ChainedDerivatives", "ChunkDataset", "ConsolidationReport", "consolidate_data", "consolidate_dataset",
    "SymmetryReport", "augment_by_symmetry", "augment_dataset", "has_symmetry", "DualSolve", "EvaluationResult", "PolicyRunner", "RolloutResult", "WarmStartResult", "ChunkSpec", "DiffusionConfig", "DiffusionPolicy", "MLPConfig",
    "LookupFallback", "MLPPolicy", "NearestNeighbourLookup", "Normaliser", "Normalisers", "SolveResult", "SolverOptions", "Task", "TaskInfo", "TrainConfig",
    "TrajectoryData", "UNetConfig", "available_tasks", "build_dataset", "chained_derivatives", "evaluate_methods", "export_aoti",
    "export_native", "export_policy", "export_torchscript", "inverse_dynamics", "load_aoti", "load_checkpoint", "load_dataset", "load_native", "load_policy",
    "load_torchscript", "make_task", "multiplier_sizes", "robots_dir", "save_dataset", "save_policy", "solve", "train",
    "load_policy_runner", "perturbed_solution_guess", "rollout", "rollout_noise", "scorecard", "select_dual", "warm_start",
    "ParameterJacobians", "parameter_jacobians", "with_parameter_jacobians",
    "RelabelReport", "concatenate_trajectories", "relabel_rollouts",
]
__version__ = "0.1.0"
