#pragma once
/// @file
/// @brief Chained closed-loop derivatives of future states and actions w.r.t. the current state.
/// With A_t = df/dx, B_t = df/du at the solution and Phi_t = A_t + B_t K_t:
/// dx_{t0+k}/dx_{t0} = Phi_{t0+k-1} ... Phi_{t0}, du_{t0+k}/dx_{t0} = K_{t0+k} dx_{t0+k}/dx_{t0}.

#include "sobolev_warmstart/task.hpp"

namespace sobolev_warmstart {

/// @brief Per-instance sensitivities of a batch, row-major contiguous arrays.
/// Offsets past the end of the trajectory repeat the last available index (states clamp to T,
/// actions to T-1), matching the edge padding of chunks.
struct ChainedDerivatives {
  int n = 0, horizon = 0;            ///< H offsets k = 0..H-1
  std::vector<double> state_jacobians;   ///< (n, T, H, ndx, ndx): dx_{min(t0+k,T)}/dx_{t0}
  std::vector<double> action_jacobians;  ///< (n, T, H, na, ndx): da_{min(t0+k,T-1)}/dx_{t0}
  std::vector<double> actions;           ///< (n, T, na)
  std::vector<double> observations;      ///< (n, T+1, no)
  std::vector<double> observation_jacobians; ///< (n, T+1, no, ndx)
  std::vector<double> closed_loop_jacobians; ///< (n, T, ndx, ndx): Phi_t
};

/// @brief Compute chained derivatives for n trajectories (xs, us, gains in BatchSolveResult layout;
/// params (n, nz) the instances' task parameters, which the observation may read).
ChainedDerivatives chained_derivatives(const Task &task, int n, const std::vector<double> &xs,
                                       const std::vector<double> &us,
                                       const std::vector<double> &gains,
                                       const std::vector<double> &params, int horizon,
                                       int num_threads);

} // namespace sobolev_warmstart
