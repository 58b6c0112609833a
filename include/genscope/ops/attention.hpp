// genscope/ops/attention.hpp — multi-head scaled-dot-product attention with online softmax.
//
//   Tensor attention(q, k, v, mask = {}, scale = 1/√d)
//       torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale):
//           out = softmax(q·kᵀ · scale + mask) · v
//       q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] → out [B, H, Tq, Dv] contiguous f32.
//       mask (optional) broadcasts to [B, H, Tq, Tk]: bool (true = may attend, as torch), or
//       f32/f16/bf16 added to the scores (−inf blocks). A query row whose every key is blocked
//       gives an output row of ZEROS — torch's SDPA does the same since 2.5 (its math path uses
//       _safe_softmax), where a plain softmax would give NaN.
//       q, k, v may be any views (e.g. heads split out of a fused qkv projection); heads whose rows
//       are not contiguous, or f16/bf16 inputs, are copied to f32 once (O(T·D)).
//   void attention_into(out, q, k, v, mask = {}, scale)
//       the same into a caller's f32 out [B, H, Tq, Dv] whose last dim is contiguous; allocates
//       only the per-thread tiles below (the bench measures this).
//   Tensor attention_reference(q, k, v, mask = {}, scale)
//       the naive definition: the full score row per query, softmax in double. For tests.
//
// The fast path is FlashAttention's (Dao et al. 2022, Algorithm 1; online softmax of Milakov &
// Gimelshein 2018) on the CPU: for a tile of kQueryTile queries, walk the keys kKeyTile at a
// time; S = scale · Q·Kᵀ (ops::gemm), then per row a running max m and sum l:
//     m' = max(m, max_j S_j),  P_j = exp(S_j − m'),  l' = l·exp(m − m') + Σ_j P_j,
//     acc' = acc·exp(m − m') + P·V_tile                                          (ops::gemm)
// and finally out = acc / l. When all keys fit one tile (Tk ≤ kKeyTile, every ViT here) the
// running max is not needed: P = softmax(S) row by row, then out = P·V by one gemm into out.
// The row max, exp and sum are ops/softmax.hpp's row_max and exp_row_sum (AVX-512, exp512).
// Working memory per thread is kQueryTile × (kKeyTile + Dv) floats (kQueryTile × kKeyTile with
// one key tile) — no Tq × Tk score matrix — so 65 536 tokens × 512 dims need the same few hundred KB as 4096.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"
#include "genscope/ops/gemm.hpp"
#include "genscope/ops/softmax.hpp"

namespace genscope::ops {

// 128 queries share each packed K/V tile (fewer re-packs in ops::gemm); 256 keys per step. The
// per-thread tiles are 128 × (256 + Dv) floats: 384 KB at Dv = 512.
constexpr int64_t kQueryTile = 128;
constexpr int64_t kKeyTile = 256;

namespace detail {

struct AttentionShape {
  int64_t batch, heads, tq, tk, d, dv;
};

inline AttentionShape check_attention_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask) {
  require_float(q, "attention", "q");
  require_float(k, "attention", "k");
  require_float(v, "attention", "v");
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4)
    fail<ShapeError>("attention: q ", q.str(), ", k ", k.str(), ", v ", v.str(), " must all be [B, heads, tokens, head_dim]");
  const AttentionShape s{q.size(0), q.size(1), q.size(2), k.size(2), q.size(3), v.size(3)};
  if (k.size(0) != s.batch || k.size(1) != s.heads || k.size(3) != s.d)
    fail<ShapeError>("attention: k ", k.str(), " does not match q ", q.str(), " in batch, heads or head_dim");
  if (v.size(0) != s.batch || v.size(1) != s.heads || v.size(2) != s.tk)
    fail<ShapeError>("attention: v ", v.str(), " does not match k ", k.str(), " in batch, heads or tokens");
  if (mask.defined()) {
    if (mask.dtype() != DType::Bool && !is_floating(mask.dtype()))
      fail<ShapeError>("attention: mask is ", mask.str(), "; expected bool (true = attend) or an additive float mask");
    if (mask.device() != Device::CPU) fail<DeviceError>("attention: mask is ", mask.str(), "; this is the CPU path");
    broadcast_to(mask, {s.batch, s.heads, s.tq, s.tk});  // throws ShapeError naming both
  }
  return s;
}

// f32 rows that ops::gemm can walk (last stride 1, row stride ≥ row length): the input itself when it already is, else a copy.
inline Tensor rows_f32(const Tensor& t) {
  if (t.dtype() == DType::F32 && (t.stride(3) == 1 || t.size(3) <= 1) && t.stride(2) >= t.size(3)) return t;
  return t.to(DType::F32);
}

// scores[j] += mask[b, h, i, j0 + j] for j < n (bool false → −inf). `mask` is the broadcast view.
inline void apply_mask_row(const Tensor& mask, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t n, float* scores) {
  const int64_t off = b * mask.stride(0) + h * mask.stride(1) + i * mask.stride(2) + j0 * mask.stride(3), s = mask.stride(3);
  if (mask.dtype() == DType::Bool) {
    const bool* m = static_cast<const bool*>(mask.data_ptr()) + off;
    for (int64_t j = 0; j < n; ++j)
      if (!m[j * s]) scores[j] = -std::numeric_limits<float>::infinity();
    return;
  }
  visit_float(mask.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* m = static_cast<const T*>(mask.data_ptr()) + off;
    for (int64_t j = 0; j < n; ++j) scores[j] += load_float(m[j * s]);
  });
}

}  // namespace detail

inline void attention_into(Tensor& out, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask_in = {},
                           std::optional<float> scale_opt = std::nullopt) {
  const detail::AttentionShape s = detail::check_attention_args(q_in, k_in, v_in, mask_in);
  if (out.dtype() != DType::F32 || !(out.shape() == Shape{s.batch, s.heads, s.tq, s.dv}) || (s.dv > 1 && out.stride(3) != 1))
    fail<ShapeError>("attention_into: out is ", out.str(), "; expected f32[", s.batch, ", ", s.heads, ", ", s.tq, ", ", s.dv,
                     "] with a contiguous last dim");
  if (out.numel() == 0) return;
  const float scale = scale_opt ? *scale_opt : static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
  const Tensor q = detail::rows_f32(q_in), k = detail::rows_f32(k_in), v = detail::rows_f32(v_in);
  const Tensor mask = mask_in.defined() ? broadcast_to(mask_in, {s.batch, s.heads, s.tq, s.tk}) : Tensor();
  const int64_t q_tiles = (s.tq + kQueryTile - 1) / kQueryTile;
  const float* pq = q.data<float>();
  const float* pk = k.data<float>();
  const float* pv = v.data<float>();
  float* po = out.data<float>();
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();

  parallel_for(0, s.batch * s.heads * q_tiles, 1, [&](int64_t t0, int64_t t1) {
    // The whole working memory of this thread: one score tile and one accumulator tile.
    std::vector<float> scores(static_cast<size_t>(kQueryTile * kKeyTile)),
        acc(static_cast<size_t>(s.tk > kKeyTile ? kQueryTile * s.dv : 0));  // one key tile: out is the accumulator
    std::vector<float> run_max(kQueryTile), run_sum(kQueryTile);  // online-softmax state per query
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t bh = t / q_tiles, i0 = (t % q_tiles) * kQueryTile, b = bh / s.heads, h = bh % s.heads;
      const int64_t bq = std::min(kQueryTile, s.tq - i0);
      const float* qt = pq + b * q.stride(0) + h * q.stride(1) + i0 * q.stride(2);
      const float* kh = pk + b * k.stride(0) + h * k.stride(1);
      const float* vh = pv + b * v.stride(0) + h * v.stride(1);
      float* ot = po + b * out.stride(0) + h * out.stride(1) + i0 * out.stride(2);
      if (s.tk <= kKeyTile) {
        // Every key fits one tile (ViT: 197 or 256 tokens): plain softmax, no running max, and
        // P·V written straight into out — no accumulator to clear, rescale and copy.
        gemm(Trans::No, Trans::Yes, bq, s.tk, s.d, scale, qt, q.stride(2), kh, k.stride(2), 0.0f, scores.data(), kKeyTile);
        for (int64_t i = 0; i < bq; ++i) {
          float* srow = scores.data() + i * kKeyTile;
          if (mask.defined()) detail::apply_mask_row(mask, b, h, i0 + i, 0, s.tk, srow);
          const float m = row_max(srow, s.tk);
          if (m == kNegInf) {  // every key blocked: a row of zeros, as torch
            std::fill(srow, srow + s.tk, 0.0f);
            continue;
          }
          const float inv = 1.0f / exp_row_sum(srow, s.tk, m);
          for (int64_t j = 0; j < s.tk; ++j) srow[j] *= inv;
        }
        gemm(Trans::No, Trans::No, bq, s.dv, s.tk, 1.0f, scores.data(), kKeyTile, vh, v.stride(2), 0.0f, ot, out.stride(2));
        continue;
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(run_max.begin(), run_max.end(), kNegInf);
      std::fill(run_sum.begin(), run_sum.end(), 0.0f);
      for (int64_t j0 = 0; j0 < s.tk; j0 += kKeyTile) {
        const int64_t bk = std::min(kKeyTile, s.tk - j0);
        // S = scale · Q_tile · K_tileᵀ   [bq, bk], leading dimension kKeyTile.
        gemm(Trans::No, Trans::Yes, bq, bk, s.d, scale, qt, q.stride(2), kh + j0 * k.stride(2), k.stride(2), 0.0f,
             scores.data(), kKeyTile);
        for (int64_t i = 0; i < bq; ++i) {
          float* srow = scores.data() + i * kKeyTile;
          if (mask.defined()) detail::apply_mask_row(mask, b, h, i0 + i, j0, bk, srow);
          const float tile_max = row_max(srow, bk);
          const float m_new = std::max(run_max[static_cast<size_t>(i)], tile_max);
          if (m_new == kNegInf) {  // every key so far is blocked: this tile adds nothing
            std::fill(srow, srow + bk, 0.0f);
            continue;
          }
          const float correction = exp_f32(run_max[static_cast<size_t>(i)] - m_new);  // exp(−inf) = 0 at the start
          run_sum[static_cast<size_t>(i)] = run_sum[static_cast<size_t>(i)] * correction + exp_row_sum(srow, bk, m_new);
          run_max[static_cast<size_t>(i)] = m_new;
          if (correction != 1.0f) {
            float* arow = acc.data() + i * s.dv;
            for (int64_t c = 0; c < s.dv; ++c) arow[c] *= correction;
          }
        }
        // acc += P · V_tile   [bq, dv]
        gemm(Trans::No, Trans::No, bq, s.dv, bk, 1.0f, scores.data(), kKeyTile, vh + j0 * v.stride(2), v.stride(2), 1.0f,
             acc.data(), s.dv);
      }
      for (int64_t i = 0; i < bq; ++i) {
        float* orow = ot + i * out.stride(2);
        const float l = run_sum[static_cast<size_t>(i)];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // a fully blocked row: zeros, as torch
        for (int64_t c = 0; c < s.dv; ++c) orow[c] = acc[static_cast<size_t>(i * s.dv + c)] * inv;
      }
    }
  });
}

inline Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask = {},
                        std::optional<float> scale = std::nullopt) {
  const detail::AttentionShape s = detail::check_attention_args(q, k, v, mask);
  Tensor out = Tensor::empty({s.batch, s.heads, s.tq, s.dv}, DType::F32);
  attention_into(out, q, k, v, mask, scale);
  return out;
}

// The definition, one query at a time: the full score row, softmax and weighted sum in double.
inline Tensor attention_reference(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& mask_in = {},
                                  std::optional<float> scale_opt = std::nullopt) {
  const detail::AttentionShape s = detail::check_attention_args(q_in, k_in, v_in, mask_in);
  const double scale = scale_opt ? *scale_opt : 1.0 / std::sqrt(static_cast<double>(s.d));
  const Tensor q = q_in.to(DType::F32), k = k_in.to(DType::F32), v = v_in.to(DType::F32);
  const Tensor mask = mask_in.defined() ? broadcast_to(mask_in, {s.batch, s.heads, s.tq, s.tk}) : Tensor();
  Tensor out = Tensor::empty({s.batch, s.heads, s.tq, s.dv}, DType::F32);
  std::vector<double> p(static_cast<size_t>(s.tk));
  std::vector<float> m(static_cast<size_t>(s.tk));
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.tq; ++i) {
        const float* qi = q.data<float>() + ((b * s.heads + h) * s.tq + i) * s.d;
        std::fill(m.begin(), m.end(), 0.0f);
        if (mask.defined()) detail::apply_mask_row(mask, b, h, i, 0, s.tk, m.data());
        double max = -INFINITY;
        for (int64_t j = 0; j < s.tk; ++j) {
          const float* kj = k.data<float>() + ((b * s.heads + h) * s.tk + j) * s.d;
          double dot = 0;
          for (int64_t c = 0; c < s.d; ++c) dot += static_cast<double>(qi[c]) * kj[c];
          p[static_cast<size_t>(j)] = dot * scale + m[static_cast<size_t>(j)];
          max = std::max(max, p[static_cast<size_t>(j)]);
        }
        double total = 0;
        for (double& x : p) total += (x = max == -INFINITY ? 0.0 : std::exp(x - max));
        float* oi = out.data<float>() + ((b * s.heads + h) * s.tq + i) * s.dv;
        for (int64_t c = 0; c < s.dv; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < s.tk; ++j) acc += p[static_cast<size_t>(j)] * v.data<float>()[((b * s.heads + h) * s.tk + j) * s.dv + c];
          oi[c] = total > 0 ? static_cast<float>(acc / total) : 0.0f;
        }
      }
  return out;
}

}  // namespace genscope::ops
