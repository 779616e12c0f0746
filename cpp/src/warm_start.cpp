#include "sobolev_warmstart/warm_start.hpp"

#include <algorithm>
#include <chrono>

namespace sobolev_warmstart {

WarmStartResult warm_start(const Task &task, const PolicyRunner &runner, const RowMatrixXd &x0s,
                           const RowMatrixXd &params, const RolloutOptions &rollout_options,
                           const SolverOptions &solver_options, bool solve_from_default,
                           const FallbackGuesses &fallback) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point s) { return std::chrono::duration<double>(Clock::now() - s).count(); };
  WarmStartResult out;
  auto start = Clock::now();
  out.rollout = rollout_batch(task, runner, x0s, params, rollout_options);
  out.rollout_wall_time = since(start);
  out.policy_cost = trajectory_costs(task, x0s, params, out.rollout.xs, out.rollout.us, solver_options.num_threads);
  // A rollout that diverged is no guess: those instances are solved from the fallback guess, or the default
  // guess without one, instead (flagged in rollout.errors), so a bad policy costs iterations, never a derailed
  // solve. With a fallback, a rollout whose objective exceeds its bound is replaced too.
  const TaskDims d = task.dims();
  const int T = d.horizon;
  const std::size_t xrow = std::size_t(T + 1) * d.nx, urow = std::size_t(T) * d.nu;
  std::vector<double> xs_init = out.rollout.xs, us_init = out.rollout.us;
  std::vector<VectorXd> xs_default, us_default;
  out.replaced.assign(x0s.rows(), 0);
  for (int i = 0; i < int(x0s.rows()); ++i) {
    const bool diverged = !out.rollout.errors[i].empty();
    if (!fallback.empty() && (diverged || !(out.policy_cost[i] <= fallback.cost_bound[i]))) {
      std::copy_n(fallback.xs.begin() + i * xrow, xrow, xs_init.begin() + i * xrow);
      std::copy_n(fallback.us.begin() + i * urow, urow, us_init.begin() + i * urow);
      out.replaced[i] = 1;
      continue;
    }
    if (!diverged) continue;
    task.default_initial_guess(x0s.row(i).transpose(), params.row(i).transpose(), xs_default, us_default);
    for (int t = 0; t <= T; ++t)
      Eigen::Map<VectorXd>(&xs_init[(std::size_t(i) * (T + 1) + t) * d.nx], d.nx) = xs_default[t];
    for (int t = 0; t < T; ++t)
      Eigen::Map<VectorXd>(&us_init[(std::size_t(i) * T + t) * d.nu], d.nu) = us_default[t];
  }
  start = Clock::now();
  out.warm = solve_batch(task, x0s, params, xs_init, us_init, solver_options);
  out.warm_wall_time = since(start);
  if (solve_from_default) {
    start = Clock::now();
    out.from_default = solve_batch(task, x0s, params, {}, {}, solver_options);
    out.default_wall_time = since(start);
  }
  return out;
}

} // namespace sobolev_warmstart
