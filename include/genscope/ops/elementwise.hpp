// genscope/ops/elementwise.hpp — broadcasting binary ops and the strided-access helpers every
// CPU op in ops/ shares.
//
//   Tensor add(a, b), sub(a, b), mul(a, b), div(a, b)
//       a ∘ b with numpy/torch broadcasting (shapes aligned from the right; a dim of size 1 or a
//       missing dim repeats). a and b are any strided views of f32, f16 or bf16 storage, read and
//       converted on the fly; the result is a new contiguous f32 tensor. A 0-dim tensor is a
//       scalar.
//   Shape broadcast_shapes(a, b)          the broadcast shape, or ShapeError naming both shapes
//   Tensor broadcast_to(t, shape)         a view of t with stride 0 along repeated dims
//   Tensor map(x, f)                      f(x) elementwise, f32 out (activations use it)
//
// Helpers for the other ops (documented where they are defined): exp_f32 (a vectorisable e^x
// within 2 ulp) and exp512 (the same on 16 AVX-512 lanes), load_float, to_float_row,
// outer_offset, require_float, sum_blocked, SplitMean, sum_squared_deviation. Sums of f32 run in blocks of
// 8 float lanes (vectorisable without -ffast-math) whose block totals are added in double, so a
// row of a million elements keeps ~1e-7 relative error, as PyTorch's cascade sum does.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "genscope/core/dtype.hpp"
#include "genscope/core/error.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"

namespace genscope::ops {

// ---- element access ------------------------------------------------------------------------------

// The f32 value of one stored float element.
template <class T>
inline float load_float(const T& v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else if constexpr (std::is_same_v<T, f16>) return f16_to_f32(v.bits);
  else return bf16_to_f32(v.bits);
}

// Ops compute in f32 and read f32, f16 or bf16; anything else is refused, naming the op and tensor.
inline void require_float(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) fail<UsageError>(op, ": ", what, " is an undefined tensor");
  if (!is_floating(t.dtype())) fail<ShapeError>(op, ": ", what, " is ", t.str(), "; expected f32, f16 or bf16");
  if (t.device() != Device::CPU) fail<DeviceError>(op, ": ", what, " is ", t.str(), "; this is the CPU path");
}

// Call f with a tag of x's float storage type (f32, f16 or bf16).
template <class F>
decltype(auto) visit_float(DType t, F&& f) {
  switch (t) {
    case DType::F16: return f(f16{});
    case DType::BF16: return f(bf16{});
    default: return f(float{});
  }
}

// Element offset of "row" r of a tensor seen as [rows, shape[last]]: r is decoded over the dims
// before `last` (row-major), each contributing index × stride.
inline int64_t outer_offset(const Shape& shape, const Shape& strides, int last, int64_t r) {
  int64_t off = 0;
  for (int d = last - 1; d >= 0; --d) {
    const int64_t k = r % shape[d];
    r /= shape[d];
    off += k * strides[d];
  }
  return off;
}

// n elements of x starting at element offset `off` with step `stride`, as f32 in `buf`. Returns a
// pointer to the f32 data: straight into x when it already is contiguous f32 (no copy).
inline const float* to_float_row(const Tensor& x, int64_t off, int64_t n, int64_t stride, std::vector<float>& buf) {
  if (x.dtype() == DType::F32 && (stride == 1 || n <= 1)) return x.data<float>() + off;
  buf.resize(static_cast<size_t>(n));
  visit_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(x.data_ptr()) + off;
    for (int64_t i = 0; i < n; ++i) buf[static_cast<size_t>(i)] = load_float(p[i * stride]);
  });
  return buf.data();
}

// ---- vectorisable transcendental ------------------------------------------------------------------

// e^x in f32 that GCC can vectorise (std::exp is an opaque libm call): Cephes' expf
// (cephes/single/expf.c). x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact
// reduction), e^r by its degree-7 minimax polynomial, 2^n put into the exponent bits. Within
// 2 ulp of the true value over the normal range; x < −87.3 gives 0 (where e^x would be
// subnormal), x > ln(FLT_MAX) gives +inf, NaN stays NaN, −inf gives 0.
inline float exp_f32(float x) {
  constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kMaxArg = 88.72283f;  // ln(FLT_MAX)
  const float xc = std::min(std::max(x, -87.3f), kMaxArg);
  constexpr float kRound = 12582912.0f;  // 1.5·2^23: adding and subtracting it rounds to an integer
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // 2^n as 2^h · 2^(n−h), h = n/2, so both factors are normal floats for n in [−126, 128].
  const int32_t ni = static_cast<int32_t>(n), h = ni / 2;
  const float scaled = p * std::bit_cast<float>((h + 127) << 23) * std::bit_cast<float>((ni - h + 127) << 23);
  // Selects, not branches, so the loops calling this stay vectorised.
  const float special = x < -87.3f ? 0.0f : std::numeric_limits<float>::infinity();
  return (x < -87.3f || x > kMaxArg) ? special : (x != x ? x : scaled);
}

#if defined(__AVX512F__)
// exp_f32 on 16 lanes, for the kernels that are written in AVX-512 intrinsics (GEMM epilogue,
// attention). Same reduction, polynomial and special values as exp_f32 above; the 2^n scaling is
// vscalefps (p·2^n, exact, no intermediate overflow), and n is rounded by vrndscaleps.
inline __m512 exp512(__m512 x) {
  constexpr __mmask16 kAll = 0xFFFF;  // zero-masked forms: GCC 12 warns on the unmasked ones' undefined source
  const __m512 lo = _mm512_set1_ps(-87.3f), hi = _mm512_set1_ps(88.72283f);
  const __m512 xc = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, x, lo), hi);
  const __m512 n = _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0f));
  __m512 y = _mm512_maskz_scalef_ps(kAll, p, n);
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y, _mm512_setzero_ps());
  y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), y, _mm512_set1_ps(std::numeric_limits<float>::infinity()));
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);  // NaN stays NaN
}
#endif

// ---- accurate, vectorisable sums ------------------------------------------------------------------

// Σ x[i] for f32 x: blocks of 512 summed in 8 float lanes, block totals added in double.
inline double sum_blocked(const float* x, int64_t n) {
  double total = 0;
  int64_t i = 0;
  for (; i + 8 <= n;) {
    std::array<float, 8> lane{};
    const int64_t stop = std::min(n, i + 512) & ~int64_t{7};  // i is a multiple of 8, so stop ≥ i + 8
    for (; i < stop; i += 8)
      for (int j = 0; j < 8; ++j) lane[static_cast<size_t>(j)] += x[i + j];
    double block = 0;
    for (float v : lane) block += v;
    total += block;
  }
  for (; i < n; ++i) total += x[i];
  return total;
}

// A double mean split into float hi + lo, so x − mean is computed as (x − hi) − lo: x − hi is
// exact when x is near the mean (Sterbenz), and rows offset far from 0 (1000 ± 0.01) keep their
// precision instead of losing it to the rounding of the mean to f32.
struct SplitMean {
  float hi, lo;
  explicit SplitMean(double mean) : hi(static_cast<float>(mean)), lo(static_cast<float>(mean - static_cast<double>(hi))) {}
  float deviation(float x) const { return (x - hi) - lo; }
};

// Σ (x[i] − mean)², the second pass of a two-pass variance (stable for any offset of the data).
inline double sum_squared_deviation(const float* x, int64_t n, SplitMean mean) {
  double total = 0;
  int64_t i = 0;
  for (; i + 8 <= n;) {
    std::array<float, 8> lane{};
    const int64_t stop = std::min(n, i + 512) & ~int64_t{7};
    for (; i < stop; i += 8)
      for (int j = 0; j < 8; ++j) {
        const float d = mean.deviation(x[i + j]);
        lane[static_cast<size_t>(j)] += d * d;
      }
    double block = 0;
    for (float v : lane) block += v;
    total += block;
  }
  for (; i < n; ++i) total += static_cast<double>(mean.deviation(x[i])) * mean.deviation(x[i]);
  return total;
}

// ---- broadcasting -------------------------------------------------------------------------------

// numpy's rule: align from the right; sizes must match or one of them be 1.
inline Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const int n = std::max(a.size(), b.size());
  Shape out;
  for (int i = 0; i < n; ++i) out.push_back(1);
  for (int i = 0; i < n; ++i) {
    const int ia = a.size() - n + i, ib = b.size() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) fail<ShapeError>("shapes ", a, " and ", b, " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// A view of t expanded to `shape` (torch's expand): repeated dims get stride 0.
inline Tensor broadcast_to(const Tensor& t, const Shape& shape) {
  if (t.dim() > shape.size()) fail<ShapeError>("cannot broadcast ", t.str(), " to ", shape);
  Shape strides = shape;
  const int lead = shape.size() - t.dim();
  for (int i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      strides[i] = 0;
      continue;
    }
    const int64_t d = t.shape()[i - lead];
    if (d == shape[i]) strides[i] = t.strides()[i - lead];
    else if (d == 1) strides[i] = 0;
    else fail<ShapeError>("cannot broadcast ", t.str(), " to ", shape);
  }
  return Tensor(t.storage(), shape, strides, t.offset(), t.dtype());
}

// ---- elementwise kernels --------------------------------------------------------------------------

enum class BinaryOp { Add, Sub, Mul, Div };

inline const char* binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
  }
  return "?";
}

// One output row: out[j] = a[j·sa] ∘ b[j·sb]. The op is a template so each loop is branch-free;
// with sa = sb = 1 and f32 inputs GCC vectorises it.
template <BinaryOp Op, class A, class B>
inline void binary_row(const A* a, int64_t sa, const B* b, int64_t sb, float* out, int64_t n) {
  auto apply = [](float x, float y) {
    if constexpr (Op == BinaryOp::Add) return x + y;
    else if constexpr (Op == BinaryOp::Sub) return x - y;
    else if constexpr (Op == BinaryOp::Mul) return x * y;
    else return x / y;
  };
  if (sa == 1 && sb == 1) {
    for (int64_t j = 0; j < n; ++j) out[j] = apply(load_float(a[j]), load_float(b[j]));
  } else if (sa == 1 && sb == 0) {
    const float y = load_float(b[0]);
    for (int64_t j = 0; j < n; ++j) out[j] = apply(load_float(a[j]), y);
  } else if (sa == 0 && sb == 1) {
    const float x = load_float(a[0]);
    for (int64_t j = 0; j < n; ++j) out[j] = apply(x, load_float(b[j]));
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = apply(load_float(a[j * sa]), load_float(b[j * sb]));
  }
}

template <BinaryOp Op>
inline Tensor binary(const Tensor& a, const Tensor& b) {
  const char* name = binary_op_name(Op);
  require_float(a, name, "a");
  require_float(b, name, "b");
  const Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, DType::F32);
  if (out.numel() == 0) return out;
  const Tensor ea = broadcast_to(a, shape), eb = broadcast_to(b, shape);
  const int nd = shape.size();
  const int64_t inner = nd ? shape[nd - 1] : 1, rows = out.numel() / inner;
  const int64_t sa = nd ? ea.strides()[nd - 1] : 0, sb = nd ? eb.strides()[nd - 1] : 0;
  float* o = out.data<float>();
  visit_float(a.dtype(), [&](auto ta) {
    visit_float(b.dtype(), [&](auto tb) {
      using A = decltype(ta);
      using B = decltype(tb);
      const A* pa = static_cast<const A*>(ea.data_ptr());
      const B* pb = static_cast<const B*>(eb.data_ptr());
      parallel_for(0, rows, std::max<int64_t>(1, 16384 / inner), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          binary_row<Op>(pa + outer_offset(shape, ea.strides(), nd - 1, r), sa, pb + outer_offset(shape, eb.strides(), nd - 1, r),
                         sb, o + r * inner, inner);
      });
    });
  });
  return out;
}

inline Tensor add(const Tensor& a, const Tensor& b) { return binary<BinaryOp::Add>(a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary<BinaryOp::Sub>(a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary<BinaryOp::Mul>(a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary<BinaryOp::Div>(a, b); }

// f(x) for every element of a float tensor (any strides, f32/f16/bf16), into a new contiguous f32
// tensor of x's shape. F is a callable float -> float; inlined into the loop.
template <class F>
inline Tensor map(const Tensor& x, F f, const char* op = "map") {
  require_float(x, op, "x");
  Tensor out = Tensor::empty(x.shape(), DType::F32);
  if (out.numel() == 0) return out;
  const int nd = x.dim();
  const int64_t inner = nd ? x.shape()[nd - 1] : 1, rows = out.numel() / inner;
  const int64_t s = nd ? x.strides()[nd - 1] : 1;
  float* o = out.data<float>();
  visit_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = static_cast<const T*>(x.data_ptr());
    parallel_for(0, rows, std::max<int64_t>(1, 8192 / inner), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* row = p + outer_offset(x.shape(), x.strides(), nd - 1, r);
        float* dst = o + r * inner;
        if (s == 1)
          for (int64_t j = 0; j < inner; ++j) dst[j] = f(load_float(row[j]));
        else
          for (int64_t j = 0; j < inner; ++j) dst[j] = f(load_float(row[j * s]));
      }
    });
  });
  return out;
}

}  // namespace genscope::ops
