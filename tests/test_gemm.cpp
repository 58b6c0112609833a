// Tests of ops/gemm.hpp: the packed, blocked GEMM against PyTorch fixtures (F.linear,
// torch.matmul; tools/reference/make_gemm_conv_fixtures.py) and against gemm_reference, the
// double-accumulating triple loop, on random shapes that cut across every tile and cache block.
//
// Tolerance: max|got − want| / max|want| ≤ 1e-5 over the whole output (issue 3's f32 parity).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/ops/gemm.hpp"
#include "support.hpp"

using namespace genscope;
using ops::Trans;

namespace {

const std::string kFixtures = std::string(GENSCOPE_TEST_DATA) + "/gemm/gemm.safetensors";
constexpr double kTolerance = 1e-5;

using test::relative_error;  // max|got − want| / max|want|

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// One random GEMM problem with padded leading dimensions, run through gemm_with<Kernel> and
// gemm_reference; returns the relative error.
template <class Kernel>
double run_random(std::mt19937& rng, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
                  const ops::GemmEpilogue& ep = {}) {
  const int64_t lda = (ta == Trans::No ? K : M) + 3, ldb = (tb == Trans::No ? N : K) + 5, ldc = N + 2;
  const auto A = random_vector(static_cast<size_t>((ta == Trans::No ? M : K) * lda), rng);
  const auto B = random_vector(static_cast<size_t>((tb == Trans::No ? K : N) * ldb), rng);
  auto C = random_vector(static_cast<size_t>(M * ldc), rng);
  auto want = C;
  ops::gemm_with<Kernel>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc, ep);
  ops::gemm_reference(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, want.data(), ldc, ep);
  return relative_error(C, want);
}

}  // namespace

#if defined(__AVX512F__)
#define GENSCOPE_GEMM_KERNELS ops::ScalarKernel, ops::Avx2Kernel, ops::Avx512Kernel
#elif defined(__AVX2__) && defined(__FMA__)
#define GENSCOPE_GEMM_KERNELS ops::ScalarKernel, ops::Avx2Kernel
#else
#define GENSCOPE_GEMM_KERNELS ops::ScalarKernel
#endif

// ================================================================================================
TEST_SUITE("parity") {

TEST_CASE("linear matches torch F.linear at reduced ViT shapes and edge shapes") {
  const SafetensorsFile f(kFixtures);
  for (const char* name : {"vit_qkv_small", "vit_mlp_gelu", "vit_fc2", "one", "odd_no_bias", "k1", "k_over_block"}) {
    CAPTURE(name);
    const std::string p = std::string("linear.") + name;
    const Tensor b = f.contains(p + ".b") ? f.get(p + ".b") : Tensor();
    const auto act = f.get(p + ".act").item({0}) == 1 ? ops::Activation::Gelu : ops::Activation::None;
    const Tensor y = ops::linear(f.get(p + ".x"), f.get(p + ".w"), b.defined() ? &b : nullptr, act);
    CHECK(relative_error(y, f.get(p + ".y")) <= kTolerance);
  }
}

TEST_CASE("linear with f16 and bf16 weights matches F.linear on the widened weights") {
  const SafetensorsFile f(kFixtures);
  for (const char* name : {"weight_f16", "weight_bf16"}) {
    CAPTURE(name);
    const std::string p = std::string("linear.") + name;
    const Tensor w = f.get(p + ".w"), b = f.get(p + ".b");
    CHECK(w.dtype() != DType::F32);
    CHECK(relative_error(ops::linear(f.get(p + ".x"), w, &b), f.get(p + ".y")) <= kTolerance);
  }
}

TEST_CASE("matmul matches torch.matmul for plain, batched and broadcast operands") {
  const SafetensorsFile f(kFixtures);
  for (const char* name : {"plain", "one", "batched", "shared_b", "shared_a"}) {
    CAPTURE(name);
    const std::string p = std::string("matmul.") + name;
    CHECK(relative_error(ops::matmul(f.get(p + ".a"), f.get(p + ".b")), f.get(p + ".y")) <= kTolerance);
  }
}

TEST_CASE("matmul reads transposed views in place and matches torch.matmul") {
  const SafetensorsFile f(kFixtures);
  const Tensor at = f.get("matmul.trans.at"), bt = f.get("matmul.trans.bt");
  CHECK(relative_error(ops::matmul(at.transpose(0, 1), bt.transpose(0, 1)), f.get("matmul.trans.y")) <= kTolerance);
  const Tensor q = f.get("matmul.scores.q"), k = f.get("matmul.scores.k");
  CHECK(relative_error(ops::matmul(q, k.transpose(-1, -2)), f.get("matmul.scores.y")) <= kTolerance);
}

}  // TEST_SUITE("parity")

// ================================================================================================
TEST_SUITE("gemm") {

TEST_CASE_TEMPLATE("every micro-kernel matches the reference for all transposes and edge sizes", Kernel,
                   GENSCOPE_GEMM_KERNELS) {
  std::mt19937 rng(7);
  const int64_t sizes[][3] = {{1, 1, 1}, {1, 33, 1}, {13, 1, 9}, {5, 7, 3}, {Kernel::MR, Kernel::NR, 16},
                              {Kernel::MR + 1, Kernel::NR + 1, 17}, {37, 70, 41}, {64, 64, 64}};
  for (const auto& s : sizes)
    for (Trans ta : {Trans::No, Trans::Yes})
      for (Trans tb : {Trans::No, Trans::Yes}) {
        CAPTURE(s[0]);
        CAPTURE(s[1]);
        CAPTURE(s[2]);
        CAPTURE(static_cast<int>(ta));
        CAPTURE(static_cast<int>(tb));
        CHECK(run_random<Kernel>(rng, ta, tb, s[0], s[1], s[2], 1.0f, 0.0f) <= kTolerance);
      }
}

TEST_CASE("shapes beyond one cache block in M, N and K match the reference") {
  std::mt19937 rng(11);
  // M > MC = 384, N > NC = 512, K > KC = 384: several tasks, several K passes, edge tiles.
  CHECK(run_random<ops::DefaultKernel>(rng, Trans::No, Trans::No, 390, 530, 400, 1.0f, 0.0f) <= kTolerance);
  CHECK(run_random<ops::DefaultKernel>(rng, Trans::No, Trans::Yes, 200, 530, 790, 1.0f, 0.0f) <= kTolerance);
}

TEST_CASE("alpha scales the product and beta the old C, also across K passes") {
  std::mt19937 rng(3);
  CHECK(run_random<ops::DefaultKernel>(rng, Trans::No, Trans::No, 29, 45, 20, 0.5f, 2.0f) <= kTolerance);
  CHECK(run_random<ops::DefaultKernel>(rng, Trans::Yes, Trans::No, 29, 45, 800, -1.5f, 0.25f) <= kTolerance);
}

TEST_CASE("beta = 0 never reads C, so NaN there does not leak into the result") {
  std::mt19937 rng(5);
  const int64_t M = 17, N = 35, K = 9;
  const auto A = random_vector(M * K, rng), B = random_vector(K * N, rng);
  std::vector<float> C(M * N, std::numeric_limits<float>::quiet_NaN()), want(M * N);
  ops::gemm(Trans::No, Trans::No, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  ops::gemm_reference(Trans::No, Trans::No, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, want.data(), N);
  for (float v : C) REQUIRE(std::isfinite(v));
  CHECK(relative_error(C, want) <= kTolerance);
}

TEST_CASE("the epilogue adds bias and row bias, applies the activation, then adds the residual") {
  std::mt19937 rng(9);
  const int64_t M = 45, N = 70, K = 500;
  const auto bias = random_vector(N, rng), row_bias = random_vector(M, rng), residual = random_vector(M * (N + 1), rng);
  for (ops::Activation act : {ops::Activation::Relu, ops::Activation::Gelu, ops::Activation::GeluTanh,
                              ops::Activation::QuickGelu, ops::Activation::Silu}) {
    CAPTURE(ops::activation_name(act));
    ops::GemmEpilogue ep;
    ep.bias = bias.data();
    ep.row_bias = row_bias.data();
    ep.act = act;
    ep.residual = residual.data();
    ep.ld_residual = N + 1;
    CHECK(run_random<ops::DefaultKernel>(rng, Trans::No, Trans::Yes, M, N, K, 1.0f, 0.5f, ep) <= kTolerance);
  }
}

TEST_CASE("K = 0 leaves beta times C plus the epilogue") {
  std::vector<float> C = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {10, 20, 30};
  ops::GemmEpilogue ep;
  ep.bias = bias.data();
  ops::gemm(Trans::No, Trans::No, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 2.0f, C.data(), 3, ep);
  CHECK(C == std::vector<float>{12, 24, 36, 18, 30, 42});
}

TEST_CASE("gemm_batched with strides matches the reference per problem, and stride 0 shares an operand") {
  std::mt19937 rng(13);
  const int64_t batch = 5, M = 19, N = 23, K = 31;
  const auto A = random_vector(batch * M * K, rng), B = random_vector(K * N, rng);
  std::vector<float> C(batch * M * N), want(batch * M * N);
  ops::gemm_batched(Trans::No, Trans::No, batch, M, N, K, 1.0f, A.data(), K, M * K, B.data(), N, 0, 0.0f, C.data(), N,
                    M * N);
  for (int64_t b = 0; b < batch; ++b)
    ops::gemm_reference(Trans::No, Trans::No, M, N, K, 1.0f, A.data() + b * M * K, K, B.data(), N, 0.0f,
                        want.data() + b * M * N, N);
  CHECK(relative_error(C, want) <= kTolerance);
}

TEST_CASE("linear reads a strided input view and a transposed weight view in place") {
  std::mt19937 rng(17);
  Tensor base = Tensor::empty({40, 30}, DType::F32), w = Tensor::empty({20, 25}, DType::F32);
  const auto v = random_vector(40 * 30, rng), wv = random_vector(20 * 25, rng);
  std::copy(v.begin(), v.end(), base.data<float>());
  std::copy(wv.begin(), wv.end(), w.data<float>());
  const Tensor x = base.transpose(0, 1).slice(1, 0, 40, 2);  // [30, 20], strides (1, 60)
  const Tensor y = ops::linear(x, w.transpose(0, 1));        // weight [25, 20], strides (1, 25)
  // y = x · (wᵀ)ᵀ = x · w, with x copied to a plain row-major matrix for the reference.
  std::vector<float> xs(30 * 20), want(30 * 25);
  for (int64_t i = 0; i < 30; ++i)
    for (int64_t k = 0; k < 20; ++k) xs[i * 20 + k] = v[(2 * k) * 30 + i];
  ops::gemm_reference(Trans::No, Trans::No, 30, 25, 20, 1.0f, xs.data(), 20, w.data<float>(), 25, 0.0f, want.data(), 25);
  CHECK(y.shape() == Shape{30, 25});
  CHECK(relative_error(std::vector<float>(y.data<float>(), y.data<float>() + y.numel()), want) <= kTolerance);
}

TEST_CASE("leading dimensions below the matrix width are usage errors that name the argument") {
  std::vector<float> A(12), B(12), C(12);
  CHECK_THROWS_WITH_AS(ops::gemm(Trans::No, Trans::No, 3, 4, 3, 1.0f, A.data(), 2, B.data(), 4, 0.0f, C.data(), 4),
                       doctest::Contains("lda=2"), UsageError);
  CHECK_THROWS_WITH_AS(ops::gemm(Trans::No, Trans::No, 3, 4, 3, 1.0f, A.data(), 3, B.data(), 4, 0.0f, C.data(), 3),
                       doctest::Contains("ldc=3"), UsageError);
}

TEST_CASE("linear and matmul reject mismatched shapes with a ShapeError naming both tensors") {
  const Tensor x = Tensor::zeros({4, 8}, DType::F32), w = Tensor::zeros({6, 7}, DType::F32);
  CHECK_THROWS_WITH_AS(ops::linear(x, w), doctest::Contains("f32[6, 7]"), ShapeError);
  CHECK_THROWS_WITH_AS(ops::matmul(Tensor::zeros({2, 3, 4}, DType::F32), Tensor::zeros({3, 4, 5}, DType::F32)),
                       doctest::Contains("batch dims"), ShapeError);
  CHECK_THROWS_AS(ops::matmul(x, Tensor::zeros({7, 2}, DType::F32)), ShapeError);
}

}  // TEST_SUITE("gemm")
