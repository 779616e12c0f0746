#pragma once
/// @file
/// @brief Run an exported policy (native `.safetensors`, TorchScript `.pt` or AOTInductor `.pt2`, written by
/// sobolev_warmstart.export) from C++. libtorch stays behind this interface: callers pass plain
/// row-major float32 buffers, so only policy_runner.cpp includes torch headers; the native backend
/// (native_network.cpp) does not use libtorch at all.

#include "sobolev_warmstart/task.hpp"

#include <memory>
#include <string>

namespace sobolev_warmstart {

/// @brief What an exported file declares about itself (its embedded JSON metadata).
struct PolicyMetadata {
  std::string path;
  std::string backend;      ///< "native", "torchscript" or "aoti"
  std::string kind;         ///< "diffusion" (chunks) or "mlp" (one action per step)
  std::string task_name;
  std::string action_space; ///< "torque" or "state"
  TaskDims dims;            ///< the task's sizes it was trained for (nq, nv unknown: 0)
  int horizon = 1;          ///< H, chunk length (1 for mlp)
  int history = 1;          ///< h, known past entries of a chunk
  int action_steps = 1;     ///< A, executed entries per replan (training default)
  int num_steps = 0;        ///< K, denoising steps (0 for mlp)
  bool time_to_go = false;  ///< params carry one more column: the time to go (T - t0) / T of the call's step
  std::string json;         ///< the raw metadata

  /// @brief Columns of the policy's params: the task's nz, plus one for the time to go.
  int param_dim() const { return dims.nz + (time_to_go ? 1 : 0); }
};

/// @brief A loaded policy. Thread-safe: concurrent calls from OpenMP threads are allowed.
/// Every call runs in inference mode, without autograd, on CPU, in float32.
class PolicyRunner {
public:
  /// @brief Load `path`; the backend follows the extension (.safetensors: native, .pt: TorchScript,
  /// .pt2: AOTInductor).
  /// @param num_runners AOTInductor only: runner instances that may execute concurrently
  /// (0: one per OpenMP thread). Throws std::invalid_argument for a missing file, an unknown
  /// extension, a corrupt file or missing/invalid metadata.
  static std::shared_ptr<PolicyRunner> load(const std::string &path, int num_runners = 0);
  virtual ~PolicyRunner() = default;

  const PolicyMetadata &metadata() const { return meta_; }
  /// @brief Throws std::invalid_argument naming the first field of the metadata that does not
  /// match the task (name, action space, sizes, time step, horizon).
  void check_task(const Task &task) const;

  /// @brief Diffusion policies: sample B chunks. Inputs row-major: obs_history (B, h, no),
  /// params (B, param_dim()), history_actions (B, h, na), noise (K, B, H, na); output chunks (B, H, na).
  virtual void sample_chunks(int batch, const float *obs_history, const float *params,
                             const float *history_actions, const float *noise, float *chunks) const = 0;
  /// @brief Direct (mlp) policies: actions (B, na) from obs (B, no) and params (B, param_dim()).
  virtual void act(int batch, const float *obs, const float *params, float *actions) const = 0;

protected:
  PolicyMetadata meta_;
};

/// @brief Sets libtorch's intra-op threads to 1 for its lifetime (restores the previous value):
/// the rollouts parallelise across instances instead.
class TorchSingleThreadScope {
public:
  TorchSingleThreadScope();
  ~TorchSingleThreadScope();
  TorchSingleThreadScope(const TorchSingleThreadScope &) = delete;
  TorchSingleThreadScope &operator=(const TorchSingleThreadScope &) = delete;

private:
  int previous_;
};

} // namespace sobolev_warmstart
