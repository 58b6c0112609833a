// genscope/cuda/fft.hpp — 2-D FFTs on the GPU through cuFFT, with a plan cache.
//   fft2(x) = Σ_{i,j} x[i, j] e^{−2πi (u i / H + v j / W)}    (numpy.fft.fft2 / torch.fft.fft2, unnormalised)
// forward and inverse complex-to-complex (the inverse unnormalised too: divide by H·W, as
// numpy's ifft2 does, if needed) and real-to-complex (H × (W/2 + 1) outputs), batched over
// contiguous planes. Plans cost milliseconds to make and hold work memory, so they are cached per
// (device, kind, batch, H, W) and host thread; execution is ordered on the caller's stream.
// fftshift and frequency masks are kernels/fft.cuh. Only with GENSCOPE_WITH_CUDA.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>

#include "genscope/cuda/runtime.hpp"

#if defined(GENSCOPE_WITH_CUDA)
#include <cufft.h>

namespace genscope::cuda {

inline const char* cufft_status_name(cufftResult rc) {
  switch (rc) {
    case CUFFT_SUCCESS: return "success";
    case CUFFT_INVALID_PLAN: return "invalid plan";
    case CUFFT_ALLOC_FAILED: return "allocation failed";
    case CUFFT_INVALID_VALUE: return "invalid value";
    case CUFFT_INTERNAL_ERROR: return "internal error";
    case CUFFT_EXEC_FAILED: return "execution failed";
    case CUFFT_SETUP_FAILED: return "setup failed";
    case CUFFT_INVALID_SIZE: return "invalid size";
    default: return "cuFFT error";
  }
}
inline void check_cufft(cufftResult rc, const char* call, const char* file, int line) {
  if (rc != CUFFT_SUCCESS) throw_cuda_error(call, file, line, cufft_status_name(rc));
}
#define GENSCOPE_CUFFT_CHECK(call) ::genscope::cuda::check_cufft((call), #call, __FILE__, __LINE__)

enum class FftKind { C2C, R2C };

class FftPlanCache {
 public:
  static FftPlanCache& current() {
    thread_local FftPlanCache cache;
    return cache;
  }
  FftPlanCache() = default;
  FftPlanCache(const FftPlanCache&) = delete;
  FftPlanCache& operator=(const FftPlanCache&) = delete;
  ~FftPlanCache() {
    for (auto& [key, plan] : plans_) cufftDestroy(plan);
  }

  cufftHandle plan(FftKind kind, int batch, int height, int width) {
    const auto key = std::make_tuple(current_device(), kind, batch, height, width);
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    cufftHandle plan = 0;
    int dims[2] = {height, width};
    GENSCOPE_CUFFT_CHECK(cufftPlanMany(&plan, 2, dims, nullptr, 1, 0, nullptr, 1, 0, kind == FftKind::C2C ? CUFFT_C2C : CUFFT_R2C, batch));
    plans_.emplace(key, plan);
    return plan;
  }
  size_t size() const { return plans_.size(); }

 private:
  std::map<std::tuple<int, FftKind, int, int, int>, cufftHandle> plans_;
};

// in, out [batch, height, width] complex (float2) device arrays; in-place allowed.
inline void fft2(const float2* in, float2* out, int batch, int height, int width, bool inverse, cudaStream_t stream) {
  if (batch < 1 || height < 1 || width < 1) fail<ShapeError>("cuda::fft2: empty shape ", batch, "x", height, "x", width);
  const cufftHandle plan = FftPlanCache::current().plan(FftKind::C2C, batch, height, width);
  GENSCOPE_CUFFT_CHECK(cufftSetStream(plan, stream));
  GENSCOPE_CUFFT_CHECK(cufftExecC2C(plan, reinterpret_cast<cufftComplex*>(const_cast<float2*>(in)), reinterpret_cast<cufftComplex*>(out),
                                    inverse ? CUFFT_INVERSE : CUFFT_FORWARD));
}

// in [batch, height, width] real → out [batch, height, width / 2 + 1] complex.
inline void rfft2(const float* in, float2* out, int batch, int height, int width, cudaStream_t stream) {
  if (batch < 1 || height < 1 || width < 1) fail<ShapeError>("cuda::rfft2: empty shape ", batch, "x", height, "x", width);
  const cufftHandle plan = FftPlanCache::current().plan(FftKind::R2C, batch, height, width);
  GENSCOPE_CUFFT_CHECK(cufftSetStream(plan, stream));
  GENSCOPE_CUFFT_CHECK(cufftExecR2C(plan, const_cast<float*>(in), reinterpret_cast<cufftComplex*>(out)));
}

}  // namespace genscope::cuda

#endif  // GENSCOPE_WITH_CUDA
