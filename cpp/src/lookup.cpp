/// @file
/// @brief lookup.hpp: the exported nearest-neighbour lookup, read from its `.safetensors` file.

#include "sobolev_warmstart/lookup.hpp"
#include "sobolev_warmstart/batch_solver.hpp"
#include "sobolev_warmstart/rollout.hpp"

#include "json_reader.hpp"
#include "tensor_file.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace sobolev_warmstart {

namespace {
/// The key of the lookup's metadata JSON in the file's `__metadata__` (Python: baselines.LOOKUP_METADATA_KEY).
constexpr const char *kLookupMetadataKey = "sobolev_warmstart_lookup";
constexpr int kLookupFormat = 1;
} // namespace

std::shared_ptr<const NearestNeighbourLookup> NearestNeighbourLookup::load(const std::string &path) {
  const detail::TensorFile file(path, "lookup");
  const auto it = file.metadata().find(kLookupMetadataKey);
  if (it == file.metadata().end())
    throw std::invalid_argument(path + ": safetensors file without sobolev_warmstart lookup metadata; export it "
                                "with sobolev_warmstart.NearestNeighbourLookup.export");
  detail::JsonValue meta;
  try {
    meta = detail::parse_json(it->second);
  } catch (const std::invalid_argument &e) {
    file.fail(std::string("lookup metadata: ") + e.what());
  }
  const std::string where = path + ": lookup metadata";
  const int format = meta.at("format", where).as_int(where + " format");
  if (format != kLookupFormat)
    file.fail("format " + std::to_string(format) + ", this build reads format " + std::to_string(kLookupFormat));
  std::shared_ptr<NearestNeighbourLookup> out(new NearestNeighbourLookup());
  auto &l = *out;
  l.task_ = meta.at("task", where).as_string(where + " task");
  l.variant_ = meta.at("variant", where).as_string(where + " variant");
  l.size_ = meta.at("size", where).as_int(where + " size");
  l.nx_ = meta.at("nx", where).as_int(where + " nx");
  l.ndx_ = meta.at("ndx", where).as_int(where + " ndx");
  l.nu_ = meta.at("nu", where).as_int(where + " nu");
  l.nz_ = meta.at("nz", where).as_int(where + " nz");
  l.horizon_ = meta.at("horizon", where).as_int(where + " horizon");
  if (l.size_ < 1 || l.nx_ < 1 || l.ndx_ < 1 || l.nu_ < 1 || l.nz_ < 0 || l.horizon_ < 1)
    file.fail("the metadata's sizes must be positive (nz non-negative)");
  const std::int64_t n = l.size_, nf = l.nx_ + l.nz_, T = l.horizon_;
  l.features_ = file.f64("features", {n, nf});
  l.offset_ = file.f64("offset", {nf});
  l.scale_ = file.f64("scale", {nf});
  l.xs_ = file.f64("xs", {n, T + 1, l.nx_});
  l.us_ = file.f64("us", {n, T, l.nu_});
  l.costs_ = file.f64("solution_costs", {n});
  for (const auto *v : {&l.features_, &l.offset_, &l.xs_, &l.us_, &l.costs_})
    if (!std::all_of(v->begin(), v->end(), [](double x) { return std::isfinite(x); }))
      file.fail("non-finite values in its tensors");
  if (!std::all_of(l.scale_.begin(), l.scale_.end(), [](double s) { return std::isfinite(s) && s > 0.0; }))
    file.fail("tensor 'scale' must be positive and finite");
  return out;
}

void NearestNeighbourLookup::check_task(const Task &task) const {
  const auto &d = task.dims();
  const auto mismatch = [&](const std::string &key, const std::string &want, const std::string &got) {
    throw std::invalid_argument("task: the lookup was built for " + key + " = " + want + ", task " + task.name() +
                                "/" + task.variant() + " has " + got);
  };
  if (task.name() != task_) mismatch("name", "'" + task_ + "'", "'" + task.name() + "'");
  const std::pair<const char *, std::pair<int, int>> sizes[] = {
      {"nx", {nx_, d.nx}}, {"ndx", {ndx_, d.ndx}}, {"nu", {nu_, d.nu}}, {"nz", {nz_, d.nz}},
      {"horizon", {horizon_, d.horizon}}};
  for (const auto &[key, v] : sizes)
    if (v.first != v.second) mismatch(key, std::to_string(v.first), std::to_string(v.second));
}

std::vector<std::int64_t> NearestNeighbourLookup::nearest(const RowMatrixXd &x0s, const RowMatrixXd &params) const {
  const int nf = nx_ + nz_;
  std::vector<std::int64_t> out(std::size_t(x0s.rows()));
  std::vector<double> q(static_cast<std::size_t>(nf));
  for (Eigen::Index i = 0; i < x0s.rows(); ++i) {
    for (int j = 0; j < nf; ++j) {
      const double f = j < nx_ ? x0s(i, j) : params(i, j - nx_);
      q[std::size_t(j)] = (f - offset_[std::size_t(j)]) / scale_[std::size_t(j)];
    }
    double best = std::numeric_limits<double>::infinity();
    std::int64_t arg = 0;
    for (int k = 0; k < size_; ++k) {
      const double *t = features_.data() + std::size_t(k) * std::size_t(nf);
      double d = 0.0;
      for (int j = 0; j < nf; ++j) {
        const double e = q[std::size_t(j)] - t[j];
        d += e * e;
      }
      if (d < best) best = d, arg = k;  // strict: the lowest index on a tie
    }
    out[std::size_t(i)] = arg;
  }
  return out;
}

void NearestNeighbourLookup::gather(const std::vector<std::int64_t> &idx, const RowMatrixXd &x0s,
                                    std::vector<double> &xs, std::vector<double> &us) const {
  const std::size_t xrow = std::size_t(horizon_ + 1) * std::size_t(nx_), urow = std::size_t(horizon_) * std::size_t(nu_);
  xs.resize(idx.size() * xrow);
  us.resize(idx.size() * urow);
  for (std::size_t i = 0; i < idx.size(); ++i) {
    std::copy_n(xs_.begin() + std::ptrdiff_t(std::size_t(idx[i]) * xrow), xrow, xs.begin() + std::ptrdiff_t(i * xrow));
    std::copy_n(us_.begin() + std::ptrdiff_t(std::size_t(idx[i]) * urow), urow, us.begin() + std::ptrdiff_t(i * urow));
    for (int j = 0; j < nx_; ++j) xs[i * xrow + std::size_t(j)] = x0s(Eigen::Index(i), j);
  }
}

void NearestNeighbourLookup::guesses(const RowMatrixXd &x0s, const RowMatrixXd &params, std::vector<double> &xs,
                                     std::vector<double> &us) const {
  gather(nearest(x0s, params), x0s, xs, us);
}

FallbackGuesses NearestNeighbourLookup::fallback(const RowMatrixXd &x0s, const RowMatrixXd &params,
                                                 double cost_ratio) const {
  if (!(std::isfinite(cost_ratio) && cost_ratio >= 1.0))
    throw std::invalid_argument("cost_ratio: expected a finite number >= 1 (a rollout costing more than this many "
                                "times its nearest training solution is replaced), got " +
                                std::to_string(cost_ratio));
  const auto idx = nearest(x0s, params);
  FallbackGuesses out;
  gather(idx, x0s, out.xs, out.us);
  out.cost_bound.resize(idx.size());
  for (std::size_t i = 0; i < idx.size(); ++i) out.cost_bound[i] = cost_ratio * costs_[std::size_t(idx[i])];
  return out;
}

FallbackCalibration NearestNeighbourLookup::calibrate(const Task &task, const PolicyRunner &runner,
                                                      RolloutOptions rollout_options,
                                                      FallbackCalibration settings) const {
  const auto at_least_one = [](const char *name, double v) {
    if (!(std::isfinite(v) && v >= 1.0))
      throw std::invalid_argument(std::string(name) + ": expected a finite number >= 1, got " + std::to_string(v));
  };
  at_least_one("factor", settings.factor);
  at_least_one("max_ratio", settings.max_ratio);
  if (settings.instances < 1)
    throw std::invalid_argument("instances: expected a positive integer, got " + std::to_string(settings.instances));
  if (!(settings.divergence_bound > 0.0))
    throw std::invalid_argument("divergence_bound: expected a positive number");
  RowMatrixXd x0s, params;
  task.sample_instances(settings.seed, settings.instances, x0s, params);
  rollout_options.seed = 0;
  RolloutResult ro = rollout_batch(task, runner, x0s, params, rollout_options);
  const double b = settings.divergence_bound;  // held as Python's warmstart.guess_costs holds a diverged guess
  for (double &x : ro.xs) x = std::isnan(x) ? b : std::min(b, std::max(-b, x));
  for (double &u : ro.us)
    if (!std::isfinite(u)) u = 0.0;
  const std::vector<double> cost = trajectory_costs(task, x0s, params, ro.xs, ro.us, rollout_options.num_threads);
  const auto idx = nearest(x0s, params);
  std::vector<double> ratio(idx.size());
  for (std::size_t i = 0; i < idx.size(); ++i) ratio[i] = cost[i] / costs_[std::size_t(idx[i])];
  std::sort(ratio.begin(), ratio.end());  // numpy's median: the mean of the two middle values of an even count
  const std::size_t m = ratio.size() / 2;
  settings.median_ratio = ratio.size() % 2 ? ratio[m] : (ratio[m - 1] + ratio[m]) / 2.0;
  settings.cost_ratio = std::min(settings.max_ratio, std::max(1.0, settings.factor * settings.median_ratio));
  return settings;
}

} // namespace sobolev_warmstart
