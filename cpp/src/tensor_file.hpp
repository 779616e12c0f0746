#pragma once
/// @file
/// @brief A safetensors file read whole: its float32 (F32) and float64 (F64) tensors and its string metadata.
/// What the native policy backend (native_network.cpp) and the exported lookup (lookup.cpp) load; no Eigen here,
/// since native_network.cpp keeps a private copy of it.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sobolev_warmstart::detail {

/// "(2, 3)", "(5,)": a shape as numpy prints it, for error messages.
std::string shape_str(const std::vector<std::int64_t> &shape);

class TensorFile {
public:
  /// Reads and checks the whole file; `kind` names what it should hold in errors ("policy", "lookup").
  /// Throws std::invalid_argument naming the path and the fault.
  TensorFile(const std::string &path, const std::string &kind);

  const std::map<std::string, std::string> &metadata() const { return metadata_; }
  const std::string &path() const { return path_; }

  /// The F32 tensor `name`, which must have `shape`; throws naming the file, the tensor and both shapes.
  const std::vector<float> &f32(const std::string &name, const std::vector<std::int64_t> &shape) const;
  /// The F64 tensor `name`, likewise.
  const std::vector<double> &f64(const std::string &name, const std::vector<std::int64_t> &shape) const;

  [[noreturn]] void fail(const std::string &why) const;

private:
  struct Tensor {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::vector<float> f32;
    std::vector<double> f64;
  };
  const Tensor &find(const std::string &name, const std::vector<std::int64_t> &shape, const std::string &dtype) const;

  std::string path_, kind_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

} // namespace sobolev_warmstart::detail
