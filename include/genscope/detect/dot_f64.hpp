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

#include "genscope/core/thread_pool.hpp"

namespace genscope::detect {

// out[i·ldo + j] = a_i · b_j in double, for rows of a [na, d] and b [nb, d]. A 4×4 register
// block of vector accumulators (GCC/Clang vector extensions: 8 doubles with AVX-512, else 4),
// over chunks of 512 features and blocks of 64 columns so that the b rows in use stay in L2 and
// the a rows in L1. Here na and nb are multiples of 4.
inline void dot_block_f64_x4(const double* a, int64_t na, const double* b, int64_t nb, int64_t d, double* out, int64_t ldo) {
#if defined(__AVX512F__)
  constexpr int W = 8;
#else
  constexpr int W = 4;
#endif
  typedef double vec __attribute__((vector_size(W * sizeof(double))));
  auto load = [](const double* p) {
    vec v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
  };
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
            const double* br = b + j * d;
            vec acc[4][4] = {};
            for (int64_t t = tc; t < tv; t += W) {
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
                for (int64_t t = tv; t < te; ++t) s += ar[r * d + t] * br[c * d + t];
                out[(4 * q + r) * ldo + j + c] += s;
              }
          }
        }
      }
  });
}

// Any sizes: operands whose row counts are not multiples of 4 are copied with zero rows added
// (a few rows of copying, against scalar loops 8× slower than the vector ones).
inline void dot_block_f64(const double* a, int64_t na, const double* b, int64_t nb, int64_t d, double* out, int64_t ldo) {
  if (na % 4 == 0 && nb % 4 == 0) return dot_block_f64_x4(a, na, b, nb, d, out, ldo);
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
  dot_block_f64_x4(pa.empty() ? a : pa.data(), ma, pb.empty() ? b : pb.data(), mb, d, tmp.data(), mb);
  for (int64_t i = 0; i < na; ++i) std::copy(tmp.begin() + i * mb, tmp.begin() + i * mb + nb, out + i * ldo);
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
