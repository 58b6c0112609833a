// Tests of ops/fft.hpp.
//   suite "fft":    the 1-D plans against the DFT's definition summed in double, round trips,
//                   Parseval's theorem, transforms known in closed form, fftshift index maps
//   suite "parity": against torch.fft (fft2, ifft2, fft2 of a real tensor, fftshift,
//                   ifftshift), through tests/data/ops/fft.safetensors
//                   (tools/reference/make_ops_fixtures.py); ≤ 1e-5 relative to the largest
//                   expected magnitude
#include <doctest/doctest.h>

#include <cmath>
#include <complex>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "genscope/core/tensor.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/ops/fft.hpp"
#include "support.hpp"

using namespace genscope;

namespace {

Tensor fx(const std::string& name) { return test::fixture("ops/fft.safetensors", name); }

using test::random_normal;
using test::relative_error;  // max |got − want| / max |want|

// The DFT by its definition, X_k = Σ_j x_j e^{sign·2πi·jk/n}, with the phase reduced mod n exactly.
std::vector<ops::cdouble> direct_dft(const std::vector<ops::cdouble>& x, int sign) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<ops::cdouble> out(x.size());
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < n; ++j) {
      const double phase = sign * 2.0 * std::numbers::pi * static_cast<double>((j * k) % n) / static_cast<double>(n);
      out[static_cast<size_t>(k)] += x[static_cast<size_t>(j)] * ops::cdouble{std::cos(phase), std::sin(phase)};
    }
  return out;
}

}  // namespace

TEST_SUITE("fft") {

TEST_CASE("1-D plans equal the DFT's definition for every length up to 64 and for 97, 125, 194, 224, 243, 256") {
  std::vector<int64_t> lengths;
  for (int64_t n = 1; n <= 64; ++n) lengths.push_back(n);
  for (int64_t n : {97, 125, 194, 224, 243, 256}) lengths.push_back(n);
  std::mt19937 rng(1);
  std::normal_distribution<double> dist;
  for (int64_t n : lengths) {
    CAPTURE(n);
    std::vector<ops::cdouble> x(static_cast<size_t>(n));
    for (auto& v : x) v = {dist(rng), dist(rng)};
    const ops::FftPlan plan(n);
    ops::FftPlan::Workspace ws;
    for (int sign : {-1, +1}) {
      std::vector<ops::cdouble> got = x;
      plan.transform(got.data(), sign, ws);
      const std::vector<ops::cdouble> want = direct_dft(x, sign);
      double err = 0, scale = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        err = std::max(err, std::abs(got[i] - want[i]));
        scale = std::max(scale, std::abs(want[i]));
      }
      CHECK(err <= 1e-12 * scale);
    }
  }
}

TEST_CASE("lengths with a prime factor above 31 go through Bluestein and the others do not") {
  CHECK(ops::FftPlan(97).uses_bluestein());
  CHECK(ops::FftPlan(194).uses_bluestein());
  CHECK_FALSE(ops::FftPlan(224).uses_bluestein());
  CHECK_FALSE(ops::FftPlan(31 * 29).uses_bluestein());
}

TEST_CASE("the transform of a unit impulse at the origin is all ones") {
  Tensor x = Tensor::zeros({5, 6, 2}, DType::F32);
  x.data<float>()[0] = 1.0f;
  const Tensor X = ops::fft2(x);
  for (int64_t i = 0; i < 30; ++i) {
    CHECK(X.data<float>()[2 * i] == doctest::Approx(1.0));
    CHECK(X.data<float>()[2 * i + 1] == doctest::Approx(0.0));
  }
}

TEST_CASE("ifft2 undoes fft2 on three 224x224 channels") {
  const Tensor x = random_normal({3, 224, 224, 2}, 2);
  CHECK(relative_error(ops::ifft2(ops::fft2(x)), x) <= 1e-6);
}

TEST_CASE("fft2 of a real 256x256 image keeps Parseval's identity") {
  const Tensor x = random_normal({256, 256}, 3);
  const Tensor X = ops::fft2_real(x);
  double energy = 0, spectrum = 0;
  for (int64_t i = 0; i < x.numel(); ++i) energy += static_cast<double>(x.data<float>()[i]) * x.data<float>()[i];
  for (int64_t i = 0; i < X.numel(); ++i) spectrum += static_cast<double>(X.data<float>()[i]) * X.data<float>()[i];
  CHECK(spectrum == doctest::Approx(energy * 256 * 256).epsilon(1e-6));
}

TEST_CASE("fft2 of a real image has conjugate symmetry") {
  const Tensor X = ops::fft2_real(random_normal({7, 10}, 4));
  for (int u = 0; u < 7; ++u)
    for (int v = 0; v < 10; ++v) {
      CHECK(X.item({u, v, 0}) == doctest::Approx(X.item({(7 - u) % 7, (10 - v) % 10, 0})).epsilon(1e-5));
      CHECK(X.item({u, v, 1}) == doctest::Approx(-X.item({(7 - u) % 7, (10 - v) % 10, 1})).epsilon(1e-5));
    }
}

TEST_CASE("fftshift moves index 0 to n/2 and ifftshift moves it back, for odd and even n") {
  Tensor x = Tensor::empty({5, 4}, DType::F32);
  for (int i = 0; i < 20; ++i) x.data<float>()[i] = static_cast<float>(i);
  const Tensor s = ops::fftshift(x, {0, 1});
  CHECK(s.item({2, 2}) == 0.0);  // [5/2, 4/2]
  CHECK(s.item({0, 0}) == x.item({3, 2}));
  CHECK(relative_error(ops::ifftshift(s, {0, 1}), x) == 0.0);
}

TEST_CASE("fft2 refuses a tensor without the trailing (real, imaginary) dim") {
  CHECK_THROWS_WITH_AS(ops::fft2(Tensor::zeros({4, 4, 3}, DType::F32)), doctest::Contains("fft2: x is"), ShapeError);
}

}  // TEST_SUITE("fft")

TEST_SUITE("parity") {

TEST_CASE("fft2 and ifft2 of complex tensors match torch at prime, composite and unit sizes") {
  for (const char* name : {"c_7x97", "c_12x20", "c_1x1", "c_194x5"}) {
    CAPTURE(name);
    const std::string n = name;
    CHECK(relative_error(ops::fft2(fx(n + ".x")), fx(n + ".fft2")) <= 1e-5);
    CHECK(relative_error(ops::ifft2(fx(n + ".x")), fx(n + ".ifft2")) <= 1e-5);
  }
}

TEST_CASE("fft2 of real tensors matches torch at 224 and 256") {
  for (const char* name : {"r_224", "r_256", "r_1x9"}) {
    CAPTURE(name);
    const std::string n = name;
    CHECK(relative_error(ops::fft2_real(fx(n + ".x")), fx(n + ".fft2")) <= 1e-5);
  }
}

TEST_CASE("fftshift and ifftshift match torch") {
  const Tensor x = fx("shift.x");
  CHECK(relative_error(ops::fftshift(x, {-2, -1}), fx("shift.fftshift")) == 0.0);
  CHECK(relative_error(ops::ifftshift(x, {-2, -1}), fx("shift.ifftshift")) == 0.0);
  CHECK(relative_error(ops::fftshift(x, {0}), fx("shift.fftshift_dim0")) == 0.0);
}

}  // TEST_SUITE("parity")
