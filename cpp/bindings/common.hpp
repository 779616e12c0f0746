#pragma once
/// @file
/// @brief Binding helpers: argument checks with "name: expected ..., got ..." messages, and
/// zero-copy hand-over of result vectors to numpy.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "sobolev_warmstart/batch_solver.hpp"
#include "sobolev_warmstart/rollout.hpp"

#include <sstream>
#include <string>
#include <vector>

namespace sobolev_warmstart::bindings {

namespace py = pybind11;
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

void expose_tasks(py::module_ &m);
void expose_solver(py::module_ &m);
void expose_sensitivities(py::module_ &m);
void expose_policy(py::module_ &m);
void expose_lookup(py::module_ &m);

/// "(a, b, c)"; axis 0 shown as `first` when given, and axis `named_axis` as `name`.
inline std::string shape_string(const std::vector<py::ssize_t> &shape, const char *first = nullptr,
                                std::size_t named_axis = std::size_t(-1), const char *name = nullptr) {
  std::ostringstream out;
  out << "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out << ", ";
    if (i == 0 && first) out << first;
    else if (i == named_axis && name) out << name;
    else out << shape[i];
  }
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

/// Check ndim, dimensions (a negative expected size matches any; shown as `free_name` when given,
/// else axis 0 as "N") and finiteness.
template <typename Array>
void check_array(const char *name, const Array &a, const std::vector<py::ssize_t> &expected,
                 const char *free_name = nullptr) {
  std::vector<py::ssize_t> got(a.shape(), a.shape() + a.ndim());
  bool ok = got.size() == expected.size();
  for (std::size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == got[i];
  if (!ok) {
    std::vector<py::ssize_t> shown = expected;
    std::size_t free_axis = shown.size();
    for (std::size_t i = 0; i < shown.size(); ++i)
      if (shown[i] < 0) {
        shown[i] = i < got.size() ? got[i] : 0;
        free_axis = i;
      }
    const std::string text = free_name ? shape_string(shown, nullptr, free_axis, free_name)
                                       : shape_string(shown, expected.empty() || expected[0] >= 0 ? nullptr : "N");
    throw py::value_error(std::string(name) + ": expected shape " + text + ", got " + shape_string(got));
  }
  const auto *p = a.data();
  for (py::ssize_t k = 0; k < a.size(); ++k)
    if (!std::isfinite(p[k]))
      throw py::value_error(std::string(name) + ": expected finite values, found " + std::to_string(p[k]) +
                            " at flat index " + std::to_string(k));
}

/// A guess beyond `bound` in magnitude is a diverged rollout, not a guess: refuse it (solving from
/// such values is meaningless and has crashed ProxDDP on the quadrotor at 1e7).
inline void check_magnitude(const char *name, const DoubleArray &a, double bound) {
  const double *p = a.data();
  for (py::ssize_t k = 0; k < a.size(); ++k)
    if (std::abs(p[k]) > bound)
      throw py::value_error(std::string(name) + ": expected entries of magnitude <= " + std::to_string(bound) +
                            " (a diverged guess?), found " + std::to_string(p[k]) + " at flat index " +
                            std::to_string(k));
}

inline std::vector<double> to_vector(const DoubleArray &a) { return std::vector<double>(a.data(), a.data() + a.size()); }

inline RowMatrixXd to_matrix(const DoubleArray &a, Eigen::Index rows, Eigen::Index cols) {
  return Eigen::Map<const RowMatrixXd>(a.data(), rows, cols);
}

/// Move a vector into a numpy array of the given shape without copying.
template <typename T>
py::array_t<T> to_numpy(std::vector<T> &&v, const std::vector<py::ssize_t> &shape) {
  auto *heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void *p) { delete static_cast<std::vector<T> *>(p); });
  return py::array_t<T>(shape, heap->data(), owner);
}

inline py::array_t<double> matrix_to_numpy(const RowMatrixXd &m) {
  py::array_t<double> out({m.rows(), m.cols()});
  Eigen::Map<RowMatrixXd>(out.mutable_data(), m.rows(), m.cols()) = m;
  return out;
}

inline py::array_t<double> vector_to_numpy(const VectorXd &v) {
  py::array_t<double> out(v.size());
  std::copy(v.data(), v.data() + v.size(), out.mutable_data());
  return out;
}

inline int check_threads(int num_threads) {
  if (num_threads < 0) throw py::value_error("num_threads: expected >= 0 (0: all cores), got " + std::to_string(num_threads));
  return num_threads;
}

/// Solver settings from the keyword arguments shared by solve_batch and warm_start (validated).
SolverOptions make_solver_options(double tol, double mu_init, int max_iters, int num_threads, bool refresh_gains,
                                  const std::string &dual_init, const std::string &step_acceptance,
                                  int stall_iters);
/// Raise ValueError naming the first invalid instance.
void check_instances(const Task &task, const RowMatrixXd &x0s, const RowMatrixXd &params);
/// Rollout settings checked against the runner's policy ("action_steps: expected 1..H-h ...").
RolloutOptions make_rollout_options(const PolicyRunner &runner, int action_steps, std::uint64_t seed, int batch_size,
                                    int num_threads);
/// Validated (x0s (n, nx), params (n, nz)) as matrices: shapes, finiteness and the task's own instance checks.
std::pair<RowMatrixXd, RowMatrixXd> instances(const Task &task, const DoubleArray &x0s, const DoubleArray &params);
/// The arrays of a batch solve, moved into numpy.
py::dict solve_result_to_dict(BatchSolveResult &&r);

} // namespace sobolev_warmstart::bindings
