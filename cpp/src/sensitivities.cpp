#include "sobolev_warmstart/sensitivities.hpp"

#include <omp.h>

namespace sobolev_warmstart {

ChainedDerivatives chained_derivatives(const Task &task, int n, const std::vector<double> &xs,
                                       const std::vector<double> &us, const std::vector<double> &gains,
                                       const std::vector<double> &params, int horizon, int num_threads) {
  const TaskDims d = task.dims();
  const int T = d.horizon, H = horizon, ndx = d.ndx, na = d.na, nu = d.nu;
  const bool state_actions = task.action_space() == ActionSpace::State;
  ChainedDerivatives out;
  out.n = n;
  out.horizon = H;
  out.state_jacobians.assign(std::size_t(n) * T * H * ndx * ndx, 0.0);
  out.action_jacobians.assign(std::size_t(n) * T * H * na * ndx, 0.0);
  out.actions.assign(std::size_t(n) * T * na, 0.0);
  out.observations.assign(std::size_t(n) * (T + 1) * d.no, 0.0);
  out.observation_jacobians.assign(std::size_t(n) * (T + 1) * d.no * ndx, 0.0);
  out.closed_loop_jacobians.assign(std::size_t(n) * T * ndx * ndx, 0.0);
  using RowMap = Eigen::Map<RowMatrixXd>;
  using ConstRowMap = Eigen::Map<const RowMatrixXd>;
  const int threads = std::max(1, std::min(num_threads > 0 ? num_threads : omp_get_max_threads(), n));

#pragma omp parallel num_threads(threads)
  {
    Eigen::setNbThreads(1);
    auto data = task.create_dynamics_data();
    std::vector<MatrixXd> Phi(T), S(T + 1);   // S[m]: dx_m / dx_{t0} for the current t0
    std::vector<MatrixXd> G(T);               // d a_m / d x_{m+1} (state actions)
    MatrixXd Gm(na, ndx), Jo(d.no, ndx);
    VectorXd a(na), o(d.no);
#pragma omp for schedule(static)
    for (int i = 0; i < n; ++i) {
      const auto x_at = [&](int t) {
        return VectorXd(Eigen::Map<const VectorXd>(&xs[(std::size_t(i) * (T + 1) + t) * d.nx], d.nx));
      };
      const auto u_at = [&](int t) {
        return VectorXd(Eigen::Map<const VectorXd>(&us[(std::size_t(i) * T + t) * nu], nu));
      };
      const VectorXd z = Eigen::Map<const VectorXd>(params.data() + std::size_t(i) * d.nz, d.nz);
      for (int t = 0; t <= T; ++t) {
        const VectorXd x = x_at(t);
        task.observation(x, z, o);
        task.observation_jacobian(x, z, Jo);
        RowMap(&out.observations[(std::size_t(i) * (T + 1) + t) * d.no], 1, d.no) = o.transpose();
        RowMap(&out.observation_jacobians[(std::size_t(i) * (T + 1) + t) * d.no * ndx], d.no, ndx) = Jo;
      }
      for (int t = 0; t < T; ++t) {
        const VectorXd x = x_at(t), u = u_at(t), x_next = x_at(t + 1);
        task.dynamics().forward(x, u, *data);
        task.dynamics().dForward(x, u, *data);
        const ConstRowMap K(&gains[(std::size_t(i) * T + t) * nu * ndx], nu, ndx);
        Phi[t] = data->Jx() + data->Ju() * K;
        RowMap(&out.closed_loop_jacobians[(std::size_t(i) * T + t) * ndx * ndx], ndx, ndx) = Phi[t];
        task.action(u, x_next, a);
        RowMap(&out.actions[(std::size_t(i) * T + t) * na], 1, na) = a.transpose();
        if (state_actions) {
          task.action_state_jacobian(x_next, Gm);
          G[t] = Gm;
        }
      }
      for (int t0 = 0; t0 < T; ++t0) {
        // States t0 .. min(t0 + H, T): one more than the actions need for state actions.
        const int last = std::min(t0 + H, T);
        S[t0].setIdentity(ndx, ndx);
        for (int m = t0 + 1; m <= last; ++m) S[m].noalias() = Phi[m - 1] * S[m - 1];
        for (int k = 0; k < H; ++k) {
          const int s = std::min(t0 + k, T), m = std::min(t0 + k, T - 1);
          const std::size_t block = (std::size_t(i) * T + t0) * H + k;
          RowMap(&out.state_jacobians[block * ndx * ndx], ndx, ndx) = S[s];
          RowMap Da(&out.action_jacobians[block * na * ndx], na, ndx);
          if (state_actions) {
            Da.noalias() = G[m] * S[m + 1];
          } else {
            const ConstRowMap K(&gains[(std::size_t(i) * T + m) * nu * ndx], nu, ndx);
            Da.noalias() = K * S[m];
          }
        }
      }
    }
  }
  return out;
}

} // namespace sobolev_warmstart
