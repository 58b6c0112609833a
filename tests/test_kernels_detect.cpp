// Emulated tests of kernels/detector_heads.cuh's SVM decision kernels (label simt; natively on a
// GPU through tests/gpu/test_gpu_detect.cu). References are the definitions in double written
// below: the selection/standardisation formula, Σ x², and Σ_j coef_j K(x_i, sv_j) + b with
// K from its definition on the vectors themselves (rbf as exp(−γ Σ (x − y)²), not the kernels'
// norm expansion). Error rules: tests/simt/check.hpp.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "kernels/detector_heads.cuh"

using namespace genscope;
using namespace simt_test;

TEST_SUITE("kernels_detect") {

TEST_CASE("svm_prepare selects, subtracts the mean and scales each kept column") {
  const int n = 7, d_in = 9, d_out = 4;
  const auto x = random_normal(size_t(n) * d_in, 21), mean = random_normal(d_out, 22);
  const auto inv_scale = random_uniform(d_out, 23, 0.5f, 2.0f);
  Vec<int64_t> idx{8, 0, 3, 3};
  Vec<float> out(size_t(n) * d_out, NAN), plain(size_t(n) * d_in, NAN);
  kernels::svm_prepare(x.data(), idx.data(), mean.data(), inv_scale.data(), out.data(), n, d_in, d_out, nullptr);
  kernels::svm_prepare(x.data(), nullptr, nullptr, nullptr, plain.data(), n, d_in, d_in, nullptr);
  for (int i = 0; i < n; ++i)
    for (int t = 0; t < d_out; ++t) CHECK(out[i * d_out + t] == (x[i * d_in + idx[t]] - mean[t]) * inv_scale[t]);
  for (size_t e = 0; e < plain.size(); ++e) CHECK(plain[e] == x[e]);
}

TEST_CASE("row_sq_norms sums squares in double for rows that do not fill a block") {
  for_each_order([] {
    const int n = 6, d = 70;
    const auto x = random_normal(size_t(n) * d, 24);
    Vec<double> out(n, NAN), ref(n, 0.0);
    kernels::row_sq_norms(x.data(), out.data(), n, d, nullptr);
    for (int i = 0; i < n; ++i)
      for (int f = 0; f < d; ++f) ref[i] += double(x[i * d + f]) * x[i * d + f];
    CHECK(relative_error(out, ref) <= 1e-12);
  });
}

TEST_CASE("svm_decision equals the dual-coefficient sum of each kernel's definition plus the intercept") {
  const int n = 19, m = 137, d = 45;  // m > 128: threads take several support vectors
  const auto x = random_normal(size_t(n) * d, 25), sv = random_normal(size_t(m) * d, 26), c = random_normal(m, 27);
  Vec<float> dots(size_t(n) * m);
  Vec<double> coef(c.begin(), c.end()), nx(n), ns(m);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < m; ++j) {
      double s = 0;
      for (int f = 0; f < d; ++f) s += double(x[i * d + f]) * sv[j * d + f];
      dots[size_t(i) * m + j] = float(s);  // the GEMM's f32 output
    }
  kernels::row_sq_norms(x.data(), nx.data(), n, d, nullptr);
  kernels::row_sq_norms(sv.data(), ns.data(), m, d, nullptr);
  const double gamma = 1.0 / d, coef0 = 0.5, intercept = -0.25;
  for (int kind = 0; kind < 4; ++kind) {
    INFO("kind " << kind);
    Vec<double> out(n, NAN), ref(n, intercept);
    kernels::svm_decision(dots.data(), kind == 1 ? nx.data() : nullptr, kind == 1 ? ns.data() : nullptr, coef.data(), out.data(),
                          n, m, kernels::SvmKernelParams{kind, gamma, coef0, 3, intercept}, nullptr);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) {
        double dot = 0, dist2 = 0;
        for (int f = 0; f < d; ++f) {
          const double a = x[i * d + f], b = sv[j * d + f];
          dot += a * b;
          dist2 += (a - b) * (a - b);
        }
        const double k = kind == 0 ? dot
                         : kind == 1 ? std::exp(-gamma * dist2)
                         : kind == 2 ? std::pow(gamma * dot + coef0, 3)
                                     : std::tanh(gamma * dot + coef0);
        ref[i] += coef[j] * k;
      }
    CHECK(relative_error(out, ref) <= 1e-5);
  }
}

TEST_CASE("svm_decision refuses rbf without norms") {
  Vec<float> dots(4);
  Vec<double> coef(4), out(1);
  CHECK_THROWS_AS(kernels::svm_decision(dots.data(), nullptr, nullptr, coef.data(), out.data(), 1, 4,
                                        kernels::SvmKernelParams{1, 1.0, 0.0, 3, 0.0}, nullptr),
                  UsageError);
}

}  // TEST_SUITE
