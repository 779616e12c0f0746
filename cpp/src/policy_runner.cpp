#include "sobolev_warmstart/policy_runner.hpp"

#include "json_reader.hpp"
#include "native_network.hpp"

#include <torch/script.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <filesystem>
#include <mutex>
#include <sstream>

namespace sobolev_warmstart {
namespace {

PolicyMetadata parse_policy_metadata(const std::string &path, const std::string &backend, const std::string &json) {
  using detail::JsonValue;
  JsonValue root;
  try {
    root = detail::parse_json(json);
  } catch (const std::invalid_argument &e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
  PolicyMetadata m;
  m.path = path;
  m.backend = backend;
  m.json = json;
  m.kind = root.at("kind", path).as_string("kind");
  if (m.kind != "diffusion" && m.kind != "mlp")
    throw std::invalid_argument(path + ": unknown policy kind '" + m.kind + "' (expected diffusion or mlp)");
  const JsonValue &task = root.at("task", path);
  m.task_name = task.at("name", path + " task").as_string("task.name");
  m.action_space = task.has("action_space") ? task.at("action_space", path).as_string("task.action_space") : "torque";
  m.dims.nx = task.at("nx", path + " task").as_int("task.nx");
  m.dims.ndx = task.at("ndx", path + " task").as_int("task.ndx");
  m.dims.nu = task.at("nu", path + " task").as_int("task.nu");
  m.dims.na = task.at("na", path + " task").as_int("task.na");
  m.dims.no = task.at("no", path + " task").as_int("task.no");
  m.dims.nz = task.at("nz", path + " task").as_int("task.nz");
  m.dims.horizon = task.at("horizon", path + " task").as_int("task.horizon");
  m.dims.dt = task.at("dt", path + " task").as_double("task.dt");
  if (root.has("time_to_go")) {  // files written before the option have no field: false
    const JsonValue &v = root.at("time_to_go", path);
    if (v.kind != JsonValue::Kind::Bool) throw std::invalid_argument(path + ": time_to_go: expected a boolean in the metadata");
    m.time_to_go = v.boolean;
  }
  if (m.kind == "diffusion") {
    m.horizon = root.at("horizon", path).as_int("horizon");
    m.history = root.at("history", path).as_int("history");
    m.action_steps = root.at("action_steps", path).as_int("action_steps");
    m.num_steps = root.at("num_steps", path).as_int("num_steps");
    if (m.horizon < 1 || m.history < 1 || m.action_steps < 1 || m.num_steps < 1 ||
        m.history + m.action_steps > m.horizon)
      throw std::invalid_argument(path + ": inconsistent chunk metadata (horizon " + std::to_string(m.horizon) +
                                  ", history " + std::to_string(m.history) + ", action_steps " +
                                  std::to_string(m.action_steps) + ", num_steps " + std::to_string(m.num_steps) + ")");
  }
  return m;
}

constexpr const char *kMetadataFile = "metadata.json";  // TorchScript extra file (export.py)

at::Tensor wrap(const float *data, std::initializer_list<int64_t> shape) {
  // from_blob does not copy; the policies never write to their inputs.
  return torch::from_blob(const_cast<float *>(data), shape, torch::kFloat32);
}

void copy_out(const at::Tensor &t, float *out, int64_t expected, const std::string &path) {
  at::Tensor c = t.to(torch::kFloat32).contiguous();
  if (c.numel() != expected)
    throw std::runtime_error(path + ": the policy returned " + std::to_string(c.numel()) + " values, expected " +
                             std::to_string(expected));
  std::memcpy(out, c.data_ptr<float>(), sizeof(float) * std::size_t(expected));
}

/// The signature of the exported file (export.py) in one place; each backend only runs tensors.
class TensorRunner : public PolicyRunner {
public:
  void sample_chunks(int b, const float *obs, const float *params, const float *hist, const float *noise,
                     float *out) const override {
    const auto &m = meta_;
    call({wrap(obs, {b, m.history, m.dims.no}), wrap(params, {b, m.param_dim()}), wrap(hist, {b, m.history, m.dims.na}),
          wrap(noise, {m.num_steps, b, m.horizon, m.dims.na})},
         out, int64_t(b) * m.horizon * m.dims.na);
  }

  void act(int b, const float *obs, const float *params, float *out) const override {
    const auto &m = meta_;
    call({wrap(obs, {b, m.dims.no}), wrap(params, {b, m.param_dim()})}, out, int64_t(b) * m.dims.na);
  }

protected:
  virtual at::Tensor run(const std::vector<at::Tensor> &inputs) const = 0;

private:
  void call(const std::vector<at::Tensor> &inputs, float *out, int64_t expected) const {
    try {
      c10::InferenceMode guard;
      copy_out(run(inputs), out, expected, meta_.path);
    } catch (const c10::Error &e) {  // rethrown naming the file
      throw std::runtime_error(meta_.path + ": " + e.what_without_backtrace());
    }
  }
};

class TorchScriptRunner final : public TensorRunner {
public:
  explicit TorchScriptRunner(const std::string &path) {
    torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
    try {
      module_ = torch::jit::load(path, torch::kCPU, extra);
    } catch (const c10::Error &e) {
      throw std::invalid_argument(path + ": not a loadable TorchScript file (" +
                                  std::string(e.what_without_backtrace()).substr(0, 300) + ")");
    }
    if (extra[kMetadataFile].empty())
      throw std::invalid_argument(path + ": TorchScript file without sobolev_warmstart metadata (" +
                                  std::string(kMetadataFile) + "); export it with sobolev_warmstart.export_torchscript");
    module_.eval();
    meta_ = parse_policy_metadata(path, "torchscript", extra[kMetadataFile]);
  }

protected:
  at::Tensor run(const std::vector<at::Tensor> &inputs) const override {
    return module_.forward(std::vector<c10::IValue>(inputs.begin(), inputs.end())).toTensor();
  }

private:
  // forward() is not const in the API but is safe to call concurrently for inference.
  mutable torch::jit::Module module_;
};

class AOTIRunner final : public TensorRunner {
public:
  AOTIRunner(const std::string &path, int num_runners) {
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
          path, "model", /*run_single_threaded=*/false, std::size_t(std::max(1, num_runners)));
    } catch (const std::exception &e) {
      throw std::invalid_argument(path + ": not a loadable AOTInductor package (" +
                                  std::string(e.what()).substr(0, 300) + ")");
    }
    const auto md = loader_->get_metadata();
    const auto it = md.find(detail::kPolicyMetadataKey);
    if (it == md.end())
      throw std::invalid_argument(path + ": AOTInductor package without sobolev_warmstart metadata; export it with "
                                  "sobolev_warmstart.export_aoti");
    meta_ = parse_policy_metadata(path, "aoti", it->second);
  }

protected:
  at::Tensor run(const std::vector<at::Tensor> &inputs) const override { return loader_->run(inputs).at(0); }

private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

/// The native backend (native_network.hpp): no libtorch on the call path.
class NativeRunner final : public PolicyRunner {
public:
  explicit NativeRunner(const std::string &path) {
    std::string json;
    net_ = detail::NativeNetwork::load(path, json, [&](const std::string &text) {
      meta_ = parse_policy_metadata(path, "native", text);
      detail::NativeSizes s;
      s.diffusion = meta_.kind == "diffusion";
      s.na = meta_.dims.na;
      s.no = meta_.dims.no;
      s.nz = meta_.param_dim();
      s.horizon = meta_.horizon;
      s.history = meta_.history;
      s.num_steps = meta_.num_steps;
      return s;
    });
  }
  void sample_chunks(int b, const float *obs, const float *params, const float *hist, const float *noise,
                     float *out) const override {
    net_->sample_chunks(b, obs, params, hist, noise, out);
  }
  void act(int b, const float *obs, const float *params, float *out) const override { net_->act(b, obs, params, out); }

private:
  std::unique_ptr<detail::NativeNetwork> net_;
};

} // namespace

std::shared_ptr<PolicyRunner> PolicyRunner::load(const std::string &path, int num_runners) {
  if (!std::filesystem::is_regular_file(path))
    throw std::invalid_argument("policy_path: file not found: " + path);
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".pt") return std::make_shared<TorchScriptRunner>(path);
  if (ext == ".pt2") return std::make_shared<AOTIRunner>(path, num_runners > 0 ? num_runners : omp_get_max_threads());
  if (ext == ".safetensors") return std::make_shared<NativeRunner>(path);
  throw std::invalid_argument("policy_path: expected a .pt (TorchScript), .pt2 (AOTInductor) or .safetensors (native) "
                              "file, got " + path);
}

void PolicyRunner::check_task(const Task &task) const {
  const TaskDims &d = task.dims();
  const auto &m = meta_;
  auto mismatch = [&](const std::string &field, const std::string &policy, const std::string &expected) {
    throw std::invalid_argument(m.path + ": policy was exported for " + field + " = " + policy + ", task " +
                                task.name() + "/" + task.variant() + " has " + expected);
  };
  if (m.task_name != task.name()) mismatch("task", m.task_name, task.name());
  const std::string space = task.action_space() == ActionSpace::Torque ? "torque" : "state";
  if (m.action_space != space) mismatch("action_space", m.action_space, space);
  const std::pair<const char *, std::pair<int, int>> sizes[] = {
      {"nx", {m.dims.nx, d.nx}}, {"ndx", {m.dims.ndx, d.ndx}}, {"nu", {m.dims.nu, d.nu}},
      {"na", {m.dims.na, d.na}}, {"no", {m.dims.no, d.no}},   {"nz", {m.dims.nz, d.nz}},
      {"horizon", {m.dims.horizon, d.horizon}}};
  for (const auto &[name, pair] : sizes)
    if (pair.first != pair.second) mismatch(name, std::to_string(pair.first), std::to_string(pair.second));
  if (std::abs(m.dims.dt - d.dt) > 1e-12) {
    std::ostringstream a, b;
    a << m.dims.dt;
    b << d.dt;
    mismatch("dt", a.str(), b.str());
  }
}

TorchSingleThreadScope::TorchSingleThreadScope() : previous_(at::get_num_threads()) {
  if (previous_ != 1) at::set_num_threads(1);
}

TorchSingleThreadScope::~TorchSingleThreadScope() {
  if (previous_ != 1) at::set_num_threads(previous_);
}

} // namespace sobolev_warmstart
