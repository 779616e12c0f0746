/// @file
/// @brief The native policy backend's network (see native_network.hpp): a `.safetensors` file (weights + the
/// architecture in its metadata, written by sobolev_warmstart.export_native) evaluated by a compact Eigen
/// forward in float32.
///
/// Why: at batch 1 the networks' arithmetic costs tens of microseconds while libtorch spends about a
/// millisecond per call dispatching operators. Here every layer is one small matrix product over
/// preallocated-size Eigen matrices, and what does not change within a call is computed once:
/// - the diffusion-step embedding and its share of the first layer / FiLM projections, per step, at load;
/// - the conditioning's share of the first layer / FiLM projections, once per call (not per denoising step).
/// The result equals the eager PyTorch policy to float32 rounding (tests/test_export.py).

#include "json_reader.hpp"
#include "native_network.hpp"
#include "tensor_file.hpp"

// A private copy of Eigen: this unit may be compiled for another instruction set (and so another alignment)
// than the rest of the library; renaming the namespace keeps every Eigen symbol it instantiates its own.
// Single-threaded products: the rollouts parallelise across instances.
#define Eigen sobolev_warmstart_native_eigen
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace sobolev_warmstart::detail {
namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;  // column-major: features x batch/time
using Vec = Eigen::VectorXf;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// y (out, N) = w (out, K) x, column n of x being K floats at `x + n * x_stride` (x_stride = K for a plain
/// matrix; smaller for overlapping windows, so that a convolution reads its im2col matrix in place).
/// Eigen's blocked GEMM packs both operands on every call, which costs as much as the arithmetic when N is a
/// handful of columns (batch-1 rollouts); this kernel reads the weight column by column instead, 16 output
/// rows x 4 columns of accumulators, without packing (blocks of 32 x 4 and 16 x 8 measured slower). Rows
/// beyond a multiple of 16 go to blocks of 8 rows (half a register: networks narrower than 16 channels, or 24,
/// 40..., round 46), the last 1-7 rows to a plain loop, the last N % 4 columns to Eigen's matrix-vector product.
/// The weight's and the output's rows are not aligned to a register: loads and stores go through memcpy (an
/// unaligned move; an alignment attribute on the vector type would be dropped as a template argument).
template <typename V>
void gemm_row_block(float *Y, const float *W, Eigen::Index out, Eigen::Index K, const float *x, Eigen::Index x_stride,
                    Eigen::Index r, Eigen::Index blocked) {
  for (Eigen::Index n = 0; n < blocked; n += 4) {
    const float *x0 = x + n * x_stride, *x1 = x0 + x_stride, *x2 = x1 + x_stride, *x3 = x2 + x_stride;
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (Eigen::Index k = 0; k < K; ++k) {
      V wk;
      std::memcpy(&wk, W + k * out + r, sizeof(V));
      a0 += wk * x0[k];
      a1 += wk * x1[k];
      a2 += wk * x2[k];
      a3 += wk * x3[k];
    }
    std::memcpy(Y + n * out + r, &a0, sizeof(V));
    std::memcpy(Y + (n + 1) * out + r, &a1, sizeof(V));
    std::memcpy(Y + (n + 2) * out + r, &a2, sizeof(V));
    std::memcpy(Y + (n + 3) * out + r, &a3, sizeof(V));
  }
}

void small_gemm(float *Y, const Mat &w, const float *x, Eigen::Index x_stride, Eigen::Index N) {
  typedef float v16 __attribute__((vector_size(64)));  // 16 floats: one AVX-512 register
  typedef float v8 __attribute__((vector_size(32)));   // 8 floats
  const Eigen::Index out = w.rows(), K = w.cols(), full16 = out / 16 * 16, blocked = N / 4 * 4;
  const Eigen::Index full = full16 + (out - full16) / 8 * 8;
  const float *W = w.data();
  for (Eigen::Index r = 0; r < full16; r += 16) gemm_row_block<v16>(Y, W, out, K, x, x_stride, r, blocked);
  for (Eigen::Index r = full16; r < full; r += 8) gemm_row_block<v8>(Y, W, out, K, x, x_stride, r, blocked);
  if (blocked < N) {  // the last 1-3 columns: Eigen's matrix-vector kernel streams down the weight's columns
    using Cols = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
    Eigen::Map<Mat>(Y + blocked * out, out, N - blocked).noalias() =
        w * Cols(x + blocked * x_stride, K, N - blocked, Eigen::OuterStride<>(x_stride));
  }
  for (Eigen::Index n = 0; n < blocked; ++n)
    for (Eigen::Index r = full; r < out; ++r) {
      const float *xn = x + n * x_stride;
      float a = 0.0f;
      for (Eigen::Index k = 0; k < K; ++k) a += W[k * out + r] * xn[k];
      Y[n * out + r] = a;
    }
}

void matmul(Mat &y, const Mat &w, const Mat &x) {
  y.resize(w.rows(), x.cols());
  small_gemm(y.data(), w, x.data(), x.rows(), x.cols());
}

/// A per-thread scratch buffer of at least n floats (rollouts call the network from several OpenMP threads),
/// shared by mish, Conv1d and GroupNorm: none of them holds it across a call to another. Aligned like Eigen's own
/// matrices: Eigen peels unaligned heads with scalar code (a scalar exp differs from the vectorised one in the
/// last bits), so an address-dependent alignment made results differ between processes (the Ray test caught it).
float *scratch(std::size_t n) {
  thread_local std::vector<float, Eigen::aligned_allocator<float>> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

/// The float32 vector `name` of `n` entries.
Vec vec(const TensorFile &f, const std::string &name, std::int64_t n) {
  const auto &d = f.f32(name, {n});
  return Eigen::Map<const Vec>(d.data(), n);
}

/// x tanh(softplus(x)) with one (vectorised) exponential: tanh(log(1 + e)) = n / (n + 2), n = e (e + 2).
void mish(Mat &x) {
  Eigen::Map<Eigen::ArrayXXf> e(scratch(std::size_t(x.size())), x.rows(), x.cols());
  e = x.array().min(20.0f).exp();
  x.array() = (x.array() > 20.0f).select(x.array(), x.array() * (e * (e + 2.0f)) / (e * (e + 2.0f) + 2.0f));
}

struct Linear {
  Mat w;  // (out, in)
  Vec b;
  Linear() = default;
  Linear(const TensorFile &f, const std::string &prefix, int in, int out)
      : w(Eigen::Map<const RowMat>(f.f32(prefix + ".weight", {out, in}).data(), out, in)),
        b(vec(f, prefix + ".bias", out)) {}
  Mat operator()(const Mat &x) const {
    Mat y;
    matmul(y, w, x);
    y.colwise() += b;
    return y;
  }
};

/// models/mlp.py's MLP: Linear layers `prefix.0, prefix.2, ...` with Mish between them.
struct MLPStack {
  std::vector<Linear> layers;
  MLPStack() = default;
  MLPStack(const TensorFile &f, const std::string &prefix, int in, const std::vector<int> &hidden, int out) {
    int d = in;
    for (std::size_t i = 0; i <= hidden.size(); ++i) {
      const int o = i < hidden.size() ? hidden[i] : out;
      layers.emplace_back(f, prefix + "." + std::to_string(2 * i), d, o);
      d = o;
    }
  }
  /// The layers after the first, given the first one's output `h` (pre-activation).
  Mat after_first(Mat h) const {
    for (std::size_t i = 1; i < layers.size(); ++i) {
      mish(h);
      h = layers[i](h);
    }
    return h;
  }
  Mat operator()(const Mat &x) const { return after_first(layers.front()(x)); }
};

// Batched sequences: a (channels, T * B) matrix holds B sequences side by side, column b * T + t.

/// Conv1d (weight (out, in, k)): per sequence, one product whose im2col columns are read in place from the
/// zero-padded sequence (k = 1: one product for all B sequences).
struct Conv1d {
  Mat w;  // (out, k * in), column j * in + c: tap j of input channel c
  Vec b;
  int in = 1, k = 1, stride = 1, pad = 0;
  Conv1d() = default;
  Conv1d(const TensorFile &f, const std::string &prefix, int in_, int out, int k_, int stride_, int pad_)
      : w(out, in_ * k_), b(vec(f, prefix + ".bias", out)), in(in_), k(k_), stride(stride_), pad(pad_) {
    const auto &d = f.f32(prefix + ".weight", {out, in, k});
    for (int o = 0; o < out; ++o)
      for (int c = 0; c < in; ++c)
        for (int j = 0; j < k; ++j) w(o, j * in + c) = d[(std::size_t(o) * in + c) * k + j];
  }
  Mat operator()(const Mat &x, int B) const {  // x (in, T * B) -> (out, tout * B)
    const int T = int(x.cols()) / B, tout = (T + 2 * pad - k) / stride + 1;
    Mat y(w.rows(), Eigen::Index(tout) * B);
    if (k == 1 && stride == 1 && pad == 0) {
      small_gemm(y.data(), w, x.data(), in, x.cols());
    } else {
      // each sequence zero-padded once; output t reads the k * in contiguous floats of input columns
      // t * stride .. t * stride + k - 1 of the padded sequence in place: its im2col column, without a copy
      const Eigen::Index padded = Eigen::Index(T + 2 * pad) * in;
      float *xp = scratch(std::size_t(padded));
      std::fill(xp, xp + Eigen::Index(pad) * in, 0.0f);
      std::fill(xp + padded - Eigen::Index(pad) * in, xp + padded, 0.0f);
      for (int s = 0; s < B; ++s) {
        std::memcpy(xp + Eigen::Index(pad) * in, x.data() + Eigen::Index(s) * T * in, sizeof(float) * std::size_t(T) * in);
        small_gemm(y.data() + Eigen::Index(s) * tout * y.rows(), w, xp, Eigen::Index(stride) * in, tout);
      }
    }
    y.colwise() += b;
    return y;
  }
};

/// ConvTranspose1d (weight (in, out, k)): one product per kernel tap, scattered to the output times.
struct ConvTranspose1d {
  std::vector<Mat> taps;  // (out, in) per tap
  Vec b;
  int stride = 2, pad = 1;
  ConvTranspose1d() = default;
  ConvTranspose1d(const TensorFile &f, const std::string &prefix, int in, int out, int k, int stride_, int pad_)
      : b(vec(f, prefix + ".bias", out)), stride(stride_), pad(pad_) {
    const auto &d = f.f32(prefix + ".weight", {in, out, k});
    taps.assign(std::size_t(k), Mat(out, in));
    for (int c = 0; c < in; ++c)
      for (int o = 0; o < out; ++o)
        for (int j = 0; j < k; ++j) taps[std::size_t(j)](o, c) = d[(std::size_t(c) * out + o) * k + j];
  }
  Mat operator()(const Mat &x, int B) const {  // x (in, T * B) -> (out, tout * B)
    const int T = int(x.cols()) / B, k = int(taps.size());
    const int tout = (T - 1) * stride - 2 * pad + k;
    Mat y = Mat::Zero(b.size(), Eigen::Index(tout) * B);
    Mat p;
    for (int j = 0; j < k; ++j) {
      matmul(p, taps[std::size_t(j)], x);
      for (int s = 0; s < B; ++s)
        for (int t = 0; t < T; ++t) {
          const int dst = t * stride - pad + j;
          if (dst >= 0 && dst < tout) y.col(Eigen::Index(s) * tout + dst) += p.col(Eigen::Index(s) * T + t);
        }
    }
    y.colwise() += b;
    return y;
  }
};

struct GroupNorm {
  Vec w, b;
  int groups = 1;
  float eps = 1e-5f;
  GroupNorm() = default;
  GroupNorm(const TensorFile &f, const std::string &prefix, int channels, int groups_, float eps_)
      : w(vec(f, prefix + ".weight", channels)), b(vec(f, prefix + ".bias", channels)), groups(groups_), eps(eps_) {}
  void operator()(Mat &x, int B) const {  // statistics per sequence and group
    const Eigen::Index C = x.rows(), per = C / groups, T = x.cols() / B;
    const float n = float(per * T);
    float *mean = scratch(2 * std::size_t(C)), *acc = mean + C;  // per channel
    for (int s = 0; s < B; ++s) {
      float *seq = x.data() + s * T * C;  // column t holds the C channels of time t: the loops over c vectorise
      std::fill(acc, acc + C, 0.0f);
      for (Eigen::Index t = 0; t < T; ++t)
        for (Eigen::Index c = 0; c < C; ++c) acc[c] += seq[t * C + c];
      for (int g = 0; g < groups; ++g) {
        float sum = 0.0f;
        for (Eigen::Index c = g * per; c < (g + 1) * per; ++c) sum += acc[c];
        std::fill(mean + g * per, mean + (g + 1) * per, sum / n);
      }
      std::fill(acc, acc + C, 0.0f);
      for (Eigen::Index t = 0; t < T; ++t)
        for (Eigen::Index c = 0; c < C; ++c) acc[c] += (seq[t * C + c] - mean[c]) * (seq[t * C + c] - mean[c]);
      for (int g = 0; g < groups; ++g) {
        float squares = 0.0f;
        for (Eigen::Index c = g * per; c < (g + 1) * per; ++c) squares += acc[c];
        const float inv = 1.0f / std::sqrt(squares / n + eps);
        for (Eigen::Index c = g * per; c < (g + 1) * per; ++c) acc[c] = inv * w(c);  // acc: the scale
      }
      for (Eigen::Index c = 0; c < C; ++c) mean[c] = b(c) - mean[c] * acc[c];  // mean: the shift
      for (Eigen::Index t = 0; t < T; ++t)
        for (Eigen::Index c = 0; c < C; ++c) seq[t * C + c] = seq[t * C + c] * acc[c] + mean[c];
    }
  }
};

/// Conv1d -> GroupNorm -> Mish.
struct ConvBlock {
  Conv1d conv;
  GroupNorm norm;
  ConvBlock() = default;
  ConvBlock(const TensorFile &f, const std::string &p, int in, int out, int k, int groups, float eps)
      : conv(f, p + ".conv", in, out, k, 1, k / 2), norm(f, p + ".norm", out, groups, eps) {}
  Mat operator()(const Mat &x, int B) const {
    Mat y = conv(x, B);
    norm(y, B);
    mish(y);
    return y;
  }
};

/// The diffusion-step embedding: sinusoids, Linear(E, 4E), Mish, Linear(4E, E).
Vec step_embedding(const TensorFile &f, const std::string &p, int dim, int k) {
  const int half = dim / 2;
  const Vec freqs = vec(f, p + ".freqs", half);
  Mat s(dim, 1);
  for (int i = 0; i < half; ++i) {
    const float arg = float(k) * freqs(i);
    s(i, 0) = std::sin(arg);
    s(half + i, 0) = std::cos(arg);
  }
  Mat h = Linear(f, p + ".mlp.0", dim, 4 * dim)(s);
  mish(h);
  return Linear(f, p + ".mlp.2", 4 * dim, dim)(h).col(0);
}

/// A denoiser ``x0 = net(sample, k, cond)`` over column-stacked chunks. `prepare` computes what depends on
/// the conditioning only, once per call; `denoise` then runs one step.
class Denoiser {
public:
  virtual ~Denoiser() = default;
  virtual std::vector<Mat> prepare(const Mat &cond) const = 0;
  /// sample (H*na, B) (entry t*na + a of a column is action a at time t) -> clean chunk, same layout.
  virtual Mat denoise(const Mat &sample, int k, const std::vector<Mat> &prepared) const = 0;
};

/// models/chunk_mlp.py: an MLP over [flattened chunk, step embedding, cond].
class MLPDenoiser final : public Denoiser {
public:
  MLPDenoiser(const TensorFile &f, const std::vector<int> &hidden, int chunk, int embed, int cond_dim, int K)
      : mlp_(f, "net.mlp.net", chunk + embed + cond_dim, hidden, chunk) {
    // the first layer is applied in three parts (sample, step, cond), so it is kept split
    const Linear &first = mlp_.layers.front();
    w_sample_ = first.w.leftCols(chunk);
    w_cond_ = first.w.rightCols(cond_dim);
    for (int k = 0; k < K; ++k)
      step_bias_.push_back(first.w.middleCols(chunk, embed) * step_embedding(f, "net.step_embed", embed, k) + first.b);
  }
  std::vector<Mat> prepare(const Mat &cond) const override { return {w_cond_ * cond}; }
  Mat denoise(const Mat &x, int k, const std::vector<Mat> &prepared) const override {
    Mat h = w_sample_ * x + prepared[0];
    h.colwise() += step_bias_[std::size_t(k)];
    return mlp_.after_first(std::move(h));
  }

private:
  MLPStack mlp_;
  Mat w_sample_, w_cond_;
  std::vector<Vec> step_bias_;  // first-layer bias plus the step embedding's share, per step
};

/// models/unet.py: the conditional 1-D U-Net with FiLM residual blocks.
class UNetDenoiser final : public Denoiser {
public:
  UNetDenoiser(const TensorFile &f, const std::vector<int> &down_dims, int kernel, int groups, float eps, int embed,
               int cond_dim, int na, int horizon, int K)
      : na_(na), horizon_(horizon) {
    std::vector<int> dims{na};
    dims.insert(dims.end(), down_dims.begin(), down_dims.end());
    const int levels = int(down_dims.size()), c = embed + cond_dim;
    auto res = [&](const std::string &p, int in, int out) {
      Res r;
      r.b1 = ConvBlock(f, p + ".block1", in, out, kernel, groups, eps);
      r.b2 = ConvBlock(f, p + ".block2", out, out, kernel, groups, eps);
      const Linear film(f, p + ".film.1", c, 2 * out);
      r.film_cond = film.w.rightCols(cond_dim);
      r.film_step = film.w.leftCols(embed);
      r.film_bias = film.b;
      r.cout = out;
      r.has_skip = in != out;
      if (r.has_skip) r.skip = Conv1d(f, p + ".skip", in, out, 1, 1, 0);
      blocks_.push_back(std::move(r));
      return int(blocks_.size()) - 1;
    };
    for (int i = 0; i < levels; ++i) {
      const std::string p = "net.down." + std::to_string(i);
      Level l;
      l.r1 = res(p + ".res1", dims[i], dims[i + 1]);
      l.r2 = res(p + ".res2", dims[i + 1], dims[i + 1]);
      l.resample = i < levels - 1;
      if (l.resample) l.down = Conv1d(f, p + ".sample", dims[i + 1], dims[i + 1], 3, 2, 1);
      down_.push_back(std::move(l));
    }
    mid_ = {res("net.mid.0", dims[levels], dims[levels]), res("net.mid.1", dims[levels], dims[levels])};
    for (int j = 0, i = levels - 1; i >= 1; ++j, --i) {
      const std::string p = "net.up." + std::to_string(j);
      Level l;
      l.r1 = res(p + ".res1", 2 * dims[i + 1], dims[i]);
      l.r2 = res(p + ".res2", dims[i], dims[i]);
      l.up = ConvTranspose1d(f, p + ".sample", dims[i], dims[i], 4, 2, 1);
      up_.push_back(std::move(l));
    }
    final_block_ = ConvBlock(f, "net.final.0", dims[1], dims[1], kernel, groups, eps);
    final_conv_ = Conv1d(f, "net.final.1", dims[1], na, 1, 1, 0);
    // FiLM's input is mish([step embedding, cond]): the step's share per step, here
    for (int k = 0; k < K; ++k) {
      Mat e = step_embedding(f, "net.step_embed", embed, k);
      mish(e);
      for (Res &r : blocks_) r.step_share.push_back(r.film_step * e.col(0) + r.film_bias);
    }
  }

  std::vector<Mat> prepare(const Mat &cond) const override {
    Mat m = cond;
    mish(m);
    std::vector<Mat> out;
    out.reserve(blocks_.size());
    for (const Res &r : blocks_) out.push_back(r.film_cond * m);
    return out;
  }

  Mat denoise(const Mat &sample, int k, const std::vector<Mat> &prepared) const override {
    const int B = int(sample.cols());
    auto run = [&](int i, const Mat &x) {
      const Res &r = blocks_[std::size_t(i)];
      Mat h = r.b1(x, B);
      const Eigen::Index T = h.cols() / B;
      const float *step = r.step_share[std::size_t(k)].data();
      for (int s = 0; s < B; ++s) {  // FiLM: per-channel scale and bias of each sequence
        const float *cond = prepared[std::size_t(i)].col(s).data();
        float *hs = h.data() + s * T * r.cout;
        for (Eigen::Index t = 0; t < T; ++t)
          for (int c = 0; c < r.cout; ++c)
            hs[t * r.cout + c] = hs[t * r.cout + c] * (step[c] + cond[c]) + (step[r.cout + c] + cond[r.cout + c]);
      }
      h = r.b2(h, B);
      if (r.has_skip) h += r.skip(x, B);
      else h += x;
      return h;
    };
    // (H*na, B) column-major is (na, H * B): channels x (sequence, time), the batched layout
    Mat x = Eigen::Map<const Mat>(sample.data(), na_, Eigen::Index(horizon_) * B);
    std::vector<Mat> skips;
    for (const Level &l : down_) {
      x = run(l.r2, run(l.r1, x));
      skips.push_back(x);
      if (l.resample) x = l.down(x, B);
    }
    for (int i : mid_) x = run(i, x);
    for (const Level &l : up_) {
      Mat cat(x.rows() + skips.back().rows(), x.cols());
      cat << x, skips.back();
      skips.pop_back();
      x = l.up(run(l.r2, run(l.r1, cat)), B);
    }
    const Mat y = final_conv_(final_block_(x, B), B);
    return Eigen::Map<const Mat>(y.data(), sample.rows(), B);
  }

private:
  struct Res {
    ConvBlock b1, b2;
    Mat film_cond, film_step;
    Vec film_bias;
    std::vector<Vec> step_share;  // film bias + the step embedding's share, per step
    bool has_skip = false;
    Conv1d skip;
    int cout = 0;
  };
  struct Level {
    int r1 = 0, r2 = 0;
    bool resample = false;
    Conv1d down;
    ConvTranspose1d up;
  };
  int na_, horizon_;
  std::vector<Res> blocks_;
  std::vector<Level> down_, up_;
  std::vector<int> mid_;
  ConvBlock final_block_;
  Conv1d final_conv_;
};

std::vector<int> int_list(const JsonValue &v, const std::string &what) {
  std::vector<int> out;
  if (v.kind != JsonValue::Kind::Array) throw std::invalid_argument(what + ": expected a list in the metadata");
  for (const auto &x : v.array) {
    out.push_back(x.as_int(what));
    if (out.back() < 1) throw std::invalid_argument(what + ": expected positive sizes in the metadata");
  }
  return out;
}

/// Normaliser of one group of variables: physical = normalised * scale + offset.
struct Normaliser {
  Vec offset, scale;
  Normaliser(const TensorFile &f, const std::string &key, int n)
      : offset(vec(f, key + "_offset", n)), scale(vec(f, key + "_scale", n)) {}
};

class Network final : public NativeNetwork {
public:
  Network(const std::string &path, const TensorFile &f, const JsonValue &root, const NativeSizes &m)
      : m_(m), path_(path), a_(f, "a", m.na), o_(f, "o", m.no), z_(f, "z", m.nz) {
    const JsonValue &arch = root.at("architecture", path);
    const std::string network = arch.at("network", path + " architecture").as_string("architecture.network");
    if (!m.diffusion) {
      if (network != "mlp") throw std::invalid_argument(path + ": an mlp policy with network '" + network + "'");
      mlp_ = MLPStack(f, "net.net", m.no + m.nz, int_list(arch.at("hidden_dims", path), "architecture.hidden_dims"),
                      m.na);
      return;
    }
    const int K = m.num_steps, chunk = m.horizon * m.na, cond_dim = m.history * m.no + m.nz;
    const int embed = arch.at("step_embed_dim", path).as_int("architecture.step_embed_dim");
    if (embed < 2 || embed % 2) throw std::invalid_argument(path + ": architecture.step_embed_dim must be even and >= 2");
    clip_ = arch.at("clip_sample", path).kind == JsonValue::Kind::Bool && arch.at("clip_sample", path).boolean;
    clip_range_ = float(arch.at("clip_sample_range", path).as_double("architecture.clip_sample_range"));
    past_actions_ = arch.at("past_actions", path).kind == JsonValue::Kind::Bool && arch.at("past_actions", path).boolean;
    if (root.has("relative_actions")) {  // files written before the option have no field: absolute chunks
      const JsonValue &v = root.at("relative_actions", path);
      if (v.kind != JsonValue::Kind::Bool)
        throw std::invalid_argument(path + ": relative_actions: expected a boolean in the metadata");
      relative_ = v.boolean;
    }
    if (network == "mlp_denoiser") {
      denoiser_ = std::make_unique<MLPDenoiser>(f, int_list(arch.at("hidden_dims", path), "architecture.hidden_dims"),
                                                chunk, embed, cond_dim, K);
    } else if (network == "unet") {
      const auto down = int_list(arch.at("down_dims", path), "architecture.down_dims");
      const int kernel = arch.at("kernel_size", path).as_int("architecture.kernel_size");
      const int groups = arch.at("n_groups", path).as_int("architecture.n_groups");
      const float eps = float(arch.at("group_norm_eps", path).as_double("architecture.group_norm_eps"));
      const int f2 = 1 << (down.size() - 1);
      if (kernel < 1 || kernel % 2 == 0) throw std::invalid_argument(path + ": architecture.kernel_size must be odd");
      for (int d : down)
        if (d % groups) throw std::invalid_argument(path + ": architecture.n_groups must divide every down_dims entry");
      if (m.horizon % f2)
        throw std::invalid_argument(path + ": the U-Net's horizon " + std::to_string(m.horizon) +
                                    " is not a multiple of " + std::to_string(f2));
      denoiser_ = std::make_unique<UNetDenoiser>(f, down, kernel, groups, eps, embed, cond_dim, m.na, m.horizon, K);
    } else {
      throw std::invalid_argument(path + ": unknown architecture.network '" + network +
                                  "' (expected mlp_denoiser or unet)");
    }
    read_sampling_plan(f, root, K);
  }

  void sample_chunks(int B, const float *obs, const float *params, const float *hist, const float *noise,
                     float *out) const override {
    const auto &m = m_;
    if (!m.diffusion) throw std::logic_error(path_ + ": sample_chunks on an mlp policy");
    const int h = m.history, na = m.na, D = m.horizon * na;
    const Mat cond = condition(B, obs, h, params);
    // relative chunks: every entry is taken relative to the last known action (ChunkSpec.relative_actions)
    auto base = [&](int b, int j) { return relative_ ? hist[std::size_t(b) * h * na + (h - 1) * na + j % na] : 0.0f; };
    Mat known = Mat::Zero(h * na, B);  // the history entries, normalised (zeros without past actions)
    if (past_actions_)
      for (int b = 0; b < B; ++b)
        for (int j = 0; j < h * na; ++j)
          known(j, b) = (hist[std::size_t(b) * h * na + j] - base(b, j) - a_.offset(j % na)) / a_.scale(j % na);
    const std::vector<Mat> prepared = denoiser_->prepare(cond);
    Mat x = Eigen::Map<const Mat>(noise, D, B);
    for (int i = 0; i < int(steps_.size()); ++i) {  // one network call each (the sampler's per-call tables)
      x.topRows(h * na) = known;
      Mat x0 = denoiser_->denoise(x, steps_[std::size_t(i)], prepared);
      if (clip_) x0 = x0.cwiseMax(-clip_range_).cwiseMin(clip_range_);
      x = c0_(i) * x0 + c1_(i) * x;
      if (sigma_(i) != 0.0f) x += sigma_(i) * Eigen::Map<const Mat>(noise + std::size_t(i + 1) * B * D, D, B);
    }
    for (int b = 0; b < B; ++b) {
      float *o = out + std::size_t(b) * D;
      std::memcpy(o, hist + std::size_t(b) * h * na, sizeof(float) * std::size_t(h * na));
      for (int j = h * na; j < D; ++j) o[j] = x(j, b) * a_.scale(j % na) + a_.offset(j % na) + base(b, j);
    }
  }

  void act(int B, const float *obs, const float *params, float *out) const override {
    if (m_.diffusion) throw std::logic_error(path_ + ": act on a diffusion policy");
    const Mat x = mlp_(condition(B, obs, 1, params));
    const int na = m_.na;
    for (int b = 0; b < B; ++b)
      for (int a = 0; a < na; ++a) out[std::size_t(b) * na + a] = x(a, b) * a_.scale(a) + a_.offset(a);
  }

private:
  /// The sampler's per-call tables: the denoiser's step of each network call and the coefficients of
  /// x <- c0 x0 + c1 x + sigma noise[i + 1] (DDPM on K-1..0, or DDIM on the metadata's sampling_steps; see
  /// diffusion.py). Files exported before the tables existed hold only the schedule: DDPM on K-1..0.
  void read_sampling_plan(const TensorFile &f, const JsonValue &root, int K) {
    if (!root.has("sampling_steps")) {
      for (int k = K - 1; k >= 0; --k) steps_.push_back(k);
      c0_ = vec(f, "sampler.schedule.c0", K).reverse();
      c1_ = vec(f, "sampler.schedule.c1", K).reverse();
      sigma_ = vec(f, "sampler.schedule.sigma", K).reverse();
      return;
    }
    const JsonValue &steps = root.at("sampling_steps", path_);
    if (steps.kind != JsonValue::Kind::Array || steps.array.empty())
      throw std::invalid_argument(path_ + ": sampling_steps: expected a non-empty list in the metadata");
    for (const auto &v : steps.array) {
      steps_.push_back(v.as_int("sampling_steps"));
      if (steps_.back() < 0 || steps_.back() >= K || (steps_.size() > 1 && steps_.back() >= steps_[steps_.size() - 2]))
        throw std::invalid_argument(path_ + ": sampling_steps: expected descending steps in [0, " +
                                    std::to_string(K - 1) + "] in the metadata");
    }
    const auto n = std::int64_t(steps_.size());
    c0_ = vec(f, "sampler.call_c0", n);
    c1_ = vec(f, "sampler.call_c1", n);
    sigma_ = vec(f, "sampler.call_sigma", n);
  }

  /// [normalised observations (h*no), normalised params (nz)] per column.
  Mat condition(int B, const float *obs, int h, const float *params) const {
    const int no = m_.no, nz = m_.nz;
    Mat c(h * no + nz, B);
    for (int b = 0; b < B; ++b) {
      for (int j = 0; j < h * no; ++j) c(j, b) = (obs[std::size_t(b) * h * no + j] - o_.offset(j % no)) / o_.scale(j % no);
      for (int j = 0; j < nz; ++j) c(h * no + j, b) = (params[std::size_t(b) * nz + j] - z_.offset(j)) / z_.scale(j);
    }
    return c;
  }

  NativeSizes m_;
  std::string path_;
  Normaliser a_, o_, z_;
  MLPStack mlp_;  // mlp policies
  std::unique_ptr<Denoiser> denoiser_;
  std::vector<int> steps_;  // the denoiser's step k of each network call
  Vec c0_, c1_, sigma_;     // per network call
  bool clip_ = true, past_actions_ = false, relative_ = false;
  float clip_range_ = 1.0f;
};

} // namespace

std::unique_ptr<NativeNetwork> NativeNetwork::load(const std::string &path, std::string &metadata_json,
                                                   const std::function<NativeSizes(const std::string &)> &parse) {
  const TensorFile file(path, "policy");
  const auto it = file.metadata().find(kPolicyMetadataKey);
  if (it == file.metadata().end())
    throw std::invalid_argument(path + ": safetensors file without sobolev_warmstart metadata; export it with "
                                "sobolev_warmstart.export_native");
  metadata_json = it->second;
  const NativeSizes sizes = parse(metadata_json);
  return std::make_unique<Network>(path, file, parse_json(metadata_json), sizes);
}

} // namespace sobolev_warmstart::detail
