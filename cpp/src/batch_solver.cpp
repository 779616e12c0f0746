#include "sobolev_warmstart/batch_solver.hpp"

#include <aligator/solvers/proxddp/solver-proxddp.hpp>
#include <aligator/core/stage-data.hpp>
#include <aligator/core/cost-abstract.hpp>
#include <aligator/modelling/constraints/box-constraint.hpp>
#include <aligator/modelling/state-error.hpp>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <memory>

namespace sobolev_warmstart {
namespace {

using Solver = aligator::SolverProxDDPTpl<double>;
using Clock = std::chrono::steady_clock;

using BoxConstraint = aligator::BoxConstraintTpl<double>;
using ControlErrorResidual = aligator::ControlErrorResidualTpl<double>;

/// Multipliers consistent with a primal guess, so that a guess that is already (nearly) optimal is
/// recognised as such. Aligator's convention (lagrangian.hpp): L_x(t) = l_x(t) + A_t^T lam_{t+1} -
/// lam_t + J_x^T v_t and L_u(t) = l_u(t) + B_t^T lam_{t+1} + J_u^T v_t.
/// - Costates: the backward (adjoint) sweep that zeroes L_x with zero path multipliers; exact when the
///   path constraints do not depend on the state (control bounds).
/// - Control-bound multipliers (a box on ControlErrorResidual, J_u = I): v_t = -(l_u + B_t^T lam_{t+1})
///   projected onto the normal cone of the box at u_t: >= 0 at the upper bound, <= 0 at the lower
///   bound (within 1e-3 of the box width), 0 inside. Other path multipliers start at zero.
/// Costates and multipliers are kept only when they make the guess stationary in the controls up to
/// `accept_tol` (max |L_u|). At a guess that is not (nearly) optimal, costates swept backward through
/// unstable dynamics are far from the solution's and derail the solve; then every multiplier starts
/// at zero. Measured (benchmarks/bench_guess_quality.py): from the pendubot/reference's closed-loop
/// solutions perturbed by sigma = 1e-3 (horizon 300, dt = 0.01), adjoint costates converged 1 of 8
/// re-solves, zero costates 8 of 8 in 2 iterations; on the pendubot, UR5 and quadrotor, zero costates
/// need as many or fewer iterations from perturbed solutions.
/// From zero multipliers, ProxDDP's merit linesearch stalls at an optimal primal guess, and with active
/// bounds the augmented-Lagrangian outer loop needs tens of iterations to rebuild the multipliers
/// even when started at the solution.
void initial_multipliers(const TrajOptProblem &problem, aligator::TrajOptDataTpl<double> &data,
                         const std::vector<VectorXd> &xs, const std::vector<VectorXd> &us,
                         std::vector<VectorXd> &lams, std::vector<VectorXd> &vs, double accept_tol,
                         bool keep_costates) {
  problem.evaluate(xs, us, data);
  problem.computeDerivatives(xs, us, data, 1, /*compute_second_order=*/false);
  const std::size_t T = problem.numSteps();
  lams[T] = data.term_cost_data->Lx_;
  for (std::size_t t = T - 1; t >= 1; --t) {
    const auto &sd = *data.stage_data[t];
    lams[t] = sd.cost_data->Lx_;
    lams[t].noalias() += sd.dynamics_data->Jx().transpose() * lams[t + 1];
  }
  lams[0].setZero();
  for (auto &v : vs) v.setZero();
  double residual = 0.0;  // max |L_u| with the estimated multipliers
  for (std::size_t t = 0; t < T; ++t) {
    const auto &stage = *problem.stages_[t];
    const auto &sd = *data.stage_data[t];
    const auto &stack = stage.constraints_;
    VectorXd Lu = sd.cost_data->Lu_ + sd.dynamics_data->Ju().transpose() * lams[t + 1];
    long offset = 0;
    for (std::size_t j = 0; j < stack.size(); ++j) {
      const long dim = stack.dims()[j];
      const auto *box = dynamic_cast<const BoxConstraint *>(&*stack.sets[j]);
      if (box && stack.getConstraint<ControlErrorResidual>(j)) {
        const VectorXd &c = sd.constraint_data[j]->value_;
        const VectorXd g = Lu;  // l_u + B^T lam_{t+1}, before this constraint's multipliers
        for (long k = 0; k < dim; ++k) {
          // "at the bound" within 1e-3 of the box's width: a solution perturbed slightly (rounded to
          // float32, scaled, re-integrated) still has its saturated controls recognised
          const double range = box->upper_limit[k] - box->lower_limit[k];
          const double tol = 1e-3 * (std::isfinite(range) ? range : 1.0);
          double v = 0.0;
          if (c[k] >= box->upper_limit[k] - tol) v = std::max(-g[k], 0.0);
          else if (c[k] <= box->lower_limit[k] + tol) v = std::min(-g[k], 0.0);
          vs[t][offset + k] = v;
          Lu[k] += v;  // J_u = I for a ControlErrorResidual
        }
      }
      offset += dim;
    }
    residual = std::max(residual, Lu.size() ? Lu.cwiseAbs().maxCoeff() : 0.0);
  }
  if (!(residual <= accept_tol)) {
    for (auto &v : vs) v.setZero();
    if (!keep_costates)
      for (auto &l : lams) l.setZero();
  }
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The stall switch (SolverOptions::stall_iters). ProxDDP's filter can hover just above the dual tolerance at an
/// optimum for hundreds of iterations (a UR5 reach refined from a rollout within 4% of the optimal cost: dual
/// infeasibility 1.0-1.5e-4 from iteration ~10 to 684, where the merit linesearch converges in 16). Once the iterate is
/// primal-feasible (<= tol), its dual infeasibility within 10 tol and not halved in `window` iterations, the rest of
/// the solve takes the merit linesearch. Farther from stationarity the linesearch crawls where the filter jumps (the
/// lookup's guess for that reach: dual infeasibility 5e-2 decreasing by 1% per iteration, 500 iterations, where the
/// filter converges in 18). At the linesearch's first rejected step (one that raised the regularisation) or first
/// step that leaves primal feasibility, it goes back to the filter for good: on the pendubot's policy rollouts
/// (mu_init 0.1) the linesearch would otherwise go on failing until the solve gives up (1 of 256 lost), or wander
/// (179 -> 500 iterations). Invoked by ProxDDP after every accepted step; `reset` before each solve.
struct StallSwitch : aligator::CallbackBaseTpl<double> {
  Solver *solver = nullptr;
  double tol = 0.0;
  int window = 0;
  double reference = std::numeric_limits<double>::infinity();
  int since = 0;
  bool switched = false;
  bool reverted = false;

  void reset() {
    reference = std::numeric_limits<double>::infinity();
    since = 0;
    switched = reverted = false;
  }

  void call(const Workspace &, const Results &results) override {
    if (reverted || window <= 0) return;
    if (switched) {
      // the regularisation ProxDDP starts an iteration from (initializeRegularization); above it, the step failed
      const double start = solver->preg_last_ == 0.0
                               ? std::max(solver->reg_init, solver->reg_min)
                               : std::max(solver->reg_min, solver->preg_last_ * solver->reg_dec_k_);
      if (solver->preg_ > start || results.prim_infeas > tol) {
        solver->sa_strategy_ = aligator::StepAcceptanceStrategy::FILTER;
        reverted = true;
      }
      return;
    }
    if (results.dual_infeas < 0.5 * reference) {
      reference = results.dual_infeas;
      since = 0;
      return;
    }
    if (++since >= window && results.prim_infeas <= tol && results.dual_infeas <= 10.0 * tol) {
      solver->sa_strategy_ = aligator::StepAcceptanceStrategy::LINESEARCH_NONMONOTONE;
      solver->linesearch_.reset();
      switched = true;
    }
  }
};

/// Everything one thread needs, reused for every instance it solves, and kept in the task's pool for later calls with
/// the same options (workspace_key): each solve starts from the same solver state whatever it solved before (below).
struct ThreadWorkspace : ReusablePool::Entry {
  std::unique_ptr<TaskProblem> problem;
  std::unique_ptr<Solver> solver;
  std::shared_ptr<StallSwitch> stall_switch;
  std::vector<VectorXd> xs, us;
};

aligator::StepAcceptanceStrategy step_strategy(const SolverOptions &options) {
  return options.step_acceptance == StepAcceptance::Filter ? aligator::StepAcceptanceStrategy::FILTER
                                                           : aligator::StepAcceptanceStrategy::LINESEARCH_NONMONOTONE;
}

int total_size(const std::vector<VectorXd> &vs) {
  int s = 0;
  for (const auto &v : vs) s += int(v.size());
  return s;
}

void flatten(const std::vector<VectorXd> &vs, double *out) {
  for (const auto &v : vs) {
    Eigen::Map<VectorXd>(out, v.size()) = v;
    out += v.size();
  }
}

void unflatten(const double *in, std::vector<VectorXd> &vs) {
  for (auto &v : vs) {
    v = Eigen::Map<const VectorXd>(in, v.size());
    in += v.size();
  }
}

/// What a workspace is built for: every option its construction reads, exactly (hexadecimal floats).
std::string workspace_key(const SolverOptions &o) {
  char key[160];
  std::snprintf(key, sizeof key, "proxddp tol=%a mu=%a iters=%d sa=%d stall=%d", o.tol, o.mu_init, o.max_iters,
                int(o.step_acceptance), o.stall_iters);
  return key;
}

void make_workspace(const Task &task, const SolverOptions &options, ThreadWorkspace &ws) {
  ws.problem = task.create_problem();
  ws.solver = std::make_unique<Solver>(options.tol, options.mu_init, std::size_t(options.max_iters));
  // setup() builds the merit linesearch only when it is the strategy; the stall switch may need it mid-solve
  ws.solver->sa_strategy_ = aligator::StepAcceptanceStrategy::LINESEARCH_NONMONOTONE;
  ws.solver->setup(ws.problem->problem());
  ws.solver->sa_strategy_ = step_strategy(options);
  ws.stall_switch = std::make_shared<StallSwitch>();
  ws.stall_switch->solver = ws.solver.get();
  ws.stall_switch->tol = options.tol;
  ws.stall_switch->window = options.stall_iters;
  if (options.stall_iters > 0) ws.solver->registerCallback("stall_switch", ws.stall_switch);
}

} // namespace

std::pair<int, int> multiplier_sizes(const Task &task) {
  const SolverOptions options;
  const std::string key = workspace_key(options);
  std::unique_ptr<ThreadWorkspace> ws(static_cast<ThreadWorkspace *>(task.reusable().take(key).release()));
  if (!ws) {
    auto built = std::make_unique<ThreadWorkspace>();
    make_workspace(task, options, *built);
    ws = std::move(built);
  }
  const std::pair<int, int> sizes{total_size(ws->solver->results_.lams), total_size(ws->solver->results_.vs)};
  task.reusable().put(key, std::move(ws));
  return sizes;
}

BatchSolveResult solve_batch(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                             const std::vector<double> &xs_init, const std::vector<double> &us_init,
                             const SolverOptions &options, const std::vector<double> &lams_init,
                             const std::vector<double> &vs_init) {
  const TaskDims d = task.dims();
  const int n = int(x0s.rows()), T = d.horizon;
  BatchSolveResult out;
  out.n = n;
  out.dims = d;
  out.xs.assign(std::size_t(n) * (T + 1) * d.nx, 0.0);
  out.us.assign(std::size_t(n) * T * d.nu, 0.0);
  out.gains.assign(std::size_t(n) * T * d.nu * d.ndx, 0.0);
  out.cost.assign(n, 0.0);
  out.iterations.assign(n, 0);
  out.converged.assign(n, 0);
  out.primal_infeasibility.assign(n, 0.0);
  out.dual_infeasibility.assign(n, 0.0);
  out.solve_time.assign(n, 0.0);
  out.setup_time.assign(n, 0.0);
  out.errors.assign(n, std::string());

  const int num_threads = std::max(1, std::min(options.num_threads > 0 ? options.num_threads : omp_get_max_threads(), n));
  const std::string key = workspace_key(options);
  ReusablePool &pool = task.reusable();
  // each thread's workspace, from the task's pool or built on first use; all go back to the pool at the end
  std::vector<std::unique_ptr<ThreadWorkspace>> workspaces(num_threads);
  const auto take_workspace = [&](std::unique_ptr<ThreadWorkspace> &ws) {
    std::unique_ptr<ThreadWorkspace> taken(static_cast<ThreadWorkspace *>(pool.take(key).release()));
    if (!taken) {  // built whole or not at all: a build that throws leaves `ws` empty, to be tried again
      taken = std::make_unique<ThreadWorkspace>();
      make_workspace(task, options, *taken);
    }
    ws = std::move(taken);
  };
  struct GiveBack {  // also when an exception leaves this function
    ReusablePool &pool;
    const std::string &key;
    std::vector<std::unique_ptr<ThreadWorkspace>> &workspaces;
    ~GiveBack() {
      for (auto &ws : workspaces) pool.put(key, std::move(ws));
    }
  } give_back{pool, key, workspaces};
  // thread 0's workspace, taken here, tells the multipliers' sizes (the same problem for every instance)
  take_workspace(workspaces[0]);
  out.n_lams = total_size(workspaces[0]->solver->results_.lams);
  out.n_vs = total_size(workspaces[0]->solver->results_.vs);
  const bool given_duals = !lams_init.empty() || !vs_init.empty();
  if (given_duals && (lams_init.size() != std::size_t(n) * out.n_lams || vs_init.size() != std::size_t(n) * out.n_vs))
    throw std::invalid_argument("lams_init, vs_init: expected (" + std::to_string(n) + ", " +
                                std::to_string(out.n_lams) + ") and (" + std::to_string(n) + ", " +
                                std::to_string(out.n_vs) + ") multipliers, got " + std::to_string(lams_init.size()) +
                                " and " + std::to_string(vs_init.size()) + " values");
  out.lams.assign(std::size_t(n) * out.n_lams, 0.0);
  out.vs.assign(std::size_t(n) * out.n_vs, 0.0);

#pragma omp parallel num_threads(num_threads)
  {
    Eigen::setNbThreads(1);
    std::unique_ptr<ThreadWorkspace> &mine = workspaces[omp_get_thread_num()];
#pragma omp for schedule(dynamic, 1)
    for (int i = 0; i < n; ++i) {
      try {
        const auto setup_start = Clock::now();
        if (!mine) take_workspace(mine);
        ThreadWorkspace &ws = *mine;
        ws.problem->set_instance(x0s.row(i).transpose(), params.row(i).transpose());
        if (xs_init.empty()) {
          task.default_initial_guess(x0s.row(i).transpose(), params.row(i).transpose(), ws.xs, ws.us);
        } else {
          ws.xs.resize(T + 1);
          ws.us.resize(T);
          for (int t = 0; t <= T; ++t)
            ws.xs[t] = Eigen::Map<const VectorXd>(&xs_init[(std::size_t(i) * (T + 1) + t) * d.nx], d.nx);
          for (int t = 0; t < T; ++t)
            ws.us[t] = Eigen::Map<const VectorXd>(&us_init[(std::size_t(i) * T + t) * d.nu], d.nu);
        }
        Solver &solver = *ws.solver;
        // Start every solve from the same solver state, whatever this thread solved before:
        // zero multipliers and gains, initial penalty and regularisation, fresh linesearch memory
        // (the nonmonotone linesearch keeps a moving average). Then results are bit-identical to
        // a fresh solver's, so they do not depend on the thread count or the schedule.
        auto &res = solver.results_;
        for (auto &v : res.vs) v.setZero();
        if (given_duals) {
          unflatten(&lams_init[std::size_t(i) * out.n_lams], res.lams);
          unflatten(&vs_init[std::size_t(i) * out.n_vs], res.vs);
        } else if (options.dual_init == DualInit::Zero)
          for (auto &l : res.lams) l.setZero();
        else
          initial_multipliers(ws.problem->problem(), solver.workspace_.problem_data, ws.xs, ws.us, res.lams, res.vs,
                              100.0 * options.tol, options.dual_init == DualInit::Costates);
        for (auto &g : res.gains_) g.setZero();
        solver.preg_ = solver.reg_init;
        solver.sa_strategy_ = step_strategy(options);  // a stalled filter solve may have switched it
        ws.stall_switch->reset();
        solver.linesearch_.reset();
        solver.filter_.resetFilter(0.0, solver.ls_params.alpha_min, solver.ls_params.max_num_steps);
        solver.mu_init_ = options.mu_init;
        solver.max_iters = std::size_t(options.max_iters);
        out.setup_time[i] = seconds_since(setup_start);

        const auto solve_start = Clock::now();
        solver.run(ws.problem->problem(), ws.xs, ws.us, res.vs, res.lams);
        out.solve_time[i] = seconds_since(solve_start);
        out.cost[i] = res.traj_cost_;
        out.iterations[i] = int(res.num_iters);
        out.converged[i] = res.conv ? 1 : 0;
        out.primal_infeasibility[i] = res.prim_infeas;
        out.dual_infeasibility[i] = res.dual_infeas;
        for (int t = 0; t <= T; ++t)
          Eigen::Map<VectorXd>(&out.xs[(std::size_t(i) * (T + 1) + t) * d.nx], d.nx) = res.xs[t];
        for (int t = 0; t < T; ++t)
          Eigen::Map<VectorXd>(&out.us[(std::size_t(i) * T + t) * d.nu], d.nu) = res.us[t];
        flatten(res.lams, &out.lams[std::size_t(i) * out.n_lams]);
        flatten(res.vs, &out.vs[std::size_t(i) * out.n_vs]);

        if (options.refresh_gains) {
          // The gains in the results come from the last backward pass, one step before the
          // returned iterate (none at all when the guess was already optimal). One more iteration
          // from the solution, at the final penalty, gives gains at the solution itself; the
          // trajectory it would move to is discarded.
          const std::vector<VectorXd> xs_star = res.xs, us_star = res.us, vs_star = res.vs,
                                      lams_star = res.lams;
          const double tol = solver.target_tol_;
          solver.mu_init_ = solver.mu();
          solver.max_iters = 1;
          solver.setDualTolerance(0.0);
          solver.target_tol_ = 0.0;
          solver.run(ws.problem->problem(), xs_star, us_star, vs_star, lams_star);
          solver.target_tol_ = tol;
          solver.setDualTolerance(tol);
        }
        for (int t = 0; t < T; ++t) {
          using RowMajorMap = Eigen::Map<RowMatrixXd>;
          RowMajorMap K(&out.gains[std::size_t(i) * T * d.nu * d.ndx + std::size_t(t) * d.nu * d.ndx], d.nu, d.ndx);
          K = res.getFeedback(t).topRows(d.nu);
        }
      } catch (const std::exception &e) {
        out.errors[i] = e.what();
        out.converged[i] = 0;
      } catch (...) {  // never let an exception escape the OpenMP region (std::terminate)
        out.errors[i] = "unknown exception in the solver";
        out.converged[i] = 0;
      }
    }
  }
  return out;
}

namespace {

/// A thread's problem and its data for evaluating trajectories, kept in the task's pool between calls.
struct EvaluationWorkspace : ReusablePool::Entry {
  std::unique_ptr<TaskProblem> problem;
  std::unique_ptr<aligator::TrajOptDataTpl<double>> data;
};

/// Evaluates the problem of every instance at its trajectory (xs, us) in OpenMP threads and returns
/// measure(problem, data) per instance; `what` names the caller in errors.
template <typename Measure>
std::vector<double> evaluate_trajectories(const char *what, const Task &task, const RowMatrixXd &x0s,
                                          const RowMatrixXd &params, const std::vector<double> &xs,
                                          const std::vector<double> &us, int num_threads, const Measure &measure) {
  const TaskDims d = task.dims();
  const int n = int(x0s.rows()), T = d.horizon;
  std::vector<double> values(n, 0.0);
  std::vector<std::string> errors(n);
  const int threads = std::max(1, std::min(num_threads > 0 ? num_threads : omp_get_max_threads(), std::max(n, 1)));
  static const std::string key = "evaluation";
  ReusablePool &pool = task.reusable();
#pragma omp parallel num_threads(threads)
  {
    Eigen::setNbThreads(1);
    std::unique_ptr<EvaluationWorkspace> ws;
    std::vector<VectorXd> xv(T + 1), uv(T);
#pragma omp for schedule(dynamic, 4)
    for (int i = 0; i < n; ++i) {
      try {
        if (!ws) {
          std::unique_ptr<EvaluationWorkspace> taken(static_cast<EvaluationWorkspace *>(pool.take(key).release()));
          if (!taken) {  // built whole or not at all, as solve_batch's workspaces
            taken = std::make_unique<EvaluationWorkspace>();
            taken->problem = task.create_problem();
            taken->data = std::make_unique<aligator::TrajOptDataTpl<double>>(taken->problem->problem());
          }
          ws = std::move(taken);
        }
        auto &problem = ws->problem;
        auto &data = ws->data;
        problem->set_instance(x0s.row(i).transpose(), params.row(i).transpose());
        for (int t = 0; t <= T; ++t)
          xv[t] = Eigen::Map<const VectorXd>(&xs[(std::size_t(i) * (T + 1) + t) * d.nx], d.nx);
        for (int t = 0; t < T; ++t)
          uv[t] = Eigen::Map<const VectorXd>(&us[(std::size_t(i) * T + t) * d.nu], d.nu);
        const double cost = problem->problem().evaluate(xv, uv, *data);
        values[i] = measure(cost, problem->problem(), *data);
      } catch (const std::exception &e) {
        errors[i] = e.what();
      } catch (...) {
        errors[i] = "unknown exception";
      }
    }
    pool.put(key, std::move(ws));
  }
  for (const auto &e : errors)
    if (!e.empty()) throw std::runtime_error(std::string(what) + ": " + e);
  return values;
}

/// Infinity norm of c - proj_C(c) over the constraints of one stack, at values already evaluated in `data`.
double stack_violation(const aligator::ConstraintStackTpl<double> &stack,
                       const std::vector<std::shared_ptr<aligator::StageFunctionDataTpl<double>>> &data) {
  double worst = 0.0;
  VectorXd projected;
  for (std::size_t j = 0; j < stack.size(); ++j) {
    const VectorXd &c = data[j]->value_;
    projected.resize(c.size());
    stack.sets[j]->projection(c, projected);
    if (c.size() > 0) worst = std::max(worst, (c - projected).lpNorm<Eigen::Infinity>());
  }
  return worst;
}

} // namespace

std::vector<double> trajectory_costs(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                                     const std::vector<double> &xs, const std::vector<double> &us,
                                     int num_threads) {
  return evaluate_trajectories("trajectory_costs", task, x0s, params, xs, us, num_threads,
                               [](double cost, const TrajOptProblem &, const aligator::TrajOptDataTpl<double> &) {
                                 return cost;
                               });
}

std::vector<double> constraint_violations(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params,
                                          const std::vector<double> &xs, const std::vector<double> &us,
                                          int num_threads) {
  return evaluate_trajectories(
      "constraint_violations", task, x0s, params, xs, us, num_threads,
      [](double, const TrajOptProblem &problem, const aligator::TrajOptDataTpl<double> &data) {
        double worst = stack_violation(problem.term_cstrs_, data.term_cstr_data);
        for (std::size_t t = 0; t < problem.stages_.size(); ++t)
          worst = std::max(worst, stack_violation(problem.stages_[t]->constraints_, data.stage_data[t]->constraint_data));
        return worst;
      });
}

} // namespace sobolev_warmstart
