// kernels/elementwise.cuh — pointwise kernels: activations, binary ops with a broadcast operand,
// dtype casts. f32, f16 and bf16 storage; arithmetic always in f32, rounded once on store.
//
// Each is a grid-stride loop (one element per thread per step): memory-bound, so the only things
// that matter on the GPU are coalesced accesses (consecutive threads, consecutive elements) and
// enough blocks in flight; 256 threads × up to 4 waves of SMs.
#pragma once

#include "activation.cuh"

namespace genscope::kernels {

constexpr int kElementwiseThreads = 256;

inline unsigned elementwise_blocks(int64_t n) {
  const int64_t blocks = ceil_div(n, kElementwiseThreads);
  return static_cast<unsigned>(blocks < 4096 ? blocks : 4096);  // grid-stride covers the rest
}

// ---- y = act(x) -----------------------------------------------------------------------------------
template <StorageType T, Activation A>
__global__ void __launch_bounds__(kElementwiseThreads) activation_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = from_float<T>(activate<A>(to_float(x[i])));
}

template <StorageType T>
void activation(Activation act, const T* x, T* y, int64_t n, cudaStream_t stream) {
  dispatch_activation(act, [&]<Activation A>() {
    launch("activation", activation_kernel<T, A>, dim3(elementwise_blocks(n)), dim3(kElementwiseThreads), 0, stream, x, y, n);
  });
}

// ---- y = a ∘ b, b repeating with period `b_period` (b_period = n: same shape; = C: a per-column
// vector broadcast over rows, e.g. a bias) --------------------------------------------------------
enum class BinaryOp { Add, Sub, Mul, Div };

template <BinaryOp Op>
__host__ __device__ __forceinline__ float apply_binary(float a, float b) {
  if constexpr (Op == BinaryOp::Add) return a + b;
  else if constexpr (Op == BinaryOp::Sub) return a - b;
  else if constexpr (Op == BinaryOp::Mul) return a * b;
  else return a / b;
}

template <StorageType T, BinaryOp Op>
__global__ void __launch_bounds__(kElementwiseThreads)
    binary_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, int64_t n, int64_t b_period) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    y[i] = from_float<T>(apply_binary<Op>(to_float(a[i]), to_float(b[i % b_period])));
}

template <StorageType T>
void binary(BinaryOp op, const T* a, const T* b, T* y, int64_t n, int64_t b_period, cudaStream_t stream) {
  if (b_period <= 0 || (n > 0 && n % b_period != 0))
    fail<ShapeError>("kernels::binary: b's period ", b_period, " does not divide n = ", n);
  const dim3 grid(elementwise_blocks(n)), block(kElementwiseThreads);
  switch (op) {
    case BinaryOp::Add: launch("binary_add", binary_kernel<T, BinaryOp::Add>, grid, block, 0, stream, a, b, y, n, b_period); break;
    case BinaryOp::Sub: launch("binary_sub", binary_kernel<T, BinaryOp::Sub>, grid, block, 0, stream, a, b, y, n, b_period); break;
    case BinaryOp::Mul: launch("binary_mul", binary_kernel<T, BinaryOp::Mul>, grid, block, 0, stream, a, b, y, n, b_period); break;
    case BinaryOp::Div: launch("binary_div", binary_kernel<T, BinaryOp::Div>, grid, block, 0, stream, a, b, y, n, b_period); break;
  }
}

// ---- y = To(x) ------------------------------------------------------------------------------------
template <StorageType From, StorageType To>
__global__ void __launch_bounds__(kElementwiseThreads) cast_kernel(const From* __restrict__ x, To* __restrict__ y, int64_t n) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) y[i] = from_float<To>(to_float(x[i]));
}

template <StorageType From, StorageType To>
void cast(const From* x, To* y, int64_t n, cudaStream_t stream) {
  launch("cast", cast_kernel<From, To>, dim3(elementwise_blocks(n)), dim3(kElementwiseThreads), 0, stream, x, y, n);
}

}  // namespace genscope::kernels
