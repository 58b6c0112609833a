// genscope/ops/conv2d.hpp — 2-D convolution (cross-correlation, as torch.nn.functional.conv2d),
// NCHW, as an implicit GEMM on the GEMM's packed panels.
//
//   y[n, o, p, q] = act(bias[o] + Σ_{c, i, j} w[o, c, i, j] · x[n, g·C/G + c, p·sh − pt + i·dh, q·sw − pl + j·dw])
//
// with x zero outside the image; o in group g = o / (O/G); c over C/G channels; w [O, C/G, kh, kw].
// Output size: Ho = ⌊(H + pt + pb − dh·(kh − 1) − 1) / sh⌋ + 1, likewise Wo.
//
// Per image and group this is one GEMM (Chellapilla et al., "High Performance Convolutional
// Neural Networks for Document Processing", 2006):
//   C[O/G, Ho·Wo] = W[O/G, C/G·kh·kw] · X̂[C/G·kh·kw, Ho·Wo],
// whose output is the NCHW result in place. X̂ (im2col) is never built: the GEMM's B packer fills
// each task's KC×NC block (≤ 768 KB) straight from x, one run of output columns at a time (a run
// shares its output row, so for stride 1 it is a contiguous copy with zeros at the borders). 1×1 stride-1 unpadded
// convolutions are plain GEMMs on x. The bias is the GEMM epilogue's per-row bias, the activation
// its activation, both applied on the hot C tile.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/gemm.hpp"

namespace genscope::ops {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  // Zero padding per side; PyTorch's padding=p is all four = p. The SD VAE encoder pads
  // (left 0, right 1, top 0, bottom 1) before its stride-2 convolutions.
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  Activation act = Activation::None;  // applied after the bias

  // Symmetric helpers: conv2d(x, w, &b, Conv2dParams::make(stride, padding)).
  static Conv2dParams make(int64_t stride, int64_t padding, int64_t dilation = 1, int64_t groups = 1) {
    Conv2dParams p;
    p.stride_h = p.stride_w = stride;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = padding;
    p.dilation_h = p.dilation_w = dilation;
    p.groups = groups;
    return p;
  }
};

namespace conv_detail {

// The implicit im2col matrix X̂ of one image and group: row k = (c, i, j) (w's layout), column
// p = output pixel (oy·Wo + ox). Its pack() is the GEMM's B packer.
struct Im2col {
  const float* x;  // first channel of the group, [C/G, H, W]
  int64_t H, W, Wo, kh, kw, sh, sw, pt, pl, dh, dw;

  // The GEMM's B block: rows [k0, k0+kc) × columns [j0, j0+n) as ceil(n/NR) micro-panels of
  // kc×NR (dst[p·kc·NR + k·NR + t]), columns past n zeroed. The columns are cut into runs that
  // stay within one output row and one micro-panel; then row k = (c, i, j) is filled run by run,
  // k outer, so consecutive runs read consecutive parts of one input row.
  template <int NR>
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) const {
    struct Run {
      int64_t t, oy, ox, len;  // first column (within the block), output row, first output x, length
    };
    std::vector<Run> runs;
    runs.reserve(static_cast<size_t>((n + NR - 1) / NR + n / std::max<int64_t>(Wo, 1) + 2));
    for (int64_t t = 0; t < n;) {
      const int64_t p = j0 + t, oy = p / Wo, ox = p % Wo;
      const int64_t len = std::min({n - t, Wo - ox, NR - t % NR});
      runs.push_back({t, oy, ox, len});
      t += len;
    }
    const int64_t panels = (n + NR - 1) / NR, tail = panels * NR - n;
    const int64_t taps = kh * kw;
    int64_t c = k0 / taps, i = (k0 % taps) / kw, j = k0 % kw;
    for (int64_t k = 0; k < kc; ++k) {
      const float* plane = x + c * H * W;
      for (const Run& run : runs) {
        float* out = dst + (run.t / NR) * kc * NR + k * NR + run.t % NR;
        const int64_t iy = run.oy * sh - pt + i * dh;
        if (iy < 0 || iy >= H) {
          std::fill(out, out + run.len, 0.0f);
          continue;
        }
        // Input column of output column ox + u is x0 + u·sw; keep the u with 0 ≤ x0 + u·sw < W.
        // (Divisions only at the borders: this runs once per k row and run.)
        const int64_t x0 = run.ox * sw - pl + j * dw;
        int64_t lo = 0, hi = run.len;
        if (x0 < 0) lo = std::min(run.len, sw == 1 ? -x0 : (-x0 + sw - 1) / sw);
        if (x0 + (run.len - 1) * sw >= W) hi = x0 >= W ? 0 : sw == 1 ? W - x0 : (W - 1 - x0) / sw + 1;
        hi = std::max(hi, lo);
        const float* row = plane + iy * W;
        if (sw == 1 && lo == 0 && hi == NR) {  // a whole interior micro-panel row: fixed-size copy
          std::memcpy(out, row + x0, NR * sizeof(float));
          continue;
        }
        std::fill(out, out + lo, 0.0f);
        if (sw == 1)
          std::copy(row + x0 + lo, row + x0 + hi, out + lo);
        else
          for (int64_t u = lo; u < hi; ++u) out[u] = row[x0 + u * sw];
        std::fill(out + hi, out + run.len, 0.0f);
      }
      if (tail) {
        float* last = dst + (panels - 1) * kc * NR + k * NR;
        std::fill(last + NR - tail, last + NR, 0.0f);
      }
      if (++j == kw) {  // next (c, i, j) in w's order
        j = 0;
        if (++i == kh) i = 0, ++c;
      }
    }
  }
};

}  // namespace conv_detail

// y = act(conv2d(x, w) + bias). x [N, C, H, W] f32 (any strides; copied to contiguous if not);
// w [O, C/groups, kh, kw] f32, f16 or bf16 (converted while packed); bias [O] or null.
inline Tensor conv2d(const Tensor& x_in, const Tensor& w, const Tensor* bias, const Conv2dParams& p) {
  using namespace gemm_detail;
  if (x_in.dim() != 4) fail<ShapeError>("conv2d: input is ", x_in.str(), "; expected [N, C, H, W]");
  if (w.dim() != 4) fail<ShapeError>("conv2d: weight is ", w.str(), "; expected [O, C/groups, kh, kw]");
  if (x_in.dtype() != DType::F32) fail<ShapeError>("conv2d: input is ", x_in.str(), "; expected f32");
  if (x_in.device() != Device::CPU) fail<DeviceError>("conv2d: input is ", x_in.str(), "; this op runs on the CPU");
  if (p.stride_h < 1 || p.stride_w < 1 || p.dilation_h < 1 || p.dilation_w < 1 || p.groups < 1)
    fail<UsageError>("conv2d: stride (", p.stride_h, ", ", p.stride_w, "), dilation (", p.dilation_h, ", ",
                     p.dilation_w, ") and groups ", p.groups, " must be positive");
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0)
    fail<UsageError>("conv2d: negative padding (", p.pad_top, ", ", p.pad_bottom, ", ", p.pad_left, ", ", p.pad_right, ")");
  const Tensor x = x_in.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), Cg = w.size(1), kh = w.size(2), kw = w.size(3), G = p.groups;
  if (C % G != 0 || O % G != 0)
    fail<ShapeError>("conv2d: groups=", G, " does not divide the input channels of ", x.str(), " and the output channels of ", w.str());
  if (Cg != C / G) fail<ShapeError>("conv2d: weight ", w.str(), " expects ", Cg * G, " input channels, input is ", x.str());
  const int64_t Hp = H + p.pad_top + p.pad_bottom - p.dilation_h * (kh - 1) - 1;
  const int64_t Wp = W + p.pad_left + p.pad_right - p.dilation_w * (kw - 1) - 1;
  if (Hp < 0 || Wp < 0 || kh < 1 || kw < 1)
    fail<ShapeError>("conv2d: kernel ", w.str(), " with dilation (", p.dilation_h, ", ", p.dilation_w,
                     ") does not fit input ", x.str(), " padded (", p.pad_top, ", ", p.pad_bottom, ", ", p.pad_left, ", ", p.pad_right, ")");
  const int64_t Ho = Hp / p.stride_h + 1, Wo = Wp / p.stride_w + 1;
  Tensor out = Tensor::empty({N, O, Ho, Wo}, DType::F32);
  Tensor b32;
  GemmEpilogue ep;
  ep.act = p.act;
  if (bias) {
    b32 = as_f32_vector(*bias, O, "conv2d: bias");
    ep.row_bias = b32.data<float>();
  }
  if (out.numel() == 0) return out;
  const Tensor wc = w.contiguous();
  const int64_t Og = O / G, K = Cg * kh * kw, P = Ho * Wo;
  const float* xp = x.data<float>();
  float* yp = out.data<float>();
  const bool pointwise = kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
                         p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0;
  visit_float_tensor(wc, "conv2d: weight", [&](auto* wp) {
    using TW = std::remove_const_t<std::remove_pointer_t<decltype(wp)>>;
    using Kernel = DefaultKernel;
    // Every (image, group) is one GEMM problem; all share one parallel region.
    run_parallel<Kernel>(N * G, Og, P, K, [&](int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      const int64_t n = b / G, g = b % G;
      const Strided<TW> A{wp + g * Og * K, K, 1};
      const float* xg = xp + (n * C + g * Cg) * H * W;
      float* yg = yp + (n * O + g * Og) * P;
      GemmEpilogue epg = ep;
      if (epg.row_bias) epg.row_bias += g * Og;
      auto pack_a_panel = [&](int64_t i, int64_t m, int64_t k0, int64_t kc, float* dst) {
        pack_a<Kernel::MR>(A, i, m, k0, kc, dst);
      };
      if (pointwise) {
        const Strided<float> B{xg, H * W, 1};
        run_task<Kernel>(i0, i1, j0, j1, K, 1.0f, pack_a_panel,
                         [&](int64_t k0, int64_t kc, int64_t j, int64_t nn, float* dst) { pack_b_block<Kernel::NR>(B, k0, kc, j, nn, dst); },
                         0.0f, yg, P, epg);
      } else {
        const conv_detail::Im2col cols{xg, H, W, Wo, kh, kw, p.stride_h, p.stride_w, p.pad_top, p.pad_left, p.dilation_h, p.dilation_w};
        run_task<Kernel>(i0, i1, j0, j1, K, 1.0f, pack_a_panel,
                         [&](int64_t k0, int64_t kc, int64_t j, int64_t nn, float* dst) { cols.pack<Kernel::NR>(k0, kc, j, nn, dst); },
                         0.0f, yg, P, epg);
      }
    });
  });
  return out;
}

}  // namespace genscope::ops
