#include "common.hpp"

namespace sobolev_warmstart::bindings {

void expose_tasks(py::module_ &m) {
  py::class_<Task, std::shared_ptr<Task>>(m, "Task", "A family of optimal control problems (read-only).")
      .def_property_readonly("name", &Task::name)
      .def_property_readonly("variant", &Task::variant)
      .def_property_readonly("nq", [](const Task &t) { return t.dims().nq; })
      .def_property_readonly("nv", [](const Task &t) { return t.dims().nv; })
      .def_property_readonly("nx", [](const Task &t) { return t.dims().nx; })
      .def_property_readonly("ndx", [](const Task &t) { return t.dims().ndx; })
      .def_property_readonly("nu", [](const Task &t) { return t.dims().nu; })
      .def_property_readonly("na", [](const Task &t) { return t.dims().na; })
      .def_property_readonly("no", [](const Task &t) { return t.dims().no; })
      .def_property_readonly("nz", [](const Task &t) { return t.dims().nz; })
      .def_property_readonly("horizon", [](const Task &t) { return t.dims().horizon; })
      .def_property_readonly("dt", [](const Task &t) { return t.dims().dt; })
      .def_property_readonly("action_space",
                             [](const Task &t) { return t.action_space() == ActionSpace::Torque ? "torque" : "state"; })
      .def_property_readonly("u_lower", [](const Task &t) { return vector_to_numpy(t.u_lower()); })
      .def_property_readonly("u_upper", [](const Task &t) { return vector_to_numpy(t.u_upper()); })
      .def_property_readonly("actuation", [](const Task &t) { return matrix_to_numpy(RowMatrixXd(t.actuation())); })
      .def("describe", &Task::describe)
      .def(
          "sample_instances",
          [](const Task &t, int n, std::uint64_t seed) {
            if (n < 0) throw py::value_error("n: expected a number of instances >= 0, got " + std::to_string(n));
            RowMatrixXd x0s, params;
            t.sample_instances(seed, n, x0s, params);
            return py::make_tuple(matrix_to_numpy(x0s), matrix_to_numpy(params));
          },
          py::arg("n"), py::arg("seed"), "Draw n instances: (x0s (n, nx), params (n, nz)).")
      .def(
          "check_instances",
          [](const Task &t, const DoubleArray &x0s, const DoubleArray &params) {
            const auto d = t.dims();
            check_array("x0s", x0s, {-1, d.nx});
            check_array("params", params, {x0s.shape(0), d.nz});
            for (py::ssize_t i = 0; i < x0s.shape(0); ++i) {
              try {
                t.check_instance(Eigen::Map<const VectorXd>(x0s.data(i, 0), d.nx),
                                 Eigen::Map<const VectorXd>(d.nz ? params.data(i, 0) : nullptr, d.nz));
              } catch (const std::invalid_argument &e) {
                throw py::value_error(std::string(e.what()) + " (instance " + std::to_string(i) + ")");
              }
            }
          },
          py::arg("x0s"), py::arg("params"), "Raise ValueError naming the first invalid instance.")
      .def(
          "default_initial_guess",
          [](const Task &t, const DoubleArray &x0, const DoubleArray &params) {
            const auto d = t.dims();
            check_array("x0", x0, {d.nx});
            check_array("params", params, {d.nz});
            std::vector<VectorXd> xs, us;
            t.default_initial_guess(Eigen::Map<const VectorXd>(x0.data(), d.nx),
                                    Eigen::Map<const VectorXd>(params.data(), d.nz), xs, us);
            RowMatrixXd X(xs.size(), d.nx), U(us.size(), d.nu);
            for (std::size_t k = 0; k < xs.size(); ++k) X.row(k) = xs[k].transpose();
            for (std::size_t k = 0; k < us.size(); ++k) U.row(k) = us[k].transpose();
            return py::make_tuple(matrix_to_numpy(X), matrix_to_numpy(U));
          },
          py::arg("x0"), py::arg("params"), "The default ('TO alone') guess: (xs (T+1, nx), us (T, nu)).")
      .def(
          "step",
          [](const Task &t, const DoubleArray &xs, const DoubleArray &us) {
            const auto d = t.dims();
            check_array("xs", xs, {-1, d.nx});
            check_array("us", us, {xs.shape(0), d.nu});
            RowMatrixXd out(xs.shape(0), d.nx);
            auto data = t.create_dynamics_data();
            for (py::ssize_t i = 0; i < xs.shape(0); ++i) {
              t.dynamics().forward(Eigen::Map<const VectorXd>(xs.data(i, 0), d.nx),
                                   Eigen::Map<const VectorXd>(us.data(i, 0), d.nu), *data);
              out.row(i) = data->xnext_.transpose();
            }
            return matrix_to_numpy(out);
          },
          py::arg("xs"), py::arg("us"), "Discrete dynamics, one step for each row: (N, nx), (N, nu) -> (N, nx).")
      .def(
          "difference",
          [](const Task &t, const DoubleArray &x0s, const DoubleArray &x1s) {
            const auto d = t.dims();
            check_array("x0s", x0s, {-1, d.nx});
            check_array("x1s", x1s, {x0s.shape(0), d.nx});
            RowMatrixXd out(x0s.shape(0), d.ndx);
            VectorXd dx(d.ndx);
            const auto &space = t.dynamics().space();
            for (py::ssize_t i = 0; i < x0s.shape(0); ++i) {
              space.difference(Eigen::Map<const VectorXd>(x0s.data(i, 0), d.nx),
                               Eigen::Map<const VectorXd>(x1s.data(i, 0), d.nx), dx);
              out.row(i) = dx.transpose();
            }
            return matrix_to_numpy(out);
          },
          py::arg("x0s"), py::arg("x1s"),
          "Tangent vectors x1 (-) x0 between the states of each row: (N, nx), (N, nx) -> (N, ndx).")
      .def(
          "dynamics_jacobians",
          [](const Task &t, const DoubleArray &x, const DoubleArray &u) {
            const auto d = t.dims();
            check_array("x", x, {d.nx});
            check_array("u", u, {d.nu});
            auto data = t.create_dynamics_data();
            const Eigen::Map<const VectorXd> xv(x.data(), d.nx), uv(u.data(), d.nu);
            t.dynamics().forward(xv, uv, *data);
            t.dynamics().dForward(xv, uv, *data);
            return py::make_tuple(matrix_to_numpy(RowMatrixXd(data->Jx())), matrix_to_numpy(RowMatrixXd(data->Ju())));
          },
          py::arg("x"), py::arg("u"), "(A, B) = (df/dx, df/du) in tangent coordinates, (ndx, ndx) and (ndx, nu).")
      .def(
          "observation",
          [](const Task &t, const DoubleArray &x, const DoubleArray &params) {
            const auto d = t.dims();
            check_array("x", x, {d.nx});
            check_array("params", params, {d.nz});
            VectorXd o(d.no);
            MatrixXd J(d.no, d.ndx);
            const VectorXd xv = Eigen::Map<const VectorXd>(x.data(), d.nx);
            const VectorXd zv = Eigen::Map<const VectorXd>(params.data(), d.nz);
            t.observation(xv, zv, o);
            t.observation_jacobian(xv, zv, J);
            return py::make_tuple(vector_to_numpy(o), matrix_to_numpy(RowMatrixXd(J)));
          },
          py::arg("x"), py::arg("params"),
          "Observation features o(x; z) of state x in instance z and d o / d x: (no,), (no, ndx).")
      .def(
          "action",
          [](const Task &t, const DoubleArray &u, const DoubleArray &x_next) {
            const auto d = t.dims();
            check_array("u", u, {d.nu});
            check_array("x_next", x_next, {d.nx});
            VectorXd a(d.na);
            t.action(Eigen::Map<const VectorXd>(u.data(), d.nu), Eigen::Map<const VectorXd>(x_next.data(), d.nx), a);
            return vector_to_numpy(a);
          },
          py::arg("u"), py::arg("x_next"), "Action variable a_t from u_t and x_{t+1}: (na,).")
      .def(
          "action_state_jacobians",
          [](const Task &t, const DoubleArray &xs_next) {
            const auto d = t.dims();
            check_array("xs_next", xs_next, {-1, d.nx});
            const py::ssize_t n = xs_next.shape(0);
            std::vector<double> out(std::size_t(n) * d.na * d.ndx, 0.0);
            if (t.action_space() == ActionSpace::State) {
              MatrixXd J(d.na, d.ndx);
              for (py::ssize_t i = 0; i < n; ++i) {
                t.action_state_jacobian(Eigen::Map<const VectorXd>(xs_next.data(i, 0), d.nx), J);
                Eigen::Map<RowMatrixXd>(out.data() + std::size_t(i) * d.na * d.ndx, d.na, d.ndx) = J;
              }
            }
            return to_numpy(std::move(out), {n, py::ssize_t(d.na), py::ssize_t(d.ndx)});
          },
          py::arg("xs_next"),
          "d a / d x_{t+1} at a fixed control, per row: (N, nx) -> (N, na, ndx) in tangent coordinates; zero for "
          "torque actions (a = u does not depend on the state it leads to).")
      .def("__repr__", [](const Task &t) {
        return "<sobolev_warmstart Task " + t.name() + "/" + t.variant() + " nx=" + std::to_string(t.dims().nx) +
               " nu=" + std::to_string(t.dims().nu) + " T=" + std::to_string(t.dims().horizon) + ">";
      });

  m.def("available_tasks", &available_tasks, "[(name, [variants])]: the tasks make_task builds.");
  m.def(
      "make_task",
      [](const std::string &name, const std::string &variant, const std::string &robots_dir, int horizon) {
        return std::const_pointer_cast<Task>(make_task(name, variant, robots_dir, horizon));
      },
      py::arg("name"), py::arg("variant"), py::arg("robots_dir"), py::arg("horizon") = 0,
      "Build a task; robots_dir is example-robot-data's robots folder; horizon > 0 replaces the variant's T.");
}

} // namespace sobolev_warmstart::bindings
