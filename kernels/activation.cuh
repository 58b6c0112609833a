// kernels/activation.cuh — the pointwise activations on the device, chosen at compile time.
//
// The same definitions as genscope/ops/activation.hpp (PyTorch's), in f32:
//   GELU (erf)   x/2 · (1 + erf(x/√2))                         GELU (tanh)  x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))
//   quick-GELU   x · σ(1.702x)                                 SiLU         x · σ(x)
// σ(x) = 1/(1 + e^−x) uses expf, not __expf: __expf's error (2 ulp + 2^−21.4 absolute) would
// dominate the 1e-5 tolerance the kernels are held to for large |x|.
#pragma once

#include "common.cuh"
#include "genscope/ops/activation.hpp"

namespace genscope::kernels {

using ops::Activation;

template <Activation A>
__host__ __device__ __forceinline__ float activate(float x) {
  if constexpr (A == Activation::None) {
    return x;
  } else if constexpr (A == Activation::Relu) {
    return x > 0.0f ? x : 0.0f;
  } else if constexpr (A == Activation::Gelu) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  } else if constexpr (A == Activation::GeluTanh) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  } else if constexpr (A == Activation::QuickGelu) {
    return x / (1.0f + expf(-1.702f * x));
  } else {
    static_assert(A == Activation::Silu);
    return x / (1.0f + expf(-x));
  }
}

// Runtime Activation -> compile-time template argument: f.template operator()<A>().
template <class F>
decltype(auto) dispatch_activation(Activation a, F&& f) {
  switch (a) {
    case Activation::None: return f.template operator()<Activation::None>();
    case Activation::Relu: return f.template operator()<Activation::Relu>();
    case Activation::Gelu: return f.template operator()<Activation::Gelu>();
    case Activation::GeluTanh: return f.template operator()<Activation::GeluTanh>();
    case Activation::QuickGelu: return f.template operator()<Activation::QuickGelu>();
    case Activation::Silu: return f.template operator()<Activation::Silu>();
  }
  fail<UsageError>("unknown activation ", static_cast<int>(a));
}

}  // namespace genscope::kernels
