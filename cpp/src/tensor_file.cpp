/// @file
/// @brief tensor_file.hpp: a safetensors file's header (JSON), tensors and metadata, checked as read.

#include "tensor_file.hpp"

#include "json_reader.hpp"

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace sobolev_warmstart::detail {

std::string shape_str(const std::vector<std::int64_t> &shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

TensorFile::TensorFile(const std::string &path, const std::string &kind) : path_(path), kind_(kind) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::invalid_argument(path + ": cannot open the file");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 8) fail("shorter than the 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(std::uint8_t(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8) fail("header length " + std::to_string(n) + " exceeds the file size");
  JsonValue root;
  try {
    root = parse_json(std::string(bytes.data() + 8, std::size_t(n)));
  } catch (const std::invalid_argument &e) {
    fail(e.what());
  }
  if (root.kind != JsonValue::Kind::Object) fail("the header is not a JSON object");
  const std::size_t data0 = 8 + std::size_t(n), size = bytes.size() - data0;
  for (const auto &[name, v] : root.object) {
    if (name == "__metadata__") {
      for (const auto &[key, value] : v.object) metadata_[key] = value.as_string("__metadata__." + key);
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    Tensor t;
    t.dtype = v.at("dtype", where).as_string(where + " dtype");
    if (t.dtype != "F32" && t.dtype != "F64") fail(where + " has dtype " + t.dtype + ", expected F32 or F64");
    const std::size_t width = t.dtype == "F32" ? 4 : 8;
    std::int64_t count = 1;
    for (const auto &d : v.at("shape", where).array) {
      t.shape.push_back(d.as_int(where + " shape"));
      if (t.shape.back() < 0) fail(where + " has a negative size");
      count *= t.shape.back();
    }
    const auto &off = v.at("data_offsets", where).array;
    if (off.size() != 2) fail(where + ": data_offsets must hold two numbers");
    const double b = off[0].as_double(where), e = off[1].as_double(where);
    if (b < 0 || e < b || e > double(size) || e - b != double(width) * double(count))
      fail(where + ": data_offsets [" + std::to_string(std::int64_t(b)) + ", " + std::to_string(std::int64_t(e)) +
           ") do not hold " + std::to_string(count) + (width == 4 ? " float32" : " float64") +
           " values inside the data");
    const char *src = bytes.data() + data0 + std::size_t(b);
    if (width == 4) {
      t.f32.resize(std::size_t(count));
      if (count) std::memcpy(t.f32.data(), src, 4 * std::size_t(count));
    } else {
      t.f64.resize(std::size_t(count));
      if (count) std::memcpy(t.f64.data(), src, 8 * std::size_t(count));
    }
    tensors_[name] = std::move(t);
  }
}

const TensorFile::Tensor &TensorFile::find(const std::string &name, const std::vector<std::int64_t> &shape,
                                           const std::string &dtype) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw std::invalid_argument(path_ + ": the " + kind_ + " file has no tensor '" + name + "' (expected shape " +
                                shape_str(shape) + "); export it with " +
                                (kind_ == "policy" ? "sobolev_warmstart.export_native"
                                                   : "sobolev_warmstart.NearestNeighbourLookup.export"));
  if (it->second.dtype != dtype)
    fail("tensor '" + name + "' has dtype " + it->second.dtype + ", expected " + dtype);
  if (it->second.shape != shape)
    throw std::invalid_argument(path_ + ": tensor '" + name + "' has shape " + shape_str(it->second.shape) +
                                ", the " + (kind_ == "policy" ? "architecture in the metadata" : "metadata") +
                                " expects " + shape_str(shape));
  return it->second;
}

const std::vector<float> &TensorFile::f32(const std::string &name, const std::vector<std::int64_t> &shape) const {
  return find(name, shape, "F32").f32;
}

const std::vector<double> &TensorFile::f64(const std::string &name, const std::vector<std::int64_t> &shape) const {
  return find(name, shape, "F64").f64;
}

void TensorFile::fail(const std::string &why) const {
  throw std::invalid_argument(path_ + ": not a valid safetensors " + kind_ + " file (" + why + ")");
}

} // namespace sobolev_warmstart::detail
