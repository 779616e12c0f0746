#pragma once
/// @file
/// @brief The warm-start path: roll out an exported policy (rollout.hpp), score the rollout with the
/// task's objective, refine it with the batch solver, and optionally solve the same instances from
/// the task's default guess ("TO alone") for comparison and the dual solve.

#include "sobolev_warmstart/batch_solver.hpp"
#include "sobolev_warmstart/rollout.hpp"

namespace sobolev_warmstart {

struct WarmStartResult {
  RolloutResult rollout;
  std::vector<double> policy_cost;  ///< (n,) objective of the rollout (constraints not included)
  BatchSolveResult warm;            ///< solved from the rollout (from the default guess where it diverged)
  BatchSolveResult from_default;    ///< solved from the default guess (n = 0 unless requested)
  double rollout_wall_time = 0.0, warm_wall_time = 0.0, default_wall_time = 0.0;  ///< [s]
};

/// @pre runner.check_task(task) passed and inputs checked by the caller.
WarmStartResult warm_start(const Task &task, const PolicyRunner &runner, const RowMatrixXd &x0s,
                           const RowMatrixXd &params, const RolloutOptions &rollout_options,
                           const SolverOptions &solver_options, bool solve_from_default);

} // namespace sobolev_warmstart
