#include "common.hpp"
#include "sobolev_warmstart/batch_solver.hpp"

namespace sobolev_warmstart::bindings {

SolverOptions make_solver_options(double tol, double mu_init, int max_iters, int num_threads, bool refresh_gains,
                                  const std::string &dual_init, const std::string &step_acceptance,
                                  int stall_iters) {
  if (!(tol > 0.0)) throw py::value_error("tol: expected a tolerance > 0, got " + std::to_string(tol));
  if (!(mu_init > 0.0)) throw py::value_error("mu_init: expected a penalty > 0, got " + std::to_string(mu_init));
  if (max_iters < 1) throw py::value_error("max_iters: expected >= 1, got " + std::to_string(max_iters));
  SolverOptions options;
  options.tol = tol;
  options.mu_init = mu_init;
  options.max_iters = max_iters;
  options.num_threads = check_threads(num_threads);
  options.refresh_gains = refresh_gains;
  if (dual_init != "adjoint" && dual_init != "costates" && dual_init != "zero")
    throw py::value_error("dual_init: expected 'adjoint', 'costates' or 'zero', got '" + dual_init + "'");
  options.dual_init = dual_init == "adjoint"    ? DualInit::Adjoint
                      : dual_init == "costates" ? DualInit::Costates
                                                : DualInit::Zero;
  if (step_acceptance != "linesearch" && step_acceptance != "filter")
    throw py::value_error("step_acceptance: expected 'linesearch' or 'filter', got '" + step_acceptance + "'");
  options.step_acceptance = step_acceptance == "filter" ? StepAcceptance::Filter : StepAcceptance::Linesearch;
  if (stall_iters < 0)
    throw py::value_error("stall_iters: expected an integer >= 0 (0: never switch), got " +
                          std::to_string(stall_iters));
  options.stall_iters = stall_iters;
  return options;
}

void check_instances(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params) {
  for (Eigen::Index i = 0; i < x0s.rows(); ++i) {
    try {
      task.check_instance(x0s.row(i).transpose(), params.row(i).transpose());
    } catch (const std::invalid_argument &e) {
      throw py::value_error(std::string(e.what()) + " (instance " + std::to_string(i) + ")");
    }
  }
}

std::pair<RowMatrixXd, RowMatrixXd> instances(const Task &task, const DoubleArray &x0s, const DoubleArray &params) {
  const TaskDims d = task.dims();
  check_array("x0s", x0s, {-1, d.nx});
  const py::ssize_t n = x0s.shape(0);
  check_array("params", params, {n, d.nz});
  RowMatrixXd X0 = to_matrix(x0s, n, d.nx), Z = to_matrix(params, n, d.nz);
  check_instances(task, X0, Z);
  return {std::move(X0), std::move(Z)};
}

py::dict solve_result_to_dict(BatchSolveResult &&r) {
  const TaskDims d = r.dims;
  const py::ssize_t n = r.n, T = d.horizon;
  py::dict out;
  out["xs"] = to_numpy(std::move(r.xs), {n, T + 1, d.nx});
  out["us"] = to_numpy(std::move(r.us), {n, T, d.nu});
  out["feedback_gains"] = to_numpy(std::move(r.gains), {n, T, d.nu, d.ndx});
  out["cost"] = to_numpy(std::move(r.cost), {n});
  out["iterations"] = to_numpy(std::move(r.iterations), {n});
  py::array_t<bool> converged(n);
  for (py::ssize_t i = 0; i < n; ++i) converged.mutable_data()[i] = r.converged[i] != 0;
  out["converged"] = converged;
  out["primal_infeasibility"] = to_numpy(std::move(r.primal_infeasibility), {n});
  out["dual_infeasibility"] = to_numpy(std::move(r.dual_infeasibility), {n});
  out["solve_time"] = to_numpy(std::move(r.solve_time), {n});
  out["setup_time"] = to_numpy(std::move(r.setup_time), {n});
  out["errors"] = r.errors;
  out["lams"] = to_numpy(std::move(r.lams), {n, r.n_lams});
  out["vs"] = to_numpy(std::move(r.vs), {n, r.n_vs});
  return out;
}

void expose_solver(py::module_ &m) {
  m.def(
      "solve_batch",
      [](const Task &task, const DoubleArray &x0s, const DoubleArray &params, std::optional<DoubleArray> xs_init,
         std::optional<DoubleArray> us_init, double tol, double mu_init, int max_iters, int num_threads,
         bool refresh_gains, const std::string &dual_init, const std::string &step_acceptance, int stall_iters,
         std::optional<DoubleArray> lams_init, std::optional<DoubleArray> vs_init) {
        const TaskDims d = task.dims();
        check_array("x0s", x0s, {-1, d.nx});
        const py::ssize_t n = x0s.shape(0);
        check_array("params", params, {n, d.nz});
        if (xs_init.has_value() != us_init.has_value())
          throw py::value_error("xs_init, us_init: give both initial-guess arrays or neither");
        if (xs_init) {
          check_array("xs_init", *xs_init, {n, d.horizon + 1, d.nx});
          check_array("us_init", *us_init, {n, d.horizon, d.nu});
          check_magnitude("xs_init", *xs_init, 1e6);
          check_magnitude("us_init", *us_init, 1e6);
        }
        if (lams_init.has_value() != vs_init.has_value())
          throw py::value_error("lams_init, vs_init: give both multiplier arrays or neither");
        if (lams_init) {
          const auto [n_lams, n_vs] = multiplier_sizes(task);
          check_array("lams_init", *lams_init, {n, n_lams});
          check_array("vs_init", *vs_init, {n, n_vs});
          check_magnitude("lams_init", *lams_init, 1e12);
          check_magnitude("vs_init", *vs_init, 1e12);
        }
        const SolverOptions options = make_solver_options(tol, mu_init, max_iters, num_threads, refresh_gains,
                                                          dual_init, step_acceptance, stall_iters);
        const RowMatrixXd X0 = to_matrix(x0s, n, d.nx), Z = to_matrix(params, n, d.nz);
        check_instances(task, X0, Z);
        const std::vector<double> xs0 = xs_init ? to_vector(*xs_init) : std::vector<double>();
        const std::vector<double> us0 = us_init ? to_vector(*us_init) : std::vector<double>();
        const std::vector<double> lams0 = lams_init ? to_vector(*lams_init) : std::vector<double>();
        const std::vector<double> vs0 = vs_init ? to_vector(*vs_init) : std::vector<double>();
        BatchSolveResult r;
        {
          py::gil_scoped_release release;
          r = solve_batch(task, X0, Z, xs0, us0, options, lams0, vs0);
        }
        return solve_result_to_dict(std::move(r));
      },
      py::arg("task"), py::arg("x0s"), py::arg("params"), py::arg("xs_init") = py::none(),
      py::arg("us_init") = py::none(), py::arg("tol") = 1e-4, py::arg("mu_init") = 1e-3, py::arg("max_iters") = 500,
      py::arg("num_threads") = 0, py::arg("refresh_gains") = true, py::arg("dual_init") = "adjoint",
      py::arg("step_acceptance") = "filter", py::arg("stall_iters") = 0, py::arg("lams_init") = py::none(),
      py::arg("vs_init") = py::none(),
      "Solve n instances with ProxDDP in OpenMP threads (GIL released). Returns a dict of arrays.");

  m.def(
      "multiplier_sizes",
      [](const Task &task) { return multiplier_sizes(task); }, py::arg("task"),
      "(n_lams, n_vs): the sizes of one instance's multipliers in solve_batch's lams and vs.");

  // trajectory_costs and constraint_violations: one instance's problem evaluated at a given trajectory
  const auto per_trajectory = [](auto evaluate) {
    return [evaluate](const Task &task, const DoubleArray &x0s, const DoubleArray &params, const DoubleArray &xs,
                      const DoubleArray &us, int num_threads) {
      const TaskDims d = task.dims();
      check_array("x0s", x0s, {-1, d.nx});
      const py::ssize_t n = x0s.shape(0);
      check_array("params", params, {n, d.nz});
      check_array("xs", xs, {n, d.horizon + 1, d.nx});
      check_array("us", us, {n, d.horizon, d.nu});
      const RowMatrixXd X0 = to_matrix(x0s, n, d.nx), Z = to_matrix(params, n, d.nz);
      check_instances(task, X0, Z);
      const std::vector<double> xv = to_vector(xs), uv = to_vector(us);
      std::vector<double> values;
      {
        py::gil_scoped_release release;
        values = evaluate(task, X0, Z, xv, uv, check_threads(num_threads));
      }
      return to_numpy(std::move(values), {n});
    };
  };
  m.def("trajectory_costs", per_trajectory(&trajectory_costs), py::arg("task"), py::arg("x0s"), py::arg("params"),
        py::arg("xs"), py::arg("us"), py::arg("num_threads") = 0,
        "Objective (stage + terminal costs, no constraints) of each instance at (xs, us): (n,).");
  m.def("constraint_violations", per_trajectory(&constraint_violations), py::arg("task"), py::arg("x0s"),
        py::arg("params"), py::arg("xs"), py::arg("us"), py::arg("num_threads") = 0,
        "Largest path- or terminal-constraint violation of each instance at (xs, us), in the constraints' units, "
        "as the solver measures primal infeasibility (inf-norm of c - proj_C(c); not the dynamics): (n,).");
}

} // namespace sobolev_warmstart::bindings
