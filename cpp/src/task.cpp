#include "sobolev_warmstart/task.hpp"
#include "task_common.hpp"

#include <aligator/modelling/dynamics/multibody-free-fwd.hpp>
#include <aligator/modelling/dynamics/integrator-semi-euler.hpp>
#include <pinocchio/algorithm/joint-configuration.hpp>
#include <pinocchio/algorithm/rnea.hpp>

#include <algorithm>
#include <iterator>
#include <sstream>
#include <thread>

namespace sobolev_warmstart {

// Defined in the task_*.cpp files.
std::shared_ptr<const Task> make_pendulum_task(const std::string &name, const std::string &variant,
                                               const std::string &robots_dir, int horizon);
std::shared_ptr<const Task> make_ur5_task(const std::string &variant, const std::string &robots_dir, int horizon);
std::shared_ptr<const Task> make_quadrotor_task(const std::string &variant, const std::string &robots_dir,
                                                int horizon);
std::vector<std::string> ur5_variants();
std::vector<std::string> double_pendulum_variants();
std::vector<std::string> quadrotor_variants();

std::vector<std::pair<std::string, std::vector<std::string>>> available_tasks() {
  return {{"pendulum", {"default"}},
          {"double_pendulum", double_pendulum_variants()},
          {"ur5", ur5_variants()},
          {"quadrotor", quadrotor_variants()}};
}

std::shared_ptr<const Task> make_task(const std::string &name, const std::string &variant,
                                      const std::string &robots_dir, int horizon) {
  if (horizon < 0)
    throw std::invalid_argument("horizon: expected a number of steps >= 1, or 0 for the variant's own, got " +
                                std::to_string(horizon));
  for (const auto &[task_name, variants] : available_tasks()) {
    if (task_name != name) continue;
    const std::string v = variant.empty() ? variants.front() : variant;
    if (std::find(variants.begin(), variants.end(), v) == variants.end()) {
      std::ostringstream msg;
      msg << "variant: unknown variant '" << variant << "' of task '" << name << "', expected one of:";
      for (const auto &known : variants) msg << " '" << known << "'";
      throw std::invalid_argument(msg.str());
    }
    if (name == "pendulum" || name == "double_pendulum") return make_pendulum_task(name, v, robots_dir, horizon);
    if (name == "ur5") return make_ur5_task(v, robots_dir, horizon);
    return make_quadrotor_task(v, robots_dir, horizon);
  }
  std::ostringstream msg;
  msg << "name: unknown task '" << name << "', expected one of:";
  for (const auto &[task_name, variants] : available_tasks()) msg << " '" << task_name << "'";
  throw std::invalid_argument(msg.str());
}

void Task::finalize(int horizon, double dt, int nz, int na, int no) {
  using Space = detail::Space;
  using FreeFwd = aligator::dynamics::MultibodyFreeFwdDynamicsTpl<double>;
  dims_.nq = model_.nq;
  dims_.nv = model_.nv;
  dims_.nx = model_.nq + model_.nv;
  dims_.ndx = 2 * model_.nv;
  dims_.nu = int(actuation_.cols());
  dims_.na = na;
  dims_.no = no;
  dims_.nz = nz;
  dims_.horizon = horizon;
  dims_.dt = dt;
  Space space(model_);
  FreeFwd ode(space, actuation_);
  dynamics_ = std::make_shared<const SemiImplicitEulerDynamics>(ode, dt);
}

std::unique_ptr<ReusablePool::Entry> ReusablePool::take(const std::string &key) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it)  // the most recently put back first
    if (it->first == key) {
      std::unique_ptr<Entry> entry = std::move(it->second);
      idle_.erase(std::next(it).base());
      return entry;
    }
  return nullptr;
}

std::size_t ReusablePool::max_idle() {
  static const std::size_t n = 4 * std::max<std::size_t>(16, std::thread::hardware_concurrency());
  return n;
}

void ReusablePool::put(const std::string &key, std::unique_ptr<Entry> entry) {
  if (!entry) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() >= max_idle()) idle_.erase(idle_.begin());
  idle_.emplace_back(key, std::move(entry));
}

std::shared_ptr<ExplicitDynamicsData> Task::create_dynamics_data() const {
  return std::static_pointer_cast<ExplicitDynamicsData>(dynamics_->createData());
}

void Task::check_instance(const VectorXd &x0, const VectorXd &params) const {
  if (x0.size() != dims_.nx || params.size() != dims_.nz)
    throw std::invalid_argument("instance: wrong sizes");
  check_state(x0);
}

void Task::check_state(const VectorXd &x) const {
  const VectorXd q = x.head(dims_.nq);
  if (!pinocchio::isNormalized(model_, q, 1e-8))
    throw std::invalid_argument("x0s: configuration " + detail::format_vector(q) +
                                " is not normalised (a quaternion must have unit norm)");
}

void Task::action(const VectorXd &u, const VectorXd &x_next, Eigen::Ref<VectorXd> a) const {
  if (action_space_ == ActionSpace::Torque)
    a = u;
  else
    state_features(x_next, a);
}

void Task::state_features(const VectorXd &x_next, Eigen::Ref<VectorXd> a) const {
  configuration_features(x_next.head(dims_.nq), a);
}

void Task::next_configuration(const VectorXd &a, const VectorXd &x, Eigen::Ref<VectorXd> q_next) const {
  configuration_from_features(a, x.head(dims_.nq), q_next);
}

void Task::configuration_features(const VectorXd &q, Eigen::Ref<VectorXd> a) const { a = q; }

void Task::configuration_from_features(const VectorXd &a, const VectorXd &, Eigen::Ref<VectorXd> q) const {
  q = a.head(dims_.nq);
}

void Task::action_state_jacobian(const VectorXd &, Eigen::Ref<MatrixXd> J) const {
  // Identity features: d q / d x in tangent coordinates for a Euclidean configuration.
  J.setZero();
  J.leftCols(dims_.nv).setIdentity();
}

void Task::observation(const VectorXd &x, const VectorXd &, Eigen::Ref<VectorXd> o) const { o = x; }

void Task::observation_jacobian(const VectorXd &, const VectorXd &, Eigen::Ref<MatrixXd> J) const {
  J.setIdentity();
}

namespace detail {

StageModel make_tracking_stage(const Task &task, const VectorXd &x_target, const VectorXd &w_state,
                               const VectorXd &u_ref, const VectorXd &w_control) {
  const Space space(task.model());
  const int nu = task.dims().nu;
  CostStack costs(space, nu);
  costs.addCost("state", QuadraticStateCost(space, nu, x_target, w_state.asDiagonal().toDenseMatrix()));
  costs.addCost("control", QuadraticControlCost(space, u_ref, w_control.asDiagonal().toDenseMatrix()));
  StageModel stage(costs, task.dynamics());
  stage.addConstraint(ControlErrorResidual(space.ndx(), nu), BoxConstraint(task.u_lower(), task.u_upper()));
  return stage;
}

void interpolate_states(const pinocchio::Model &model, const VectorXd &x0, const VectorXd &x1,
                        int horizon, std::vector<VectorXd> &xs) {
  xs.resize(horizon + 1);
  for (int t = 0; t <= horizon; ++t) {
    const double s = double(t) / horizon;
    xs[t].resize(x0.size());
    xs[t].head(model.nq) = pinocchio::interpolate(model, x0.head(model.nq), x1.head(model.nq), s);
    xs[t].tail(model.nv) = (1.0 - s) * x0.tail(model.nv) + s * x1.tail(model.nv);
  }
}

VectorXd gravity_compensation(const Task &task, const VectorXd &q) {
  pinocchio::Data data(task.model());
  const VectorXd tau = pinocchio::computeGeneralizedGravity(task.model(), data, q);
  VectorXd u = task.actuation().completeOrthogonalDecomposition().solve(tau);
  return u.cwiseMax(task.u_lower()).cwiseMin(task.u_upper());
}

CostStack &cost_stack(StageModel &stage) {
  auto *stack = dynamic_cast<CostStack *>(&*stage.cost_);
  if (stack == nullptr) throw std::logic_error("stage cost is not a CostStack");
  return *stack;
}

std::string format_vector(const VectorXd &v) {
  std::ostringstream out;
  out << "[";
  for (Eigen::Index i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
  out << "]";
  return out.str();
}

} // namespace detail
} // namespace sobolev_warmstart
