/// @file
/// @brief The warm-start path without Python: load an exported policy, roll it out, refine with
/// ProxDDP, and compare with the solver from its default guess ("TO alone") on the same instances.
/// Usage: sw_bench_warm_start ROBOTS_DIR POLICY TASK [VARIANT] [N=64] [THREADS=nproc] [ACTION_STEPS=0] [SEED=1]
///                            [--lookup=FILE] [--cost-ratio=auto] [--mu-init=1e-3] [--stall-iters=0] [--max-iters=500]
/// Prints, measured side by side in one run:
///   - policy latency per replan at batch 1 and the rollout time per instance,
///   - lockstep throughput (N instances per batched policy call) vs sequential batch-1 rollouts,
///     both on one thread, then lockstep over THREADS threads,
///   - TO alone vs warm-started: iterations, solve time, convergence, cost; with --lookup (a lookup file written by
///     Python's NearestNeighbourLookup.export) also the lookup's guess ("NN") and the warm start whose rollouts
///     above --cost-ratio times their nearest training solution's objective start from that guess ("NN fallback";
///     auto: 3x the policy's median such ratio on 64 fresh instances, at most 100, as Python's
///     LookupFallback.calibrated).
/// The solver settings (every column's): ProxDDP's initial penalty, the stall switch and the budget; the Python CLI
/// (`sobolev-warmstart bench`) passes the variant's measured ones (SolverOptions.for_task).
#include "sobolev_warmstart/lookup.hpp"
#include "sobolev_warmstart/warm_start.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <string>
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
  std::vector<std::string> pos;
  std::map<std::string, std::string> named;  // --key=value
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) named[a.substr(2, eq - 2)] = a.substr(eq + 1);
    else pos.push_back(a);
  }
  for (const auto &[key, value] : named)
    if (key != "lookup" && key != "cost-ratio" && key != "mu-init" && key != "stall-iters" && key != "max-iters") {
      std::fprintf(stderr, "unknown option --%s\n", key.c_str());
      pos.clear();
    }
  if (pos.size() < 3 || pos.size() > 8) {
    std::fprintf(stderr,
                 "usage: %s ROBOTS_DIR POLICY TASK [VARIANT] [N=64] [THREADS=nproc] [ACTION_STEPS=0] [SEED=1] "
                 "[--lookup=FILE] [--cost-ratio=auto] [--mu-init=1e-3] [--stall-iters=0] [--max-iters=500]\n",
                 argv[0]);
    return 2;
  }
  const auto opt = [&](const char *key, const std::string &fallback) {
    return named.count(key) ? named.at(key) : fallback;
  };
  try {
    const std::string robots_dir = pos[0], policy_path = pos[1], name = pos[2];
    const std::string variant = pos.size() > 3 ? pos[3] : "";
    const int n = pos.size() > 4 ? std::stoi(pos[4]) : 64;
    const int threads = pos.size() > 5 ? std::stoi(pos[5]) : omp_get_num_procs();
    const int action_steps = pos.size() > 6 ? std::stoi(pos[6]) : 0;
    const std::uint64_t seed = pos.size() > 7 ? std::stoull(pos[7]) : 1;
    const std::string lookup_path = opt("lookup", "");
    const std::string cost_ratio_text = opt("cost-ratio", "auto");
    const bool calibrate = cost_ratio_text == "auto";
    const double fixed_ratio = calibrate ? 0.0 : std::stod(cost_ratio_text);
    SolverOptions so;
    so.num_threads = threads;
    so.mu_init = std::stod(opt("mu-init", "1e-3"));
    so.stall_iters = std::stoi(opt("stall-iters", "0"));
    so.max_iters = std::stoi(opt("max-iters", "500"));
    if (n < 1 || threads < 1 || action_steps < 0 || !(so.mu_init > 0) || so.stall_iters < 0 || so.max_iters < 1)
      throw std::invalid_argument("N and THREADS must be positive, ACTION_STEPS non-negative, --mu-init positive, "
                                  "--stall-iters non-negative, --max-iters positive");
    const auto task = make_task(name, variant, robots_dir);
    const auto runner = PolicyRunner::load(policy_path, threads);
    runner->check_task(*task);
    const auto &md = runner->metadata();
    RowMatrixXd x0s, params;
    task->sample_instances(seed, n, x0s, params);
    std::printf("solver: initial penalty %g, stall switch %d, budget %d\n", so.mu_init, so.stall_iters, so.max_iters);
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

    ro.batch_size = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const WarmStartResult ws = warm_start(*task, *runner, x0s, params, ro, so, /*solve_from_default=*/true);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Columns: TO alone, [NN], the warm start, [the warm start with the NN fallback]; guess = rollout or lookup.
    struct Column {
      const char *name;
      const BatchSolveResult *solve;
      double guess_time;  // per instance [s]
      double policy_cost;  // median objective of the guess, NaN: none
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<Column> cols = {{"TO alone", &ws.from_default, 0.0, nan},
                                {"warm start", &ws.warm, mean(ws.rollout.time), median(ws.policy_cost)}};
    BatchSolveResult nn;
    WarmStartResult fb_ws;
    int replaced = 0;
    if (!lookup_path.empty()) {
      const auto lookup = NearestNeighbourLookup::load(lookup_path);
      lookup->check_task(*task);
      auto t1 = std::chrono::steady_clock::now();
      std::vector<double> xs, us;
      lookup->guesses(x0s, params, xs, us);
      const double nn_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / n;
      nn = solve_batch(*task, x0s, params, xs, us, so);
      double cost_ratio = fixed_ratio;
      std::string how;
      if (calibrate) {  // the bound follows the policy's precision (Python: LookupFallback.calibrated)
        RolloutOptions calibration_rollouts;
        calibration_rollouts.action_steps = action_steps;
        calibration_rollouts.num_threads = threads;
        const FallbackCalibration c = lookup->calibrate(*task, *runner, calibration_rollouts, FallbackCalibration{});
        cost_ratio = c.cost_ratio;
        char text[160];
        std::snprintf(text, sizeof text, " (%g x the policy's median ratio %.3g on %d fresh instances, at most %g)",
                      c.factor, c.median_ratio, c.instances, c.max_ratio);
        how = text;
      }
      t1 = std::chrono::steady_clock::now();
      const FallbackGuesses fb = lookup->fallback(x0s, params, cost_ratio);
      const double fb_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / n;
      fb_ws = warm_start(*task, *runner, x0s, params, ro, so, /*solve_from_default=*/false, fb);
      replaced = count(fb_ws.replaced);
      cols.insert(cols.begin() + 1, {"NN", &nn, nn_time, nan});
      cols.push_back({"NN fallback", &fb_ws.warm, mean(fb_ws.rollout.time) + fb_time, median(fb_ws.policy_cost)});
      std::printf("\nlookup %s: %d training instances of %s/%s; fallback above %g x the nearest solution's "
                  "objective%s (%d of %d rollouts replaced)\n",
                  lookup_path.c_str(), lookup->size(), lookup->task_name().c_str(), lookup->task_variant().c_str(),
                  cost_ratio, how.c_str(), replaced, n);
    }
    const auto row = [&](const char *label, const auto &cell) {
      std::printf("  %-24s", label);
      for (const auto &c : cols) cell(c);
      std::printf("\n");
    };
    std::printf("\nsolve, %d threads%8s", threads, "");
    for (const auto &c : cols) std::printf(" %12s", c.name);
    std::printf("\n");
    row("converged", [&](const Column &c) {
      std::printf(" %8d/%-3d", count(c.solve->converged), n);
    });
    row("iterations, mean", [&](const Column &c) { std::printf(" %12.1f", mean(c.solve->iterations)); });
    row("iterations, median", [&](const Column &c) { std::printf(" %12.1f", median(c.solve->iterations)); });
    row("solve time, mean [ms]", [&](const Column &c) { std::printf(" %12.2f", 1e3 * mean(c.solve->solve_time)); });
    row("guess, mean [ms]", [&](const Column &c) { std::printf(" %12.3f", 1e3 * c.guess_time); });
    row("total, mean [ms]", [&](const Column &c) {
      std::printf(" %12.2f", 1e3 * (mean(c.solve->solve_time) + c.guess_time));
    });
    row("cost, median converged", [&](const Column &c) {
      std::printf(" %12.4f", median_where(c.solve->cost, c.solve->converged));
    });
    row("guess's objective, median", [&](const Column &c) {
      if (std::isnan(c.policy_cost)) std::printf(" %12s", "-");
      else std::printf(" %12.4f", c.policy_cost);
    });
    std::printf("  wall for the batch [s]: TO alone %.3f, warm start %.3f\n", ws.default_wall_time,
                ws.rollout_wall_time + ws.warm_wall_time);
    std::printf("  (whole warm_start call incl. TO alone: %.3f s)\n", total);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
