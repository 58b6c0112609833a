// tests/simt/check.hpp — what the kernel tests share: random data, storage-dtype rounding, the
// error measures and the f16/bf16 rule, and a loop over the resume orders. Include it first.
//
// The same test sources build two ways: with g++ against the SIMT emulator (tests/simt/simt.hpp;
// label simt), and with nvcc for a GPU (tests/gpu/test_gpu_*.cu), where Vec<T> is a std::vector
// in CUDA managed memory, so host and kernels share it, and launches synchronise
// (GENSCOPE_KERNELS_SYNCHRONOUS) before the test reads the results.
//
// Error rules (tests/test_kernels_*.cpp):
//   f32:       relative_error(kernel, reference) ≤ 1e-5, normwise: max|got − ref| / max|ref|
//              (elementwise relative error is meaningless where ref crosses zero).
//   f16/bf16:  the kernel's max error against the f64 reference (computed from the same
//              dtype-rounded inputs) is at most 2× that of the same computation "rounded through
//              the dtype" — the f64 result with PyTorch's dtype-typed intermediates and output
//              rounded to the dtype — FlashAttention's rule against PyTorch in that dtype.
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#ifndef GENSCOPE_KERNELS_SYNCHRONOUS
#define GENSCOPE_KERNELS_SYNCHRONOUS 1
#endif
#else
#include "simt/simt.hpp"  // before the kernels: the CUDA qualifiers and intrinsics
#endif

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>
#include <random>
#include <vector>

#include "genscope/core/half.hpp"

namespace simt_test {

#if defined(__CUDACC__)
// Memory both the host and the GPU address: the tests fill and check it on the host.
template <class T>
struct ManagedAllocator {
  using value_type = T;
  ManagedAllocator() = default;
  template <class U>
  ManagedAllocator(const ManagedAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = nullptr;
    if (cudaMallocManaged(&p, n * sizeof(T) + 1) != cudaSuccess) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { cudaFree(p); }
  template <class U>
  bool operator==(const ManagedAllocator<U>&) const { return true; }
};
template <class T>
using Vec = std::vector<T, ManagedAllocator<T>>;
#else
template <class T>
using Vec = std::vector<T>;
#endif

inline Vec<float> random_normal(size_t n, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  Vec<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline Vec<float> random_uniform(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Vec<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// ---- storage dtypes ----
template <class T>
float to_f32(T v) {
  if constexpr (std::is_same_v<T, genscope::f16>) return genscope::f16_to_f32(v.bits);
  else if constexpr (std::is_same_v<T, genscope::bf16>) return genscope::bf16_to_f32(v.bits);
  else return v;
}
template <class T>
T from_f32(float v) {
  if constexpr (std::is_same_v<T, genscope::f16>) return genscope::f16{genscope::f32_to_f16(v)};
  else if constexpr (std::is_same_v<T, genscope::bf16>) return genscope::bf16{genscope::f32_to_bf16(v)};
  else return v;
}
// The value x takes when stored in T (double → f32 → T, as PyTorch's .to(dtype) from f32).
template <class T>
double round_to(double x) {
  return to_f32(from_f32<T>(static_cast<float>(x)));
}
template <class T>
Vec<T> to_storage(const Vec<float>& v) {
  Vec<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_f32<T>(v[i]);
  return out;
}
template <class T>
Vec<float> to_floats(const Vec<T>& v) {
  Vec<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_f32(v[i]);
  return out;
}
// The inputs as the kernel sees them in dtype T (rounded), back in f32.
template <class T>
Vec<float> rounded(const Vec<float>& v) {
  return to_floats(to_storage<T>(v));
}

// ---- errors ----
template <class Got, class Ref>
double max_abs_error(const Got& got, const Ref& ref) {
  REQUIRE(got.size() == ref.size());
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::abs(static_cast<double>(got[i]) - static_cast<double>(ref[i]));
    if (!(e <= worst)) worst = e;  // a NaN makes the error NaN, which fails every bound
  }
  return worst;
}
template <class Ref>
double max_abs(const Ref& ref) {
  double m = 0;
  for (const auto& r : ref) m = std::max(m, std::abs(static_cast<double>(r)));
  return m;
}
// Normwise relative error: max|got − ref| / max|ref|.
template <class Got, class Ref>
double relative_error(const Got& got, const Ref& ref) {
  return max_abs_error(got, ref) / std::max(max_abs(ref), 1e-30);
}

// The f16/bf16 rule: the kernel's error vs ≤ 2× the dtype-rounded computation's error, both
// measured against the f64 reference. A floor of 1e-7·max|ref| covers results that happen to be
// exactly representable (a rounded computation with zero error).
inline void check_dtype_rule(double kernel_error, double rounded_error, double reference_scale) {
  INFO("kernel error " << kernel_error << ", dtype-rounded computation " << rounded_error);
  CHECK(kernel_error <= 2.0 * rounded_error + 1e-7 * reference_scale);
}

// Runs `body` once under each resume order (forward, reverse, seeded random); once on a GPU.
template <class F>
void for_each_order(F&& body) {
#if defined(__CUDACC__)
  body();
#else
  for (simt::Order order : simt::kAllOrders) {
    simt::ScopedOptions scoped(order, 12345);
    INFO("resume order " << simt::order_name(order));
    body();
  }
#endif
}

}  // namespace simt_test
