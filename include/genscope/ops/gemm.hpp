// genscope/ops/gemm.hpp — f32 matrix multiplication, row-major, with fused epilogues.
//
//   C[M,N] = act(alpha · op(A)[M,K] · op(B)[K,N] + beta · C + bias[N] + row_bias[M]) + residual[M,N]
//
// op(X) is X or Xᵀ. Leading dimensions are in elements, row-major (lda ≥ K for A untransposed,
// ≥ M transposed). beta = 0 never reads C (it may hold NaN). PyTorch's Linear is
// gemm(NoTrans, Trans, ..., x, w) with w stored [out, in]; linear() below does that on tensors.
//
// How it is fast (GotoBLAS / BLIS: Goto & van de Geijn, "Anatomy of High-Performance Matrix
// Multiplication", TOMS 2008; Van Zee & van de Geijn, "BLIS", TOMS 2015):
//   * C is cut into tasks (row block × column block) spread over the thread pool;
//   * per task, K is walked in passes of KC: the task's KC×NC block of B is packed into NR-wide
//     k-major micro-panels (L2-resident), then for each MR rows of A an MR×KC micro-panel is
//     packed (L1-resident) and the micro-kernel (ops/gemm_kernels.hpp) runs over every B
//     micro-panel of the block;
//   * transposes, strides and f16/bf16 storage are absorbed by the packing routines (each element
//     is converted to f32 as it is packed, so a f16 weight is never copied whole);
//   * beta is applied on the first K pass; bias, activation and residual on the last one, on the
//     C tile the micro-kernel has just written, while it is still in L1.
//
// gemm_reference below is the plain triple loop every optimised path is tested against.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

#include "genscope/core/dtype.hpp"
#include "genscope/core/error.hpp"
#include "genscope/core/half.hpp"
#include "genscope/core/tensor.hpp"
#include "genscope/core/thread_pool.hpp"
#include "genscope/ops/activation.hpp"
#include "genscope/ops/gemm_kernels.hpp"

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace genscope::ops {

enum class Trans { No, Yes };

struct GemmEpilogue {
  const float* bias = nullptr;      // [N], added to every row
  Activation act = Activation::None;
  const float* residual = nullptr;  // [M, N] with leading dimension ld_residual, added after act
  int64_t ld_residual = 0;
  const float* row_bias = nullptr;  // [M], added to every column (conv2d's per-channel bias)
};

// Reference: one output element at a time, double accumulation. Slow; for tests only.
inline void gemm_reference(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
                           const GemmEpilogue& ep = {}) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = ta == Trans::No ? A[i * lda + k] : A[k * lda + i];
        const float b = tb == Trans::No ? B[k * ldb + j] : B[j * ldb + k];
        acc += static_cast<double>(a) * b;
      }
      float v = alpha * static_cast<float>(acc);
      if (beta != 0.0f) v += beta * C[i * ldc + j];
      if (ep.bias) v += ep.bias[j];
      if (ep.row_bias) v += ep.row_bias[i];
      v = apply_activation(ep.act, v);
      if (ep.residual) v += ep.residual[i * ep.ld_residual + j];
      C[i * ldc + j] = v;
    }
}

namespace gemm_detail {

// Cache blocking. KC: the depth of one pass, so an A micro-panel (MR×KC·4 B = 18 KB for the
// AVX-512 kernel) stays in L1 while B micro-panels stream from L2. NC: the widest B block a task
// packs (KC×NC·4 B = 768 KB, in L2). MC: the most rows a task covers; every row panel of it
// reuses the packed B block, so B is packed once per MC rows.
inline constexpr int64_t kKC = 384, kNC = 512, kMC = 384;

template <class T>
inline float to_f32(T v) {
  if constexpr (std::is_same_v<T, float>) return v;
#if defined(__F16C__)
  else if constexpr (std::is_same_v<T, f16>) return _cvtsh_ss(v.bits);  // exact, like f16_to_f32
#endif
  else if constexpr (std::is_same_v<T, f16>) return f16_to_f32(v.bits);
  else return bf16_to_f32(v.bits);
}

template <class T>
concept StorageFloat = std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>;

// A matrix operand of any strides: element (r, c) is data[r·rs + c·cs].
template <StorageFloat T>
struct Strided {
  const T* data;
  int64_t rs, cs;
};

// The operand X as op(X) sees it: Xᵀ swaps the strides.
template <StorageFloat T>
Strided<T> operand(Trans t, const T* data, int64_t ld) {
  return t == Trans::No ? Strided<T>{data, ld, 1} : Strided<T>{data, 1, ld};
}

#if defined(__AVX512F__)
// r ← rᵀ for a 16×16 block held as 16 rows of 16 lanes. Recursive block transpose: for block
// size b = 8, 4, 2, 1, swap the off-diagonal b×b blocks of every 2b×2b block, i.e. for rows i and
// i + b (i & b = 0):  r'[i][l] = l & b ? r[i+b][l−b] : r[i][l],  r'[i+b][l] = l & b ? r[i+b][l] : r[i][l+b].
// Each is one two-source lane permute (vpermt2ps), 64 in all.
// Reference: out[j][i] = in[i][j].
inline void transpose16x16(__m512 r[16]) {
#pragma GCC unroll 4
  for (int b = 8; b >= 1; b /= 2) {
    alignas(64) int32_t lo[16], hi[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) {
      lo[l] = (l & b) ? 16 + l - b : l;
      hi[l] = (l & b) ? 16 + l : l + b;
    }
    const __m512i ilo = _mm512_load_si512(lo), ihi = _mm512_load_si512(hi);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      if (i & b) continue;
      const __m512 a = r[i], c = r[i + b];
      r[i] = _mm512_permutex2var_ps(a, ilo, c);
      r[i + b] = _mm512_permutex2var_ps(a, ihi, c);
    }
  }
}
#endif

// A micro-panel: rows [i0, i0+m) × k [k0, k0+kc) of A as dst[k·MR + i], rows past m zeroed.
// Reference: the loops at the end. With AVX-512, f32 rows (cs = 1) and MR ≤ 16, blocks of MR rows
// × 16 k are loaded as 16 vectors (rows past m zero), transposed in registers, and each k's MR
// values stored at once. The scalar transpose stored one float per instruction at a stride of MR:
// 0.52 → 0.32 ns per packed element (12×384 panels of a 384×3072 A, one thread).
template <int MR, class T>
void pack_a(const Strided<T>& A, int64_t i0, int64_t m, int64_t k0, int64_t kc, float* dst) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && MR <= 16) {
    if (A.cs == 1) {
      constexpr auto rows_mask = static_cast<__mmask16>((1u << MR) - 1);
      __m512 r[16];
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t kn = std::min<int64_t>(16, kc - k);
        const auto mask = static_cast<__mmask16>(kn == 16 ? 0xFFFF : (1u << kn) - 1);
        const float* src = A.data + i0 * A.rs + k0 + k;
        for (int i = 0; i < 16; ++i)
          r[i] = i < m ? _mm512_maskz_loadu_ps(mask, src + i * A.rs) : _mm512_setzero_ps();
        transpose16x16(r);
        for (int64_t kk = 0; kk < kn; ++kk) _mm512_mask_storeu_ps(dst + (k + kk) * MR, rows_mask, r[kk]);
      }
      return;
    }
  }
#endif
  for (int64_t i = 0; i < m; ++i) {
    const T* src = A.data + (i0 + i) * A.rs + k0 * A.cs;
    if (A.cs == 1)
      for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = to_f32(src[k]);
    else
      for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = to_f32(src[k * A.cs]);
  }
  for (int64_t i = m; i < MR; ++i)
    for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = 0.0f;
}

// B micro-panel: k [k0, k0+kc) × columns [j0, j0+n) of B as dst[k·NR + j], columns past n zeroed.
// Rows of B contiguous (B untransposed): one short copy per k. Columns contiguous (B = wᵀ of a
// Linear weight): a transpose; with AVX-512 16×16 blocks are transposed in registers.
template <int NR, class T>
void pack_b(const Strided<T>& B, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  if (B.cs == 1) {
    for (int64_t k = 0; k < kc; ++k) {
      const T* src = B.data + (k0 + k) * B.rs + j0;
      float* d = dst + k * NR;
      for (int64_t j = 0; j < n; ++j) d[j] = to_f32(src[j]);
      for (int64_t j = n; j < NR; ++j) d[j] = 0.0f;
    }
    return;
  }
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && NR % 16 == 0) {
    if (n == NR && B.rs == 1) {
      // 16 columns of B (16 rows of w) × 16 k at a time: 16 row loads, a register transpose, 16
      // stores: 0.82 ns per element where one 16-lane gather per k took 1.1 ns (a plain copy of
      // the same 6144×1536 weight, the floor, takes 0.65; one thread, this VM).
      __m512 r[16];
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t kn = std::min<int64_t>(16, kc - k);
        const auto mask = static_cast<__mmask16>(kn == 16 ? 0xFFFF : (1u << kn) - 1);
        for (int g = 0; g < NR; g += 16) {
          const float* src = B.data + (j0 + g) * B.cs + k0 + k;
          for (int jj = 0; jj < 16; ++jj) r[jj] = _mm512_maskz_loadu_ps(mask, src + jj * B.cs);
          transpose16x16(r);
          for (int64_t kk = 0; kk < kn; ++kk) _mm512_store_ps(dst + (k + kk) * NR + g, r[kk]);
        }
      }
      return;
    }
  }
#endif
  for (int64_t j = 0; j < n; ++j) {
    const T* src = B.data + k0 * B.rs + (j0 + j) * B.cs;
    for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = to_f32(src[k * B.rs]);
  }
  for (int64_t j = n; j < NR; ++j)
    for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = 0.0f;
}

// The B block of a task: columns [j0, j0+n) as ceil(n/NR) consecutive micro-panels of kc×NR.
// With rows of B contiguous, the block is read row by row (k outer), so each row of B is one
// sequential read rather than kc reads a page apart per micro-panel (TLB and prefetcher friendly).
template <int NR, class T>
void pack_b_block(const Strided<T>& B, int64_t k0, int64_t kc, int64_t j0, int64_t n, float* dst) {
  const int64_t panels = (n + NR - 1) / NR;
  if (B.cs != 1) {
    for (int64_t p = 0; p < panels; ++p)
      pack_b<NR>(B, k0, kc, j0 + p * NR, std::min<int64_t>(NR, n - p * NR), dst + p * kc * NR);
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    const T* src = B.data + (k0 + k) * B.rs + j0;
    for (int64_t p = 0; p < panels; ++p) {
      float* d = dst + p * kc * NR + k * NR;
      const T* s = src + p * NR;
      if (p * NR + NR <= n) {
        for (int j = 0; j < NR; ++j) d[j] = to_f32(s[j]);
      } else {
        const int64_t m = n - p * NR;
        for (int64_t j = 0; j < m; ++j) d[j] = to_f32(s[j]);
        for (int64_t j = m; j < NR; ++j) d[j] = 0.0f;
      }
    }
  }
}

// One 64-byte-aligned scratch buffer per thread and purpose, grown as needed and reused.
inline float* scratch(int which, size_t floats) {
  struct Buffer {
    float* data = nullptr;
    size_t size = 0;
    ~Buffer() { ::operator delete(data, std::align_val_t(64)); }
  };
  thread_local Buffer buffers[2];
  Buffer& b = buffers[which];
  if (b.size < floats) {
    ::operator delete(b.data, std::align_val_t(64));
    b.data = static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t(64)));
    b.size = floats;
  }
  return b.data;
}

inline bool has_epilogue(const GemmEpilogue& ep) {
  return ep.bias || ep.row_bias || ep.residual || ep.act != Activation::None;
}

// bias, row_bias, activation, residual on the m×n tile at C[i0, j0] (c points at it), in one pass
// per row while the tile is still in L1. The activation is the vectorisable form (activation.hpp:
// gelu_erf_vectorizable etc., within 2e-7·max(1, |x|) of the libm scalars gemm_reference uses) —
// libm's erf per element took 70 % as long as the fc1 GEMM itself on a ViT-B/16 MLP.
//   reference: for each (r, s): v = c + bias[j] + row_bias[i]; v = act(v); v += residual; c = v.
inline void apply_epilogue(const GemmEpilogue& ep, float* c, int64_t ldc, int64_t i0, int64_t j0, int64_t m, int64_t n) {
#if defined(__AVX512F__)
  for (int64_t r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    const float* res = ep.residual ? ep.residual + (i0 + r) * ep.ld_residual + j0 : nullptr;
    const __m512 rb = _mm512_set1_ps(ep.row_bias ? ep.row_bias[i0 + r] : 0.0f);
    for (int64_t s = 0; s < n; s += 16) {
      const __mmask16 k = n - s >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - s)) - 1);  // the tile's last columns
      __m512 v = _mm512_maskz_loadu_ps(k, cr + s);
      if (ep.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, ep.bias + j0 + s));
      if (ep.row_bias) v = _mm512_add_ps(v, rb);
      v = activate512(ep.act, v);
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + s));
      _mm512_mask_storeu_ps(cr + s, k, v);
    }
  }
#else
  for (int64_t r = 0; r < m; ++r) {
    float* cr = c + r * ldc;
    if (ep.bias)
      for (int64_t s = 0; s < n; ++s) cr[s] += ep.bias[j0 + s];
    if (ep.row_bias) {
      const float rb = ep.row_bias[i0 + r];
      for (int64_t s = 0; s < n; ++s) cr[s] += rb;
    }
    switch (ep.act) {  // one loop per activation, so each vectorises
      case Activation::None: break;
      case Activation::Relu: for (int64_t s = 0; s < n; ++s) cr[s] = relu(cr[s]); break;
      case Activation::Gelu: for (int64_t s = 0; s < n; ++s) cr[s] = gelu_erf_vectorizable(cr[s]); break;
      case Activation::GeluTanh: for (int64_t s = 0; s < n; ++s) cr[s] = gelu_tanh_vectorizable(cr[s]); break;
      case Activation::QuickGelu: for (int64_t s = 0; s < n; ++s) cr[s] = cr[s] / (1.0f + exp_f32(-1.702f * cr[s])); break;
      case Activation::Silu: for (int64_t s = 0; s < n; ++s) cr[s] = cr[s] / (1.0f + exp_f32(-cr[s])); break;
    }
    if (ep.residual) {
      const float* res = ep.residual + (i0 + r) * ep.ld_residual + j0;
      for (int64_t s = 0; s < n; ++s) cr[s] += res[s];
    }
  }
#endif
}

// What the task loop calls to fill its buffers: pack_a(i0, m, k0, kc, dst) writes one A
// micro-panel (rows past m zeroed), pack_b(k0, kc, j0, n, dst) the task's whole B block as
// ceil(n/NR) micro-panels (columns past n zeroed); conv2d's im2col packer is one.
template <class P>
concept PanelPacker = requires(const P& p, int64_t i, float* d) { p(i, i, i, i, d); };

// One task: C rows [i0, i1) × columns [j0, j1), all of K (see the header comment for the loops).
template <GemmMicroKernel Kernel, PanelPacker PA, PanelPacker PB>
void run_task(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t K, float alpha, const PA& pack_a_panel,
              const PB& pack_b_block, float beta, float* C, int64_t ldc, const GemmEpilogue& ep) {
  constexpr int MR = Kernel::MR, NR = Kernel::NR;
  if (K == 0) {  // no products: C = beta·C, then the epilogue
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = j0; j < j1; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    if (has_epilogue(ep)) apply_epilogue(ep, C + i0 * ldc + j0, ldc, i0, j0, i1 - i0, j1 - j0);
    return;
  }
  const int64_t panels = (j1 - j0 + NR - 1) / NR;
  const int64_t kc_max = std::min(K, kKC);
  float* bbuf = scratch(0, static_cast<size_t>(panels * NR * kc_max));
  float* abuf = scratch(1, static_cast<size_t>(MR * kc_max));
  alignas(64) float tile[MR * NR];
  const bool epilogue = has_epilogue(ep);
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    const float beta_pass = k0 == 0 ? beta : 1.0f;  // later passes accumulate onto C
    const bool last = k0 + kc == K;
    pack_b_block(k0, kc, j0, j1 - j0, bbuf);
    for (int64_t i = i0; i < i1; i += MR) {
      const int64_t m = std::min<int64_t>(MR, i1 - i);
      pack_a_panel(i, m, k0, kc, abuf);
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t j = j0 + p * NR, n = std::min<int64_t>(NR, j1 - j);
        float* c = C + i * ldc + j;
        if (m == MR && n == NR) {
          Kernel::run(kc, abuf, bbuf + p * kc * NR, c, ldc, alpha, beta_pass);
        } else {  // edge tile: full tile into scratch, then the valid part into C
          Kernel::run(kc, abuf, bbuf + p * kc * NR, tile, NR, alpha, 0.0f);
          for (int64_t r = 0; r < m; ++r)
            for (int64_t s = 0; s < n; ++s)
              c[r * ldc + s] = beta_pass == 0.0f ? tile[r * NR + s] : tile[r * NR + s] + beta_pass * c[r * ldc + s];
        }
        if (last && epilogue) apply_epilogue(ep, c, ldc, i, j, m, n);
      }
    }
  }
}

// How C (times `batch` problems) is cut into tasks: row blocks of mc and column blocks of nc.
struct Plan {
  int64_t mc, nc, blocks_m, blocks_n;
  int64_t tasks_per_problem() const { return blocks_m * blocks_n; }
};

// Enough tasks for every thread (a multiple of the thread count, or many), splitting N first
// (a narrower B block keeps the A panel reuse) and M when the columns run out. Small problems
// run as one task: a parallel region costs more than they do.
template <GemmMicroKernel Kernel>
Plan make_plan(int64_t batch, int64_t M, int64_t N, int64_t K) {
  constexpr int64_t MR = Kernel::MR, NR = Kernel::NR;
  const int64_t threads = num_threads();
  auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  int64_t bm = ceil_div(M, kMC), bn = ceil_div(N, kNC);
  const bool tiny = static_cast<double>(batch) * M * N * std::max<int64_t>(K, 1) < 48.0 * 48 * 48;
  for (int iter = 0; !tiny && threads > 1 && iter < 256; ++iter) {
    const int64_t tasks = batch * bm * bn;
    if (tasks >= 8 * threads || (tasks >= 2 * threads && tasks % threads == 0)) break;
    if (ceil_div(N, bn + 1) >= 4 * NR) ++bn;
    else if (ceil_div(M, bm + 1) >= 2 * MR) ++bm;
    else break;
  }
  Plan p{};
  p.mc = ceil_div(ceil_div(M, bm), MR) * MR;
  p.nc = ceil_div(ceil_div(N, bn), NR) * NR;
  p.blocks_m = ceil_div(M, p.mc);
  p.blocks_n = ceil_div(N, p.nc);
  return p;
}

// Run `batch` problems of the same M×N through the pool; task(b, i0, i1, j0, j1) does one block.
template <GemmMicroKernel Kernel, class Task>
void run_parallel(int64_t batch, int64_t M, int64_t N, int64_t K, const Task& task) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const Plan plan = make_plan<Kernel>(batch, M, N, K);
  const int64_t per = plan.tasks_per_problem(), total = batch * per;
  // Tasks are handed out one at a time from a shared counter: parallel_for would group them into
  // chunks of ceil(tasks / 4·threads), and 10 tasks on 2 threads as 5 chunks of 2 leave one
  // thread idle for a fifth of the run. One parallel_for index per thread; each drains the counter.
  std::atomic<int64_t> next{0};
  parallel_for(0, std::min<int64_t>(num_threads(), total), 1, [&](int64_t, int64_t) {
    for (int64_t t = next.fetch_add(1); t < total; t = next.fetch_add(1)) {
      const int64_t b = t / per, r = t % per;
      const int64_t bi = r / plan.blocks_n, bj = r % plan.blocks_n;
      task(b, bi * plan.mc, std::min(M, (bi + 1) * plan.mc), bj * plan.nc, std::min(N, (bj + 1) * plan.nc));
    }
  });
}

// The general driver: `batch` GEMMs C_b = op(A_b)·op(B_b) with operands of any strides and
// storage type; A_b = A + b·stride_a (elements), likewise B and C; the residual (if any) of
// problem b starts M·ld_residual elements after that of b-1.
template <GemmMicroKernel Kernel, StorageFloat TA, StorageFloat TB>
void gemm_strided(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, Strided<TA> A, int64_t stride_a,
                  Strided<TB> B, int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                  const GemmEpilogue& ep) {
  run_parallel<Kernel>(batch, M, N, K, [&](int64_t b, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    const Strided<TA> Ab{A.data + b * stride_a, A.rs, A.cs};
    const Strided<TB> Bb{B.data + b * stride_b, B.rs, B.cs};
    GemmEpilogue epb = ep;
    if (epb.residual) epb.residual += b * M * ep.ld_residual;
    run_task<Kernel>(
        i0, i1, j0, j1, K, alpha,
        [&](int64_t i, int64_t m, int64_t k0, int64_t kc, float* dst) { pack_a<Kernel::MR>(Ab, i, m, k0, kc, dst); },
        [&](int64_t k0, int64_t kc, int64_t j, int64_t n, float* dst) { pack_b_block<Kernel::NR>(Bb, k0, kc, j, n, dst); },
        beta, C + b * stride_c, ldc, epb);
  });
}

inline void check_gemm_args(const char* fn, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, int64_t lda,
                            int64_t ldb, int64_t ldc, const GemmEpilogue& ep) {
  if (M < 0 || N < 0 || K < 0) fail<ShapeError>(fn, ": negative size M=", M, " N=", N, " K=", K);
  const int64_t min_lda = ta == Trans::No ? K : M, min_ldb = tb == Trans::No ? N : K;
  if (lda < std::max<int64_t>(1, min_lda)) fail<UsageError>(fn, ": lda=", lda, " is below ", min_lda);
  if (ldb < std::max<int64_t>(1, min_ldb)) fail<UsageError>(fn, ": ldb=", ldb, " is below ", min_ldb);
  if (ldc < std::max<int64_t>(1, N)) fail<UsageError>(fn, ": ldc=", ldc, " is below N=", N);
  if (ep.residual && ep.ld_residual < N) fail<UsageError>(fn, ": ld_residual=", ep.ld_residual, " is below N=", N);
}

}  // namespace gemm_detail

// GEMM with a chosen micro-kernel and storage types for A and B (f32, f16, bf16; converted to
// f32 as they are packed). gemm() is this with the build's fastest kernel and f32 operands.
template <GemmMicroKernel Kernel = DefaultKernel, gemm_detail::StorageFloat TA = float,
          gemm_detail::StorageFloat TB = float>
void gemm_with(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const TA* A, int64_t lda,
               const TB* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue& ep = {}) {
  gemm_detail::check_gemm_args("gemm", ta, tb, M, N, K, lda, ldb, ldc, ep);
  gemm_detail::gemm_strided<Kernel>(1, M, N, K, alpha, gemm_detail::operand(ta, A, lda), 0,
                                    gemm_detail::operand(tb, B, ldb), 0, beta, C, ldc, 0, ep);
}

// The production entry point.
inline void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue& ep = {}) {
  gemm_with<DefaultKernel>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

// `batch` independent GEMMs of one shape: A_b = A + b·stride_a (elements; 0 shares one operand
// between all problems), likewise B and C. The epilogue's bias/row_bias are shared; its residual
// (if any) advances by M·ld_residual per problem. All problems' tiles share one parallel region.
inline void gemm_batched(Trans ta, Trans tb, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb, int64_t stride_b,
                         float beta, float* C, int64_t ldc, int64_t stride_c, const GemmEpilogue& ep = {}) {
  gemm_detail::check_gemm_args("gemm_batched", ta, tb, M, N, K, lda, ldb, ldc, ep);
  if (batch < 0) fail<ShapeError>("gemm_batched: negative batch ", batch);
  gemm_detail::gemm_strided<DefaultKernel>(batch, M, N, K, alpha, gemm_detail::operand(ta, A, lda), stride_a,
                                           gemm_detail::operand(tb, B, ldb), stride_b, beta, C, ldc, stride_c, ep);
}

// ---- tensor level ----------------------------------------------------------------------------

namespace gemm_detail {

// Call f with the typed data pointer of a f32/f16/bf16 CPU tensor; `what` names it in errors.
template <class F>
decltype(auto) visit_float_tensor(const Tensor& t, const char* what, F&& f) {
  if (t.device() != Device::CPU) fail<DeviceError>(what, " is ", t.str(), "; this op runs on the CPU");
  switch (t.dtype()) {
    case DType::F32: return f(static_cast<const float*>(t.data_ptr()));
    case DType::F16: return f(static_cast<const f16*>(t.data_ptr()));
    case DType::BF16: return f(static_cast<const bf16*>(t.data_ptr()));
    default: fail<ShapeError>(what, " is ", t.str(), "; expected f32, f16 or bf16");
  }
}

// A vector of `n` f32 values from a 1-D tensor of any float dtype (bias); copies only if needed.
inline Tensor as_f32_vector(const Tensor& t, int64_t n, const char* what) {
  if (t.dim() != 1 || t.size(0) != n) fail<ShapeError>(what, " is ", t.str(), "; expected [", n, "]");
  if (t.device() != Device::CPU) fail<DeviceError>(what, " is ", t.str(), "; this op runs on the CPU");
  return t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32);
}

// The batch dims [0, dim-2) of t as one count and one stride, if its strides allow it.
inline bool flat_batch(const Tensor& t, int64_t& count, int64_t& stride) {
  count = 1;
  stride = 0;
  for (int d = t.dim() - 3; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (count == 1) stride = t.stride(d);
    else if (t.stride(d) != stride * count) return false;
    count *= t.size(d);
  }
  return true;
}

}  // namespace gemm_detail

// torch.matmul for operands of 2 or more dims: a [..., M, K] · b [..., K, N] -> f32 [..., M, N].
// Batch dims must be equal or absent on one side (then that operand is shared). Any strides
// (transposed views included) are read in place; b may be f16/bf16, a is f32.
inline Tensor matmul(const Tensor& a, const Tensor& b) {
  using namespace gemm_detail;
  if (a.dim() < 2 || b.dim() < 2) fail<ShapeError>("matmul: operands need 2 or more dims, got ", a.str(), " and ", b.str());
  if (a.dtype() != DType::F32) fail<ShapeError>("matmul: a is ", a.str(), "; expected f32");
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  if (b.size(-2) != K) fail<ShapeError>("matmul: a ", a.str(), " and b ", b.str(), " disagree on the inner dim");
  Shape batch_shape;
  if (a.dim() > 2 && b.dim() > 2) {
    if (!std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin(), b.shape().end() - 2))
      fail<ShapeError>("matmul: batch dims of ", a.str(), " and ", b.str(), " differ (only equal or absent batch dims are supported)");
  }
  const Tensor& batched = a.dim() >= b.dim() ? a : b;
  for (int d = 0; d < batched.dim() - 2; ++d) batch_shape.push_back(batched.size(d));
  Tensor aa = a, bb = b;
  int64_t batch_a = 1, stride_a = 0, batch_b = 1, stride_b = 0;
  if (!flat_batch(aa, batch_a, stride_a)) aa = aa.contiguous(), flat_batch(aa, batch_a, stride_a);
  if (!flat_batch(bb, batch_b, stride_b)) bb = bb.contiguous(), flat_batch(bb, batch_b, stride_b);
  const int64_t batch = std::max(batch_a, batch_b);
  if (batch_a == 1) stride_a = 0;
  if (batch_b == 1) stride_b = 0;
  Shape out_shape = batch_shape;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, DType::F32);
  const Strided<float> A{aa.data<float>(), aa.stride(-2), aa.stride(-1)};
  visit_float_tensor(bb, "matmul: b", [&](auto* bp) {
    using TB = std::remove_const_t<std::remove_pointer_t<decltype(bp)>>;
    gemm_strided<DefaultKernel>(batch, M, N, K, 1.0f, A, stride_a, Strided<TB>{bp, bb.stride(-2), bb.stride(-1)}, stride_b,
                                0.0f, out.data<float>(), N, M * N, GemmEpilogue{});
  });
  return out;
}

// torch.nn.functional.linear followed by an activation: act(x · wᵀ + bias). x [..., in] f32;
// w [out, in] f32, f16 or bf16 (converted per packed panel, never copied whole); bias [out].
inline Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr, Activation act = Activation::None) {
  using namespace gemm_detail;
  if (x.dim() < 1) fail<ShapeError>("linear: input is ", x.str(), "; expected [..., in]");
  if (x.dtype() != DType::F32) fail<ShapeError>("linear: input is ", x.str(), "; expected f32");
  if (w.dim() != 2) fail<ShapeError>("linear: weight is ", w.str(), "; expected [out, in]");
  const int64_t in = x.size(-1), out_features = w.size(0);
  if (w.size(1) != in) fail<ShapeError>("linear: weight ", w.str(), " does not take input ", x.str());
  if (x.device() != Device::CPU) fail<DeviceError>("linear: input is ", x.str(), "; this op runs on the CPU");
  const Tensor rows = x.reshape({-1, in});
  Tensor b32;
  GemmEpilogue ep;
  ep.act = act;
  if (bias) {
    b32 = as_f32_vector(*bias, out_features, "linear: bias");
    ep.bias = b32.data<float>();
  }
  Shape out_shape = x.shape();
  out_shape[x.dim() - 1] = out_features;
  Tensor out = Tensor::empty(out_shape, DType::F32);
  const int64_t M = rows.size(0);
  const Strided<float> A{rows.data<float>(), rows.stride(0), rows.stride(1)};
  visit_float_tensor(w, "linear: weight", [&](auto* wp) {
    using TW = std::remove_const_t<std::remove_pointer_t<decltype(wp)>>;
    // B(k, n) = w[n, k]
    gemm_strided<DefaultKernel>(1, M, out_features, in, 1.0f, A, 0, Strided<TW>{wp, w.stride(1), w.stride(0)}, 0, 0.0f,
                                out.data<float>(), out_features, 0, ep);
  });
  return out;
}

}  // namespace genscope::ops
