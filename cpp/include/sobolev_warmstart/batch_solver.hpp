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
  /// With the filter: switch to the merit linesearch once the iterate is primal-feasible (<= tol) and its dual
  /// infeasibility, within 10 tol, has not halved in this many iterations (the filter can hover just above the dual
  /// tolerance at the optimum for hundreds of iterations); back to the filter for good at the linesearch's first
  /// rejected or infeasible step (batch_solver.cpp, StallSwitch). 0 (default): never switch.
  int stall_iters = 0;
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
  int n_lams = 0;                    ///< multipliers of the initial condition and the dynamics, all stages
  int n_vs = 0;                      ///< multipliers of the path and terminal constraints, all stages
  std::vector<double> lams;          ///< (n, n_lams): lams[0..T] concatenated, at the returned iterate
  std::vector<double> vs;            ///< (n, n_vs): vs[0..T] concatenated, at the returned iterate
};

/// @brief Solve instances (x0s, params) from the given initial guesses, or the task's default
/// guess where xs_init is empty.
/// @param xs_init (n, T+1, nx) flattened, or empty; @param us_init (n, T, nu) flattened, or empty.
/// @param lams_init (n, n_lams), vs_init (n, n_vs) flattened, both or neither: the solver's multipliers to
/// start from (e.g. those of a neighbouring instance's solution), in place of options.dual_init.
/// @pre Inputs checked (sizes, finiteness, instance validity) by the caller; multiplier sizes are checked
/// here (std::invalid_argument), since they depend on the problem (multiplier_sizes).
/// Exceptions inside a solve are caught per instance and reported in errors[i].
BatchSolveResult solve_batch(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                             const std::vector<double> &xs_init, const std::vector<double> &us_init,
                             const SolverOptions &options, const std::vector<double> &lams_init = {},
                             const std::vector<double> &vs_init = {});

/// @brief (n_lams, n_vs): the sizes of one instance's multipliers in BatchSolveResult.
std::pair<int, int> multiplier_sizes(const Task &task);

/// @brief The objective of each instance at a given trajectory (e.g. a policy's rollout), without
/// solving: sum of stage costs and the terminal cost. Constraints are not included.
/// @param xs (n, T+1, nx), @param us (n, T, nu) flattened. @pre sizes checked by the caller.
std::vector<double> trajectory_costs(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                                     const std::vector<double> &xs, const std::vector<double> &us,
                                     int num_threads);

/// @brief The largest path- or terminal-constraint violation of each instance at a given trajectory (e.g. a
/// policy's rollout), in the constraints' own units, as the solver measures primal infeasibility: the infinity
/// norm of c - proj_C(c) over every stage's constraints c(x_t, u_t) in C and the terminal ones c(x_T). The
/// dynamics and the initial condition are not included (a rollout satisfies them by construction).
/// @param xs (n, T+1, nx), @param us (n, T, nu) flattened. @pre sizes checked by the caller.
std::vector<double> constraint_violations(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                                          const std::vector<double> &xs, const std::vector<double> &us,
                                          int num_threads);

} // namespace sobolev_warmstart
