"""sobolev_warmstart: learned warm starts for trajectory optimization.

The C++ core (``sobolev_warmstart._core``) builds and batch-solves optimal control problems with
Aligator's ProxDDP over Pinocchio dynamics; this package wraps it with typed Python objects.
"""

from . import _core
from .tasks import Task, available_tasks, make_task, robots_dir
from .solver import SolverOptions, SolveResult, solve
from .sensitivities import ChainedDerivatives, chained_derivatives, inverse_dynamics

__all__ = [
    "ChainedDerivatives",
    "SolveResult",
    "SolverOptions",
    "Task",
    "available_tasks",
    "chained_derivatives",
    "inverse_dynamics",
    "make_task",
    "robots_dir",
    "solve",
]
__version__ = "0.1.0"
