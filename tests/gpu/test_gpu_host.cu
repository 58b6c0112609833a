// GPU-only cases for the CUDA host layer (part of test_gpu; needs a GPU, not run by ctest):
// cuBLASLt GEMM in each precision against ops::gemm_reference, cuDNN conv2d against the direct
// sum, cuFFT against a DFT in double, the memory pool, and tensor ops dispatched to the GPU.
// Tolerances: f32 1e-5 normwise; TF32 inputs keep 10 mantissa bits (≈ 2^-11 relative per
// product) and f16/bf16 outputs round to 11/8 bits, so those are held to 1e-2 / 2e-2.
#include "simt/check.hpp"  // first: under nvcc, managed-memory Vec and synchronous launches

#include <complex>

#include "genscope/cuda/blas.hpp"
#include "genscope/cuda/cudnn.hpp"
#include "genscope/cuda/device.hpp"
#include "genscope/cuda/fft.hpp"
#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/ops.hpp"
#include "genscope/ops/gemm.hpp"
#include "genscope/ops/softmax.hpp"

using namespace genscope;
using namespace simt_test;

TEST_SUITE("gpu_host") {

TEST_CASE("cuBLASLt GEMM matches the reference in f32, tf32, f16 and bf16, transposed or not") {
  const int m = 65, n = 47, k = 129;
  const auto a = random_normal(m * k, 1), b = random_normal(k * n, 2), bias = random_normal(n, 3);
  for (auto [precision, tolerance] : {std::pair{cuda::GemmPrecision::F32, 1e-5}, {cuda::GemmPrecision::TF32, 1e-2},
                                      {cuda::GemmPrecision::F16, 1e-2}, {cuda::GemmPrecision::BF16, 2e-2}})
    for (bool trans_b : {false, true}) {
      INFO("precision " << static_cast<int>(precision) << " transB " << trans_b);
      const int ldb = trans_b ? k : n;
      Vec<float> bt(b.size());  // B as [n, k] when transposed
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < n; ++j) bt[trans_b ? j * k + i : i * n + j] = b[i * n + j];
      Vec<float> ref(m * n), got(m * n);
      ops::GemmEpilogue ep{bias.data(), ops::Activation::Relu, nullptr, 0};
      ops::gemm_reference(ops::Trans::No, trans_b ? ops::Trans::Yes : ops::Trans::No, m, n, k, 1.0f, a.data(), k, bt.data(), ldb,
                          0.0f, ref.data(), n, ep);
      auto run = [&]<class T>() {
        const auto as = to_storage<T>(a), bs = to_storage<T>(bt);
        Vec<T> c(m * n);
        cuda::gemm(ops::Trans::No, trans_b ? ops::Trans::Yes : ops::Trans::No, m, n, k, 1.0f, as.data(), k, bs.data(), ldb, 0.0f,
                   c.data(), n, precision, nullptr, bias.data(), ops::Activation::Relu);
        GENSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
        got = to_floats(c);
      };
      if (precision == cuda::GemmPrecision::F16) run.operator()<f16>();
      else if (precision == cuda::GemmPrecision::BF16) run.operator()<bf16>();
      else run.operator()<float>();
      CHECK(relative_error(got, ref) <= tolerance);
    }
}

TEST_CASE("cuDNN conv2d matches the direct sum with padding, stride and groups") {
  cuda::Conv2dShape s{2, 4, 9, 7, 6, 3, 3};
  s.pad_h = s.pad_w = 1;
  s.stride_h = 2;
  s.groups = 2;
  const int oh = s.out_h(), ow = s.out_w(), cpg = s.c / s.groups, kpg = s.k / s.groups;
  const auto x = random_normal(size_t(s.n) * s.c * s.h * s.w, 4), w = random_normal(size_t(s.k) * cpg * s.r * s.s, 5),
             bias = random_normal(s.k, 6);
  Vec<float> y(size_t(s.n) * s.k * oh * ow);
  cuda::conv2d(s, DType::F32, x.data(), w.data(), bias.data(), y.data(), nullptr);
  GENSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
  Vec<double> ref(y.size());
  for (int n = 0; n < s.n; ++n)
    for (int k = 0; k < s.k; ++k)
      for (int p = 0; p < oh; ++p)
        for (int q = 0; q < ow; ++q) {
          double acc = bias[k];
          const int g = k / kpg;
          for (int c = 0; c < cpg; ++c)
            for (int r = 0; r < s.r; ++r)
              for (int t = 0; t < s.s; ++t) {
                const int i = p * s.stride_h - s.pad_h + r, j = q * s.stride_w - s.pad_w + t;
                if (i < 0 || i >= s.h || j < 0 || j >= s.w) continue;
                acc += double(x[((size_t(n) * s.c + g * cpg + c) * s.h + i) * s.w + j]) * w[((size_t(k) * cpg + c) * s.r + r) * s.s + t];
              }
          ref[((size_t(n) * s.k + k) * oh + p) * ow + q] = acc;
        }
  CHECK(relative_error(y, ref) <= 1e-5);
}

TEST_CASE("cuFFT fft2 matches a DFT in double and reuses its cached plan") {
  const int batch = 2, h = 6, w = 10;
  const auto re = random_normal(batch * h * w, 7), im = random_normal(batch * h * w, 8);
  Vec<float2> x(batch * h * w), y(batch * h * w);
  for (size_t i = 0; i < x.size(); ++i) x[i] = make_float2(re[i], im[i]);
  cuda::fft2(x.data(), y.data(), batch, h, w, false, nullptr);
  cuda::fft2(x.data(), y.data(), batch, h, w, false, nullptr);
  GENSCOPE_CUDA_CHECK(cudaDeviceSynchronize());
  CHECK(cuda::FftPlanCache::current().size() == 1);
  Vec<double> got, ref;
  for (int b = 0; b < batch; ++b)
    for (int u = 0; u < h; ++u)
      for (int v = 0; v < w; ++v) {
        std::complex<double> acc = 0;
        for (int i = 0; i < h; ++i)
          for (int j = 0; j < w; ++j)
            acc += std::complex<double>(re[(b * h + i) * w + j], im[(b * h + i) * w + j]) *
                   std::polar(1.0, -2 * M_PI * (double(u * i) / h + double(v * j) / w));
        ref.push_back(acc.real());
        ref.push_back(acc.imag());
        got.push_back(y[(b * h + u) * w + v].x);
        got.push_back(y[(b * h + u) * w + v].y);
      }
  CHECK(relative_error(got, ref) <= 1e-5);
}

TEST_CASE("the memory pool hands freed memory back out on the same stream") {
  cuda::Stream stream;
  cuda::MemoryPool& pool = cuda::MemoryPool::for_device(cuda::current_device());
  void* first = nullptr;
  {
    cuda::DeviceBuffer buffer(1 << 20, stream);
    first = buffer.data();
  }
  cuda::DeviceBuffer again(1 << 20, stream);
  CHECK(again.data() == first);
  CHECK(pool.reserved_bytes() >= (1u << 20));
}

TEST_CASE("a tensor op on CUDA tensors runs on the GPU and matches the CPU op") {
  Tensor x = Tensor::empty({3, 77}, DType::F32);
  const auto values = random_normal(3 * 77, 9);
  std::copy(values.begin(), values.end(), x.data<float>());
  const Tensor on_gpu = cuda::softmax(cuda::to_device(x, Device::CUDA));
  CHECK(on_gpu.device() == Device::CUDA);
  const Tensor back = cuda::to_device(on_gpu, Device::CPU), expected = ops::softmax(x, -1);
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(std::abs(back.data<float>()[i] - expected.data<float>()[i]) <= 1e-6f);
}

}  // TEST_SUITE
