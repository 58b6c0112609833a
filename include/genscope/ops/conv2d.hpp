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
//
// 3×3 stride-1 convolutions with at least kWinogradMinChannels input and output channels (the
// SD VAE's, 128–512 channels) run as Winograd F(2×2, 3×3) instead (Lavin & Gray, "Fast Algorithms
// for Convolutional Neural Networks", CVPR 2016): 16 GEMMs [O, C]·[C, tiles] replace the
// 9-tap implicit GEMM, 2.25× fewer multiply-adds; the transforms use only 0, ±1 and ½, so the
// result stays within a few f32 ulps of the direct sum. It runs in bands of tile rows so the
// transformed input and output (4× the band) stay ≈ 32 MB whatever the image size.
//
// conv2d_into adds what the SD VAE needs around a conv without extra full-size tensors:
//   * ConvFusion::upsample = 2: the input is x upsampled 2× by nearest neighbour
//     (F.interpolate(x, scale_factor=2, mode="nearest"), diffusers' Upsample2D), read through the
//     packers' addressing (source row iy/2, column ix/2), so the 4× larger tensor never exists;
//   * ConvFusion::residual: a tensor of the output's shape added after the activation (the
//     ResNet block's shortcut), which may be `out` itself (accumulate in place);
//   * ConvFusion::input_norm: the input is read as GroupNorm(+SiLU) of x, the norm's per-channel
//     maps (ops::group_norm_map) applied as each value is read into the Winograd input transform,
//     so a ResNet block keeps x for its shortcut without a normalised copy beside it (134 MB for
//     SD's 128-channel layers at 512²). Zero padding stays zero: torch pads the normalised tensor.
//     The other paths normalise a copy of x first (same result, one more tensor).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/gemm.hpp"
#include "genscope/ops/norm.hpp"

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
  const float* x;  // first channel of the group, [C/G, H/up, W/up]
  int64_t H, W, Wo, kh, kw, sh, sw, pt, pl, dh, dw;  // H, W: the (virtually upsampled) input's size
  int64_t up = 1;  // nearest-neighbour factor: x(iy, ix) is the source's (iy/up, ix/up)

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
    const int64_t src_w = W / up, src_plane = (H / up) * src_w;
    for (int64_t k = 0; k < kc; ++k) {
      const float* plane = x + c * src_plane;
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
        if (up != 1) {  // upsampled input: column x0 + u·sw is source column (x0 + u·sw) / up
          const float* row = plane + (iy / up) * src_w;
          std::fill(out, out + lo, 0.0f);
          for (int64_t u = lo; u < hi; ++u) out[u] = row[(x0 + u * sw) / up];
          std::fill(out + hi, out + run.len, 0.0f);
          continue;
        }
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

// What conv2d_into fuses around the convolution (see the header comment).
struct ConvFusion {
  int64_t upsample = 1;             // nearest-neighbour upsampling factor of x before the conv
  const Tensor* residual = nullptr;  // f32, contiguous, the output's shape; added after act; may be `out`
  const GroupNormMap* input_norm = nullptr;  // maps of x's N·C channels: the conv sees their image of x
};

// Winograd F(2×2, 3×3) on at least this many input and output channels; below, the transforms
// cost more than the 2.25× fewer products save (conv_in's 3 or 4 channels, conv_out's 3 or 8).
inline constexpr int64_t kWinogradMinChannels = 32;

// Whether eligible 3×3 convolutions use Winograd: on unless GENSCOPE_CONV_WINOGRAD=0 (read once;
// benches and tests flip the returned flag to compare both paths).
inline bool& conv_winograd_enabled() {
  static bool on = [] {
    const char* e = std::getenv("GENSCOPE_CONV_WINOGRAD");
    return !(e && e[0] == '0');
  }();
  return on;
}

namespace conv_detail {

// Winograd F(2×2, 3×3), Lavin & Gray 2016, with their matrices
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//   Aᵀ = [1 1 1 0; 0 1 −1 −1]:
// a 2×2 output tile is Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ)] A for its 4×4 input window d. Summed over
// channels, element ξ of the 4×4 products is one GEMM M_ξ[O, T] = U_ξ[O, C] · V_ξ[C, T] over the
// T tiles of a band; the 16 GEMMs run as one ops::gemm_batched.
//
// U = G g Gᵀ for every (o, c): U[ξ][o][c], ξ = 4·row + column.
template <class TW>
void winograd_weights(const TW* w, int64_t O, int64_t C, float* U) {
  parallel_for(0, O, 1, [&](int64_t o0, int64_t o1) {
    std::vector<float> g(static_cast<size_t>(9 * C));  // w[o] as [tap][c], so the c loops vectorise
    for (int64_t o = o0; o < o1; ++o) {
      const TW* wo = w + o * C * 9;
      for (int64_t c = 0; c < C; ++c)
        for (int k = 0; k < 9; ++k) g[static_cast<size_t>(k * C + c)] = gemm_detail::to_f32(wo[c * 9 + k]);
      const float* gr[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) gr[i][j] = g.data() + (3 * i + j) * C;
      for (int r = 0; r < 4; ++r) {
        float* u[4];
        for (int s = 0; s < 4; ++s) u[s] = U + ((4 * r + s) * O + o) * C;
        for (int64_t c = 0; c < C; ++c) {
          float t[3];  // row r of G g
          for (int j = 0; j < 3; ++j)
            t[j] = r == 0 ? gr[0][j][c]
                 : r == 1 ? 0.5f * (gr[0][j][c] + gr[1][j][c] + gr[2][j][c])
                 : r == 2 ? 0.5f * (gr[0][j][c] - gr[1][j][c] + gr[2][j][c])
                          : gr[2][j][c];
          u[0][c] = t[0];  // (G g) Gᵀ
          u[1][c] = 0.5f * (t[0] + t[1] + t[2]);
          u[2][c] = 0.5f * (t[0] - t[1] + t[2]);
          u[3][c] = t[2];
        }
      }
    }
  });
}

// One image: x [C, Hs, Ws] (virtually upsampled by `up` to H×W), y [O, Ho, Wo]; bias, act and
// residual (which may be y) applied in the output transform, where each y element is written once.
// `norm` (or null): the input is norm's image of x, channel c through norm.apply(n, c, ·).
inline void winograd_image(const float* x, int64_t C, int64_t Hs, int64_t Ws, int64_t up, const float* U, int64_t O,
                           int64_t pt, int64_t pl, int64_t Ho, int64_t Wo, const float* bias, Activation act,
                           const float* residual, float* y, const GroupNormMap* norm = nullptr, int64_t n = 0) {
  const int64_t H = Hs * up, W = Ws * up;
  const int64_t th = (Ho + 1) / 2, tw = (Wo + 1) / 2;
  // Tile rows per band: V and M (16·(C + O)·T floats) near 32 MB, but at least 1024 tiles (each
  // GEMM packs its U_ξ panel once per task, so narrow bands pay for it again and again; ≤ 64 MB at
  // 512 + 512 channels) and at least one tile row.
  const int64_t band = std::max<int64_t>(1, std::max<int64_t>(1024, (int64_t{8} << 20) / (16 * (C + O))) / tw);
  const int64_t tmax = std::min(band, th) * tw;
  // Uninitialised; every element is written before it is read. Tensors rather than new[]: large
  // blocks are mappings of their own, returned to the OS when freed (core/tensor.hpp, Storage).
  Tensor V = Tensor::empty({16 * C * tmax}, DType::F32), M = Tensor::empty({16 * O * tmax}, DType::F32);
  const int64_t hw = tw + 1;  // an input row as its even and odd columns, tw + 1 each (4-wide windows at stride 2)
  for (int64_t ty0 = 0; ty0 < th; ty0 += band) {
    const int64_t ty1 = std::min(th, ty0 + band), T = (ty1 - ty0) * tw;
    float* v = V.data<float>();
    parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
      // rows[k]: input row k of the window, even columns then odd (window column 2·tx + j is
      // even[tx + j/2] or odd[tx + j/2]), zero outside the image; t = Bᵀ·rows on the same layout.
      std::vector<float> rows(static_cast<size_t>(8 * hw)), t(static_cast<size_t>(8 * hw));
      for (int64_t c = c0; c < c1; ++c) {
        const float* plane = x + c * Hs * Ws;
        for (int64_t ty = ty0; ty < ty1; ++ty) {
          for (int k = 0; k < 4; ++k) {
            float* ev = rows.data() + 2 * k * hw;
            float* od = ev + hw;
            const int64_t iy = 2 * ty - pt + k;
            if (iy < 0 || iy >= H) {
              std::fill(ev, ev + 2 * hw, 0.0f);
              continue;
            }
            const float* src = plane + (iy / up) * Ws;
            for (int par = 0; par < 2; ++par) {  // column 2·m + par − pl for m in [0, hw)
              float* dst = par ? od : ev;
              const int64_t first = par - pl;       // input column at m = 0
              const int64_t lo = first >= 0 ? 0 : (-first + 1) / 2;  // first m inside
              const int64_t hi = std::clamp<int64_t>(first < W ? (W - 1 - first) / 2 + 1 : 0, lo, hw);
              std::fill(dst, dst + lo, 0.0f);
              if (up == 1)
                for (int64_t m = lo; m < hi; ++m) dst[m] = src[first + 2 * m];
              else if (up == 2)  // (first + 2m) / 2: consecutive source columns
                for (int64_t m = lo; m < hi; ++m) dst[m] = src[(first + 2 * m) >> 1];
              else
                for (int64_t m = lo; m < hi; ++m) dst[m] = src[(first + 2 * m) / up];
              if (norm) norm->apply(n, c, dst + lo, hi - lo);  // padding (outside [lo, hi)) stays 0
              std::fill(dst + hi, dst + hw, 0.0f);
            }
          }
          const float *d0 = rows.data(), *d1 = d0 + 2 * hw, *d2 = d1 + 2 * hw, *d3 = d2 + 2 * hw;
          float *t0 = t.data(), *t1 = t0 + 2 * hw, *t2 = t1 + 2 * hw, *t3 = t2 + 2 * hw;
          for (int64_t j = 0; j < 2 * hw; ++j) {  // Bᵀ d, rows
            t0[j] = d0[j] - d2[j];
            t1[j] = d1[j] + d2[j];
            t2[j] = d2[j] - d1[j];
            t3[j] = d1[j] - d3[j];
          }
          float* out = v + c * T + (ty - ty0) * tw;
          const int64_t xs = C * T;  // stride between the 16 matrices
          for (int r = 0; r < 4; ++r) {  // (Bᵀ d) B, columns: window columns e0..e3 = ev[tx], od[tx], ev[tx+1], od[tx+1]
            const float* ev = t.data() + 2 * r * hw;
            const float* od = ev + hw;
            float* o0 = out + (4 * r) * xs;
            float* o1 = o0 + xs;
            float* o2 = o1 + xs;
            float* o3 = o2 + xs;
            for (int64_t tx = 0; tx < tw; ++tx) {
              o0[tx] = ev[tx] - ev[tx + 1];
              o1[tx] = od[tx] + ev[tx + 1];
              o2[tx] = ev[tx + 1] - od[tx];
              o3[tx] = od[tx] - od[tx + 1];
            }
          }
        }
      }
    });
    float* m = M.data<float>();
    gemm_batched(Trans::No, Trans::No, 16, O, T, C, 1.0f, U, C, O * C, v, T, C * T, 0.0f, m, T, O * T);
    parallel_for(0, O, 1, [&](int64_t o0, int64_t o1) {
      std::vector<float> row(static_cast<size_t>(4 * tw));  // two output rows, even and odd columns
      for (int64_t o = o0; o < o1; ++o) {
        const float b = bias ? bias[o] : 0.0f;
        const int64_t xs = O * T;
        for (int64_t ty = ty0; ty < ty1; ++ty) {
          const float* e = m + o * T + (ty - ty0) * tw;  // element ξ of tile tx: e[ξ·xs + tx]
          float *y00 = row.data(), *y01 = y00 + tw, *y10 = y01 + tw, *y11 = y10 + tw;
          for (int64_t tx = 0; tx < tw; ++tx) {  // Aᵀ e A, vectorised across the tile row
            float s0[4], s1[4];
            for (int j = 0; j < 4; ++j) {
              s0[j] = e[j * xs + tx] + e[(4 + j) * xs + tx] + e[(8 + j) * xs + tx];
              s1[j] = e[(4 + j) * xs + tx] - e[(8 + j) * xs + tx] - e[(12 + j) * xs + tx];
            }
            y00[tx] = s0[0] + s0[1] + s0[2] + b;
            y01[tx] = s0[1] - s0[2] - s0[3] + b;
            y10[tx] = s1[0] + s1[1] + s1[2] + b;
            y11[tx] = s1[1] - s1[2] - s1[3] + b;
          }
          if (act == Activation::Silu)
            for (int64_t i = 0; i < 4 * tw; ++i) row[i] = row[i] / (1.0f + exp_f32(-row[i]));
          else if (act != Activation::None)
            for (int64_t i = 0; i < 4 * tw; ++i) row[i] = apply_activation(act, row[i]);
          for (int r = 0; r < 2; ++r) {
            const int64_t oy = 2 * ty + r;
            if (oy >= Ho) break;
            const float* ev = row.data() + 2 * r * tw;
            const float* od = ev + tw;
            float* yr = y + (o * Ho + oy) * Wo;
            const float* rr = residual ? residual + (o * Ho + oy) * Wo : nullptr;
            const int64_t full = Wo / 2;  // tiles with both columns inside
            if (rr)
              for (int64_t tx = 0; tx < full; ++tx) {
                yr[2 * tx] = ev[tx] + rr[2 * tx];
                yr[2 * tx + 1] = od[tx] + rr[2 * tx + 1];
              }
            else
              for (int64_t tx = 0; tx < full; ++tx) {
                yr[2 * tx] = ev[tx];
                yr[2 * tx + 1] = od[tx];
              }
            if (Wo % 2) yr[Wo - 1] = ev[full] + (rr ? rr[Wo - 1] : 0.0f);
          }
        }
      }
    });
  }
}

}  // namespace conv_detail

// Output shape of conv2d on x (upsampled by `upsample`) with weight w.
inline Shape conv2d_output_shape(const Tensor& x, const Tensor& w, const Conv2dParams& p, int64_t upsample = 1) {
  if (x.dim() != 4) fail<ShapeError>("conv2d: input is ", x.str(), "; expected [N, C, H, W]");
  if (w.dim() != 4) fail<ShapeError>("conv2d: weight is ", w.str(), "; expected [O, C/groups, kh, kw]");
  if (p.stride_h < 1 || p.stride_w < 1 || p.dilation_h < 1 || p.dilation_w < 1 || p.groups < 1 || upsample < 1)
    fail<UsageError>("conv2d: stride (", p.stride_h, ", ", p.stride_w, "), dilation (", p.dilation_h, ", ",
                     p.dilation_w, "), groups ", p.groups, " and upsampling ", upsample, " must be positive");
  if (p.pad_top < 0 || p.pad_bottom < 0 || p.pad_left < 0 || p.pad_right < 0)
    fail<UsageError>("conv2d: negative padding (", p.pad_top, ", ", p.pad_bottom, ", ", p.pad_left, ", ", p.pad_right, ")");
  const int64_t H = x.size(2) * upsample, W = x.size(3) * upsample, kh = w.size(2), kw = w.size(3);
  const int64_t Hp = H + p.pad_top + p.pad_bottom - p.dilation_h * (kh - 1) - 1;
  const int64_t Wp = W + p.pad_left + p.pad_right - p.dilation_w * (kw - 1) - 1;
  if (Hp < 0 || Wp < 0 || kh < 1 || kw < 1)
    fail<ShapeError>("conv2d: kernel ", w.str(), " with dilation (", p.dilation_h, ", ", p.dilation_w,
                     ") does not fit input ", x.str(), " padded (", p.pad_top, ", ", p.pad_bottom, ", ", p.pad_left, ", ", p.pad_right, ")");
  return Shape{x.size(0), w.size(0), Hp / p.stride_h + 1, Wp / p.stride_w + 1};
}

// out = act(conv2d(upsample(x), w) + bias) + residual, into a caller's contiguous f32 `out` of
// conv2d_output_shape. x [N, C, H, W] f32 (any strides; copied to contiguous if not); w
// [O, C/groups, kh, kw] f32, f16 or bf16 (converted while packed); bias [O] or null. A residual
// that is `out` itself needs act None on the implicit-GEMM path (it accumulates onto out, beta = 1).
inline void conv2d_into(Tensor& out, const Tensor& x_in, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                        const ConvFusion& f = {}) {
  using namespace gemm_detail;
  const Shape oshape = conv2d_output_shape(x_in, w, p, f.upsample);
  if (x_in.dtype() != DType::F32) fail<ShapeError>("conv2d: input is ", x_in.str(), "; expected f32");
  if (x_in.device() != Device::CPU) fail<DeviceError>("conv2d: input is ", x_in.str(), "; this op runs on the CPU");
  const int64_t N = x_in.size(0), C = x_in.size(1), Hs = x_in.size(2), Ws = x_in.size(3), up = f.upsample;
  const int64_t H = Hs * up, W = Ws * up;
  const int64_t O = w.size(0), Cg = w.size(1), kh = w.size(2), kw = w.size(3), G = p.groups;
  if (C % G != 0 || O % G != 0)
    fail<ShapeError>("conv2d: groups=", G, " does not divide the input channels of ", x_in.str(), " and the output channels of ", w.str());
  if (Cg != C / G) fail<ShapeError>("conv2d: weight ", w.str(), " expects ", Cg * G, " input channels, input is ", x_in.str());
  if (!out.defined() || !(out.shape() == oshape) || out.dtype() != DType::F32 || !out.is_contiguous() || out.device() != Device::CPU)
    fail<ShapeError>("conv2d_into: out is ", out.defined() ? out.str() : std::string("undefined"), "; expected contiguous f32", oshape);
  const bool in_place = f.residual && f.residual->defined() && f.residual->data_ptr() == out.data_ptr();
  if (f.residual && (!(f.residual->shape() == oshape) || f.residual->dtype() != DType::F32 || !f.residual->is_contiguous()))
    fail<ShapeError>("conv2d: residual ", f.residual->str(), " is not a contiguous f32", oshape);
  const Tensor x = x_in.contiguous();
  const int64_t Ho = oshape[2], Wo = oshape[3];
  Tensor b32;
  GemmEpilogue ep;
  ep.act = p.act;
  if (bias) {
    b32 = as_f32_vector(*bias, O, "conv2d: bias");
    ep.row_bias = b32.data<float>();
  }
  if (out.numel() == 0) return;
  const Tensor wc = w.contiguous();
  const int64_t Og = O / G, K = Cg * kh * kw, P = Ho * Wo;
  const float* xp = x.data<float>();
  float* yp = out.data<float>();
  const float* rp = f.residual ? f.residual->data<float>() : nullptr;
  const bool winograd = conv_winograd_enabled() && kh == 3 && kw == 3 && p.stride_h == 1 && p.stride_w == 1 &&
                        p.dilation_h == 1 && p.dilation_w == 1 && G == 1 && C >= kWinogradMinChannels &&
                        O >= kWinogradMinChannels;
  if (in_place && p.act != Activation::None && !winograd)
    fail<UsageError>("conv2d: accumulating onto out (residual == out) needs activation None");
  if (f.input_norm) {
    const GroupNormMap& norm = *f.input_norm;
    if (norm.channels != C || static_cast<int64_t>(norm.channel.size()) != N * C)
      fail<ShapeError>("conv2d: input_norm has maps for ", norm.channel.size(), " channels; input is ", x.str());
    if (!winograd) {  // normalise a copy, then the plain convolution
      Tensor xn = x.clone();
      float* v = xn.data<float>();
      parallel_for(0, N * C, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) norm.apply(i / C, i % C, v + i * Hs * Ws, Hs * Ws);
      });
      ConvFusion g = f;
      g.input_norm = nullptr;
      conv2d_into(out, xn, w, bias, p, g);
      return;
    }
  }
  if (winograd) {
    Tensor Ut = Tensor::empty({16 * O * C}, DType::F32);
    float* U = Ut.data<float>();
    visit_float_tensor(wc, "conv2d: weight", [&](auto* wp) { conv_detail::winograd_weights(wp, O, C, U); });
    for (int64_t n = 0; n < N; ++n)
      conv_detail::winograd_image(xp + n * C * Hs * Ws, C, Hs, Ws, up, U, O, p.pad_top, p.pad_left, Ho, Wo,
                                  ep.row_bias, p.act, rp ? rp + n * O * P : nullptr, yp + n * O * P, f.input_norm, n);
    return;
  }
  const bool pointwise = up == 1 && kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 &&
                         p.pad_bottom == 0 && p.pad_left == 0 && p.pad_right == 0;
  visit_float_tensor(wc, "conv2d: weight", [&](auto* wp) {
    using TW = std::remove_const_t<std::remove_pointer_t<decltype(wp)>>;
    using Kernel = DefaultKernel;
    // Every (image, group) is one GEMM problem; all share one parallel region.
    run_parallel<Kernel>(N * G, Og, P, K, [&](int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
      const int64_t n = b / G, g = b % G;
      const Strided<TW> A{wp + g * Og * K, K, 1};
      const float* xg = xp + (n * C + g * Cg) * Hs * Ws;
      float* yg = yp + (n * O + g * Og) * P;
      GemmEpilogue epg = ep;
      if (epg.row_bias) epg.row_bias += g * Og;
      if (rp && !in_place) {
        epg.residual = rp + (n * O + g * Og) * P;
        epg.ld_residual = P;
      }
      const float beta = in_place ? 1.0f : 0.0f;  // out already holds the residual: accumulate onto it
      auto pack_a_panel = [&](int64_t i, int64_t m, int64_t k0, int64_t kc, float* dst) {
        pack_a<Kernel::MR>(A, i, m, k0, kc, dst);
      };
      if (pointwise) {
        const Strided<float> B{xg, H * W, 1};
        run_task<Kernel>(i0, i1, j0, j1, K, 1.0f, pack_a_panel,
                         [&](int64_t k0, int64_t kc, int64_t j, int64_t nn, float* dst) { pack_b_block<Kernel::NR>(B, k0, kc, j, nn, dst); },
                         beta, yg, P, epg);
      } else {
        const conv_detail::Im2col cols{xg, H, W, Wo, kh, kw, p.stride_h, p.stride_w, p.pad_top, p.pad_left, p.dilation_h, p.dilation_w, up};
        run_task<Kernel>(i0, i1, j0, j1, K, 1.0f, pack_a_panel,
                         [&](int64_t k0, int64_t kc, int64_t j, int64_t nn, float* dst) { cols.pack<Kernel::NR>(k0, kc, j, nn, dst); },
                         beta, yg, P, epg);
      }
    });
  });
}

// y = act(conv2d(x, w) + bias), a new tensor; see conv2d_into for the arguments.
inline Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const ConvFusion& f = {}) {
  Tensor out = Tensor::empty(conv2d_output_shape(x, w, p, f.upsample), DType::F32);
  conv2d_into(out, x, w, bias, p, f);
  return out;
}

}  // namespace genscope::ops
