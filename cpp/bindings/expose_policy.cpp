#include "common.hpp"
#include "sobolev_warmstart/warm_start.hpp"

namespace sobolev_warmstart::bindings {
namespace {

py::dict rollout_to_dict(RolloutResult &&r, const TaskDims &d) {
  const py::ssize_t n = r.n, T = d.horizon;
  py::dict out;
  out["xs"] = to_numpy(std::move(r.xs), {n, T + 1, d.nx});
  out["us"] = to_numpy(std::move(r.us), {n, T, d.nu});
  out["actions"] = to_numpy(std::move(r.actions), {n, T, d.na});
  out["time"] = to_numpy(std::move(r.time), {n});
  out["policy_time"] = to_numpy(std::move(r.policy_time), {n});
  out["errors"] = r.errors;
  out["num_replans"] = r.num_replans;
  out["action_steps"] = r.action_steps;
  out["wall_time"] = r.wall_time;
  out["policy_calls"] = r.policy_calls;
  out["policy_call_time"] = r.policy_call_time;
  return out;
}

} // namespace

RolloutOptions make_rollout_options(const PolicyRunner &runner, int action_steps, std::uint64_t seed, int batch_size,
                                    int num_threads) {
  const auto &m = runner.metadata();
  if (m.kind == "diffusion") {
    const int max_a = m.horizon - m.history;
    if (action_steps < 0 || action_steps > max_a)
      throw py::value_error("action_steps: expected 1.." + std::to_string(max_a) + " (chunk horizon " +
                            std::to_string(m.horizon) + " minus history " + std::to_string(m.history) +
                            "), or 0 for the policy's own " + std::to_string(m.action_steps) + ", got " +
                            std::to_string(action_steps));
  } else if (action_steps != 0 && action_steps != 1) {
    throw py::value_error("action_steps: a direct (mlp) policy executes one action per call, expected 0 or 1, got " +
                          std::to_string(action_steps));
  }
  if (batch_size < 0) throw py::value_error("batch_size: expected >= 0 (0: split evenly over threads), got " + std::to_string(batch_size));
  RolloutOptions o;
  o.action_steps = action_steps;
  o.seed = seed;
  o.batch_size = batch_size;
  o.num_threads = check_threads(num_threads);
  return o;
}

void expose_policy(py::module_ &m) {
  py::class_<PolicyRunner, std::shared_ptr<PolicyRunner>>(
      m, "PolicyRunner", "An exported policy (.safetensors native, .pt TorchScript or .pt2 AOTInductor) loaded in C++; thread-safe.")
      .def(py::init([](const std::string &path, int num_runners) {
             if (num_runners < 0) throw py::value_error("num_runners: expected >= 0, got " + std::to_string(num_runners));
             py::gil_scoped_release release;
             return PolicyRunner::load(path, num_runners);
           }),
           py::arg("path"), py::arg("num_runners") = 0)
      .def_property_readonly("path", [](const PolicyRunner &r) { return r.metadata().path; })
      .def_property_readonly("backend", [](const PolicyRunner &r) { return r.metadata().backend; })
      .def_property_readonly("kind", [](const PolicyRunner &r) { return r.metadata().kind; })
      .def_property_readonly("task_name", [](const PolicyRunner &r) { return r.metadata().task_name; })
      .def_property_readonly("horizon", [](const PolicyRunner &r) { return r.metadata().horizon; })
      .def_property_readonly("history", [](const PolicyRunner &r) { return r.metadata().history; })
      .def_property_readonly("action_steps", [](const PolicyRunner &r) { return r.metadata().action_steps; })
      .def_property_readonly("num_steps", [](const PolicyRunner &r) { return r.metadata().num_steps; })
      .def_property_readonly("time_to_go", [](const PolicyRunner &r) { return r.metadata().time_to_go; },
                             "Whether the last column of params is the time to go (T - t0) / T.")
      .def_property_readonly("param_dim", [](const PolicyRunner &r) { return r.metadata().param_dim(); },
                             "Columns of params: the task's nz, plus one with time_to_go.")
      .def_property_readonly("metadata_json", [](const PolicyRunner &r) { return r.metadata().json; })
      .def("check_task", &PolicyRunner::check_task, py::arg("task"),
           "Raise ValueError naming the first metadata field that does not match the task.")
      .def(
          "sample_chunks",
          [](const PolicyRunner &r, const FloatArray &obs, const FloatArray &params, const FloatArray &hist,
             const FloatArray &noise) {
            const auto &md = r.metadata();
            if (md.kind != "diffusion") throw py::value_error("sample_chunks: a " + md.kind + " policy has no chunks; use act");
            const py::ssize_t b = obs.ndim() == 3 ? obs.shape(0) : -1;
            check_array("obs_history", obs, {b, md.history, md.dims.no}, "B");
            check_array("params", params, {b, md.param_dim()}, "B");
            check_array("history_actions", hist, {b, md.history, md.dims.na}, "B");
            check_array("noise", noise, {md.num_steps, b, md.horizon, md.dims.na}, "B");
            py::array_t<float> out({b, py::ssize_t(md.horizon), py::ssize_t(md.dims.na)});
            float *dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              TorchSingleThreadScope one_thread;
              r.sample_chunks(int(b), obs.data(), params.data(), hist.data(), noise.data(), dst);
            }
            return out;
          },
          py::arg("obs_history"), py::arg("params"), py::arg("history_actions"), py::arg("noise"),
          "Diffusion policies: chunks (B, H, na) from obs_history (B, h, no), params (B, param_dim), "
          "history_actions (B, h, na), noise (K, B, H, na); float32.")
      .def(
          "act",
          [](const PolicyRunner &r, const FloatArray &obs, const FloatArray &params) {
            const auto &md = r.metadata();
            if (md.kind != "mlp") throw py::value_error("act: a " + md.kind + " policy samples chunks; use sample_chunks");
            const py::ssize_t b = obs.ndim() == 2 ? obs.shape(0) : -1;
            check_array("obs", obs, {b, md.dims.no}, "B");
            check_array("params", params, {b, md.param_dim()}, "B");
            py::array_t<float> out({b, py::ssize_t(md.dims.na)});
            float *dst = out.mutable_data();
            {
              py::gil_scoped_release release;
              TorchSingleThreadScope one_thread;
              r.act(int(b), obs.data(), params.data(), dst);
            }
            return out;
          },
          py::arg("obs"), py::arg("params"), "Direct policies: actions (B, na) from obs (B, no), params (B, param_dim).")
      .def("__repr__", [](const PolicyRunner &r) {
        const auto &md = r.metadata();
        return "<sobolev_warmstart PolicyRunner " + md.kind + " for " + md.task_name + " (" + md.backend + ", " +
               md.path + ")>";
      });

  m.def(
      "rollout_noise",
      [](std::uint64_t seed, const std::vector<std::int64_t> &instances, int num_replans, int count) {
        if (num_replans < 0 || count < 0) throw py::value_error("num_replans, count: expected >= 0");
        const py::ssize_t n = py::ssize_t(instances.size());
        py::array_t<float> out({n, py::ssize_t(num_replans), py::ssize_t(count)});
        float *p = out.mutable_data();
        for (py::ssize_t i = 0; i < n; ++i)
          for (int r = 0; r < num_replans; ++r)
            rollout_noise(seed, instances[i], r, count, p + (std::size_t(i) * num_replans + r) * count);
        return out;
      },
      py::arg("seed"), py::arg("instances"), py::arg("num_replans"), py::arg("count"),
      "The standard normal draws a seeded rollout uses: (n, num_replans, count) float32, count = K*H*na.");

  m.def(
      "execute_actions",
      [](const Task &task, const DoubleArray &xs, const DoubleArray &actions) {
        const TaskDims d = task.dims();
        check_array("xs", xs, {-1, d.nx});
        const py::ssize_t n = xs.shape(0);
        check_array("actions", actions, {n, d.na});
        RowMatrixXd U(n, d.nu), X(n, d.nx), A(n, d.na);
        ActionExecutor exec(task);
        VectorXd u(d.nu), xn(d.nx), a(d.na);
        for (py::ssize_t i = 0; i < n; ++i) {
          exec.apply(Eigen::Map<const VectorXd>(xs.data(i, 0), d.nx), Eigen::Map<const VectorXd>(actions.data(i, 0), d.na),
                     u, xn, a);
          U.row(i) = u.transpose();
          X.row(i) = xn.transpose();
          A.row(i) = a.transpose();
        }
        return py::make_tuple(matrix_to_numpy(U), matrix_to_numpy(X), matrix_to_numpy(A));
      },
      py::arg("task"), py::arg("xs"), py::arg("actions"),
      "One rollout step per row: (us (N, nu), xs_next (N, nx), realised actions (N, na)) from states and action "
      "variables (torques clamped to the bounds; state actions through inverse dynamics).");

  m.def(
      "initial_actions",
      [](const Task &task, const DoubleArray &x0s) {
        const TaskDims d = task.dims();
        check_array("x0s", x0s, {-1, d.nx});
        RowMatrixXd A(x0s.shape(0), d.na);
        VectorXd a(d.na);
        for (py::ssize_t i = 0; i < x0s.shape(0); ++i) {
          initial_action(task, Eigen::Map<const VectorXd>(x0s.data(i, 0), d.nx), a);
          A.row(i) = a.transpose();
        }
        return matrix_to_numpy(A);
      },
      py::arg("task"), py::arg("x0s"), "The action variable before t = 0 (chunk history): (N, na).");

  m.def(
      "rollout",
      [](const Task &task, const PolicyRunner &runner, const DoubleArray &x0s, const DoubleArray &params,
         int action_steps, std::uint64_t seed, int batch_size, int num_threads, std::optional<FloatArray> noise) {
        runner.check_task(task);
        const auto [X0, Z] = instances(task, x0s, params);
        const RolloutOptions o = make_rollout_options(runner, action_steps, seed, batch_size, num_threads);
        const auto &md = runner.metadata();
        if (noise) {
          if (md.kind != "diffusion") throw py::value_error("noise: a direct (mlp) policy takes no noise");
          const int A = o.action_steps > 0 ? o.action_steps : md.action_steps;
          check_array("noise", *noise,
                            {X0.rows(), rollout_num_replans(md, task.dims().horizon, A), md.num_steps, md.horizon,
                             md.dims.na});
        }
        RolloutResult r;
        {
          py::gil_scoped_release release;
          r = rollout_batch(task, runner, X0, Z, o, noise ? noise->data() : nullptr);
        }
        return rollout_to_dict(std::move(r), task.dims());
      },
      py::arg("task"), py::arg("runner"), py::arg("x0s"), py::arg("params"), py::arg("action_steps") = 0,
      py::arg("seed") = 0, py::arg("batch_size") = 0, py::arg("num_threads") = 0, py::arg("noise") = py::none(),
      "Lockstep rollouts of an exported policy (GIL released). noise: optional (n, R, K, H, na) float32.");

  m.def(
      "warm_start",
      [](const Task &task, const PolicyRunner &runner, const DoubleArray &x0s, const DoubleArray &params,
         int action_steps, std::uint64_t seed, int batch_size, bool solve_from_default, double tol, double mu_init,
         int max_iters, int num_threads, bool refresh_gains, const std::string &dual_init,
         const std::string &step_acceptance, int stall_iters, const std::optional<DoubleArray> &fallback_xs,
         const std::optional<DoubleArray> &fallback_us, const std::optional<DoubleArray> &fallback_cost_bound) {
        runner.check_task(task);
        const auto [X0, Z] = instances(task, x0s, params);
        const RolloutOptions ro = make_rollout_options(runner, action_steps, seed, batch_size, num_threads);
        const SolverOptions so = make_solver_options(tol, mu_init, max_iters, num_threads, refresh_gains, dual_init,
                                                     step_acceptance, stall_iters);
        const TaskDims d = task.dims();
        const py::ssize_t n = X0.rows();
        FallbackGuesses fb;
        if (fallback_xs || fallback_us || fallback_cost_bound) {
          if (!(fallback_xs && fallback_us && fallback_cost_bound))
            throw py::value_error("fallback_xs, fallback_us, fallback_cost_bound: give all three or none");
          check_array("fallback_xs", *fallback_xs, {n, d.horizon + 1, d.nx});
          check_array("fallback_us", *fallback_us, {n, d.horizon, d.nu});
          check_array("fallback_cost_bound", *fallback_cost_bound, {n});
          fb.xs = to_vector(*fallback_xs);  // check_array has refused non-finite entries
          fb.us = to_vector(*fallback_us);
          fb.cost_bound = to_vector(*fallback_cost_bound);
        }
        WarmStartResult r;
        {
          py::gil_scoped_release release;
          r = warm_start(task, runner, X0, Z, ro, so, solve_from_default, fb);
        }
        py::dict out;
        out["rollout"] = rollout_to_dict(std::move(r.rollout), task.dims());
        out["policy_cost"] = to_numpy(std::move(r.policy_cost), {py::ssize_t(X0.rows())});
        {
          py::array_t<bool> replaced(n);
          for (py::ssize_t i = 0; i < n; ++i) replaced.mutable_at(i) = r.replaced[i] != 0;
          out["replaced"] = replaced;
        }
        out["warm"] = solve_result_to_dict(std::move(r.warm));
        out["default"] = solve_from_default ? py::object(solve_result_to_dict(std::move(r.from_default))) : py::none();
        out["rollout_wall_time"] = r.rollout_wall_time;
        out["warm_wall_time"] = r.warm_wall_time;
        out["default_wall_time"] = r.default_wall_time;
        return out;
      },
      py::arg("task"), py::arg("runner"), py::arg("x0s"), py::arg("params"), py::arg("action_steps") = 0,
      py::arg("seed") = 0, py::arg("batch_size") = 0, py::arg("solve_from_default") = true, py::arg("tol") = 1e-4,
      py::arg("mu_init") = 1e-3, py::arg("max_iters") = 500, py::arg("num_threads") = 0,
      py::arg("refresh_gains") = true, py::arg("dual_init") = "adjoint", py::arg("step_acceptance") = "filter",
      py::arg("stall_iters") = 0, py::arg("fallback_xs") = py::none(), py::arg("fallback_us") = py::none(),
      py::arg("fallback_cost_bound") = py::none(),
      "Rollout + policy cost + refinement (+ the default-guess solve), all in C++ with the GIL released. "
      "fallback_xs (n, T+1, nx), fallback_us (n, T, nu), fallback_cost_bound (n,): where a rollout diverged or its "
      "objective exceeds the bound, the refinement starts from the fallback guess (replaced (n,) says where).");
}

} // namespace sobolev_warmstart::bindings
