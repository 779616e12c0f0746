#include "common.hpp"
#include "sobolev_warmstart/sensitivities.hpp"
#include "sobolev_warmstart/inverse_dynamics.hpp"

namespace sobolev_warmstart::bindings {

void expose_sensitivities(py::module_ &m) {
  m.def(
      "chained_derivatives",
      [](const Task &task, const DoubleArray &xs, const DoubleArray &us, const DoubleArray &gains,
         const DoubleArray &params, int horizon, int num_threads) {
        const TaskDims d = task.dims();
        const py::ssize_t T = d.horizon;
        check_array("xs", xs, {-1, T + 1, d.nx});
        const py::ssize_t n = xs.shape(0);
        check_array("us", us, {n, T, d.nu});
        check_array("feedback_gains", gains, {n, T, d.nu, d.ndx});
        check_array("params", params, {n, d.nz});
        if (horizon < 1)
          throw py::value_error("horizon: expected a chunk horizon >= 1, got " + std::to_string(horizon));
        const std::vector<double> X = to_vector(xs), U = to_vector(us), K = to_vector(gains), Z = to_vector(params);
        ChainedDerivatives r;
        {
          py::gil_scoped_release release;
          r = chained_derivatives(task, int(n), X, U, K, Z, horizon, check_threads(num_threads));
        }
        const py::ssize_t H = horizon;
        py::dict out;
        out["state_jacobians"] = to_numpy(std::move(r.state_jacobians), {n, T, H, d.ndx, d.ndx});
        out["action_jacobians"] = to_numpy(std::move(r.action_jacobians), {n, T, H, d.na, d.ndx});
        out["actions"] = to_numpy(std::move(r.actions), {n, T, d.na});
        out["observations"] = to_numpy(std::move(r.observations), {n, T + 1, d.no});
        out["observation_jacobians"] = to_numpy(std::move(r.observation_jacobians), {n, T + 1, d.no, d.ndx});
        out["closed_loop_jacobians"] = to_numpy(std::move(r.closed_loop_jacobians), {n, T, d.ndx, d.ndx});
        return out;
      },
      py::arg("task"), py::arg("xs"), py::arg("us"), py::arg("feedback_gains"), py::arg("params"), py::arg("horizon"),
      py::arg("num_threads") = 0, "Chained closed-loop derivatives of future states and actions (dict of arrays).");

  m.def(
      "inverse_dynamics",
      [](const Task &task, const DoubleArray &xs, int num_threads) {
        const TaskDims d = task.dims();
        check_array("xs", xs, {-1, -1, d.nx});
        const py::ssize_t n = xs.shape(0), T = xs.shape(1) - 1;
        if (T < 1) throw py::value_error("xs: expected at least 2 states per trajectory, got " + std::to_string(T + 1));
        const std::vector<double> X = to_vector(xs);
        for (py::ssize_t k = 0; k < n * (T + 1); ++k) {
          try {
            task.check_state(Eigen::Map<const VectorXd>(&X[k * d.nx], d.nx));
          } catch (const std::invalid_argument &e) {
            throw py::value_error("xs: state " + std::to_string(k) + " is not a valid state: " + e.what());
          }
        }
        std::vector<double> U, residuals;
        {
          py::gil_scoped_release release;
          inverse_dynamics_batch(task, int(n), int(T), X, U, residuals, check_threads(num_threads));
        }
        return py::make_tuple(to_numpy(std::move(U), {n, T, d.nu}), to_numpy(std::move(residuals), {n, T}));
      },
      py::arg("task"), py::arg("xs"), py::arg("num_threads") = 0,
      "Controls (N, T, nu) and least-squares residuals (N, T) that reproduce the configurations of xs "
      "(N, T+1, nx) under the semi-implicit Euler dynamics.");
}

} // namespace sobolev_warmstart::bindings
