#pragma once
/// @file
/// @brief Recover controls from a state trajectory, for state-space actions.
/// Semi-implicit Euler: v_{t+1} = (q_{t+1} - q_t)/dt, a_t = (v_{t+1} - v_t)/dt,
/// tau_t = RNEA(q_t, v_t, a_t), u_t = argmin ||actuation u - tau_t|| (least squares).

#include "sobolev_warmstart/task.hpp"

namespace sobolev_warmstart {

/// @brief Per-thread inverse-dynamics workspace (pinocchio Data and a factorised actuation).
class InverseDynamics {
public:
  explicit InverseDynamics(const Task &task);
  /// @brief Control u that drives x to a state whose configuration is q_next.
  void control(const VectorXd &x, const VectorXd &q_next, Eigen::Ref<VectorXd> u);
  /// @brief Least-squares residual ||actuation u - tau|| of the last call (0 when fully actuated).
  double last_residual() const { return residual_; }

private:
  const Task &task_;
  pinocchio::Data data_;
  Eigen::CompleteOrthogonalDecomposition<MatrixXd> actuation_qr_;
  VectorXd v_next_, acc_, tau_;
  double residual_ = 0.0;
};

/// @brief Controls (n, T, nu) for n state trajectories (n, T+1, nx): u_t from (x_t, q_{t+1}).
/// @param[out] residuals (n, T) least-squares residuals.
void inverse_dynamics_batch(const Task &task, int n, int horizon, const std::vector<double> &xs,
                            std::vector<double> &us, std::vector<double> &residuals,
                            int num_threads);

} // namespace sobolev_warmstart
