// kernels/common.cuh — what every genscope kernel shares: the launch helper, dynamic shared
// memory, f16/bf16 loads and stores, warp and block reductions.
//
// One source, two back ends: nvcc compiles the kernels natively, and g++ compiles them against
// tests/simt/simt.hpp (included first), which runs each CUDA thread as a fiber on the CPU. So
// kernels use only what both provide: the *_sync warp intrinsics with explicit masks,
// __syncthreads() reached by every thread of the block, and GENSCOPE_DYNAMIC_SMEM for dynamic
// shared memory. Host code never writes <<<>>>; it calls kernels::launch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <cmath>

#include "genscope/core/error.hpp"
#include "genscope/core/half.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#elif !defined(SIMT_CPU_EMULATION)
#error "compile genscope's kernels with nvcc, or include tests/simt/simt.hpp before them"
#endif

// GENSCOPE_DYNAMIC_SMEM(float, buf): `float* buf` points at this block's dynamic shared memory.
#if defined(__CUDACC__)
#define GENSCOPE_DYNAMIC_SMEM(T, name)                               \
  extern __shared__ __align__(16) unsigned char genscope_smem_[];   \
  T* name = reinterpret_cast<T*>(genscope_smem_)
#else
#define GENSCOPE_DYNAMIC_SMEM(T, name) T* name = ::simt::dynamic_shared<T>()
#endif

namespace genscope::kernels {

constexpr unsigned kFullMask = 0xffffffffu;

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// kernel<<<grid, block, smem, stream>>>(args...) under nvcc, simt::launch under the emulator.
// A failed launch throws DeviceError naming the kernel and its configuration. Launches are
// asynchronous on a GPU unless GENSCOPE_KERNELS_SYNCHRONOUS is defined; emulated ones never are.
template <class... Params, class... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;  // empty tensor: nothing to launch
#if defined(__CUDACC__)
  if (smem > 48 * 1024) {  // above 48 KiB the kernel must opt in (sm_80: up to 163 KiB, sm_90: 227 KiB)
    const cudaError_t rc = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (rc != cudaSuccess) fail<DeviceError>(name, ": cudaFuncSetAttribute(", smem, " bytes of shared memory): ", cudaGetErrorString(rc));
  }
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
  const cudaError_t rc = cudaGetLastError();
  if (rc != cudaSuccess)
    fail<DeviceError>(name, "<<<(", grid.x, ",", grid.y, ",", grid.z, "), (", block.x, ",", block.y, ",", block.z, "), ",
                      smem, ">>>: ", cudaGetErrorString(rc));
#if defined(GENSCOPE_KERNELS_SYNCHRONOUS)
  // Tests and debugging: wait for the kernel, so a fault is reported by the launch that caused it.
  const cudaError_t done = cudaStreamSynchronize(stream);
  if (done != cudaSuccess) fail<DeviceError>(name, ": ", cudaGetErrorString(done));
#endif
#else
  (void)stream;
  simt::launch_named(name, kernel, grid, block, smem, std::forward<Args>(args)...);
#endif
}

// ---- storage dtypes: f32 compute, f16/bf16 storage (genscope::f16/bf16 hold the bits) ----------
__host__ __device__ __forceinline__ float to_float(float x) { return x; }
__host__ __device__ __forceinline__ float to_float(f16 x) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(x.bits));
#else
  return f16_to_f32(x.bits);
#endif
}
__host__ __device__ __forceinline__ float to_float(bf16 x) {
#if defined(__CUDA_ARCH__)
  return __bfloat162float(__ushort_as_bfloat16(x.bits));
#else
  return bf16_to_f32(x.bits);
#endif
}

// Round to nearest even, as PyTorch's .to(dtype) and core/half.hpp do.
template <class T>
__host__ __device__ __forceinline__ T from_float(float x) {
  if constexpr (sizeof(T) == 4) {
    return x;
  } else if constexpr (std::is_same_v<T, f16>) {
#if defined(__CUDA_ARCH__)
    return f16{__half_as_ushort(__float2half_rn(x))};
#else
    return f16{f32_to_f16(x)};
#endif
  } else {
#if defined(__CUDA_ARCH__)
    return bf16{__bfloat16_as_ushort(__float2bfloat16_rn(x))};
#else
    return bf16{f32_to_bf16(x)};
#endif
  }
}

template <class T>
concept StorageType = std::is_same_v<T, float> || std::is_same_v<T, f16> || std::is_same_v<T, bf16>;

// ---- reductions ---------------------------------------------------------------------------------
// Butterfly (xor) reductions: after log2(32) steps every lane holds the result.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Sum (or max) over a 1-D block whose size is a multiple of 32; every thread gets the result.
// Warps reduce in registers, warp 0 reduces the per-warp partials. The trailing barrier lets the
// caller reduce again right away without overwriting partials still being read.
template <bool kMax>
__device__ float block_reduce(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const float identity = kMax ? -INFINITY : 0.0f;
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < warps ? partial[lane] : identity;
    t = kMax ? warp_max(t) : warp_sum(t);
    if (lane == 0) total = t;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();
  return result;
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

}  // namespace genscope::kernels
