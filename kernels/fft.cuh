// kernels/fft.cuh — the spectrum plumbing around cuFFT: fftshift / ifftshift over the last two
// dims, and radial frequency masks.
//
// fftshift moves the zero frequency to the centre: out[(i + ⌊H/2⌋) mod H][(j + ⌊W/2⌋) mod W] =
// in[i][j] (numpy.fft.fftshift); ifftshift shifts by ⌈H/2⌉ (= ⌊H/2⌋ for even H) and undoes it.
// One thread per element: a gather from the shifted source index, so writes coalesce.
//
// The radial band mask acts on a centred spectrum: for frequency (u, v) = ((i − ⌊H/2⌋)/H,
// (j − ⌊W/2⌋)/W) in cycles per pixel, radius r = √(u² + v²); keep when r_low ≤ r < r_high (a
// band-pass; `invert` keeps the complement: a band-stop), else zero. SPAI-style low/high-pass
// filtering is r_low = 0 (low-pass) or invert with r_low = 0 (high-pass).
#pragma once

#include "common.cuh"

namespace genscope::kernels {

constexpr int kFftThreads = 256;

template <class T>
__global__ void __launch_bounds__(kFftThreads)
    shift2d_kernel(const T* __restrict__ in, T* __restrict__ out, int64_t batch, int height, int width, int shift_h,
                   int shift_w) {
  const int64_t plane = int64_t{height} * width, n = batch * plane;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t b = idx / plane;
    const int i = static_cast<int>(idx % plane / width), j = static_cast<int>(idx % width);
    // out[i][j] = in[(i − shift_h) mod H][(j − shift_w) mod W]
    const int si = (i - shift_h + height) % height, sj = (j - shift_w + width) % width;
    out[idx] = in[b * plane + int64_t{si} * width + sj];
  }
}

// in, out [batch, height, width] of T (float, or float2 for complex); out must not alias in.
template <class T>
void fftshift2d(const T* in, T* out, int64_t batch, int height, int width, bool inverse, cudaStream_t stream) {
  if (height < 1 || width < 1) fail<ShapeError>("kernels::fftshift2d: empty plane ", height, "x", width);
  const int shift_h = inverse ? (height + 1) / 2 : height / 2, shift_w = inverse ? (width + 1) / 2 : width / 2;
  const int64_t blocks = ceil_div(batch * height * width, kFftThreads);
  launch(inverse ? "ifftshift2d" : "fftshift2d", shift2d_kernel<T>, dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096)),
         dim3(kFftThreads), 0, stream, in, out, batch, height, width, shift_h, shift_w);
}

__host__ __device__ inline float radial_frequency(int i, int j, int height, int width) {
  const float u = static_cast<float>(i - height / 2) / static_cast<float>(height);
  const float v = static_cast<float>(j - width / 2) / static_cast<float>(width);
  return sqrtf(u * u + v * v);
}

// static: not a template, and several .cu files of one program may include this header.
static __global__ void __launch_bounds__(kFftThreads)
    radial_mask_kernel(float2* __restrict__ spectrum, int64_t batch, int height, int width, float r_low, float r_high, bool invert) {
  const int64_t plane = int64_t{height} * width, n = batch * plane;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t idx = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int i = static_cast<int>(idx % plane / width), j = static_cast<int>(idx % width);
    const float r = radial_frequency(i, j, height, width);
    const bool in_band = r >= r_low && r < r_high;
    if (in_band == invert) spectrum[idx] = make_float2(0.0f, 0.0f);
  }
}

// spectrum [batch, height, width] complex (centred, i.e. after fftshift2d), masked in place.
inline void radial_mask(float2* spectrum, int64_t batch, int height, int width, float r_low, float r_high, bool invert,
                        cudaStream_t stream) {
  const int64_t blocks = ceil_div(batch * height * width, kFftThreads);
  launch("radial_mask", radial_mask_kernel, dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096)), dim3(kFftThreads), 0,
         stream, spectrum, batch, height, width, r_low, r_high, invert);
}

}  // namespace genscope::kernels
