#pragma once
/// @file
/// @brief The nearest-neighbour lookup of solved training instances in C++: the "nn" guess and the warm start's
/// fallback (Python: baselines.NearestNeighbourLookup and LookupFallback), loaded from the `.safetensors` file that
/// `NearestNeighbourLookup.export` writes, so that the fallback needs no Python on the warm-start path.
///
/// A query `(x0, z)` is answered with the training instance nearest in normalised `(x0, z)` (each coordinate
/// centred and divided by the training set's standard deviation, as exported; the lowest index on a tie). Its
/// solution is the guess, with the first state replaced by `x0`; `cost_ratio` times the objective along its
/// solution is the fallback's bound (warm_start.hpp, FallbackGuesses).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sobolev_warmstart/task.hpp"
#include "sobolev_warmstart/warm_start.hpp"

namespace sobolev_warmstart {

/// How the fallback's bound follows a policy's precision (Python: LookupFallback.calibrated): the policy is rolled out
/// (noise seed 0) on `instances` fresh instances of seed `seed`, each rollout scored as a diverged guess is (states
/// clipped to +-divergence_bound, non-finite controls as zero) over its nearest training solution's objective;
/// cost_ratio = factor x the median of those ratios, within [1, max_ratio].
struct FallbackCalibration {
  double factor = 3.0, max_ratio = 100.0;
  int instances = 64;
  std::uint64_t seed = 5000001;  ///< Python: baselines.CALIBRATION_SEED
  double divergence_bound = 1e3;
  double median_ratio = 0.0, cost_ratio = 0.0;  ///< results
};

class NearestNeighbourLookup {
public:
  /// Reads a lookup file; throws std::invalid_argument naming the path and the fault.
  static std::shared_ptr<const NearestNeighbourLookup> load(const std::string &path);

  int size() const { return size_; }
  const std::string &task_name() const { return task_; }
  const std::string &task_variant() const { return variant_; }
  /// Throws std::invalid_argument unless `task` has the training set's name, nx, ndx, nu, nz and horizon.
  void check_task(const Task &task) const;

  /// (n,) index of each query's nearest training instance. @pre x0s (n, nx), params (n, nz), finite.
  std::vector<std::int64_t> nearest(const RowMatrixXd &x0s, const RowMatrixXd &params) const;
  /// The "nn" guesses: xs (n, T+1, nx) and us (n, T, nu), row-major; the nearest solutions from x0s.
  void guesses(const RowMatrixXd &x0s, const RowMatrixXd &params, std::vector<double> &xs,
               std::vector<double> &us) const;
  /// The guesses and, as cost_bound, cost_ratio (finite, >= 1) times each nearest solution's objective.
  FallbackGuesses fallback(const RowMatrixXd &x0s, const RowMatrixXd &params, double cost_ratio) const;
  /// `settings` with median_ratio and cost_ratio filled in for `runner`'s policy (see FallbackCalibration);
  /// rollout_options' seed is ignored (0). Throws std::invalid_argument for factor or max_ratio below 1, or no instance.
  /// @pre check_task(task) and runner.check_task(task) passed.
  FallbackCalibration calibrate(const Task &task, const PolicyRunner &runner, RolloutOptions rollout_options,
                                FallbackCalibration settings) const;

private:
  NearestNeighbourLookup() = default;
  void gather(const std::vector<std::int64_t> &idx, const RowMatrixXd &x0s, std::vector<double> &xs,
              std::vector<double> &us) const;

  std::string task_, variant_;
  int size_ = 0, nx_ = 0, ndx_ = 0, nu_ = 0, nz_ = 0, horizon_ = 0;
  std::vector<double> features_;  ///< (size, nx + nz) normalised training (x0, z)
  std::vector<double> offset_, scale_;  ///< (nx + nz,)
  std::vector<double> xs_, us_;  ///< (size, T+1, nx), (size, T, nu)
  std::vector<double> costs_;  ///< (size,) objective along each training solution
};

} // namespace sobolev_warmstart
