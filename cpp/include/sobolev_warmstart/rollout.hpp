#pragma once
/// @file
/// @brief Roll out an exported policy through a task's dynamics (Algorithm 2 of the reference):
/// sample an H-step chunk, execute its A actions, replan, until the horizon is covered. N
/// instances advance in lockstep groups (one batched policy call per replan and group); groups run
/// across OpenMP threads. Results do not depend on the grouping or the thread count, up to the
/// float rounding of batched network calls.

#include "sobolev_warmstart/inverse_dynamics.hpp"
#include "sobolev_warmstart/policy_runner.hpp"

#include <cstdint>

namespace sobolev_warmstart {

/// @brief Executes one action variable from a state: the physics of a rollout step.
/// Torque actions: u = clamp(a, u_lower, u_upper). State actions: q_{t+1} = Task::next_configuration(a,
/// x_t) (g^{-1}(a) on the branch nearest to q_t by default; the UR5 goes through its velocity part),
/// u = clamp(inverse dynamics(x_t, q_{t+1})). Then x_{t+1} = f(x_t, u) and the
/// realised action a' = action(u, x_{t+1}), which is what enters the next chunk's history.
/// One per thread.
class ActionExecutor {
public:
  explicit ActionExecutor(const Task &task);
  void apply(const VectorXd &x, const Eigen::Ref<const VectorXd> &a, Eigen::Ref<VectorXd> u,
             Eigen::Ref<VectorXd> x_next, Eigen::Ref<VectorXd> a_realised);

private:
  const Task &task_;
  InverseDynamics inverse_dynamics_;
  std::shared_ptr<ExplicitDynamicsData> dynamics_data_;
  VectorXd q_next_, u_, a_;  // buffers: no allocation per step
};

/// @brief The action variable before t = 0 (history of the first chunk): zero torque, or g(q_0)
/// for state actions. Same convention as the training data (TrajectoryData.from_solve).
void initial_action(const Task &task, const VectorXd &x0, Eigen::Ref<VectorXd> a);

/// @brief Standard normal draws of one (instance, replan) pair of a seeded rollout: `count` floats
/// in the order (K, H, na). Counter-based (SplitMix64 + Box-Muller), so the draws do not depend on
/// batching, threads or platform.
void rollout_noise(std::uint64_t seed, std::int64_t instance, int replan, int count, float *out);

struct RolloutOptions {
  int action_steps = 0;       ///< A, executed actions per replan (0: the policy's own)
  std::uint64_t seed = 0;     ///< noise seed (instance i, replan r draw from stream (seed, i, r))
  int batch_size = 0;         ///< lockstep group size (0: split the instances evenly over threads)
  int num_threads = 0;        ///< OpenMP threads across groups (0: all)
};

/// @brief Number of replans (policy calls per instance) to cover the horizon.
int rollout_num_replans(const PolicyMetadata &meta, int horizon, int action_steps);

/// @brief Row-major results, first index: instance.
struct RolloutResult {
  int n = 0;
  int num_replans = 0;
  int action_steps = 0;
  std::vector<double> xs;           ///< (n, T+1, nx)
  std::vector<double> us;           ///< (n, T, nu)
  std::vector<double> actions;      ///< (n, T, na) realised action variables
  std::vector<double> time;         ///< (n,) wall time of the instance's group / group size [s]
  std::vector<double> policy_time;  ///< (n,) share of that time spent in policy calls [s]
  std::vector<std::string> errors;  ///< (n,) empty, or why the rollout stopped (non-finite state)
  double wall_time = 0.0;           ///< whole batch [s]
  int policy_calls = 0;             ///< batched policy calls made
  double policy_call_time = 0.0;    ///< summed over calls (and threads) [s]
};

/// @brief Roll out `runner` from each (x0, params).
/// @param noise optional (n, num_replans, K, H, na) float32 draws replacing the seeded ones.
/// @pre runner.check_task(task) passed; sizes checked by the caller; action_steps valid.
/// An instance whose state turns non-finite or exceeds 1e6 in magnitude is frozen there (zero
/// control) and reported in errors.
RolloutResult rollout_batch(const Task &task, const PolicyRunner &runner, const RowMatrixXd &x0s,
                            const RowMatrixXd &params, const RolloutOptions &options,
                            const float *noise = nullptr);

} // namespace sobolev_warmstart
