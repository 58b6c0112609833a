// genscope/ops/softmax.hpp — numerically stable softmax along one dim (CPU, f32 compute).
//
//   Tensor softmax(x, dim = -1)
//       torch.softmax(x, dim): exp(x − max) / Σ exp(x − max) along `dim`. x any strides,
//       f32/f16/bf16; result contiguous f32 of x's shape. A slice that is all −inf gives NaN, as
//       torch does (attention handles fully masked rows itself, see ops/attention.hpp).
//   void softmax_row(x, n, out)    one contiguous row, raw pointers (kernel tests' reference)
//
// Subtracting the max keeps every exp ≤ 1, so nothing overflows; the sum is accumulated in
// double.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"

namespace genscope::ops {

// out[i] = exp(x[i] − max) / Σ_j exp(x[j] − max). out may alias x.
inline void softmax_row(const float* x, int64_t n, float* out) {
  // The max and "any NaN" as two reductions the compiler vectorises; a NaN makes the row NaN.
  float max = -std::numeric_limits<float>::infinity();
  bool any_nan = false;
  for (int64_t i = 0; i < n; ++i) {
    max = std::max(max, x[i]);
    any_nan |= x[i] != x[i];
  }
  if (any_nan) max = std::numeric_limits<float>::quiet_NaN();
  for (int64_t i = 0; i < n; ++i) out[i] = exp_f32(x[i] - max);
  const float sum = static_cast<float>(sum_blocked(out, n));
  for (int64_t i = 0; i < n; ++i) out[i] /= sum;
}

// Index of `dim` in a tensor of rank `rank`, negative counting from the end; UsageError otherwise.
inline int wrap_axis(int dim, int rank, const char* op) {
  if (dim < -rank || dim >= rank) fail<UsageError>(op, ": dim ", dim, " is out of range for a tensor of rank ", rank);
  return dim < 0 ? dim + rank : dim;
}

// The permutation that moves `dim` to the end, keeping the other dims in order.
inline Shape move_to_last(int dim, int rank) {
  Shape perm;
  for (int d = 0; d < rank; ++d)
    if (d != dim) perm.push_back(d);
  perm.push_back(dim);
  return perm;
}

inline Tensor softmax(const Tensor& x, int dim = -1) {
  require_float(x, "softmax", "x");
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  if (x.dim() == 0) {  // torch: softmax of a scalar is 1 (exp(x − x) / itself)
    out.data<float>()[0] = std::isnan(x.item()) ? NAN : 1.0f;
    return out;
  }
  if (out.numel() == 0) return out;
  dim = wrap_axis(dim, x.dim(), "softmax");
  const Shape perm = move_to_last(dim, x.dim());
  const Tensor xp = x.permute(perm), op = out.permute(perm);
  const int64_t n = x.size(dim), rows = out.numel() / n, sx = xp.stride(-1), so = op.stride(-1);
  float* o = out.data<float>();
  parallel_for(0, rows, std::max<int64_t>(1, 4096 / n), [&](int64_t r0, int64_t r1) {
    std::vector<float> in_buf, out_buf(static_cast<size_t>(so == 1 ? 0 : n));
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = to_float_row(xp, outer_offset(xp.shape(), xp.strides(), xp.dim() - 1, r), n, sx, in_buf);
      float* dst = o + outer_offset(op.shape(), op.strides(), op.dim() - 1, r);
      if (so == 1) {
        softmax_row(row, n, dst);
      } else {
        softmax_row(row, n, out_buf.data());
        for (int64_t i = 0; i < n; ++i) dst[i * so] = out_buf[static_cast<size_t>(i)];
      }
    }
  });
  return out;
}

}  // namespace genscope::ops
