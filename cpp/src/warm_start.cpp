#include "sobolev_warmstart/warm_start.hpp"

#include <chrono>

namespace sobolev_warmstart {

WarmStartResult warm_start(const Task &task, const PolicyRunner &runner, const RowMatrixXd &x0s,
                           const RowMatrixXd &params, const RolloutOptions &rollout_options,
                           const SolverOptions &solver_options, bool solve_from_default) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point s) { return std::chrono::duration<double>(Clock::now() - s).count(); };
  WarmStartResult out;
  auto start = Clock::now();
  out.rollout = rollout_batch(task, runner, x0s, params, rollout_options);
  out.rollout_wall_time = since(start);
  out.policy_cost = trajectory_costs(task, x0s, params, out.rollout.xs, out.rollout.us, solver_options.num_threads);
  start = Clock::now();
  out.warm = solve_batch(task, x0s, params, out.rollout.xs, out.rollout.us, solver_options);
  out.warm_wall_time = since(start);
  if (solve_from_default) {
    start = Clock::now();
    out.from_default = solve_batch(task, x0s, params, {}, {}, solver_options);
    out.default_wall_time = since(start);
  }
  return out;
}

} // namespace sobolev_warmstart
