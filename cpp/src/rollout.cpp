#include "sobolev_warmstart/rollout.hpp"

#include <omp.h>

#include <chrono>
#include <cmath>

namespace sobolev_warmstart {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kDivergenceBound = 1e6;  // a state entry beyond this ends the rollout (see errors)

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::uint64_t splitmix64(std::uint64_t &state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// Uniform in (0, 1]: never 0, so log() below stays finite.
double uniform_open(std::uint64_t &state) { return (double(splitmix64(state) >> 11) + 1.0) * 0x1.0p-53; }

/// One lockstep group's buffers and per-instance state.
struct Group {
  std::vector<int> index;                 // instances of the group
  std::vector<VectorXd> x;                // current states
  std::vector<VectorXd> z;                // task parameters (the observation may read them)
  std::vector<RowMatrixXd> observations;  // (T+1, no) per instance
  std::vector<RowMatrixXd> actions;       // (T, na) realised, per instance
  std::vector<VectorXd> first_action;     // action before t = 0
  std::vector<bool> frozen;
  std::vector<float> obs, params, hist, noise, out;
  std::vector<float> draws;               // one instance's (K, H, na) draws
};

} // namespace

ActionExecutor::ActionExecutor(const Task &task)
    : task_(task), inverse_dynamics_(task), dynamics_data_(task.create_dynamics_data()),
      q_next_(task.dims().nq), u_(task.dims().nu), a_(task.dims().na) {}

void ActionExecutor::apply(const VectorXd &x, const Eigen::Ref<const VectorXd> &a, Eigen::Ref<VectorXd> u,
                           Eigen::Ref<VectorXd> x_next, Eigen::Ref<VectorXd> a_realised) {
  const TaskDims &d = task_.dims();
  if (task_.action_space() == ActionSpace::Torque) {
    u_ = a;
  } else {
    a_ = a;
    task_.next_configuration(a_, x, q_next_);
    inverse_dynamics_.control(x, q_next_, u_);
  }
  u_ = u_.cwiseMax(task_.u_lower()).cwiseMin(task_.u_upper());
  task_.dynamics().forward(x, u_, *dynamics_data_);
  u = u_;
  x_next = dynamics_data_->xnext_;
  task_.action(u_, dynamics_data_->xnext_, a_realised);
}

void initial_action(const Task &task, const VectorXd &x0, Eigen::Ref<VectorXd> a) {
  // Same as Task::action(0, x0): zero torque, or the features of the initial configuration.
  task.action(VectorXd::Zero(task.dims().nu), x0, a);
}

void rollout_noise(std::uint64_t seed, std::int64_t instance, int replan, int count, float *out) {
  std::uint64_t state = seed;
  std::uint64_t mix = splitmix64(state) ^ (std::uint64_t(instance) * 0xD1B54A32D192ED03ULL);
  state = mix;
  mix = splitmix64(state) ^ (std::uint64_t(replan) * 0x8CB92BA72F3D8DD7ULL);
  state = mix;
  constexpr double two_pi = 6.283185307179586476925286766559;
  for (int k = 0; k < count; k += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform_open(state)));
    const double angle = two_pi * uniform_open(state);
    out[k] = float(r * std::cos(angle));
    if (k + 1 < count) out[k + 1] = float(r * std::sin(angle));
  }
}

int rollout_num_replans(const PolicyMetadata &meta, int horizon, int action_steps) {
  if (meta.kind == "mlp") return horizon;
  return (horizon + action_steps - 1) / action_steps;
}

RolloutResult rollout_batch(const Task &task, const PolicyRunner &runner, const RowMatrixXd &x0s,
                            const RowMatrixXd &params, const RolloutOptions &options, const float *noise) {
  const auto wall_start = Clock::now();
  const TaskDims d = task.dims();
  const PolicyMetadata &m = runner.metadata();
  const bool chunked = m.kind == "diffusion";
  const int n = int(x0s.rows()), T = d.horizon;
  const int h = chunked ? m.history : 1, H = chunked ? m.horizon : 1, K = chunked ? m.num_steps : 0;
  const int A = chunked ? (options.action_steps > 0 ? options.action_steps : m.action_steps) : 1;
  const int R = rollout_num_replans(m, T, A);
  const std::size_t noise_per_call = std::size_t(K) * H * d.na;  // per instance and replan
  const int pdim = m.param_dim();  // z, then the time to go if the policy reads it

  RolloutResult out;
  out.n = n;
  out.num_replans = R;
  out.action_steps = A;
  out.xs.assign(std::size_t(n) * (T + 1) * d.nx, 0.0);
  out.us.assign(std::size_t(n) * T * d.nu, 0.0);
  out.actions.assign(std::size_t(n) * T * d.na, 0.0);
  out.time.assign(n, 0.0);
  out.policy_time.assign(n, 0.0);
  out.errors.assign(n, std::string());
  if (n == 0) return out;

  const int max_threads = options.num_threads > 0 ? options.num_threads : omp_get_max_threads();
  const int batch = options.batch_size > 0 ? options.batch_size : (n + max_threads - 1) / max_threads;
  const int num_groups = (n + batch - 1) / batch;
  const int num_threads = std::max(1, std::min(max_threads, num_groups));
  std::vector<std::string> group_errors(num_groups);
  std::vector<int> group_calls(num_groups, 0);
  std::vector<double> group_call_time(num_groups, 0.0);

  TorchSingleThreadScope torch_threads;
#pragma omp parallel num_threads(num_threads)
  {
    Eigen::setNbThreads(1);
    ActionExecutor executor(task);
    VectorXd u(d.nu), x_next(d.nx), a_real(d.na), a_in(d.na), o(d.no);
#pragma omp for schedule(dynamic, 1)
    for (int g = 0; g < num_groups; ++g) {
      try {
        const auto group_start = Clock::now();
        double call_time = 0.0;
        Group G;
        for (int i = g * batch; i < std::min(n, (g + 1) * batch); ++i) G.index.push_back(i);
        const int B = int(G.index.size());
        G.x.resize(B);
        G.z.resize(B);
        G.observations.assign(B, RowMatrixXd(T + 1, d.no));
        G.actions.assign(B, RowMatrixXd::Zero(T, d.na));
        G.first_action.assign(B, VectorXd(d.na));
        G.frozen.assign(B, false);
        G.obs.resize(std::size_t(B) * h * d.no);
        G.params.resize(std::size_t(B) * pdim);
        G.hist.resize(std::size_t(B) * h * d.na);
        G.noise.resize(std::size_t(B) * noise_per_call);
        G.draws.resize(noise_per_call);
        G.out.resize(std::size_t(B) * H * d.na);
        for (int b = 0; b < B; ++b) {
          const int i = G.index[b];
          G.x[b] = x0s.row(i).transpose();
          G.z[b] = params.row(i).transpose();
          task.observation(G.x[b], G.z[b], o);
          G.observations[b].row(0) = o.transpose();
          initial_action(task, G.x[b], G.first_action[b]);
          for (int j = 0; j < d.nz; ++j) G.params[std::size_t(b) * pdim + j] = float(params(i, j));
          Eigen::Map<VectorXd>(&out.xs[std::size_t(i) * (T + 1) * d.nx], d.nx) = G.x[b];
        }

        // The time to go of step t in the last params column (same formula as data.time_to_go).
        auto set_time = [&](int t) {
          if (!m.time_to_go) return;
          const float tau = float(double(T - t) / double(T));
          for (int b = 0; b < B; ++b) G.params[std::size_t(b) * pdim + d.nz] = tau;
        };

        // One step of every instance of the group with its action a (na floats).
        auto step = [&](int b, int t, const float *a) {
          const int i = G.index[b];
          Eigen::Map<VectorXd> u_out(&out.us[(std::size_t(i) * T + t) * d.nu], d.nu);
          Eigen::Map<VectorXd> x_out(&out.xs[(std::size_t(i) * (T + 1) + t + 1) * d.nx], d.nx);
          if (!G.frozen[b]) {
            a_in = Eigen::Map<const Eigen::VectorXf>(a, d.na).cast<double>();
            executor.apply(G.x[b], a_in, u, x_next, a_real);
            if (!x_next.allFinite() || !u.allFinite() || !a_real.allFinite() ||
                x_next.cwiseAbs().maxCoeff() > kDivergenceBound) {
              G.frozen[b] = true;
              out.errors[i] = "rollout diverged at t = " + std::to_string(t) +
                              " (non-finite state or |x| > 1e6); the state is held from there with zero control";
            } else {
              G.x[b] = x_next;
              G.actions[b].row(t) = a_real.transpose();
              u_out = u;
            }
          }
          if (G.frozen[b]) {
            u_out = VectorXd::Zero(d.nu).cwiseMax(task.u_lower()).cwiseMin(task.u_upper());
            G.actions[b].row(t) = t > 0 ? RowMatrixXd(G.actions[b].row(t - 1)) : RowMatrixXd(G.first_action[b].transpose());
          }
          x_out = G.x[b];
          task.observation(G.x[b], G.z[b], o);
          G.observations[b].row(t + 1) = o.transpose();
        };

        if (chunked) {
          for (int r = 0, t0 = 0; t0 < T; ++r, t0 += A) {
            for (int b = 0; b < B; ++b) {
              const int i = G.index[b];
              for (int j = 0; j < h; ++j) {
                const int to = std::max(0, t0 - h + 1 + j);  // observation history, edge-padded
                for (int k = 0; k < d.no; ++k)
                  G.obs[(std::size_t(b) * h + j) * d.no + k] = float(G.observations[b](to, k));
                const int ta = t0 - h + j;  // action history, the initial action before t = 0
                for (int k = 0; k < d.na; ++k)
                  G.hist[(std::size_t(b) * h + j) * d.na + k] =
                      float(ta < 0 ? G.first_action[b][k] : G.actions[b](ta, k));
              }
              const std::size_t per_k = std::size_t(H) * d.na;
              const float *src = G.draws.data();
              if (noise)
                src = noise + (std::size_t(i) * R + r) * noise_per_call;
              else
                rollout_noise(options.seed, i, r, int(noise_per_call), G.draws.data());
              for (int k = 0; k < K; ++k)  // (K, H, na) per instance -> (K, B, H, na)
                std::copy(src + k * per_k, src + (k + 1) * per_k, &G.noise[(std::size_t(k) * B + b) * per_k]);
            }
            set_time(t0);
            const auto call_start = Clock::now();
            runner.sample_chunks(B, G.obs.data(), G.params.data(), G.hist.data(), G.noise.data(), G.out.data());
            call_time += seconds_since(call_start);
            ++group_calls[g];
            for (int j = 0; j < A && t0 + j < T; ++j)
              for (int b = 0; b < B; ++b) step(b, t0 + j, &G.out[(std::size_t(b) * H + h + j) * d.na]);
          }
        } else {
          for (int t = 0; t < T; ++t) {
            for (int b = 0; b < B; ++b)
              for (int k = 0; k < d.no; ++k) G.obs[std::size_t(b) * d.no + k] = float(G.observations[b](t, k));
            set_time(t);
            const auto call_start = Clock::now();
            runner.act(B, G.obs.data(), G.params.data(), G.out.data());
            call_time += seconds_since(call_start);
            ++group_calls[g];
            for (int b = 0; b < B; ++b) step(b, t, &G.out[std::size_t(b) * d.na]);
          }
        }
        const double group_time = seconds_since(group_start);
        for (int b = 0; b < B; ++b) {
          const int i = G.index[b];
          out.time[i] = group_time / B;
          out.policy_time[i] = call_time / B;
          Eigen::Map<RowMatrixXd>(&out.actions[std::size_t(i) * T * d.na], T, d.na) = G.actions[b];
        }
        group_call_time[g] = call_time;
      } catch (const std::exception &e) {
        group_errors[g] = e.what();
      } catch (...) {  // never let an exception escape the OpenMP region (std::terminate)
        group_errors[g] = "unknown exception in a rollout";
      }
    }
  }
  for (const auto &e : group_errors)
    if (!e.empty()) throw std::runtime_error(e);
  for (int g = 0; g < num_groups; ++g) {
    out.policy_calls += group_calls[g];
    out.policy_call_time += group_call_time[g];
  }
  out.wall_time = seconds_since(wall_start);
  return out;
}

} // namespace sobolev_warmstart
