/// @file
/// @brief UR5 end-effector reaching with torque limits (example-robot-data ur5_robot.urdf), in four
/// variants: {fixed, random} start configuration x {fixed, random} end-effector target.
/// State-controlled: the action variable is the next state as (cos q, sin q, v), executed through v.
#include "task_common.hpp"

#include <aligator/modelling/multibody/frame-translation.hpp>
#include <pinocchio/parsers/urdf.hpp>
#include <pinocchio/algorithm/kinematics.hpp>
#include <pinocchio/algorithm/frames.hpp>
#include <pinocchio/algorithm/jacobian.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <sstream>

namespace sobolev_warmstart {
namespace {

using namespace detail;
using FrameTranslationResidual = aligator::FrameTranslationResidualTpl<double>;

/// Settings of the reaching task, all in one place (weights per second, see describe()).
struct ReachSettings {
  int horizon = 50;
  double dt = 0.02;
  double w_ee = 10.0, w_velocity = 0.1, w_control = 1e-3;  // running
  double wT_ee = 1000.0, wT_velocity = 10.0;               // terminal
  Eigen::Matrix<double, 6, 1> q0_fixed = (Eigen::Matrix<double, 6, 1>() << 0.0, -1.0, 1.5, -0.5, 1.57, 0.0).finished();
  Eigen::Vector3d target_fixed{0.4, 0.3, 0.4};
  double target_rmin = 0.3, target_rmax = 0.7, target_zmin = 0.1;  // random targets: shell around the shoulder
  double q0_spread = M_PI;                                         // random starts: q ~ U(-pi, pi)
};

const std::vector<std::string> kVariants{"fixed_start_fixed_target", "fixed_start_random_target",
                                         "random_start_fixed_target", "random_start_random_target",
                                         "reference_random_start_random_target"};

/// Reference difficulty (variant "reference_random_start_random_target"): the resolution of Aligator's
/// ur5_reach example, dt = 0.01 over N = 100 steps, from a fully random start to a random target.
ReachSettings reference_settings() {
  ReachSettings s;
  s.horizon = 100;
  s.dt = 0.01;
  return s;
}

class ReachProblem final : public TaskProblem {
public:
  explicit ReachProblem(std::unique_ptr<TrajOptProblem> problem) {
    problem_ = std::move(problem);
    // Collect the end-effector residuals once; set_instance only rewrites their targets.
    for (auto &stage : problem_->stages_)
      ee_residuals_.push_back(find_ee(cost_stack(*stage)));
    auto *terminal = dynamic_cast<CostStack *>(&*problem_->term_cost_);
    ee_residuals_.push_back(find_ee(*terminal));
  }
  void set_instance(const VectorXd &x0, const VectorXd &params) override {
    problem_->setInitState(x0);
    for (auto *residual : ee_residuals_) residual->p_ref_ = params.head<3>();
  }

private:
  static FrameTranslationResidual *find_ee(CostStack &stack) {
    auto *cost = stack.getComponent<QuadraticResidualCost>("end_effector");
    return dynamic_cast<FrameTranslationResidual *>(&*cost->residual_);
  }
  std::vector<FrameTranslationResidual *> ee_residuals_;
};

class ReachTask final : public Task {
public:
  ReachTask(const std::string &variant, pinocchio::Model model, const ReachSettings &settings) : s_(settings) {
    name_ = "ur5";
    variant_ = variant;
    random_start_ = variant.find("random_start") != std::string::npos;
    random_target_ = variant.find("random_target") != std::string::npos;
    model_ = std::move(model);
    ee_frame_ = model_.getFrameId("tool0");
    const int nv = model_.nv;
    actuation_ = MatrixXd::Identity(nv, nv);
    u_upper_ = model_.effortLimit;
    u_lower_ = -u_upper_;
    action_space_ = ActionSpace::State;
    finalize(s_.horizon, s_.dt, /*nz=*/3, /*na=*/2 * model_.nq + nv, /*no=*/model_.nq + 2 * nv + 6);
  }

  std::string describe() const override {
    std::ostringstream out;
    out << "ur5/" << variant_ << ": reach an end-effector (tool0) position (example-robot-data ur5_robot.urdf)\n"
        << "  horizon T = " << s_.horizon << " steps of dt = " << s_.dt << " s, semi-implicit Euler\n"
        << "  controls: joint torques within the URDF effort limits " << format_vector(u_upper_) << " N m\n"
        << "  running cost dt/2 * (" << s_.w_ee << " |p_ee - p*|^2 + " << s_.w_velocity << " |v|^2 + "
        << s_.w_control << " |u|^2), terminal 1/2 (" << s_.wT_ee << " |p_ee - p*|^2 + " << s_.wT_velocity
        << " |v|^2); Aligator's quadratic costs are 1/2 r^T W r\n"
        << "  start: " << (random_start_ ? "q ~ U(-pi, pi) per joint" : "q0 = " + format_vector(s_.q0_fixed))
        << ", v = 0\n"
        << "  target p* (task parameter z, 3): "
        << (random_target_ ? "uniform direction, radius U(0.3, 0.7) m around the shoulder, z >= 0.1 m"
                           : format_vector(s_.target_fixed))
        << "\n  default guess: x_t = x0 for all t, gravity-compensating torques at q0\n"
        << "  action: next state as (cos q, sin q, v) (18); executed through the velocity, q' = q + dt v', torques by "
           "inverse dynamics; observation: (q, v, e = p_ee(q) - p*, J(q)^T e, J(q) v)\n";
    if (variant_.rfind("reference_", 0) == 0)
      out << "  reference difficulty: the resolution of Aligator's ur5_reach example (dt = 0.01 s, N = 100) from a "
          << "fully random start; solver budget 1000 as in the reference (Le Hellard et al., 2026)\n";
    return out.str();
  }

  void sample_instances(std::uint64_t seed, int n, RowMatrixXd &x0s, RowMatrixXd &params) const override {
    std::mt19937_64 rng(seed);
    x0s = RowMatrixXd::Zero(n, dims_.nx);
    params.resize(n, 3);
    const Eigen::Vector3d shoulder(0.0, 0.0, 0.089159);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < dims_.nq; ++j)
        x0s(i, j) = random_start_ ? uniform(rng, -s_.q0_spread, s_.q0_spread) : s_.q0_fixed[j];
      Eigen::Vector3d target = s_.target_fixed;
      while (random_target_) {
        Eigen::Vector3d d(uniform(rng, -1, 1), uniform(rng, -1, 1), uniform(rng, -1, 1));
        if (d.norm() < 1e-3 || d.norm() > 1.0) continue;  // uniform direction by rejection
        target = shoulder + uniform(rng, s_.target_rmin, s_.target_rmax) * d.normalized();
        if (target.z() >= s_.target_zmin) break;
      }
      params.row(i) = target.transpose();
    }
  }

  void check_instance(const VectorXd &x0, const VectorXd &params) const override {
    Task::check_instance(x0, params);
    const Eigen::Vector3d shoulder(0.0, 0.0, 0.089159);
    if ((params.head<3>() - shoulder).norm() > 0.95)
      throw std::invalid_argument("params: target " + format_vector(params) +
                                  " is out of the UR5's reach (more than 0.95 m from the shoulder)");
  }

  std::unique_ptr<TaskProblem> create_problem() const override {
    const Space space(model_);
    const int nu = dims_.nu, ndx = dims_.ndx, nv = dims_.nv;
    VectorXd w_state = VectorXd::Zero(ndx);
    w_state.tail(nv).setConstant(s_.dt * s_.w_velocity);
    const VectorXd w_control = VectorXd::Constant(nu, s_.dt * s_.w_control);
    const VectorXd x_ref = VectorXd::Zero(dims_.nx);  // only velocities are weighted
    const FrameTranslationResidual ee(ndx, nu, model_, s_.target_fixed, ee_frame_);

    StageModel stage = make_tracking_stage(*this, x_ref, w_state, VectorXd::Zero(nu), w_control);
    cost_stack(stage).addCost("end_effector",
                              QuadraticResidualCost(space, ee, s_.dt * s_.w_ee * Eigen::Matrix3d::Identity()));
    std::vector<xyz::polymorphic<StageModel>> stages(s_.horizon, stage);

    VectorXd w_terminal = VectorXd::Zero(ndx);
    w_terminal.tail(nv).setConstant(s_.wT_velocity);
    CostStack terminal(space, nu);
    terminal.addCost("state", QuadraticStateCost(space, nu, x_ref, w_terminal.asDiagonal().toDenseMatrix()));
    terminal.addCost("end_effector", QuadraticResidualCost(space, ee, s_.wT_ee * Eigen::Matrix3d::Identity()));
    auto problem = std::make_unique<TrajOptProblem>(x_ref, stages, terminal);
    return std::make_unique<ReachProblem>(std::move(problem));
  }

  void default_initial_guess(const VectorXd &x0, const VectorXd &, std::vector<VectorXd> &xs,
                             std::vector<VectorXd> &us) const override {
    xs.assign(s_.horizon + 1, x0);
    us.assign(s_.horizon, gravity_compensation(*this, x0.head(dims_.nq)));
  }

  void state_features(const VectorXd &x_next, Eigen::Ref<VectorXd> a) const override {
    const int nq = dims_.nq;
    configuration_features(x_next.head(nq), a.head(2 * nq));
    a.tail(dims_.nv) = x_next.tail(dims_.nv);
  }

  void next_configuration(const VectorXd &a, const VectorXd &x, Eigen::Ref<VectorXd> q_next) const override {
    // Through the velocity, as the semi-implicit Euler step q' = q + dt v' does: an error e in the predicted
    // v' reaches the torque as M e / dt, where one in the predicted q' (the (cos, sin) part) would as
    // M e / dt^2 (benchmarks/bench_action_representation.py: closed-loop cost 615-741x TO's vs 1.4e5-7.5e6x).
    q_next = x.head(dims_.nq) + dims_.dt * a.tail(dims_.nv);
  }

  void configuration_features(const VectorXd &q, Eigen::Ref<VectorXd> a) const override {
    a.head(dims_.nq) = q.array().cos();
    a.tail(dims_.nq) = q.array().sin();
  }

  void action_state_jacobian(const VectorXd &x_next, Eigen::Ref<MatrixXd> J) const override {
    const int nq = dims_.nq;
    J.setZero();
    const VectorXd q = x_next.head(nq);
    J.block(0, 0, nq, nq).diagonal() = -q.array().sin();
    J.block(nq, 0, nq, nq).diagonal() = q.array().cos();
    J.block(2 * nq, dims_.nv, dims_.nv, dims_.nv).setIdentity();
  }

  /// The state and the reach in task space: the end effector's offset to the target e = p_ee(q) - p*, the
  /// joint-space direction that reduces it fastest, J(q)^T e, and the end effector's velocity J(q) v (J: the tool's
  /// translation Jacobian, world-aligned): o = (q, v, e, J^T e, J v). A policy would otherwise have to learn the
  /// forward kinematics to relate its joint state to a target given in Cartesian space (docs/results/ablations.md,
  /// round 20).
  void observation(const VectorXd &x, const VectorXd &params, Eigen::Ref<VectorXd> o) const override {
    const int nx = dims_.nx, nv = dims_.nv;
    pinocchio::Data &data = workspace();
    MatrixXd frame_jacobian = MatrixXd::Zero(6, nv);
    pinocchio::computeFrameJacobian(model_, data, x.head(dims_.nq), ee_frame_, pinocchio::LOCAL_WORLD_ALIGNED,
                                    frame_jacobian);
    const Eigen::Vector3d e = data.oMf[ee_frame_].translation() - params.head<3>();
    o.head(nx) = x;
    o.segment<3>(nx) = e;
    o.segment(nx + 3, nv) = frame_jacobian.topRows<3>().transpose() * e;
    o.tail<3>() = frame_jacobian.topRows<3>() * x.tail(nv);
  }

  /// d o / d x: the identity on the state; J on the offset; J^T J + [dJ/dq_j^T e]_j on the direction; [dJ/dq_j v]_j
  /// and J on the velocity. dJ/dq_j is the Jacobian's time variation at the unit velocity of joint j.
  void observation_jacobian(const VectorXd &x, const VectorXd &params, Eigen::Ref<MatrixXd> J) const override {
    const int nx = dims_.nx, nv = dims_.nv;
    const VectorXd q = x.head(dims_.nq);
    pinocchio::Data &data = workspace();
    MatrixXd frame_jacobian = MatrixXd::Zero(6, nv), dJ = MatrixXd::Zero(6, nv);
    pinocchio::computeFrameJacobian(model_, data, q, ee_frame_, pinocchio::LOCAL_WORLD_ALIGNED, frame_jacobian);
    const Eigen::Vector3d e = data.oMf[ee_frame_].translation() - params.head<3>();
    const auto Jp = frame_jacobian.topRows<3>();
    J.setZero();
    J.topRows(nx).setIdentity();
    J.block(nx, 0, 3, nv) = Jp;
    J.block(nx + 3, 0, nv, nv) = Jp.transpose() * Jp;
    J.block(nx + 3 + nv, nv, 3, nv) = Jp;
    const VectorXd v = x.tail(nv);
    for (int j = 0; j < nv; ++j) {
      const VectorXd unit = VectorXd::Unit(nv, j);
      pinocchio::computeJointJacobiansTimeVariation(model_, data, q, unit);
      dJ.setZero();
      pinocchio::getFrameJacobianTimeVariation(model_, data, ee_frame_, pinocchio::LOCAL_WORLD_ALIGNED, dJ);
      J.block(nx + 3, j, nv, 1) += dJ.topRows<3>().transpose() * e;
      J.block(nx + 3 + nv, j, 3, 1) = dJ.topRows<3>() * v;
    }
  }

private:
  /// This thread's kinematics workspace for this task (observation and its Jacobian). The observation runs at every
  /// rollout step, in the rollouts' OpenMP threads; building a pinocchio::Data there each time cost about 7 us a
  /// step, 0.35 ms of a 2 ms 50-step rollout (docs/performance.md). Keyed by the task's id, not its address, which a
  /// later task may reuse with another model.
  pinocchio::Data &workspace() const {
    thread_local std::uint64_t owner = 0;
    thread_local std::unique_ptr<pinocchio::Data> data;
    if (!data || owner != id_) {
      data = std::make_unique<pinocchio::Data>(model_);
      owner = id_;
    }
    return *data;
  }

  static inline std::atomic<std::uint64_t> next_id_{1};
  const std::uint64_t id_ = next_id_++;
  ReachSettings s_;
  bool random_start_ = false, random_target_ = false;
  pinocchio::FrameIndex ee_frame_ = 0;
};

} // namespace

std::vector<std::string> ur5_variants() { return kVariants; }

std::shared_ptr<const Task> make_ur5_task(const std::string &variant, const std::string &robots_dir, int horizon) {
  const std::filesystem::path urdf = std::filesystem::path(robots_dir) / "ur_description" / "urdf" / "ur5_robot.urdf";
  if (!std::filesystem::exists(urdf))
    throw std::runtime_error("robots_dir: model file not found: " + urdf.string());
  pinocchio::Model model;
  pinocchio::urdf::buildModel(urdf.string(), model);
  const bool reference = variant.rfind("reference_", 0) == 0;
  ReachSettings s = reference ? reference_settings() : ReachSettings{};
  if (horizon > 0) s.horizon = horizon;
  return std::make_shared<ReachTask>(variant, model, s);
}

} // namespace sobolev_warmstart
