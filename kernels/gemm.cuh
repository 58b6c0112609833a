// kernels/gemm.cuh — GEMM epilogues, and a tiled f32 GEMM that fuses them.
//   C[M,N] = act(alpha · A[M,K] · op(B) + bias[N]) + residual[M,N]      (row-major; op(B) = B or Bᵀ)
// the contract of genscope/ops/gemm.hpp (beta = 0). PyTorch's Linear is op(B) = Bᵀ, B = weight
// [out, in].
//
// epilogue_kernel applies bias, activation and residual to a C that cuBLAS(Lt) produced (the
// fast path for f16/bf16 and TF32 on tensor cores); gemm_kernel is the portable SIMT GEMM with the
// same epilogue fused, the CUDA-core baseline the benchmark compares with cuBLAS.
//
// gemm_kernel: a 64×64 tile of C per block of 16×16 threads, each thread a 4×4 register tile at
// rows ty + 16i, cols tx + 16j (so shared-memory reads are broadcasts or conflict-free and the
// stores coalesce). K is walked 16 at a time through shared memory; A's tile is stored k-major.
#pragma once

#include "activation.cuh"

namespace genscope::kernels {

// ---- epilogue on an existing C ----------------------------------------------------------------------
constexpr int kEpilogueThreads = 256;

template <StorageType T, Activation A>
__global__ void __launch_bounds__(kEpilogueThreads)
    epilogue_kernel(T* __restrict__ c, int64_t ldc, const float* __restrict__ bias, const T* __restrict__ residual,
                    int64_t ld_residual, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols, stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t i = idx / cols, j = idx % cols;
    float v = to_float(c[i * ldc + j]);
    if (bias) v += bias[j];
    v = activate<A>(v);
    if (residual) v += to_float(residual[i * ld_residual + j]);
    c[i * ldc + j] = from_float<T>(v);
  }
}

// C [rows, cols] with leading dimension ldc, in place; bias [cols] f32 or null; residual
// [rows, cols] (leading dimension ld_residual) or null.
template <StorageType T>
void gemm_epilogue(T* c, int64_t ldc, const float* bias, Activation act, const T* residual, int64_t ld_residual,
                   int64_t rows, int64_t cols, cudaStream_t stream) {
  const int64_t blocks = ceil_div(rows * cols, kEpilogueThreads);
  dispatch_activation(act, [&]<Activation A>() {
    launch("gemm_epilogue", epilogue_kernel<T, A>, dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096)),
           dim3(kEpilogueThreads), 0, stream, c, ldc, bias, residual, ld_residual, rows, cols);
  });
}

// ---- tiled f32 GEMM with the epilogue fused --------------------------------------------------------
constexpr int kGemmTile = 64, kGemmK = 16, kGemmThreadsX = 16, kGemmPerThread = 4;

struct GemmArgs {
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
  int m, n, k;
  float alpha;
  const float* bias;
  const float* residual;
  int64_t ld_residual;
};

template <bool kTransB, Activation A>
__global__ void __launch_bounds__(kGemmThreadsX * kGemmThreadsX) gemm_kernel(GemmArgs g) {
  __shared__ float a_tile[kGemmK][kGemmTile + 4];  // k-major: a_tile[kk][row]
  __shared__ float b_tile[kGemmK][kGemmTile + 4];  // b_tile[kk][col]
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kGemmThreadsX + tx;
  const int row0 = blockIdx.y * kGemmTile, col0 = blockIdx.x * kGemmTile;
  float acc[kGemmPerThread][kGemmPerThread] = {};

  for (int k0 = 0; k0 < g.k; k0 += kGemmK) {
    // 1024 elements of each tile, 4 per thread; out-of-range elements are zero.
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int idx = tid + e * 256;
      {
        const int r = idx / kGemmK, kk = idx % kGemmK;  // consecutive threads walk k: coalesced
        const int gr = row0 + r, gk = k0 + kk;
        a_tile[kk][r] = gr < g.m && gk < g.k ? g.a[gr * g.lda + gk] : 0.0f;
      }
      if constexpr (kTransB) {
        const int c = idx / kGemmK, kk = idx % kGemmK;
        const int gc = col0 + c, gk = k0 + kk;
        b_tile[kk][c] = gc < g.n && gk < g.k ? g.b[gc * g.ldb + gk] : 0.0f;
      } else {
        const int kk = idx / kGemmTile, c = idx % kGemmTile;
        const int gc = col0 + c, gk = k0 + kk;
        b_tile[kk][c] = gc < g.n && gk < g.k ? g.b[gk * g.ldb + gc] : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kGemmK; ++kk) {
      float a[kGemmPerThread], b[kGemmPerThread];
#pragma unroll
      for (int i = 0; i < kGemmPerThread; ++i) a[i] = a_tile[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < kGemmPerThread; ++j) b[j] = b_tile[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < kGemmPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kGemmPerThread; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < kGemmPerThread; ++i)
#pragma unroll
    for (int j = 0; j < kGemmPerThread; ++j) {
      const int r = row0 + ty + 16 * i, c = col0 + tx + 16 * j;
      if (r >= g.m || c >= g.n) continue;
      float v = g.alpha * acc[i][j];
      if (g.bias) v += g.bias[c];
      v = activate<A>(v);
      if (g.residual) v += g.residual[r * g.ld_residual + c];
      g.c[r * g.ldc + c] = v;
    }
}

template <bool kTransB>
void gemm_f32(const GemmArgs& g, Activation act, cudaStream_t stream) {
  if (g.m < 0 || g.n < 0 || g.k < 0) fail<ShapeError>("kernels::gemm_f32: negative size M=", g.m, " N=", g.n, " K=", g.k);
  const dim3 grid(static_cast<unsigned>(ceil_div(g.n, kGemmTile)), static_cast<unsigned>(ceil_div(g.m, kGemmTile)));
  dispatch_activation(act, [&]<Activation A>() {
    launch("gemm_f32", gemm_kernel<kTransB, A>, grid, dim3(kGemmThreadsX, kGemmThreadsX), 0, stream, g);
  });
}

}  // namespace genscope::kernels
