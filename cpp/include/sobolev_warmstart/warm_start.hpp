#pragma once
/// @file
/// @brief The warm-start path: roll out an exported policy (rollout.hpp), score the rollout with the
/// task's objective, refine it with the batch solver, and optionally solve the same instances from
/// the task's default guess ("TO alone") for comparison and the dual solve.

#include <cstdint>
#include <vector>

#include "sobolev_warmstart/batch_solver.hpp"
#include "sobolev_warmstart/rollout.hpp"

namespace sobolev_warmstart {

/// Guesses to start from where the policy's rollout is no plausible guess (it diverged, or its objective exceeds
/// cost_bound[i]): e.g. the nearest solved training instance's trajectory (Python: baselines.LookupFallback).
/// xs (n, T+1, nx), us (n, T, nu), cost_bound (n,), row-major; empty: no fallback (a diverged rollout is replaced by
/// the default guess, as before).
struct FallbackGuesses {
  std::vector<double> xs, us, cost_bound;
  bool empty() const { return cost_bound.empty(); }
};

struct WarmStartResult {
  RolloutResult rollout;
  std::vector<double> policy_cost;  ///< (n,) objective of the rollout (constraints not included)
  std::vector<std::uint8_t> replaced;  ///< (n,) 1 where the solve started from the fallback guess
  BatchSolveResult warm;            ///< solved from the rollout (from the default guess where it diverged)
  BatchSolveResult from_default;    ///< solved from the default guess (n = 0 unless requested)
  double rollout_wall_time = 0.0, warm_wall_time = 0.0, default_wall_time = 0.0;  ///< [s]
};

/// @pre runner.check_task(task) passed and inputs checked by the caller.
WarmStartResult warm_start(const Task &task, const PolicyRunner &runner, const RowMatrixXd &x0s,
                           const RowMatrixXd &params, const RolloutOptions &rollout_options,
                           const SolverOptions &solver_options, bool solve_from_default,
                           const FallbackGuesses &fallback = {});

} // namespace sobolev_warmstart
