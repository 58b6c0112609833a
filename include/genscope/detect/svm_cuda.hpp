// genscope/detect/svm_cuda.hpp — a fitted SVM's decision values on a GPU.
//
// SvmCuda uploads a detect::Svm once — support vectors, dual coefficients, their ‖sv‖², and the
// feature transforms score() applies (index selection, standardisation, PCA) — and then computes
// decision values for batches of feature rows, the same numbers as Svm::score:
//   x' = (x[:, idx] − mean) / scale              kernels::svm_prepare (fused gather + scale)
//   x'' = x' · Cᵀ − μ·Cᵀ                          PCA as one cuBLASLt GEMM, −μ·Cᵀ as its bias
//   D = x'' · svᵀ                                 cuBLASLt GEMM, f32 (as ops::gemm on the CPU)
//   out_i = b + Σ_j coef_j · f32(K(D_ij, ‖x_i‖², ‖sv_j‖²))   kernels::svm_decision, in double
// with K = dot (linear), exp(−γ max(0, ‖x‖² + ‖sv‖² − 2 dot)) (rbf; norms in double from
// kernels::row_sq_norms), (γ dot + r)^degree (poly), tanh(γ dot + r) (sigmoid).
// Rows go through in chunks so that the n × n_sv dot-product block stays within 256 MiB.
//
// Only in a translation unit compiled by nvcc with GENSCOPE_WITH_CUDA (a .cu file): the kernels
// are CUDA sources. Elsewhere this header declares nothing, so g++ builds that include it
// (e.g. through a header list) are unaffected.
#pragma once

#if defined(__CUDACC__) && defined(GENSCOPE_WITH_CUDA)

#include <algorithm>
#include <cstdint>
#include <vector>

#include "genscope/cuda/blas.hpp"
#include "genscope/cuda/memory_pool.hpp"
#include "genscope/cuda/runtime.hpp"
#include "genscope/detect/svm.hpp"
#include "kernels/detector_heads.cuh"

namespace genscope::detect {

class SvmCuda {
 public:
  // Uploads everything score() needs; `stream` orders all of this object's work.
  explicit SvmCuda(const Svm& svm, cudaStream_t stream = nullptr) : stream_(stream) {
    m_ = svm.support.rows;
    d_ = svm.support.cols;
    d_in_ = svm.options.indices.empty() ? svm.input_features() : -1;  // -1: any width covering the indices
    d_sel_ = svm.input_features();
    params_ = {kind(svm.kernel.kernel), svm.kernel.gamma, svm.kernel.coef0, svm.kernel.degree, svm.intercept};
    if (m_ == 0) return;  // no support vectors: every decision value is the intercept
    sv_ = upload(svm.support.values);
    coef_ = upload(svm.coef);
    if (params_.kind == 1) sv_norms_ = upload(row_norms(svm.support));
    if (!svm.options.indices.empty()) {
      idx_ = upload(svm.options.indices);
      max_index_ = *std::max_element(svm.options.indices.begin(), svm.options.indices.end());
    }
    if (svm.standardize.enabled()) {
      std::vector<float> mean(svm.standardize.mean.begin(), svm.standardize.mean.end()), inv(svm.standardize.scale.size());
      for (size_t t = 0; t < inv.size(); ++t) inv[t] = static_cast<float>(1.0 / svm.standardize.scale[t]);
      mean_ = upload(mean);
      inv_scale_ = upload(inv);
    }
    if (svm.pca.enabled()) {
      const Pca& p = svm.pca;
      std::vector<float> comps(p.components.begin(), p.components.end());
      std::vector<float> bias(static_cast<size_t>(p.out_features()));  // −μ·Cᵀ, in double
      for (int64_t c = 0; c < p.out_features(); ++c) {
        double s = 0;
        for (int64_t j = 0; j < p.in_features(); ++j) s += p.mean[static_cast<size_t>(j)] * p.components[static_cast<size_t>(c * p.in_features() + j)];
        bias[static_cast<size_t>(c)] = static_cast<float>(-s);
      }
      pca_components_ = upload(comps);
      pca_bias_ = upload(bias);
    }
  }

  int64_t support_vectors() const { return m_; }

  // Decision values of the rows of x (as Svm::score: > 0 means generated).
  std::vector<double> score(const FeatureMatrix& x) const {
    if (d_in_ >= 0 && x.cols != d_in_) fail<ShapeError>("svm (cuda): features have ", x.cols, " columns, the model expects ", d_in_);
    if (d_in_ < 0 && x.cols <= max_index_)
      fail<ShapeError>("svm (cuda): index ", max_index_, " of the model's feature selection is out of range for ", x.cols, " columns");
    std::vector<double> out(static_cast<size_t>(x.rows), params_.intercept);
    if (m_ == 0 || x.rows == 0) return out;
    const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(x.rows, (int64_t{64} << 20) / m_));
    const bool pca = pca_components_.bytes() > 0, prepare = idx_.bytes() > 0 || mean_.bytes() > 0;
    cuda::DeviceBuffer xin(static_cast<size_t>(chunk * x.cols) * sizeof(float), stream_);
    cuda::DeviceBuffer xsel(prepare ? static_cast<size_t>(chunk * d_sel_) * sizeof(float) : 0, stream_);
    cuda::DeviceBuffer xpca(pca ? static_cast<size_t>(chunk * d_) * sizeof(float) : 0, stream_);
    cuda::DeviceBuffer norms(params_.kind == 1 ? static_cast<size_t>(chunk) * sizeof(double) : 0, stream_);
    cuda::DeviceBuffer dots(static_cast<size_t>(chunk * m_) * sizeof(float), stream_);
    cuda::DeviceBuffer dec(static_cast<size_t>(chunk) * sizeof(double), stream_);
    for (int64_t first = 0; first < x.rows; first += chunk) {
      const int64_t n = std::min(chunk, x.rows - first);
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(xin.data(), x.row(first), static_cast<size_t>(n * x.cols) * sizeof(float),
                                          cudaMemcpyHostToDevice, stream_));
      const float* cur = xin.as<float>();
      if (prepare) {
        kernels::svm_prepare(cur, idx_.bytes() ? idx_.as<int64_t>() : nullptr, mean_.bytes() ? mean_.as<float>() : nullptr,
                             inv_scale_.bytes() ? inv_scale_.as<float>() : nullptr, xsel.as<float>(), n, static_cast<int>(x.cols),
                             static_cast<int>(d_sel_), stream_);
        cur = xsel.as<float>();
      }
      if (pca) {
        cuda::gemm(ops::Trans::No, ops::Trans::Yes, n, d_, d_sel_, 1.0f, cur, d_sel_, pca_components_.data(), d_sel_, 0.0f, xpca.data(),
                   d_, cuda::GemmPrecision::F32, stream_, pca_bias_.as<float>());
        cur = xpca.as<float>();
      }
      cuda::gemm(ops::Trans::No, ops::Trans::Yes, n, m_, d_, 1.0f, cur, d_, sv_.data(), d_, 0.0f, dots.data(), m_,
                 cuda::GemmPrecision::F32, stream_);
      if (params_.kind == 1) kernels::row_sq_norms(cur, norms.as<double>(), n, static_cast<int>(d_), stream_);
      kernels::svm_decision(dots.as<float>(), params_.kind == 1 ? norms.as<double>() : nullptr,
                            params_.kind == 1 ? sv_norms_.as<double>() : nullptr, coef_.as<double>(), dec.as<double>(), n,
                            static_cast<int>(m_), params_, stream_);
      GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(out.data() + first, dec.data(), static_cast<size_t>(n) * sizeof(double),
                                          cudaMemcpyDeviceToHost, stream_));
      GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // xin is reused by the next chunk
    }
    return out;
  }

 private:
  static int kind(SvmKernel k) {
    switch (k) {
      case SvmKernel::Linear: return 0;
      case SvmKernel::Rbf: return 1;
      case SvmKernel::Poly: return 2;
      case SvmKernel::Sigmoid: return 3;
    }
    return 1;
  }

  template <class T>
  cuda::DeviceBuffer upload(const std::vector<T>& v) const {
    cuda::DeviceBuffer b(v.size() * sizeof(T), stream_);
    GENSCOPE_CUDA_CHECK(cudaMemcpyAsync(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream_));
    GENSCOPE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // v may be a temporary
    return b;
  }

  cudaStream_t stream_;
  int64_t m_ = 0, d_ = 0, d_in_ = 0, d_sel_ = 0, max_index_ = -1;
  kernels::SvmKernelParams params_{};
  cuda::DeviceBuffer sv_, coef_, sv_norms_, idx_, mean_, inv_scale_, pca_components_, pca_bias_;
};

}  // namespace genscope::detect

#endif  // __CUDACC__ && GENSCOPE_WITH_CUDA
