#pragma once
/// @file
/// @brief Internal helpers shared by the task builders (not installed, no Python).

#include "sobolev_warmstart/task.hpp"

#include <aligator/modelling/spaces/multibody.hpp>
#include <aligator/modelling/costs/sum-of-costs.hpp>
#include <aligator/modelling/costs/quad-state-cost.hpp>
#include <aligator/modelling/costs/quad-residual-cost.hpp>
#include <aligator/modelling/state-error.hpp>
#include <aligator/modelling/constraints/box-constraint.hpp>
#include <aligator/modelling/constraints/negative-orthant.hpp>

#include <random>
#include <stdexcept>

namespace sobolev_warmstart {
namespace detail {

using Space = aligator::MultibodyPhaseSpace<double>;
using CostStack = aligator::CostStackTpl<double>;
using QuadraticStateCost = aligator::QuadraticStateCostTpl<double>;
using QuadraticControlCost = aligator::QuadraticControlCostTpl<double>;
using QuadraticResidualCost = aligator::QuadraticResidualCostTpl<double>;
using StateErrorResidual = aligator::StateErrorResidualTpl<double>;
using ControlErrorResidual = aligator::ControlErrorResidualTpl<double>;
using BoxConstraint = aligator::BoxConstraintTpl<double>;
using NegativeOrthant = aligator::NegativeOrthantTpl<double>;
using StageModel = aligator::StageModelTpl<double>;
using CostAbstract = aligator::CostAbstractTpl<double>;

/// Uniform draw in [lo, hi] from a seeded engine (the same numbers on every platform:
/// std::uniform_real_distribution is implementation-defined, this is not).
inline double uniform(std::mt19937_64 &rng, double lo, double hi) {
  const double unit = double(rng() >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
  return lo + (hi - lo) * unit;
}

/// Stage with a cost stack {"state": quadratic state cost, "control": quadratic control cost}
/// (weights already multiplied by dt) and the control box.
StageModel make_tracking_stage(const Task &task, const VectorXd &x_target, const VectorXd &w_state,
                               const VectorXd &u_ref, const VectorXd &w_control);

/// Linear interpolation in the state space between x0 and x1 (T+1 points), pinocchio::interpolate
/// on the configuration.
void interpolate_states(const pinocchio::Model &model, const VectorXd &x0, const VectorXd &x1,
                        int horizon, std::vector<VectorXd> &xs);

/// Gravity-compensating control at configuration q (least squares through the actuation),
/// clipped to the control bounds.
VectorXd gravity_compensation(const Task &task, const VectorXd &q);

/// The cost stack of a stage, for re-targeting.
CostStack &cost_stack(StageModel &stage);

std::string format_vector(const VectorXd &v);

} // namespace detail
} // namespace sobolev_warmstart
