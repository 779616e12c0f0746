#pragma once
/// @file
/// @brief Solve many instances of a task with ProxDDP, one solver and one problem per OpenMP
/// thread. Results never depend on the thread count.

#include "sobolev_warmstart/task.hpp"

namespace sobolev_warmstart {

/// @brief How the solver's dual variables start.
/// Adjoint: costates from the backward sweep that makes the initial guess stationary in the
/// states, and control-bound multipliers that make it stationary in the controls, kept when that
/// succeeds to within 100 tol (a nearly optimal guess), else every multiplier zero (see
/// batch_solver.cpp); Costates: the swept costates kept whatever the guess, the bound multipliers
/// gated as for Adjoint; Zero: all zero, ProxDDP's default.
enum class DualInit { Adjoint, Costates, Zero };

/// @brief How ProxDDP accepts a step: filter (default here: robust near the optimum, where warm
/// starts begin) or Aligator's default nonmonotone merit linesearch (stalls there).
enum class StepAcceptance { Filter, Linesearch };

/// @brief ProxDDP settings for a batch solve.
struct SolverOptions {
  double tol = 1e-4;        ///< primal and dual tolerance
  double mu_init = 1e-3;    ///< initial augmented-Lagrangian penalty
  int max_iters = 500;      ///< Newton iteration budget per instance
  int num_threads = 0;      ///< 0: all OpenMP threads
  bool refresh_gains = true;///< recompute the feedback gains by one backward pass at the solution
  DualInit dual_init = DualInit::Adjoint;
  StepAcceptance step_acceptance = StepAcceptance::Filter;
};

/// @brief Results of a batch, row-major contiguous arrays (first index: instance).
struct BatchSolveResult {
  int n = 0;
  TaskDims dims;
  std::vector<double> xs;            ///< (n, T+1, nx)
  std::vector<double> us;            ///< (n, T, nu)
  std::vector<double> gains;         ///< (n, T, nu, ndx): u ~ u*_t + K_t (x - x*_t)
  std::vector<double> cost;          ///< (n,)
  std::vector<int> iterations;       ///< (n,)
  std::vector<std::uint8_t> converged;  ///< (n,)
  std::vector<double> primal_infeasibility;  ///< (n,)
  std::vector<double> dual_infeasibility;    ///< (n,)
  std::vector<double> solve_time;    ///< (n,) seconds inside solver.run
  std::vector<double> setup_time;    ///< (n,) seconds re-targeting the problem and resetting
  std::vector<std::string> errors;   ///< (n,) empty, or the message of an exception in that solve
};

/// @brief Solve instances (x0s, params) from the given initial guesses, or the task's default
/// guess where xs_init is empty.
/// @param xs_init (n, T+1, nx) flattened, or empty; @param us_init (n, T, nu) flattened, or empty.
/// @pre Inputs checked (sizes, finiteness, instance validity) by the caller.
/// Exceptions inside a solve are caught per instance and reported in errors[i].
BatchSolveResult solve_batch(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                             const std::vector<double> &xs_init, const std::vector<double> &us_init,
                             const SolverOptions &options);

/// @brief The objective of each instance at a given trajectory (e.g. a policy's rollout), without
/// solving: sum of stage costs and the terminal cost. Constraints are not included.
/// @param xs (n, T+1, nx), @param us (n, T, nu) flattened. @pre sizes checked by the caller.
std::vector<double> trajectory_costs(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                                     const std::vector<double> &xs, const std::vector<double> &us,
                                     int num_threads);

} // namespace sobolev_warmstart
