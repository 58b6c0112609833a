// genscope/detect/dot_f64.hpp — A·Bᵀ in double for the heads that must compute as libsvm and
// scikit-learn do (SVM kernel values, Gaussian mixture E and M steps).
//
// ops::gemm is f32; these products need double: libsvm computes kernel values in double, and
// the SMO path and EM trajectories depend on them (see svm.hpp). Both operands are row-major
// with the shared dimension last, so every product is a set of dot products of rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "genscope/core/error.hpp"
#include "genscope/core/thread_pool.hpp"

namespace genscope::detect {

// Structure a product may declare, to skip work whose result is known:
//   lower        a and b are the same matrix (a Gram matrix, symmetric): only blocks of columns
//                j ≤ i are computed; the caller mirrors the rest (a_i·a_j and a_j·a_i are the
//                same sum in the same order, so the mirror is exact);
//   b_prefix     row j of b is zero past feature (j mod b_prefix): b holds transposed upper
//                triangular b_prefix × b_prefix blocks (x·P with P a Cholesky factor), so the
//                sum stops there. The skipped terms are exact zeros: the result changes only by
//                the order of the last few additions (vector lanes vs the scalar tail).
struct DotShape {
  bool lower = false;
  int64_t b_prefix = 0;  // 0: none; else a multiple of 4
};

namespace dot_detail {
// One vector of doubles (GCC/Clang vector extensions): 8 lanes with AVX-512, else 4.
#if defined(__AVX512F__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef double vec __attribute__((vector_size(kLanes * sizeof(double))));
inline vec load(const double* p) {  // unaligned
  vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace dot_detail

// out[i·ldo + j] = a_i · b_j in double, for rows of a [na, d] and b [nb, d]. A 4×4 register
// block of vector accumulators (GCC/Clang vector extensions: 8 doubles with AVX-512, else 4),
// over chunks of 512 features and blocks of 64 columns so that the b rows in use stay in L2 and
// the a rows in L1. Here na and nb are multiples of 4.
inline void dot_block_f64_x4(const double* a, int64_t na, const double* b, int64_t nb, int64_t d, double* out, int64_t ldo,
                             DotShape shape = {}) {
  constexpr int W = dot_detail::kLanes;
  using vec = dot_detail::vec;
  const auto load = dot_detail::load;
  constexpr int64_t kT = 512, kJ = 64;
  const int64_t nq = na / 4, mq = nb;
  for (int64_t i = 0; i < na; ++i) std::fill(out + i * ldo, out + i * ldo + nb, 0.0);
  parallel_for(0, nq, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t jb = 0; jb < mq; jb += kJ)
      for (int64_t tc = 0; tc < d; tc += kT) {
        const int64_t te = std::min(d, tc + kT), tv = tc + (te - tc) / W * W;
        for (int64_t q = q0; q < q1; ++q) {
          const double* ar = a + 4 * q * d;
          for (int64_t j = jb; j < std::min(jb + kJ, mq); j += 4) {
            if (shape.lower && j > 4 * q + 3) break;
            const int64_t tend = shape.b_prefix ? std::min(te, j % shape.b_prefix + 4) : te;
            if (tend <= tc) continue;
            const int64_t tvj = shape.b_prefix ? tc + (tend - tc) / W * W : tv;
            const double* br = b + j * d;
            vec acc[4][4] = {};
            for (int64_t t = tc; t < tvj; t += W) {
              const vec x[4] = {load(ar + t), load(ar + d + t), load(ar + 2 * d + t), load(ar + 3 * d + t)};
              for (int c = 0; c < 4; ++c) {
                const vec y = load(br + c * d + t);
                for (int r = 0; r < 4; ++r) acc[r][c] += x[r] * y;
              }
            }
            for (int r = 0; r < 4; ++r)
              for (int c = 0; c < 4; ++c) {
                double s = 0;
                for (int w = 0; w < W; ++w) s += acc[r][c][w];
                for (int64_t t = tvj; t < tend; ++t) s += ar[r * d + t] * br[c * d + t];
                out[(4 * q + r) * ldo + j + c] += s;
              }
          }
        }
      }
  });
}

// Any sizes: operands whose row counts are not multiples of 4 are copied with zero rows added
// (a few rows of copying, against scalar loops 8× slower than the vector ones).
inline void dot_block_f64(const double* a, int64_t na, const double* b, int64_t nb, int64_t d, double* out, int64_t ldo,
                          DotShape shape = {}) {
  if (shape.b_prefix % 4) fail<UsageError>("dot_block_f64: b_prefix ", shape.b_prefix, " is not a multiple of 4");
  if (na % 4 == 0 && nb % 4 == 0) return dot_block_f64_x4(a, na, b, nb, d, out, ldo, shape);
  auto padded = [d](const double* m, int64_t rows) {
    std::vector<double> p(static_cast<size_t>((rows + 3) / 4 * 4 * d), 0.0);
    std::copy(m, m + rows * d, p.begin());
    return p;
  };
  std::vector<double> pa, pb;
  if (na % 4) pa = padded(a, na);
  if (nb % 4) pb = padded(b, nb);
  const int64_t ma = (na + 3) / 4 * 4, mb = (nb + 3) / 4 * 4;
  std::vector<double> tmp(static_cast<size_t>(ma * mb));
  dot_block_f64_x4(pa.empty() ? a : pa.data(), ma, pb.empty() ? b : pb.data(), mb, d, tmp.data(), mb, shape);
  for (int64_t i = 0; i < na; ++i) std::copy(tmp.begin() + i * mb, tmp.begin() + i * mb + nb, out + i * ldo);
}

// The same product, out[i·ldo + j] = a_i · b_j in double, in the broadcast form of BLAS GEMMs
// (Goto & van de Geijn 2008) for when nb is large enough to fill panels (the Gaussian mixture's
// E and M steps): b is packed into panels of kNr columns, [d][kNr]; a 6 × kNr block of outputs
// lives in 12 vector registers, and each step over t adds a_it (broadcast) · panel row t. Each
// output is then the plain sequential sum over t (with FMA), and no horizontal reductions are
// needed. `shape` as above; for b_prefix each panel stops at its last column's prefix.
inline void gemm_nt_f64(const double* a, int64_t na, const double* b, int64_t nb, int64_t d, double* out, int64_t ldo,
                        DotShape shape = {}) {
  constexpr int W = dot_detail::kLanes;
  using vec = dot_detail::vec;
  constexpr int kMr = 6, kNr = 2 * W;
  const int64_t panels = (nb + kNr - 1) / kNr;
  parallel_for(0, panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<double> bp(static_cast<size_t>(d * kNr));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t j0 = p * kNr, cols = std::min<int64_t>(kNr, nb - j0);
      int64_t tend = d;
      if (shape.b_prefix) {
        tend = 0;
        for (int64_t c = 0; c < cols; ++c) tend = std::max(tend, (j0 + c) % shape.b_prefix + 1);
        tend = std::min(tend, d);
      }
      for (int64_t c = 0; c < kNr; ++c)
        for (int64_t t = 0; t < tend; ++t) bp[static_cast<size_t>(t * kNr + c)] = c < cols ? b[(j0 + c) * d + t] : 0.0;
      for (int64_t i0 = 0; i0 < na; i0 += kMr) {
        if (shape.lower && j0 > i0 + kMr - 1) continue;
        const int64_t rows = std::min<int64_t>(kMr, na - i0);
        const double* ar[kMr];
        for (int r = 0; r < kMr; ++r) ar[r] = a + (i0 + std::min<int64_t>(r, rows - 1)) * d;
        vec acc[kMr][2] = {};
        for (int64_t t = 0; t < tend; ++t) {
          vec b0, b1;
          __builtin_memcpy(&b0, bp.data() + t * kNr, sizeof b0);
          __builtin_memcpy(&b1, bp.data() + t * kNr + W, sizeof b1);
          for (int r = 0; r < kMr; ++r) {
            const double av = ar[r][t];
            acc[r][0] += av * b0;
            acc[r][1] += av * b1;
          }
        }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) out[(i0 + r) * ldo + j0 + c] = acc[r][c / W][c % W];
      }
    }
  });
}

// Σ a_i b_i in double with 4 vector accumulators: the dependency chain of a scalar sum (which
// the compiler may not reorder) is what bounds the Cholesky loops below otherwise.
inline double dot_f64(const double* a, const double* b, int64_t n) {
  constexpr int W = dot_detail::kLanes;
  using vec = dot_detail::vec;
  const auto load = dot_detail::load;
  vec acc[4] = {};
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W)
    for (int u = 0; u < 4; ++u) acc[u] += load(a + i + u * W) * load(b + i + u * W);
  for (; i + W <= n; i += W) acc[0] += load(a + i) * load(b + i);
  const vec v = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  double s = 0;
  for (int w = 0; w < W; ++w) s += v[w];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// The transpose of a row-major [rows, cols] matrix, as row-major [cols, rows].
inline std::vector<double> transposed(const double* a, int64_t rows, int64_t cols) {
  std::vector<double> t(static_cast<size_t>(rows * cols));
  constexpr int64_t kB = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += kB)
    for (int64_t j0 = 0; j0 < cols; j0 += kB)
      for (int64_t i = i0; i < std::min(rows, i0 + kB); ++i)
        for (int64_t j = j0; j < std::min(cols, j0 + kB); ++j) t[static_cast<size_t>(j * rows + i)] = a[i * cols + j];
  return t;
}

}  // namespace genscope::detect
