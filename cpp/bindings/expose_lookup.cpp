/// @file
/// @brief The exported nearest-neighbour lookup (lookup.hpp) as _core.Lookup: what the C++ warm-start path reads,
/// exposed so that its answers can be checked against Python's NearestNeighbourLookup and LookupFallback.
/// The C++ side throws std::invalid_argument, which pybind11 raises as ValueError.
#include "common.hpp"
#include "sobolev_warmstart/lookup.hpp"

namespace sobolev_warmstart::bindings {

void expose_lookup(py::module_ &m) {
  const FallbackCalibration defaults;
  py::class_<NearestNeighbourLookup, std::shared_ptr<NearestNeighbourLookup>>(
      m, "Lookup",
      "A nearest-neighbour lookup of solved training instances, loaded in C++ from the file "
      "NearestNeighbourLookup.export writes (what sw_bench_warm_start and C++ users warm-start with).")
      .def(py::init([](const std::string &path) {
             return std::const_pointer_cast<NearestNeighbourLookup>(NearestNeighbourLookup::load(path));
           }),
           py::arg("path"))
      .def_property_readonly("size", &NearestNeighbourLookup::size)
      .def_property_readonly("task_name", &NearestNeighbourLookup::task_name)
      .def_property_readonly("task_variant", &NearestNeighbourLookup::task_variant)
      .def("check_task", &NearestNeighbourLookup::check_task, py::arg("task"))
      .def(
          "nearest",
          [](const NearestNeighbourLookup &l, const Task &task, const DoubleArray &x0s, const DoubleArray &params) {
            l.check_task(task);
            const auto [X0, Z] = instances(task, x0s, params);
            return to_numpy(l.nearest(X0, Z), {py::ssize_t(X0.rows())});
          },
          py::arg("task"), py::arg("x0s"), py::arg("params"),
          "(n,) int64: each instance's nearest training instance.")
      .def(
          "fallback",
          [](const NearestNeighbourLookup &l, const Task &task, const DoubleArray &x0s, const DoubleArray &params,
             double cost_ratio) {
            l.check_task(task);
            const auto [X0, Z] = instances(task, x0s, params);
            FallbackGuesses fb = l.fallback(X0, Z, cost_ratio);
            const TaskDims d = task.dims();
            const py::ssize_t n = X0.rows();
            return py::make_tuple(to_numpy(std::move(fb.xs), {n, d.horizon + 1, d.nx}),
                                  to_numpy(std::move(fb.us), {n, d.horizon, d.nu}),
                                  to_numpy(std::move(fb.cost_bound), {n}));
          },
          py::arg("task"), py::arg("x0s"), py::arg("params"), py::arg("cost_ratio"),
          "(xs (n, T+1, nx), us (n, T, nu), cost_bound (n,)): the nearest solutions from x0s (the 'nn' guesses) and "
          "cost_ratio times their objective, as LookupFallback.plan gives them.")
      .def(
          "calibrate",
          [](const NearestNeighbourLookup &l, const Task &task, const PolicyRunner &runner, double factor,
             double max_ratio, int instances, std::uint64_t seed, int action_steps, double divergence_bound,
             int num_threads) {
            l.check_task(task);
            runner.check_task(task);
            const RolloutOptions ro = make_rollout_options(runner, action_steps, 0, 0, num_threads);
            FallbackCalibration c;
            c.factor = factor, c.max_ratio = max_ratio, c.instances = instances, c.seed = seed;
            c.divergence_bound = divergence_bound;
            {
              py::gil_scoped_release release;
              c = l.calibrate(task, runner, ro, c);
            }
            return py::make_tuple(c.cost_ratio, c.median_ratio);
          },
          py::arg("task"), py::arg("runner"), py::arg("factor") = defaults.factor,
          py::arg("max_ratio") = defaults.max_ratio, py::arg("instances") = defaults.instances,
          py::arg("seed") = defaults.seed, py::arg("action_steps") = 0,
          py::arg("divergence_bound") = defaults.divergence_bound, py::arg("num_threads") = 0,
          "(cost_ratio, median_ratio): the fallback's bound calibrated in C++ as LookupFallback.calibrated does it.")
      .def("__repr__", [](const NearestNeighbourLookup &l) {
        return "Lookup(" + l.task_name() + "/" + l.task_variant() + ", " + std::to_string(l.size()) +
               " training instances)";
      });
}

} // namespace sobolev_warmstart::bindings
