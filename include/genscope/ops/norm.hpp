// genscope/ops/norm.hpp — LayerNorm and GroupNorm (CPU, f32 compute).
//
//   Tensor layer_norm(x, weight, bias, eps = 1e-5)
//       torch.nn.functional.layer_norm over the LAST dim: y = (x − mean) / √(var + eps) · w + b,
//       var biased (÷ n). x any strides, f32/f16/bf16; weight and bias [n] or undefined (no
//       affine); result contiguous f32.
//   Tensor group_norm(x, groups, weight, bias, eps = 1e-5, fuse_silu = false)
//       torch.nn.functional.group_norm on x [N, C, *spatial] (NCHW): each of the `groups` groups of
//       C / groups consecutive channels is normalised over (its channels × spatial) with the
//       biased variance, then y · w[c] + b[c]; with fuse_silu, SiLU(y) in the same pass (the SD VAE
//       runs GroupNorm → SiLU in every ResNet block). Non-contiguous x is copied once; f16/bf16
//       groups are converted on the fly into a per-thread buffer.
//   void group_norm_inplace(x, groups, weight, bias, eps, fuse_silu)
//       the same overwriting a contiguous f32 x (no second full-size tensor).
//   GroupNormMap group_norm_map(x, groups, weight, bias, eps, fuse_silu)
//       only the statistics, as one affine map per (image, channel), for a consumer that
//       normalises while it reads (a convolution's input, ops::ConvFusion::input_norm).
//   void layer_norm_row(x, n, w, b, eps, out)   one row, raw pointers (kernel tests' reference)
//
// Statistics are two-pass (mean, then Σ(x − mean)²) with block sums in double and the mean kept
// as float hi + lo (ops/elementwise.hpp, SplitMean), so rows with a large offset keep full
// precision (torch's f32 kernels lose ~1e-2 on 1000 ± 0.01; the fixture for that case is torch in f64).
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/elementwise.hpp"

namespace genscope::ops {

// One LayerNorm row: out = (x − mean) · rstd · w + b; w and b may be null (1 and 0).
inline void layer_norm_row(const float* x, int64_t n, const float* w, const float* b, float eps, float* out) {
  const SplitMean mean(sum_blocked(x, n) / static_cast<double>(n));
  const double var = sum_squared_deviation(x, n, mean) / static_cast<double>(n);
  const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
  if (w && b)
    for (int64_t i = 0; i < n; ++i) out[i] = mean.deviation(x[i]) * rstd * w[i] + b[i];
  else if (w)
    for (int64_t i = 0; i < n; ++i) out[i] = mean.deviation(x[i]) * rstd * w[i];
  else if (b)
    for (int64_t i = 0; i < n; ++i) out[i] = mean.deviation(x[i]) * rstd + b[i];
  else
    for (int64_t i = 0; i < n; ++i) out[i] = mean.deviation(x[i]) * rstd;
}

// An optional affine parameter as contiguous f32 of `n` elements (undefined stays undefined).
inline Tensor affine_param(const Tensor& p, int64_t n, const char* op, const char* what) {
  if (!p.defined()) return p;
  require_float(p, op, what);
  if (p.dim() != 1 || p.size(0) != n) fail<ShapeError>(op, ": ", what, " is ", p.str(), "; expected [", n, "]");
  return p.dtype() == DType::F32 ? p.contiguous() : p.to(DType::F32);
}

inline Tensor layer_norm(const Tensor& x, const Tensor& weight = {}, const Tensor& bias = {}, float eps = 1e-5f) {
  require_float(x, "layer_norm", "x");
  if (x.dim() == 0) fail<ShapeError>("layer_norm: x is a 0-dim tensor; it normalises the last dim");
  const int64_t n = x.size(-1);
  const Tensor w = affine_param(weight, n, "layer_norm", "weight"), b = affine_param(bias, n, "layer_norm", "bias");
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  if (out.numel() == 0) return out;
  const int64_t rows = out.numel() / n, stride = x.stride(-1);
  const float* pw = w.defined() ? w.data<float>() : nullptr;
  const float* pb = b.defined() ? b.data<float>() : nullptr;
  float* o = out.data<float>();
  parallel_for(0, rows, std::max<int64_t>(1, 4096 / n), [&](int64_t r0, int64_t r1) {
    std::vector<float> buf;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = to_float_row(x, outer_offset(x.shape(), x.strides(), x.dim() - 1, r), n, stride, buf);
      layer_norm_row(row, n, pw, pb, eps, o + r * n);
    }
  });
  return out;
}

// The affine map GroupNorm applies to one channel once its group's statistics are known:
// y = ((x − mean.hi) − mean.lo) · rstd · w + b — the exact expression of group_norm below, so a
// consumer that applies it on the fly (a convolution reading its input through the norm,
// ops::ConvFusion::input_norm) sees the same floats group_norm would have written.
struct ChannelAffine {
  float hi = 0, lo = 0, rstd = 1, w = 1, b = 0;
  float operator()(float x) const { return ((x - hi) - lo) * rstd * w + b; }

  // y[i] = map(x[i]), then SiLU when `silu` (vectorised exp_f32 while the value is in a
  // register); y may be x.
  void apply(const float* x, float* y, int64_t count, bool silu) const {
    if (silu)
      for (int64_t i = 0; i < count; ++i) {
        const float v = (*this)(x[i]);
        y[i] = v / (1.0f + exp_f32(-v));
      }
    else
      for (int64_t i = 0; i < count; ++i) y[i] = (*this)(x[i]);
  }
};

// GroupNorm(+SiLU) of x [N, C, *spatial] as per-(image, channel) maps: the statistics computed,
// nothing written. What a fused consumer needs instead of the normalised tensor.
struct GroupNormMap {
  std::vector<ChannelAffine> channel;  // [N · C]
  int64_t channels = 0;
  bool silu = false;

  const ChannelAffine& at(int64_t n, int64_t c) const { return channel[static_cast<size_t>(n * channels + c)]; }

  // Channel (n, c)'s map (then SiLU) on v[0, count), in place.
  void apply(int64_t n, int64_t c, float* v, int64_t count) const { at(n, c).apply(v, v, count, silu); }
};

namespace detail {

// Mean and 1/√(var + eps) of one group's n contiguous values (two-pass, see the header).
inline std::pair<SplitMean, float> group_statistics(const float* src, int64_t n, float eps) {
  const SplitMean mean(sum_blocked(src, n) / static_cast<double>(n));
  const double var = sum_squared_deviation(src, n, mean) / static_cast<double>(n);
  return {mean, static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)))};
}

// GroupNorm of contiguous x into o (o may be x's own f32 data: each element is read before it is
// written, and the statistics of a group are complete before its first write). With `map`, only
// the per-channel maps are computed, into it, and o is not used.
inline void group_norm_impl(const Tensor& xc, float* o, int64_t groups, const Tensor& w, const Tensor& b, float eps,
                            bool fuse_silu, GroupNormMap* map = nullptr) {
  const int64_t batch = xc.size(0), channels = xc.size(1);
  const int64_t spatial = channels ? xc.numel() / (batch * channels) : 0;
  const int64_t per_group = channels / groups, block = per_group * spatial;
  const float* pw = w.defined() ? w.data<float>() : nullptr;
  const float* pb = b.defined() ? b.data<float>() : nullptr;
  parallel_for(0, batch * groups, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> buf;
    for (int64_t t = t0; t < t1; ++t) {
      // Group t covers channels [g·per_group, (g+1)·per_group) of sample t / groups: one
      // contiguous block of per_group × spatial elements.
      const float* src = to_float_row(xc, t * block, block, 1, buf);
      const auto [mean, rstd] = group_statistics(src, block, eps);
      const int64_t c0 = (t % groups) * per_group;
      for (int64_t c = 0; c < per_group; ++c) {
        const ChannelAffine a{mean.hi, mean.lo, rstd, pw ? pw[c0 + c] : 1.0f, pb ? pb[c0 + c] : 0.0f};
        if (map) {
          map->channel[static_cast<size_t>(t * per_group + c)] = a;
          continue;
        }
        a.apply(src + c * spatial, o + t * block + c * spatial, spatial, fuse_silu);  // normalise (+SiLU) in one pass
      }
    }
  });
}

// Checks x and groups; the weight and bias as f32 [C] (affine_param).
struct GroupNormAffine {
  Tensor weight, bias;
};
inline GroupNormAffine check_group_norm_args(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias) {
  require_float(x, "group_norm", "x");
  if (x.dim() < 2) fail<ShapeError>("group_norm: x is ", x.str(), "; expected [N, C, *spatial]");
  const int64_t channels = x.size(1);
  if (groups <= 0 || channels % groups != 0)
    fail<ShapeError>("group_norm: ", channels, " channels of x ", x.str(), " do not split into ", groups, " groups");
  return {affine_param(weight, channels, "group_norm", "weight"), affine_param(bias, channels, "group_norm", "bias")};
}

}  // namespace detail

inline Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight = {}, const Tensor& bias = {},
                         float eps = 1e-5f, bool fuse_silu = false) {
  const auto [w, b] = detail::check_group_norm_args(x, groups, weight, bias);
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  if (out.numel() == 0) return out;
  detail::group_norm_impl(x.contiguous(), out.data<float>(), groups, w, b, eps, fuse_silu);
  return out;
}

// group_norm overwriting x, which must be contiguous f32: for activations nothing reads again
// (the SD VAE's GroupNorm → SiLU before each conv), no second full-size tensor. Same arithmetic,
// so the same result bit for bit.
inline void group_norm_inplace(Tensor& x, int64_t groups, const Tensor& weight = {}, const Tensor& bias = {},
                               float eps = 1e-5f, bool fuse_silu = false) {
  const auto [w, b] = detail::check_group_norm_args(x, groups, weight, bias);
  if (x.dtype() != DType::F32 || !x.is_contiguous())
    fail<ShapeError>("group_norm_inplace: x is ", x.str(), "; expected contiguous f32");
  if (x.numel() == 0) return;
  detail::group_norm_impl(x, x.data<float>(), groups, w, b, eps, fuse_silu);
}

// The statistics of group_norm(x, ...) as per-channel maps (GroupNormMap), without writing the
// normalised tensor: for consumers that normalise while they read (ops::ConvFusion::input_norm).
inline GroupNormMap group_norm_map(const Tensor& x, int64_t groups, const Tensor& weight = {}, const Tensor& bias = {},
                                   float eps = 1e-5f, bool fuse_silu = false) {
  const auto [w, b] = detail::check_group_norm_args(x, groups, weight, bias);
  GroupNormMap map;
  map.channels = x.size(1);
  map.silu = fuse_silu;
  map.channel.resize(static_cast<size_t>(x.size(0) * map.channels));
  if (x.numel() == 0) return map;
  detail::group_norm_impl(x.contiguous(), nullptr, groups, w, b, eps, fuse_silu, &map);
  return map;
}

}  // namespace genscope::ops
