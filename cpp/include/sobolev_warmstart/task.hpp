#pragma once
/// @file
/// @brief Optimal control tasks: a robot model, a family of problem instances, and the Aligator
/// problem that solves one instance. A Task is a read-only model shared by all threads; each thread
/// owns a TaskProblem (its own TrajOptProblem, created once, re-targeted per instance).

#include <aligator/context.hpp>
#include <aligator/core/traj-opt-problem.hpp>
#include <aligator/core/explicit-dynamics.hpp>
#include <aligator/modelling/dynamics/integrator-semi-euler.hpp>
#include <pinocchio/multibody/model.hpp>
#include <pinocchio/multibody/data.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sobolev_warmstart {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using TrajOptProblem = aligator::context::TrajOptProblem;
using ExplicitDynamics = aligator::context::ExplicitDynamics;
using ExplicitDynamicsData = aligator::ExplicitDynamicsDataTpl<double>;
/// Semi-implicit Euler over pinocchio forward dynamics: v+ = v + dt aba(q, v, S u), q+ = q (+) dt v+.
using SemiImplicitEulerDynamics = aligator::dynamics::IntegratorSemiImplEulerTpl<double>;

/// @brief What the policy's action variable is.
/// Torque: a_t = u_t. State: a_t = g(q_{t+1}), the next configuration through the task's
/// preprocessing g (e.g. (cos q, sin q)); torques are recovered by inverse dynamics.
enum class ActionSpace { Torque, State };

/// @brief Sizes and time discretisation of a task.
struct TaskDims {
  int nq = 0;       ///< configuration size
  int nv = 0;       ///< velocity size
  int nx = 0;       ///< state size, nq + nv
  int ndx = 0;      ///< state tangent size, 2 nv
  int nu = 0;       ///< control size
  int na = 0;       ///< action-variable size
  int no = 0;       ///< observation-feature size
  int nz = 0;       ///< task-parameter size (target, goal, obstacles)
  int horizon = 0;  ///< number of control steps T (T+1 states)
  double dt = 0.0;  ///< time step [s]
};

/// @brief Per-thread problem of a task: one Aligator problem, re-targeted to an instance
/// without being rebuilt.
class TaskProblem {
public:
  virtual ~TaskProblem() = default;
  /// @brief Point the problem at instance (x0, z). @pre sizes checked by Task::check_instance.
  virtual void set_instance(const VectorXd &x0, const VectorXd &params) = 0;
  TrajOptProblem &problem() { return *problem_; }

protected:
  std::unique_ptr<TrajOptProblem> problem_;
};

/// @brief Objects that take milliseconds to build and can serve later calls on the same task: a thread's Aligator
/// problem (with its data), a thread's solver workspace. Building them on every call cost a one-instance pendubot solve
/// about 12 ms around its iterations, 1 ms once kept (round 46, benchmarks/bench_call_overhead.py). A Task keeps the idle ones for its lifetime, by key (what they
/// were built for); a call takes one or builds it, and puts it back when done. Thread-safe. At most max_idle() idle
/// objects are kept (four per hardware thread, at least 64: a solver's and an evaluation's per thread, for two sets of
/// options): beyond that the oldest are dropped.
class ReusablePool {
public:
  struct Entry {
    virtual ~Entry() = default;
  };
  static std::size_t max_idle();

  /// @brief An idle entry built for `key`, or nullptr when there is none (the caller builds one).
  std::unique_ptr<Entry> take(const std::string &key);
  /// @brief Keep `entry` (built for `key`) for a later take; nullptr is ignored.
  void put(const std::string &key, std::unique_ptr<Entry> entry);

private:
  std::mutex mutex_;
  std::vector<std::pair<std::string, std::unique_ptr<Entry>>> idle_;  // oldest first
};

/// @brief A family of optimal control problems over one robot model.
class Task {
public:
  virtual ~Task() = default;

  const std::string &name() const { return name_; }
  const std::string &variant() const { return variant_; }
  const TaskDims &dims() const { return dims_; }
  ActionSpace action_space() const { return action_space_; }
  const pinocchio::Model &model() const { return model_; }
  /// @brief Maps controls to generalised forces, tau = actuation * u (nv x nu).
  const MatrixXd &actuation() const { return actuation_; }
  const VectorXd &u_lower() const { return u_lower_; }
  const VectorXd &u_upper() const { return u_upper_; }
  /// @brief One line per cost weight, constraint and setting: the task's documentation.
  virtual std::string describe() const = 0;

  /// @brief Draw n instances from the task's seeded distribution.
  /// @param[out] x0s (n, nx) initial states; @param[out] params (n, nz) task parameters.
  virtual void sample_instances(std::uint64_t seed, int n, RowMatrixXd &x0s,
                                RowMatrixXd &params) const = 0;
  /// @brief Throws std::invalid_argument naming the offending entry when (x0, z) is not a valid
  /// instance (wrong range, not normalised).
  virtual void check_instance(const VectorXd &x0, const VectorXd &params) const;
  /// @brief Throws std::invalid_argument when x is not a valid state (non-normalised quaternion).
  void check_state(const VectorXd &x) const;

  /// @brief Create a per-thread problem (call once per thread, reuse for every instance).
  virtual std::unique_ptr<TaskProblem> create_problem() const = 0;
  /// @brief The task's pool of reusable per-thread objects (problems, solver workspaces), shared by every call.
  ReusablePool &reusable() const { return reusable_; }

  /// @brief The default ("TO alone") initial guess of an instance. See describe().
  virtual void default_initial_guess(const VectorXd &x0, const VectorXd &params,
                                     std::vector<VectorXd> &xs, std::vector<VectorXd> &us) const = 0;

  /// @brief Discrete dynamics x_{t+1} = f(x_t, u_t), shared with the solver's problem.
  const SemiImplicitEulerDynamics &dynamics() const { return *dynamics_; }
  std::shared_ptr<ExplicitDynamicsData> create_dynamics_data() const;

  /// @brief Action variable a_t from (u_t, x_{t+1}); and d a / d x_{t+1} (na x ndx) for state
  /// actions (zero-size for torque actions, whose a = u).
  void action(const VectorXd &u, const VectorXd &x_next, Eigen::Ref<VectorXd> a) const;
  virtual void action_state_jacobian(const VectorXd &x_next, Eigen::Ref<MatrixXd> J) const;
  /// @brief Observation features o(x; z) (no) and d o / d x in tangent coordinates (no x ndx). The task
  /// parameters z may enter (e.g. obstacles relative to the robot); the state x is the differentiated input.
  virtual void observation(const VectorXd &x, const VectorXd &params, Eigen::Ref<VectorXd> o) const;
  virtual void observation_jacobian(const VectorXd &x, const VectorXd &params, Eigen::Ref<MatrixXd> J) const;
  /// @brief State action of a next state, a = g(x_{t+1}) (na): configuration_features(q_{t+1}) by
  /// default; a task may add the next velocity (the UR5).
  virtual void state_features(const VectorXd &x_next, Eigen::Ref<VectorXd> a) const;
  /// @brief Decodes a policy's state action at state x into the configuration to reach, q_{t+1}
  /// (nq): configuration_from_features(a, q_t) by default.
  virtual void next_configuration(const VectorXd &a, const VectorXd &x, Eigen::Ref<VectorXd> q_next) const;
  /// @brief State-action preprocessing g(q) (na); identity by default.
  virtual void configuration_features(const VectorXd &q, Eigen::Ref<VectorXd> a) const;
  /// @brief Inverse of the preprocessing, q = g^{-1}(a) (nq), for decoding a policy's state
  /// action; where g is periodic (angles as (cos, sin)) the branch nearest to q_near is taken.
  /// Takes the first nq entries by default.
  virtual void configuration_from_features(const VectorXd &a, const VectorXd &q_near,
                                           Eigen::Ref<VectorXd> q) const;

protected:
  /// @brief Fills dims_ and dynamics_ once model_, actuation_, horizon and dt are set.
  void finalize(int horizon, double dt, int nz, int na, int no);

  std::string name_;
  std::string variant_;
  TaskDims dims_;
  ActionSpace action_space_ = ActionSpace::Torque;
  pinocchio::Model model_;
  MatrixXd actuation_;
  VectorXd u_lower_, u_upper_;
  std::shared_ptr<const SemiImplicitEulerDynamics> dynamics_;

private:
  mutable ReusablePool reusable_;
};

/// @brief Names of the tasks make_task accepts, with their variants.
std::vector<std::pair<std::string, std::vector<std::string>>> available_tasks();

/// @brief Build a task by name and variant; robots_dir is example-robot-data's "robots" folder.
/// horizon > 0 replaces the variant's number of steps T (the same stages, shorter or longer: a tail of
/// the variant's problem, e.g. to re-solve from a state part-way along a trajectory); 0 keeps it.
/// Throws std::invalid_argument for an unknown name or variant or a negative horizon,
/// std::runtime_error for a missing model file.
std::shared_ptr<const Task> make_task(const std::string &name, const std::string &variant,
                                      const std::string &robots_dir, int horizon = 0);

} // namespace sobolev_warmstart
