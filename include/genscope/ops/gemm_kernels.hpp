// genscope/ops/gemm_kernels.hpp — the register-blocked GEMM micro-kernels.
//
// A micro-kernel computes one MR×NR tile of C from packed panels (BLIS, Van Zee & van de Geijn,
// "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", 2015, §3):
//
//   C[0:MR, 0:NR] = alpha · Σ_k a[k·MR + i] · b[k·NR + j]  (+ beta · C if beta ≠ 0)
//
// `a` is an A micro-panel (MR rows of A, k-major: the MR values of column k are adjacent) and `b`
// a B micro-panel (NR columns, k-major), both written by the packing routines in ops/gemm.hpp
// and zero-padded to full MR/NR, so the kernels never test edges. The accumulators stay in
// registers for the whole kc loop: per k, NR/W vector loads of b, MR broadcasts of a and
// MR·NR/W FMAs, where W is the vector width. beta = 0 never reads C.
//
// Which kernel a build uses is decided at compile time (DefaultKernel below): AVX-512F when the
// compiler targets it, else AVX2+FMA, else the portable scalar kernel. All three are always
// available as types where the target allows them, so the tests run every one this CPU can.
#pragma once

#include <concepts>
#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace genscope::ops {

// What the GEMM driver needs from a micro-kernel: its tile shape and the tile function.
template <class K>
concept GemmMicroKernel = requires(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float s) {
  { K::MR } -> std::convertible_to<int>;
  { K::NR } -> std::convertible_to<int>;
  K::run(kc, a, b, c, ldc, s, s);
};

// Portable: plain loops over a 4×16 accumulator array; the compiler vectorises the j loop.
struct ScalarKernel {
  static constexpr int MR = 4, NR = 16;
  static constexpr const char* name = "scalar";
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j)
        c[i * ldc + j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
  }
};

#if defined(__AVX2__) && defined(__FMA__)
// AVX2+FMA: 6×16 tile = 12 ymm accumulators + 2 for b + 1 broadcast, of the 16 ymm registers
// (the shape BLIS uses for Haswell, transposed to row-major C).
struct Avx2Kernel {
  static constexpr int MR = 6, NR = 16;
  static constexpr const char* name = "avx2";
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR) {
      const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
      }
      _mm256_storeu_ps(ci, r0);
      _mm256_storeu_ps(ci + 8, r1);
    }
  }
};
#endif

#if defined(__AVX512F__)
// AVX-512F: 12×32 tile = 24 zmm accumulators + 2 for b, of the 32 zmm registers; the broadcast of
// a folds into the FMA's memory operand ({1to16}). Per k: 2 loads, 12 broadcasts, 24 FMAs — enough
// independent FMAs to cover the 4-cycle latency on both FMA ports (the shape of BLIS's SKX sgemm,
// 32×12 column-major, transposed to row-major C).
struct Avx512Kernel {
  static constexpr int MR = 12, NR = 32;
  static constexpr const char* name = "avx512";
  static void run(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR) {
      const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        const __m512 ai = _mm512_set1_ps(a[i]);
        acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
      if (beta != 0.0f) {
        r0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), r0);
        r1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16), r1);
      }
      _mm512_storeu_ps(ci, r0);
      _mm512_storeu_ps(ci + 16, r1);
    }
  }
};
using DefaultKernel = Avx512Kernel;
#elif defined(__AVX2__) && defined(__FMA__)
using DefaultKernel = Avx2Kernel;
#else
using DefaultKernel = ScalarKernel;
#endif

}  // namespace genscope::ops
