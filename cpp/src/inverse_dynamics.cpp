#include "sobolev_warmstart/inverse_dynamics.hpp"

#include <pinocchio/algorithm/joint-configuration.hpp>
#include <pinocchio/algorithm/rnea.hpp>
#include <omp.h>

namespace sobolev_warmstart {

InverseDynamics::InverseDynamics(const Task &task)
    : task_(task), data_(task.model()), actuation_qr_(task.actuation()) {
  const int nv = task.dims().nv;
  v_next_.resize(nv);
  acc_.resize(nv);
  tau_.resize(nv);
}

void InverseDynamics::control(const VectorXd &x, const VectorXd &q_next, Eigen::Ref<VectorXd> u) {
  const TaskDims &d = task_.dims();
  const auto q = x.head(d.nq);
  const auto v = x.tail(d.nv);
  // Semi-implicit Euler: q_next = q (+) dt v_next, v_next = v + dt a.
  v_next_ = pinocchio::difference(task_.model(), q, q_next) / d.dt;
  acc_ = (v_next_ - v) / d.dt;
  tau_ = pinocchio::rnea(task_.model(), data_, q, v, acc_);
  u = actuation_qr_.solve(tau_);
  residual_ = (task_.actuation() * u - tau_).norm();
}

void inverse_dynamics_batch(const Task &task, int n, int horizon, const std::vector<double> &xs,
                            std::vector<double> &us, std::vector<double> &residuals, int num_threads) {
  const TaskDims d = task.dims();
  const int T = horizon;
  us.assign(std::size_t(n) * T * d.nu, 0.0);
  residuals.assign(std::size_t(n) * T, 0.0);
  const int threads = std::max(1, std::min(num_threads > 0 ? num_threads : omp_get_max_threads(), std::max(n, 1)));
#pragma omp parallel num_threads(threads)
  {
    Eigen::setNbThreads(1);
    InverseDynamics id(task);
#pragma omp for schedule(static)
    for (int i = 0; i < n; ++i) {
      for (int t = 0; t < T; ++t) {
        const VectorXd x = Eigen::Map<const VectorXd>(&xs[(std::size_t(i) * (T + 1) + t) * d.nx], d.nx);
        const VectorXd q_next = Eigen::Map<const VectorXd>(&xs[(std::size_t(i) * (T + 1) + t + 1) * d.nx], d.nq);
        Eigen::Map<VectorXd> u(&us[(std::size_t(i) * T + t) * d.nu], d.nu);
        id.control(x, q_next, u);
        residuals[std::size_t(i) * T + t] = id.last_residual();
      }
    }
  }
}

} // namespace sobolev_warmstart
