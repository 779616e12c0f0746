/// @file
/// @brief Batch-solve throughput vs thread count, and the share of per-problem setup.
/// Usage: sw_bench_batch_solve ROBOTS_DIR [TASK] [VARIANT] [N] [MAX_THREADS]
/// Prints one line per thread count: problems/s, speed-up over one thread, setup fraction,
/// plus the cost of building a problem and a solver from scratch (what per-thread reuse saves).
#include "sobolev_warmstart/batch_solver.hpp"

#include <aligator/solvers/proxddp/solver-proxddp.hpp>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <omp.h>

using namespace sobolev_warmstart;

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s ROBOTS_DIR [TASK=pendulum] [VARIANT=] [N=64] [MAX_THREADS=nproc]\n", argv[0]);
    return 2;
  }
  const std::string robots_dir = argv[1];
  const std::string name = argc > 2 ? argv[2] : "pendulum";
  const std::string variant = argc > 3 ? argv[3] : "";
  const int n = argc > 4 ? std::atoi(argv[4]) : 64;
  const int max_threads = argc > 5 ? std::atoi(argv[5]) : omp_get_num_procs();
  const auto task = make_task(name, variant, robots_dir);
  RowMatrixXd x0s, params;
  task->sample_instances(0, n, x0s, params);
  SolverOptions options;

  // What building a problem and a solver from scratch costs, per instance (avoided by reuse).
  using Clock = std::chrono::steady_clock;
  const auto b0 = Clock::now();
  const int builds = 8;
  for (int k = 0; k < builds; ++k) {
    auto problem = task->create_problem();
    aligator::SolverProxDDPTpl<double> solver(options.tol, options.mu_init, options.max_iters);
    solver.setup(problem->problem());
  }
  const double build_s = std::chrono::duration<double>(Clock::now() - b0).count() / builds;

  std::printf("task %s/%s, %d instances, T = %d, tol = %g\n", task->name().c_str(), task->variant().c_str(), n,
              task->dims().horizon, options.tol);
  std::printf("building problem + solver from scratch: %.3f ms (done once per thread)\n", 1e3 * build_s);
  std::printf("%8s %12s %10s %14s %12s %12s %10s\n", "threads", "problems/s", "speedup", "setup_frac", "mean_iters",
              "solve_ms", "converged");
  double base = 0.0;
  for (int threads = 1; threads <= max_threads; threads *= 2) {
    options.num_threads = threads;
    solve_batch(*task, x0s.topRows(std::min(n, 2 * threads)), params.topRows(std::min(n, 2 * threads)), {}, {},
                options);  // warm-up
    const auto t0 = Clock::now();
    const BatchSolveResult r = solve_batch(*task, x0s, params, {}, {}, options);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double solve = std::accumulate(r.solve_time.begin(), r.solve_time.end(), 0.0);
    const double setup = std::accumulate(r.setup_time.begin(), r.setup_time.end(), 0.0);
    const double iters = std::accumulate(r.iterations.begin(), r.iterations.end(), 0.0) / n;
    const int conv = std::accumulate(r.converged.begin(), r.converged.end(), 0);
    const double rate = n / wall;
    if (threads == 1) base = rate;
    std::printf("%8d %12.2f %10.2f %14.4f %12.1f %12.2f %7d/%d\n", threads, rate, rate / base, setup / (setup + solve),
                iters, 1e3 * solve / n, conv, n);
  }
  return 0;
}
