// genscope/ops/reduce.hpp — reductions along one axis (CPU, f32 out).
//
//   Tensor sum(x, dim, keepdim = false)          torch.sum(x, dim, keepdim)
//   Tensor mean(x, dim, keepdim = false)         torch.mean
//   Tensor var(x, dim, unbiased = true, keepdim) torch.var: Σ(x − mean)² / (n − 1), or / n when
//                                                unbiased is false; n − 1 = 0 gives NaN as torch does
//   Tensor max(x, dim, keepdim = false)          torch.amax (values only); a NaN in the slice wins
//
// x any strides, f32/f16/bf16. The reduced dim is removed, or kept with size 1 under keepdim.
// Sums accumulate in double (blocked, ops/elementwise.hpp); var is two-pass. Reducing an empty
// dim: sum 0, mean and var NaN, max is a ShapeError (torch refuses it too).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/elementwise.hpp"
#include "genscope/ops/softmax.hpp"

namespace genscope::ops {

enum class Reduction { Sum, Mean, VarUnbiased, VarBiased, Max };

// One reduction of n contiguous f32 values.
inline float reduce_row(Reduction kind, const float* x, int64_t n) {
  switch (kind) {
    case Reduction::Sum: return static_cast<float>(sum_blocked(x, n));
    case Reduction::Mean: return static_cast<float>(sum_blocked(x, n) / static_cast<double>(n));
    case Reduction::VarUnbiased:
    case Reduction::VarBiased: {
      const SplitMean mean(sum_blocked(x, n) / static_cast<double>(n));
      const double dof = static_cast<double>(kind == Reduction::VarUnbiased ? n - 1 : n);
      if (dof <= 0) return NAN;
      return static_cast<float>(sum_squared_deviation(x, n, mean) / dof);
    }
    case Reduction::Max: {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < n; ++i) m = x[i] > m || std::isnan(x[i]) ? x[i] : m;
      return m;
    }
  }
  return NAN;
}

inline Tensor reduce(const Tensor& x, int dim, bool keepdim, Reduction kind, const char* op) {
  require_float(x, op, "x");
  if (x.dim() == 0) fail<UsageError>(op, ": x is a 0-dim tensor; there is no dim to reduce");
  dim = wrap_axis(dim, x.dim(), op);
  const int64_t n = x.size(dim);
  if (n == 0 && kind == Reduction::Max) fail<ShapeError>(op, ": dim ", dim, " of ", x.str(), " is empty; max has no identity");
  Shape shape = x.shape();
  if (keepdim) shape[dim] = 1;
  else shape.erase(dim);
  Tensor out = Tensor::empty(shape, DType::F32);
  const int64_t rows = out.numel();
  if (rows == 0) return out;
  const Tensor xp = x.permute(move_to_last(dim, x.dim()));
  const int64_t sx = xp.stride(-1);
  float* o = out.data<float>();
  // Output element r is row r of x with `dim` moved last: both enumerate the other dims in order.
  parallel_for(0, rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
    std::vector<float> buf;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = n ? to_float_row(xp, outer_offset(xp.shape(), xp.strides(), xp.dim() - 1, r), n, sx, buf) : nullptr;
      o[r] = n ? reduce_row(kind, row, n) : (kind == Reduction::Sum ? 0.0f : NAN);
    }
  });
  return out;
}

inline Tensor sum(const Tensor& x, int dim, bool keepdim = false) { return reduce(x, dim, keepdim, Reduction::Sum, "sum"); }
inline Tensor mean(const Tensor& x, int dim, bool keepdim = false) { return reduce(x, dim, keepdim, Reduction::Mean, "mean"); }
inline Tensor var(const Tensor& x, int dim, bool unbiased = true, bool keepdim = false) {
  return reduce(x, dim, keepdim, unbiased ? Reduction::VarUnbiased : Reduction::VarBiased, "var");
}
inline Tensor max(const Tensor& x, int dim, bool keepdim = false) { return reduce(x, dim, keepdim, Reduction::Max, "max"); }

}  // namespace genscope::ops
