/// @file
/// @brief The warm-start path without Python: load an exported policy, roll it out, refine with
/// ProxDDP, and compare with the solver from its default guess ("TO alone") on the same instances.
/// Usage: sw_bench_warm_start ROBOTS_DIR POLICY TASK [VARIANT] [N=64] [THREADS=nproc] [ACTION_STEPS=0] [SEED=1]
/// Prints, measured side by side in one run:
///   - policy latency per replan at batch 1 and the rollout time per instance,
///   - lockstep throughput (N instances per batched policy call) vs sequential batch-1 rollouts,
///     both on one thread, then lockstep over THREADS threads,
///   - TO alone vs warm-started: iterations, solve time, convergence, cost.
#include "sobolev_warmstart/warm_start.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <omp.h>

using namespace sobolev_warmstart;

namespace {

template <typename T>
double mean(const std::vector<T> &v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

template <typename T>
double median(std::vector<T> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? double(v[m]) : 0.5 * (double(v[m - 1]) + double(v[m]));
}

int count(const std::vector<std::uint8_t> &c) { return std::accumulate(c.begin(), c.end(), 0); }

double median_where(const std::vector<double> &v, const std::vector<std::uint8_t> &mask) {
  std::vector<double> s;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (mask[i]) s.push_back(v[i]);
  return median(s);
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: %s ROBOTS_DIR POLICY TASK [VARIANT] [N=64] [THREADS=nproc] [ACTION_STEPS=0] [SEED=1]\n",
                 argv[0]);
    return 2;
  }
  try {
    const std::string robots_dir = argv[1], policy_path = argv[2], name = argv[3];
    const std::string variant = argc > 4 ? argv[4] : "";
    const int n = argc > 5 ? std::atoi(argv[5]) : 64;
    const int threads = argc > 6 ? std::atoi(argv[6]) : omp_get_num_procs();
    const int action_steps = argc > 7 ? std::atoi(argv[7]) : 0;
    const std::uint64_t seed = argc > 8 ? std::strtoull(argv[8], nullptr, 10) : 1;
    const auto task = make_task(name, variant, robots_dir);
    const auto runner = PolicyRunner::load(policy_path, threads);
    runner->check_task(*task);
    const auto &md = runner->metadata();
    RowMatrixXd x0s, params;
    task->sample_instances(seed, n, x0s, params);
    std::printf("task %s/%s, T = %d; policy %s (%s, %s), H = %d, h = %d, A = %d, K = %d; %d instances (seed %llu)\n",
                task->name().c_str(), task->variant().c_str(), task->dims().horizon, policy_path.c_str(),
                md.kind.c_str(), md.backend.c_str(), md.horizon, md.history,
                action_steps > 0 ? action_steps : md.action_steps, md.num_steps, n, (unsigned long long)seed);

    RolloutOptions ro;
    ro.action_steps = action_steps;
    ro.seed = seed;
    // warm-up (first calls allocate and, for TorchScript, optimise the graph)
    ro.batch_size = 1;
    ro.num_threads = 1;
    rollout_batch(*task, *runner, x0s.topRows(std::min(n, 2)), params.topRows(std::min(n, 2)), ro);
    ro.batch_size = n;
    rollout_batch(*task, *runner, x0s, params, ro);

    ro.batch_size = 1;
    ro.num_threads = 1;
    const RolloutResult seq = rollout_batch(*task, *runner, x0s, params, ro);
    ro.batch_size = n;
    const RolloutResult lock = rollout_batch(*task, *runner, x0s, params, ro);
    ro.batch_size = 0;
    ro.num_threads = threads;
    const RolloutResult par = rollout_batch(*task, *runner, x0s, params, ro);

    std::printf("\nrollout (%d replans per instance)\n", seq.num_replans);
    std::printf("  policy latency per replan, batch 1:      %8.3f ms\n", 1e3 * seq.policy_call_time / seq.policy_calls);
    std::printf("  rollout time per instance, batch 1:      %8.3f ms (policy %.1f%%)\n", 1e3 * mean(seq.time),
                100.0 * seq.policy_call_time / std::max(1e-12, seq.wall_time));
    std::printf("  sequential batch-1, 1 thread:            %8.1f rollouts/s\n", n / seq.wall_time);
    std::printf("  lockstep N = %d, 1 thread:               %8.1f rollouts/s  (%.2fx sequential)\n", n,
                n / lock.wall_time, seq.wall_time / lock.wall_time);
    std::printf("  lockstep over %d threads:                 %8.1f rollouts/s  (%.2fx sequential)\n", threads,
                n / par.wall_time, seq.wall_time / par.wall_time);
    std::printf("  policy latency per replan, batch %d:     %8.3f ms (%.3f ms per instance)\n", n,
                1e3 * lock.policy_call_time / lock.policy_calls, 1e3 * lock.policy_call_time / lock.policy_calls / n);

    SolverOptions so;
    so.num_threads = threads;
    ro.batch_size = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const WarmStartResult ws = warm_start(*task, *runner, x0s, params, ro, so, /*solve_from_default=*/true);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto &d = ws.from_default, &w = ws.warm;
    std::printf("\nsolve, %d threads          %12s %12s\n", threads, "TO alone", "warm start");
    std::printf("  converged              %9d/%-3d %8d/%-3d\n", count(d.converged), n, count(w.converged), n);
    std::printf("  iterations, mean       %12.1f %12.1f\n", mean(d.iterations), mean(w.iterations));
    std::printf("  iterations, median     %12.1f %12.1f\n", median(d.iterations), median(w.iterations));
    std::printf("  solve time, mean [ms]  %12.2f %12.2f\n", 1e3 * mean(d.solve_time), 1e3 * mean(w.solve_time));
    std::printf("  rollout, mean [ms]     %12s %12.2f\n", "-", 1e3 * mean(ws.rollout.time));
    std::printf("  total, mean [ms]       %12.2f %12.2f\n", 1e3 * mean(d.solve_time),
                1e3 * (mean(w.solve_time) + mean(ws.rollout.time)));
    std::printf("  wall for the batch [s] %12.3f %12.3f\n", ws.default_wall_time, ws.rollout_wall_time + ws.warm_wall_time);
    std::printf("  cost, median converged %12.4f %12.4f   (policy rollout alone: median %.4f)\n",
                median_where(d.cost, d.converged), median_where(w.cost, w.converged), median(ws.policy_cost));
    std::printf("  (whole warm_start call incl. TO alone: %.3f s)\n", total);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
