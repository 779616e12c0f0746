#pragma once
/// @file
/// @brief The numeric core of the native policy backend: a `.safetensors` file written by
/// sobolev_warmstart.export_native (weights, normalisers and DDPM coefficients as float32 tensors, the
/// architecture in its metadata), evaluated by a compact Eigen forward.
///
/// This header exposes no Eigen type: native_network.cpp is compiled for the build machine's instruction set
/// (CMake option SW_NATIVE_ARCH) with its own copy of Eigen in a private namespace, so that none of its inline
/// functions or kernels is shared with, or replaced by, the other translation units' baseline builds.

#include <functional>
#include <memory>
#include <string>

namespace sobolev_warmstart::detail {

/// The key of the policy metadata JSON: a `.pt2` package's metadata and a `.safetensors` file's `__metadata__`
/// (export.py, METADATA_KEY).
inline constexpr const char *kPolicyMetadataKey = "sobolev_warmstart";

/// What the network needs from the metadata (parsed by the caller, who owns the metadata's checks).
struct NativeSizes {
  bool diffusion = true;
  int na = 0, no = 0, nz = 0;
  int horizon = 1, history = 1, num_steps = 0;  ///< H, h, K (diffusion only)
};

/// A loaded network; thread-safe (every call uses its own buffers). Same buffers and layouts as
/// PolicyRunner::sample_chunks / act.
class NativeNetwork {
public:
  virtual ~NativeNetwork() = default;
  virtual void sample_chunks(int batch, const float *obs_history, const float *params, const float *history_actions,
                             const float *noise, float *chunks) const = 0;
  virtual void act(int batch, const float *obs, const float *params, float *actions) const = 0;

  /// Read `path`, hand its sobolev_warmstart metadata JSON to `parse` (which returns the sizes or throws) and
  /// build the network. Throws std::invalid_argument naming the file and what is wrong with it.
  static std::unique_ptr<NativeNetwork> load(const std::string &path, std::string &metadata_json,
                                             const std::function<NativeSizes(const std::string &)> &parse);
};

} // namespace sobolev_warmstart::detail
