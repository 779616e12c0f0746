/// @file
/// @brief Quadrotor flight between two points at the same height, among 0 to 9 vertical columns
/// (example-robot-data hector quadrotor_base.urdf on a free-flyer, four rotor thrusts through an
/// allocation matrix). Path inequalities: thrust bounds, floor and ceiling, column clearance.
#include "task_common.hpp"

#include <aligator/core/unary-function.hpp>
#include <pinocchio/parsers/urdf.hpp>
#include <pinocchio/multibody/joint/joint-free-flyer.hpp>
#include <pinocchio/spatial/skew.hpp>
#include <pinocchio/algorithm/joint-configuration.hpp>

#include <filesystem>
#include <sstream>

namespace sobolev_warmstart {
namespace {

using namespace detail;
using UnaryFunction = aligator::UnaryFunctionTpl<double>;
using FunctionData = aligator::StageFunctionDataTpl<double>;

/// Settings of the quadrotor task, all in one place (weights per second, see describe()).
struct QuadrotorSettings {
  int horizon = 60;
  double dt = 0.05;
  double thrust_max = 8.0;                 // N per rotor (hover: ~3.6 N)
  double arm = 0.1525, drag_ratio = 1e-6 / 6.6e-5;  // allocation matrix (Aligator's quadrotor example)
  double w_position = 0.1, w_rotation = 0.1, w_velocity = 0.1, w_control = 1e-2;  // running
  double wT_position = 100.0, wT_rotation = 10.0, wT_velocity = 10.0;             // terminal
  double height = 1.0, floor = 0.2, ceiling = 2.0;
  double start_x_lo = -2.5, start_x_hi = -2.0, goal_x_lo = 2.0, goal_x_hi = 2.5, y_range = 1.0;
  double column_radius = 0.15, clearance = 0.25;   // keep-out radius = column radius + rotor span
  double column_x = 1.5, column_y = 1.8, column_spacing = 0.85;  // centres in [-x, x] x [-y, y]
  // Columns placed on the straight path from start to goal (the rest uniform in the box): at a fraction
  // U(blocking_lo, blocking_hi) of the way, offset sideways by U(-blocking_offset, blocking_offset) m.
  int num_blocking = 0;
  double blocking_lo = 0.2, blocking_hi = 0.8, blocking_offset = 0.15;
};

/// Reference difficulty (variants "reference_columns_K"): the time step of Aligator's quadrotor examples,
/// dt = 0.01, over a 2.5 s horizon, and up to three columns on the straight path between start and goal,
/// so that the interpolated guess runs through them.
QuadrotorSettings reference_settings() {
  QuadrotorSettings s;
  s.horizon = 250;
  s.dt = 0.01;
  s.num_blocking = 3;
  return s;
}

/// Column keep-out: for each column j, (r + c)^2 - |p_xy - c_j|^2 <= 0. Centres are read from a
/// buffer shared by every stage of one problem, so re-targeting writes them once.
struct ColumnClearance final : UnaryFunction {
  using Base = UnaryFunction;
  using Base::computeJacobians;
  using Base::evaluate;
  ColumnClearance(int ndx, int nu, int num_columns, double keep_out,
                  std::shared_ptr<const Eigen::VectorXd> centres)
      : UnaryFunction(ndx, nu, num_columns), keep_out2_(keep_out * keep_out), centres_(std::move(centres)) {}
  void evaluate(const ConstVectorRef &x, FunctionData &data) const override {
    for (int j = 0; j < this->nr; ++j) {
      const Eigen::Vector2d d = x.head<2>() - centres_->segment<2>(2 * j);
      data.value_[j] = keep_out2_ - d.squaredNorm();
    }
  }
  void computeJacobians(const ConstVectorRef &x, FunctionData &data) const override {
    // p (+) dq moves p by R dq_lin at first order (pinocchio's local free-flyer tangent).
    const Eigen::Quaterniond quat(x[6], x[3], x[4], x[5]);
    const Eigen::Matrix3d R = quat.toRotationMatrix();
    data.Jx_.setZero();
    for (int j = 0; j < this->nr; ++j) {
      const Eigen::Vector2d d = x.head<2>() - centres_->segment<2>(2 * j);
      data.Jx_.row(j).head<3>() = -2.0 * d.transpose() * R.topRows<2>();
    }
  }
  double keep_out2_;
  std::shared_ptr<const Eigen::VectorXd> centres_;
};

/// Floor and ceiling: [floor - z, z - ceiling] <= 0.
struct HeightBounds final : UnaryFunction {
  using Base = UnaryFunction;
  using Base::computeJacobians;
  using Base::evaluate;
  HeightBounds(int ndx, int nu, double floor, double ceiling)
      : UnaryFunction(ndx, nu, 2), floor_(floor), ceiling_(ceiling) {}
  void evaluate(const ConstVectorRef &x, FunctionData &data) const override {
    data.value_ << floor_ - x[2], x[2] - ceiling_;
  }
  void computeJacobians(const ConstVectorRef &x, FunctionData &data) const override {
    const Eigen::Quaterniond quat(x[6], x[3], x[4], x[5]);
    const Eigen::Matrix3d R = quat.toRotationMatrix();
    data.Jx_.setZero();
    data.Jx_.row(0).head<3>() = -R.row(2);
    data.Jx_.row(1).head<3>() = R.row(2);
  }
  double floor_, ceiling_;
};

class QuadrotorProblem final : public TaskProblem {
public:
  QuadrotorProblem(std::unique_ptr<TrajOptProblem> problem, std::shared_ptr<Eigen::VectorXd> centres,
                   int nx)
      : centres_(std::move(centres)), goal_state_(VectorXd::Zero(nx)) {
    problem_ = std::move(problem);
    for (auto &stage : problem_->stages_)
      goal_costs_.push_back(cost_stack(*stage).getComponent<QuadraticStateCost>("state"));
    goal_costs_.push_back(dynamic_cast<CostStack &>(*problem_->term_cost_).getComponent<QuadraticStateCost>("state"));
  }
  void set_instance(const VectorXd &x0, const VectorXd &params) override {
    problem_->setInitState(x0);
    goal_state_.head<3>() = params.head<3>();
    goal_state_[6] = 1.0;  // upright, at rest
    for (auto *cost : goal_costs_) cost->setTarget(goal_state_);
    *centres_ = params.tail(centres_->size());
  }

private:
  std::shared_ptr<Eigen::VectorXd> centres_;
  std::vector<QuadraticStateCost *> goal_costs_;
  VectorXd goal_state_;
};

class QuadrotorTask final : public Task {
public:
  QuadrotorTask(const std::string &variant, pinocchio::Model model, int num_columns,
                const QuadrotorSettings &settings)
      : s_(settings), num_columns_(num_columns) {
    name_ = "quadrotor";
    variant_ = variant;
    model_ = std::move(model);
    actuation_.setZero(6, 4);
    actuation_.row(2).setOnes();
    actuation_(3, 1) = s_.arm;
    actuation_(3, 3) = -s_.arm;
    actuation_(4, 0) = -s_.arm;
    actuation_(4, 2) = s_.arm;
    actuation_.row(5) << -s_.drag_ratio, s_.drag_ratio, -s_.drag_ratio, s_.drag_ratio;
    u_lower_ = VectorXd::Zero(4);
    u_upper_ = VectorXd::Constant(4, s_.thrust_max);
    action_space_ = ActionSpace::State;
    finalize(s_.horizon, s_.dt, /*nz=*/3 + 2 * num_columns, /*na=*/3 + 6 + 6, /*no=*/3 + 6 + 6);
    hover_ = gravity_compensation(*this, pinocchio::neutral(model_));
  }

  std::string describe() const override {
    std::ostringstream out;
    out << "quadrotor/" << variant_ << ": fly to a goal at the same height among " << num_columns_
        << " vertical columns (example-robot-data hector quadrotor_base.urdf, free-flyer)\n"
        << "  horizon T = " << s_.horizon << " steps of dt = " << s_.dt << " s, semi-implicit Euler\n"
        << "  controls: 4 rotor thrusts in [0, " << s_.thrust_max << "] N, wrench = A u (arm " << s_.arm
        << " m, drag/thrust ratio " << s_.drag_ratio << ")\n"
        << "  running cost dt/2 * (" << s_.w_position << " |p - p*|^2 + " << s_.w_rotation << " |log R|^2 + "
        << s_.w_velocity << " |v|^2 + " << s_.w_control << " |u|^2), terminal 1/2 (" << s_.wT_position
        << " |p - p*|^2 + " << s_.wT_rotation << " |log R|^2 + " << s_.wT_velocity
        << " |v|^2); Aligator's quadratic costs are 1/2 r^T W r\n"
        << "  path constraints: " << s_.floor << " <= z <= " << s_.ceiling << " m; horizontal distance to each "
        << "column centre >= " << s_.column_radius + s_.clearance << " m\n"
        << "  instances: start (x ~ U(" << s_.start_x_lo << ", " << s_.start_x_hi << "), y ~ U(-" << s_.y_range
        << ", " << s_.y_range << "), z = " << s_.height << "), level, at rest; goal x ~ U(" << s_.goal_x_lo
        << ", " << s_.goal_x_hi << "), same y range and height; columns uniform in [-" << s_.column_x << ", "
        << s_.column_x << "] x [-" << s_.column_y << ", " << s_.column_y << "], centres >= "
        << s_.column_spacing << " m apart";
    if (s_.num_blocking > 0)
      out << "; the first " << std::min(num_columns_, s_.num_blocking) << " on the straight path instead (at a fraction U("
          << s_.blocking_lo << ", " << s_.blocking_hi << ") of the way from start to goal, U(-" << s_.blocking_offset
          << ", " << s_.blocking_offset << ") m sideways), so that the interpolated guess runs through them\n"
          << "  reference difficulty: Aligator's quadrotor examples' time step dt = 0.01 s; solver budget 1000 as in "
          << "the reference (Le Hellard et al., 2026: 16.3 s per solve among 9 columns from scratch)";
    out << "\n"
        << "  task parameters z = (goal x, y, z, column 1 x, y, ...) (" << dims_.nz << ")\n"
        << "  default guess: states interpolated from start to goal (SE(3) interpolation), hover thrusts\n"
        << "  action: the next state as (p, first two columns of R, v) (15), executed through its velocity (q' = q (+) "
        << "dt v', thrusts by least-squares inverse dynamics: the body's lateral force is dropped); observation: the "
        << "same features of the current state; the columns only through z (column-relative features did not help, "
        << "docs/results/ablations.md, round 10)\n";
    return out.str();
  }

  void sample_instances(std::uint64_t seed, int n, RowMatrixXd &x0s, RowMatrixXd &params) const override {
    std::mt19937_64 rng(seed);
    x0s = RowMatrixXd::Zero(n, dims_.nx);
    params.resize(n, dims_.nz);
    for (int i = 0; i < n; ++i) {
      x0s(i, 0) = uniform(rng, s_.start_x_lo, s_.start_x_hi);
      x0s(i, 1) = uniform(rng, -s_.y_range, s_.y_range);
      x0s(i, 2) = s_.height;
      x0s(i, 6) = 1.0;
      params(i, 0) = uniform(rng, s_.goal_x_lo, s_.goal_x_hi);
      params(i, 1) = uniform(rng, -s_.y_range, s_.y_range);
      params(i, 2) = s_.height;
      const Eigen::Vector2d start = x0s.row(i).head<2>().transpose(), goal = params.row(i).head<2>().transpose();
      const Eigen::Vector2d along = goal - start, side = Eigen::Vector2d(-along.y(), along.x()).normalized();
      const int blocking = std::min(num_columns_, s_.num_blocking);
      int placed = 0;
      for (int attempt = 0; placed < num_columns_; ++attempt) {
        if (attempt % 1000 == 999) placed = 0;  // a crowded draw: start the layout again
        Eigen::Vector2d c;
        if (placed < blocking) {
          c = start + uniform(rng, s_.blocking_lo, s_.blocking_hi) * along +
              uniform(rng, -s_.blocking_offset, s_.blocking_offset) * side;
        } else {
          c = Eigen::Vector2d(uniform(rng, -s_.column_x, s_.column_x), uniform(rng, -s_.column_y, s_.column_y));
        }
        bool ok = true;
        for (int j = 0; j < placed; ++j)
          ok = ok && (c - params.row(i).segment<2>(3 + 2 * j).transpose()).norm() >= s_.column_spacing;
        if (ok) params.row(i).segment<2>(3 + 2 * placed++) = c.transpose();
      }
    }
  }

  void check_instance(const VectorXd &x0, const VectorXd &params) const override {
    Task::check_instance(x0, params);
    const double keep_out = s_.column_radius + s_.clearance;
    for (int j = 0; j < num_columns_; ++j) {
      const Eigen::Vector2d c = params.segment<2>(3 + 2 * j);
      if ((x0.head<2>() - c).norm() < keep_out || (params.head<2>() - c).norm() < keep_out)
        throw std::invalid_argument("params: column " + std::to_string(j) + " at " + format_vector(c) +
                                    " covers the start or the goal (keep-out radius " + std::to_string(keep_out) + " m)");
    }
    for (double z : {x0[2], params[2]})
      if (z < s_.floor || z > s_.ceiling)
        throw std::invalid_argument("x0s/params: start and goal heights must lie in [" + std::to_string(s_.floor) +
                                    ", " + std::to_string(s_.ceiling) + "] m, got " + std::to_string(z));
  }

  std::unique_ptr<TaskProblem> create_problem() const override {
    const Space space(model_);
    const int nu = dims_.nu, ndx = dims_.ndx;
    const auto weights = [&](double wp, double wr, double wv, double scale) {
      VectorXd w(ndx);
      w << VectorXd::Constant(3, wp), VectorXd::Constant(3, wr), VectorXd::Constant(6, wv);
      return VectorXd(scale * w);
    };
    VectorXd goal = VectorXd::Zero(dims_.nx);
    goal[6] = 1.0;
    StageModel stage = make_tracking_stage(*this, goal, weights(s_.w_position, s_.w_rotation, s_.w_velocity, s_.dt),
                                           hover_, VectorXd::Constant(nu, s_.dt * s_.w_control));
    stage.addConstraint(HeightBounds(ndx, nu, s_.floor, s_.ceiling), NegativeOrthant());
    auto centres = std::make_shared<Eigen::VectorXd>(VectorXd::Zero(2 * num_columns_));
    if (num_columns_ > 0)
      stage.addConstraint(ColumnClearance(ndx, nu, num_columns_, s_.column_radius + s_.clearance, centres),
                          NegativeOrthant());
    std::vector<xyz::polymorphic<StageModel>> stages(s_.horizon, stage);
    CostStack terminal(space, nu);
    terminal.addCost("state", QuadraticStateCost(space, nu, goal,
                                                 weights(s_.wT_position, s_.wT_rotation, s_.wT_velocity, 1.0)
                                                     .asDiagonal()
                                                     .toDenseMatrix()));
    auto problem = std::make_unique<TrajOptProblem>(goal, stages, terminal);
    return std::make_unique<QuadrotorProblem>(std::move(problem), centres, dims_.nx);
  }

  void default_initial_guess(const VectorXd &x0, const VectorXd &params, std::vector<VectorXd> &xs,
                             std::vector<VectorXd> &us) const override {
    VectorXd goal = VectorXd::Zero(dims_.nx);
    goal.head<3>() = params.head<3>();
    goal[6] = 1.0;
    interpolate_states(model_, x0, goal, s_.horizon, xs);
    us.assign(s_.horizon, hover_);
  }

  void observation(const VectorXd &x, const VectorXd &, Eigen::Ref<VectorXd> o) const override {
    const Eigen::Quaterniond quat(x[6], x[3], x[4], x[5]);
    const Eigen::Matrix3d R = quat.toRotationMatrix();
    o << x.head<3>(), R.col(0), R.col(1), x.tail<6>();
  }

  void observation_jacobian(const VectorXd &x, const VectorXd &, Eigen::Ref<MatrixXd> J) const override {
    // Tangent (dp_local, dtheta_local, dv): d p = R dp_local; d(R e_j) = -R [e_j]x dtheta.
    const Eigen::Quaterniond quat(x[6], x[3], x[4], x[5]);
    const Eigen::Matrix3d R = quat.toRotationMatrix();
    J.setZero();
    J.block<3, 3>(0, 0) = R;
    J.block<3, 3>(3, 3) = -R * pinocchio::skew(Eigen::Vector3d::UnitX());
    J.block<3, 3>(6, 3) = -R * pinocchio::skew(Eigen::Vector3d::UnitY());
    J.block<6, 6>(9, 6).setIdentity();
  }

  // State action (the reference's "state control through the SE(3) tangent"): the features of the next
  // state, decoded through its velocity as the semi-implicit Euler step does, q' = q (+) dt v'. The pose part
  // is a training target only. d a / d x' is the observation's Jacobian at x'.
  void state_features(const VectorXd &x_next, Eigen::Ref<VectorXd> a) const override {
    observation(x_next, VectorXd(), a);
  }

  void next_configuration(const VectorXd &a, const VectorXd &x, Eigen::Ref<VectorXd> q_next) const override {
    q_next = pinocchio::integrate(model_, x.head(dims_.nq), VectorXd(dims_.dt * a.tail<6>()));
  }

  void action_state_jacobian(const VectorXd &x_next, Eigen::Ref<MatrixXd> J) const override {
    observation_jacobian(x_next, VectorXd(), J);
  }

private:
  QuadrotorSettings s_;
  int num_columns_;
  VectorXd hover_;  // thrusts that hold the robot level at rest (computed once)
};

} // namespace

std::vector<std::string> quadrotor_variants() {
  std::vector<std::string> out;
  for (int k = 0; k <= 9; ++k) out.push_back("columns_" + std::to_string(k));
  for (int k = 0; k <= 9; ++k) out.push_back("reference_columns_" + std::to_string(k));
  return out;
}

std::shared_ptr<const Task> make_quadrotor_task(const std::string &variant, const std::string &robots_dir,
                                                int horizon) {
  const std::filesystem::path urdf =
      std::filesystem::path(robots_dir) / "hector_description" / "robots" / "quadrotor_base.urdf";
  if (!std::filesystem::exists(urdf))
    throw std::runtime_error("robots_dir: model file not found: " + urdf.string());
  pinocchio::Model model;
  pinocchio::urdf::buildModel(urdf.string(), pinocchio::JointModelFreeFlyer(), model);
  const bool reference = variant.rfind("reference_", 0) == 0;
  const int num_columns = std::stoi(variant.substr(variant.rfind('_') + 1));
  QuadrotorSettings s = reference ? reference_settings() : QuadrotorSettings{};
  if (horizon > 0) s.horizon = horizon;
  return std::make_shared<QuadrotorTask>(variant, model, num_columns, s);
}

} // namespace sobolev_warmstart
