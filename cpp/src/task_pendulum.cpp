/// @file
/// @brief Swing-up of a pendulum and a double pendulum to the upright equilibrium.
/// Model: example-robot-data's double_pendulum.urdf (q = 0 is upright, q1 = pi hangs down); the
/// single pendulum is the same robot with its elbow locked straight (pinocchio::buildReducedModel).
#include "task_common.hpp"

#include <pinocchio/parsers/urdf.hpp>
#include <pinocchio/algorithm/model.hpp>

#include <filesystem>
#include <sstream>

namespace sobolev_warmstart {
namespace {

using namespace detail;

/// Settings of a swing-up task, all in one place (weights are per second: the stage cost is
/// dt * (|x - x*|^2_Wx + |u|^2_Wu), the terminal cost |x_T - x*|^2_WT).
struct SwingUpSettings {
  int horizon;
  double dt;
  int num_actuated;   // joints 1..num_actuated carry a motor (1 of 2: the pendubot)
  double torque_limit;
  double w_angle, w_velocity, w_control;    // running weights
  double wT_angle, wT_velocity;             // terminal weights
  double q0_spread, v0_spread;              // x0: q1 ~ pi + U(-s, s), other q ~ U(-s, s), v ~ U(-s, s)
};

// Pendulum: 0.6 kg, gravity torque up to ~0.75 N m; a 0.6 N m limit forces a pumping swing.
constexpr SwingUpSettings kPendulum{100, 0.02, 1, 0.6, 1.0, 0.1, 1e-2, 100.0, 10.0, 0.5, 0.5};
// Double pendulum with a motor at the shoulder only (pendubot): hard from the interpolated guess.
// (With both joints actuated ProxDDP solves every instance in ~10-30 iterations.)
constexpr SwingUpSettings kDoublePendulum{100, 0.02, 1, 2.0, 1.0, 0.1, 1e-2, 100.0, 10.0, 0.5, 0.5};
// Reference difficulty (variant "reference"): both joints torque-controlled, as in the reference's double
// pendulum; Aligator's pendulum example's time step dt = 0.01 over a 2 s horizon. The torque box (below the
// 0.75 N m the shoulder needs to hold the arm horizontal) forces a pumping swing, so the interpolated
// guess (no torque, a straight line through state space) lies far from every solution: from it, TO alone fails
// on 56% of the instances within 1000 iterations (README, "Reference-difficulty variants").
constexpr SwingUpSettings kDoublePendulumReference{200, 0.01, 2, 0.15, 1.0, 0.1, 1e-2, 100.0, 10.0, 0.5, 0.5};

class SwingUpProblem final : public TaskProblem {
public:
  explicit SwingUpProblem(std::unique_ptr<TrajOptProblem> problem) { problem_ = std::move(problem); }
  void set_instance(const VectorXd &x0, const VectorXd &) override { problem_->setInitState(x0); }
};

class SwingUpTask final : public Task {
public:
  SwingUpTask(const std::string &name, const std::string &variant, pinocchio::Model model,
              const SwingUpSettings &settings)
      : s_(settings) {
    name_ = name;
    variant_ = variant;
    model_ = std::move(model);
    const int nv = model_.nv;
    actuation_ = MatrixXd::Identity(nv, nv).leftCols(s_.num_actuated);
    u_upper_ = VectorXd::Constant(s_.num_actuated, s_.torque_limit);
    u_lower_ = -u_upper_;
    action_space_ = ActionSpace::Torque;
    finalize(s_.horizon, s_.dt, /*nz=*/0, /*na=*/s_.num_actuated, /*no=*/model_.nq + model_.nv);
    x_target_ = VectorXd::Zero(dims_.nx);
  }

  std::string describe() const override {
    std::ostringstream out;
    out << name_ << ": swing-up to the upright equilibrium q = 0, v = 0 (example-robot-data "
        << "double_pendulum.urdf" << (dims_.nv == 1 ? ", elbow locked straight" : "") << ")\n"
        << "  horizon T = " << s_.horizon << " steps of dt = " << s_.dt << " s, semi-implicit Euler\n"
        << "  controls: torque" << (s_.num_actuated < dims_.nv ? " at the shoulder only (pendubot)" : "")
        << ", |u| <= " << s_.torque_limit << " N m (box constraint)\n"
        << "  running cost dt/2 * (" << s_.w_angle << " |q|^2 + " << s_.w_velocity << " |v|^2 + "
        << s_.w_control << " |u|^2), terminal 1/2 (" << s_.wT_angle << " |q_T|^2 + " << s_.wT_velocity
           << " |v_T|^2); Aligator's quadratic costs are 1/2 r^T W r\n"
        << "  instances: q1 ~ pi + U(-" << s_.q0_spread << ", " << s_.q0_spread << ")"
        << (dims_.nv > 1 ? ", q2 ~ U(-s, s)" : "") << ", v ~ U(-" << s_.v0_spread << ", " << s_.v0_spread
        << "); no task parameters\n"
        << "  default guess: states linearly interpolated from x0 to the upright state, zero torques\n"
        << "  action: torques; observation: the state (q, v)\n";
    if (variant_ == "reference")
      out << "  reference difficulty: both joints torque-controlled as in the reference's double pendulum (Le Hellard "
          << "et al., 2026: TO alone fails 80% of the time); Aligator's pendulum example's dt = 0.01 s; a torque box "
          << "below the shoulder's 0.75 N m holding torque forces a pumping swing; solver budget 1000\n";
    return out.str();
  }

  void sample_instances(std::uint64_t seed, int n, RowMatrixXd &x0s, RowMatrixXd &params) const override {
    std::mt19937_64 rng(seed);
    x0s.resize(n, dims_.nx);
    params.resize(n, 0);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < dims_.nq; ++j)
        x0s(i, j) = (j == 0 ? M_PI : 0.0) + uniform(rng, -s_.q0_spread, s_.q0_spread);
      for (int j = 0; j < dims_.nv; ++j) x0s(i, dims_.nq + j) = uniform(rng, -s_.v0_spread, s_.v0_spread);
    }
  }

  std::unique_ptr<TaskProblem> create_problem() const override {
    const VectorXd w_state = s_.dt * (VectorXd(dims_.ndx) << VectorXd::Constant(dims_.nv, s_.w_angle),
                                      VectorXd::Constant(dims_.nv, s_.w_velocity)).finished();
    const VectorXd w_control = VectorXd::Constant(dims_.nu, s_.dt * s_.w_control);
    const VectorXd w_terminal = (VectorXd(dims_.ndx) << VectorXd::Constant(dims_.nv, s_.wT_angle),
                                 VectorXd::Constant(dims_.nv, s_.wT_velocity)).finished();
    std::vector<xyz::polymorphic<StageModel>> stages;
    stages.reserve(s_.horizon);
    const StageModel stage = make_tracking_stage(*this, x_target_, w_state, VectorXd::Zero(dims_.nu), w_control);
    for (int t = 0; t < s_.horizon; ++t) stages.emplace_back(stage);
    const Space space(model_);
    QuadraticStateCost terminal(space, dims_.nu, x_target_, w_terminal.asDiagonal().toDenseMatrix());
    auto problem = std::make_unique<TrajOptProblem>(x_target_, stages, terminal);
    return std::make_unique<SwingUpProblem>(std::move(problem));
  }

  void default_initial_guess(const VectorXd &x0, const VectorXd &, std::vector<VectorXd> &xs,
                             std::vector<VectorXd> &us) const override {
    interpolate_states(model_, x0, x_target_, s_.horizon, xs);
    us.assign(s_.horizon, VectorXd::Zero(dims_.nu));
  }

private:
  SwingUpSettings s_;
  VectorXd x_target_;
};

} // namespace

std::vector<std::string> double_pendulum_variants() { return {"default", "reference"}; }

std::shared_ptr<const Task> make_pendulum_task(const std::string &name, const std::string &variant,
                                               const std::string &robots_dir, int horizon) {
  const std::filesystem::path urdf =
      std::filesystem::path(robots_dir) / "double_pendulum_description" / "urdf" / "double_pendulum.urdf";
  if (!std::filesystem::exists(urdf))
    throw std::runtime_error("robots_dir: model file not found: " + urdf.string());
  pinocchio::Model full;
  pinocchio::urdf::buildModel(urdf.string(), full);
  SwingUpSettings s = name == "pendulum" ? kPendulum : variant == "reference" ? kDoublePendulumReference : kDoublePendulum;
  if (horizon > 0) s.horizon = horizon;
  if (name == "double_pendulum") return std::make_shared<SwingUpTask>(name, variant, full, s);
  const std::vector<pinocchio::JointIndex> locked{full.getJointId("joint2")};
  pinocchio::Model single = pinocchio::buildReducedModel(full, locked, Eigen::VectorXd::Zero(full.nq));
  return std::make_shared<SwingUpTask>(name, variant, single, s);
}

} // namespace sobolev_warmstart
