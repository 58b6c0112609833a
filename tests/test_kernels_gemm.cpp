// Emulated tests of kernels/gemm.cuh and kernels/detector_heads.cuh (label simt). References:
// genscope's ops::gemm_reference (the triple loop in double, with the same epilogue) for the GEMM,
// the epilogue formula in double, and the RBF and GMM definitions in double written below.
// Error rules: tests/simt/check.hpp.
#include "simt/check.hpp"  // first: the SIMT emulator (or, under nvcc, the CUDA runtime)

#include "genscope/ops/gemm.hpp"
#include "kernels/detector_heads.cuh"
#include "kernels/gemm.cuh"

using namespace genscope;
using namespace simt_test;
using kernels::Activation;

namespace {

struct GemmCase {
  int m, n, k;
  bool trans_b;
  Activation act;
  bool bias, residual;
};

void check_gemm(const GemmCase& t) {
  INFO("M=" << t.m << " N=" << t.n << " K=" << t.k << " transB=" << t.trans_b << " act=" << ops::activation_name(t.act));
  const auto a = random_normal(size_t(t.m) * t.k, 1), b = random_normal(size_t(t.k) * t.n, 2);
  const auto bias = random_normal(t.n, 3), residual = random_normal(size_t(t.m) * t.n, 4);
  const int ldb = t.trans_b ? t.k : t.n;
  Vec<float> c(size_t(t.m) * t.n, NAN), ref(size_t(t.m) * t.n);
  kernels::GemmArgs g{a.data(), t.k, b.data(), ldb, c.data(), t.n, t.m, t.n, t.k, 0.5f,
                      t.bias ? bias.data() : nullptr, t.residual ? residual.data() : nullptr, t.n};
  if (t.trans_b) kernels::gemm_f32<true>(g, t.act, nullptr);
  else kernels::gemm_f32<false>(g, t.act, nullptr);
  ops::GemmEpilogue ep{t.bias ? bias.data() : nullptr, t.act, t.residual ? residual.data() : nullptr, t.n};
  ops::gemm_reference(ops::Trans::No, t.trans_b ? ops::Trans::Yes : ops::Trans::No, t.m, t.n, t.k, 0.5f, a.data(), t.k, b.data(),
                      ldb, 0.0f, ref.data(), t.n, ep);
  CHECK(relative_error(c, ref) <= 1e-5);
}

}  // namespace

TEST_SUITE("kernels_gemm") {

TEST_CASE("the f32 GEMM of 1x1x1 matches the reference") { check_gemm({1, 1, 1, false, Activation::None, false, false}); }

TEST_CASE("the f32 GEMM matches the reference with partial tiles in every dim") {
  for_each_order([] {
    check_gemm({65, 33, 17, false, Activation::None, false, false});
    check_gemm({65, 33, 17, true, Activation::None, false, false});
  });
}

TEST_CASE("the f32 GEMM fuses bias, activation and residual as a Linear layer does") {
  // A ViT MLP reduced: x [tokens, 96] · W[160, 96]ᵀ, GELU, then a residual add.
  check_gemm({70, 160, 96, true, Activation::Gelu, true, true});
  check_gemm({40, 64, 33, true, Activation::QuickGelu, true, false});
  check_gemm({31, 48, 20, false, Activation::Silu, false, true});
}

TEST_CASE("the f32 GEMM refuses negative sizes") {
  kernels::GemmArgs g{};
  g.m = -1;
  CHECK_THROWS_AS(kernels::gemm_f32<false>(g, Activation::None, nullptr), ShapeError);
}

TEST_CASE("the epilogue applies bias, activation and residual to a strided C in place") {
  for_each_order([] {
    const int64_t rows = 37, cols = 45, ldc = 50;
    auto c = random_normal(rows * ldc, 5);
    const auto bias = random_normal(cols, 6), residual = random_normal(rows * cols, 7);
    Vec<double> ref(c.begin(), c.end());
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        ref[i * ldc + j] = ops::apply_activation(Activation::GeluTanh, static_cast<float>(double(c[i * ldc + j]) + bias[j])) +
                           double(residual[i * cols + j]);
    kernels::gemm_epilogue(c.data(), ldc, bias.data(), Activation::GeluTanh, residual.data(), cols, rows, cols, nullptr);
    CHECK(relative_error(c, ref) <= 1e-5);  // the padding columns past `cols` stay untouched
  });
}

TEST_CASE("the f16 and bf16 epilogues are within twice the error of dtype-rounded results") {
  const int64_t rows = 20, cols = 33;
  auto run = [&]<class T>() {
    const auto c = rounded<T>(random_normal(rows * cols, 8)), residual = rounded<T>(random_normal(rows * cols, 9));
    const auto bias = random_normal(cols, 10);
    auto cs = to_storage<T>(c);
    const auto rs = to_storage<T>(residual);
    kernels::gemm_epilogue(cs.data(), cols, bias.data(), Activation::Silu, rs.data(), cols, rows, cols, nullptr);
    Vec<double> ref(c.size()), ref_rounded(c.size());
    for (int64_t i = 0; i < rows * cols; ++i) {
      const double v = double(c[i]) + bias[i % cols];
      ref[i] = v / (1.0 + std::exp(-v)) + residual[i];
      ref_rounded[i] = round_to<T>(ref[i]);
    }
    check_dtype_rule(max_abs_error(to_floats(cs), ref), max_abs_error(ref_rounded, ref), max_abs(ref));
  };
  run.operator()<f16>();
  run.operator()<bf16>();
}

TEST_CASE("the RBF kernel matrix matches exp(-gamma ||x - y||^2) with partial tiles") {
  for_each_order([] {
    for (auto [n, m, d] : {std::tuple{1, 1, 1}, std::tuple{17, 33, 45}, std::tuple{40, 20, 64}}) {
      INFO("n=" << n << " m=" << m << " d=" << d);
      const auto x = random_normal(size_t(n) * d, 11), y = random_normal(size_t(m) * d, 12);
      const float gamma = 0.5f / d;
      Vec<float> k(size_t(n) * m);
      kernels::rbf_kernel_matrix(x.data(), y.data(), k.data(), n, m, d, gamma, nullptr);
      Vec<double> ref(k.size());
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j) {
          double dist2 = 0;
          for (int f = 0; f < d; ++f) dist2 += (double(x[i * d + f]) - y[j * d + f]) * (double(x[i * d + f]) - y[j * d + f]);
          ref[size_t(i) * m + j] = std::exp(-double(gamma) * dist2);
        }
      CHECK(relative_error(k, ref) <= 1e-5);
    }
  });
}

TEST_CASE("the RBF kernel of a point with itself is exactly 1") {
  const auto x = random_normal(5 * 300, 13, 1000.0f);  // far from the origin: no cancellation
  Vec<float> k(25);
  kernels::rbf_kernel_matrix(x.data(), x.data(), k.data(), 5, 5, 300, 1.0f, nullptr);
  for (int i = 0; i < 5; ++i) CHECK(k[i * 5 + i] == 1.0f);
}

TEST_CASE("the diagonal GMM log-likelihood matches its definition in double") {
  for_each_order([] {
    for (auto [n, d, comps] : {std::tuple{1, 1, 1}, std::tuple{7, 33, 5}, std::tuple{3, 100, 10}}) {
      INFO("n=" << n << " d=" << d << " components=" << comps);
      const auto x = random_normal(size_t(n) * d, 14), means = random_normal(size_t(comps) * d, 15);
      const auto variances = random_uniform(size_t(comps) * d, 16, 0.2f, 3.0f);
      Vec<float> log_weights = random_uniform(comps, 17, 0.1f, 1.0f);
      double total = 0;
      for (float w : log_weights) total += w;
      for (float& w : log_weights) w = static_cast<float>(std::log(w / total));
      Vec<float> out(n);
      kernels::gmm_log_likelihood(x.data(), means.data(), variances.data(), log_weights.data(), out.data(), n, d, comps, nullptr);
      Vec<double> ref(n);
      for (int i = 0; i < n; ++i) {
        Vec<double> lc(comps);
        for (int c = 0; c < comps; ++c) {
          double s = 0;
          for (int f = 0; f < d; ++f) {
            const double var = variances[c * d + f], diff = double(x[i * d + f]) - means[c * d + f];
            s += std::log(2 * M_PI * var) + diff * diff / var;
          }
          lc[c] = log_weights[c] - 0.5 * s;
        }
        const double m = *std::max_element(lc.begin(), lc.end());
        double sum = 0;
        for (double v : lc) sum += std::exp(v - m);
        ref[i] = m + std::log(sum);
      }
      CHECK(relative_error(out, ref) <= 1e-5);
    }
  });
}

TEST_CASE("the GMM log-likelihood stays finite when every component is far away") {
  // log-densities around -1e5: exp() of any of them underflows, the logsumexp must not.
  const int d = 10, comps = 3;
  Vec<float> x(d, 300.0f), means(comps * d, 0.0f), variances(comps * d, 1.0f), log_weights(comps, std::log(1.0f / 3));
  for (int c = 0; c < comps; ++c) means[c * d] = float(c);
  float out = 0;
  kernels::gmm_log_likelihood(x.data(), means.data(), variances.data(), log_weights.data(), &out, 1, d, comps, nullptr);
  CHECK(std::isfinite(out));
  CHECK(out < -4e5f);
}

}  // TEST_SUITE
