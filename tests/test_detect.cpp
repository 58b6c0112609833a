// Tests of the detector heads (include/genscope/detect), the .npy reader and `genscope fit`,
// `score`, `eval`.
//
// Suites:
//   detect  — readers, standardisation, metrics, the kernel cache, save/load, against values
//             worked out by hand from the definitions;
//   parity  — against tools/reference/make_detect_fixtures.py: torch's Adam step, scikit-learn's
//             SVC (libsvm), Platt sigmoid, GaussianMixture, average_precision and roc_auc;
//   cli     — the command line as scripts use it: exit codes, CSV outputs, messages;
//   shared  — ../shared/data: UAR's released head (converted with `genscope convert`) on all
//             4000 rows, and the probe fitted on pairs 0..999, tested on 1000..1999;
//   shared_svm — the same split for the SVM with RAID's settings.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "genscope/detect/any_head.hpp"
#include "genscope/detect/metrics.hpp"
#include "genscope/io/npy.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace genscope;
using namespace genscope::detect;

namespace {

const std::string kData = std::string(GENSCOPE_TEST_DATA) + "/detect/";

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("genscope-detect") {}
};

// A .npy file from NEP 1: magic, version 1.0, u16 header length, dict padded to 64 bytes, data.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xFF);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

std::string f32_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<double> doubles(const SafetensorsFile& f, const std::string& name) {
  const Tensor t = f.get(name).contiguous();
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::I64)
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(t.data<int64_t>()[i]);
  else
    for (size_t i = 0; i < out.size(); ++i) out[i] = t.to(DType::F32).data<float>()[i];
  return out;
}

FeatureMatrix matrix(const SafetensorsFile& f, const std::string& name) {
  return features_from_tensor(f.get(name), f.path() + ":" + name);
}

// The CLI cases run when the build has the command line (GENSCOPE_BUILD_TOOLS); if it was built,
// a missing program fails the case instead of skipping it.
bool have_cli() {
  if (std::string(GENSCOPE_CLI).empty()) return false;
  REQUIRE_MESSAGE(fs::exists(GENSCOPE_CLI), GENSCOPE_CLI " was not built");
  return true;
}

test::CommandResult cli(const std::string& args) { return test::run_cli(args); }

// Two well-separated Gaussian blobs: real around −1, generated around +1 in every feature.
FeatureMatrix blob(int64_t rows, int64_t cols, float centre, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(centre, 0.7f);
  std::vector<float> v(static_cast<size_t>(rows * cols));
  for (float& x : v) x = n(rng);
  return FeatureMatrix::from(rows, cols, std::move(v));
}

// A feature matrix as the f32 tensor a features file holds.
Tensor tensor_of(const FeatureMatrix& m) {
  Tensor t = Tensor::empty(Shape{m.rows, m.cols}, DType::F32);
  std::copy(m.values.begin(), m.values.end(), t.data<float>());
  return t;
}

// max over columns j of max_i |got_ij − want_ij| / max_i |want_ij|: each component (or
// projection) relative to its own scale, so that a small later component is held to its size.
double column_relative_error(const std::vector<double>& got, const std::vector<double>& want, int64_t cols) {
  REQUIRE(got.size() == want.size());
  double worst = 0;
  for (int64_t j = 0; j < cols; ++j) {
    double err = 0, scale = 0;
    for (size_t i = static_cast<size_t>(j); i < got.size(); i += static_cast<size_t>(cols))
      err = std::max(err, std::abs(got[i] - want[i])), scale = std::max(scale, std::abs(want[i]));
    worst = std::max(worst, err / scale);
  }
  return worst;
}

// tests/data/detect/pca_lowrank: x = a b rebuilt exactly (small integers).
FeatureMatrix lowrank_rows(const SafetensorsFile& f) {
  const auto a = doubles(f, "a"), b = doubles(f, "b");
  const int64_t n = 600, r = 30, d = 700;
  std::vector<float> x(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (int64_t t = 0; t < r; ++t) s += a[static_cast<size_t>(i * r + t)] * b[static_cast<size_t>(t * d + j)];
      x[static_cast<size_t>(i * d + j)] = static_cast<float>(s);
    }
  return FeatureMatrix::from(n, d, std::move(x));
}

double count_correct(const std::vector<double>& s, double threshold, bool generated) {
  double ok = 0;
  for (double v : s) ok += (v > threshold) == generated;
  return ok;
}

}  // namespace

// =================================================================================================
TEST_SUITE("detect") {
  TEST_CASE("npy reader reads a little-endian f4 matrix written from the format's definition") {
    TempDir tmp;
    test::write_file(tmp.file("a.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                             f32_bytes({1, 2, 3, 4, 5, 6})));
    const Tensor t = load_npy(tmp.file("a.npy"));
    CHECK(t.shape() == Shape{2, 3});
    CHECK(t.data<float>()[4] == 5.0f);
  }

  TEST_CASE("npy reader refuses fortran order, big-endian data and a short data section") {
    TempDir tmp;
    test::write_file(tmp.file("f.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", f32_bytes({1, 2})));
    test::write_file(tmp.file("b.npy"), npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f32_bytes({1, 2})));
    test::write_file(tmp.file("s.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f32_bytes({1, 2})));
    CHECK_THROWS_WITH_AS(load_npy(tmp.file("f.npy")), doctest::Contains("fortran_order"), FormatError);
    CHECK_THROWS_WITH_AS(load_npy(tmp.file("b.npy")), doctest::Contains("'>f4'"), FormatError);
    CHECK_THROWS_WITH_AS(load_npy(tmp.file("s.npy")), doctest::Contains("do not match"), FormatError);
  }

  TEST_CASE("a folder of npy files reads as one row per file, sorted, named by file") {
    TempDir tmp;
    const std::string d = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    test::write_file(tmp.file("b.npy"), npy_bytes(d, f32_bytes({3, 4})));
    test::write_file(tmp.file("a.npy"), npy_bytes(d, f32_bytes({1, 2})));
    const FeatureMatrix m = read_features(tmp.path.string());
    CHECK(m.rows == 2);
    CHECK(m.names == std::vector<std::string>{"a.npy", "b.npy"});
    CHECK(m.row(1)[0] == 3.0f);
  }

  TEST_CASE("safetensors features take FILE:TENSOR, widen f16 and take row names from metadata") {
    TempDir tmp;
    Tensor h = Tensor::empty(Shape{2, 2}, DType::F16);
    for (int i = 0; i < 4; ++i) static_cast<uint16_t*>(h.data_ptr())[i] = f32_to_f16(0.5f * static_cast<float>(i));
    save_safetensors(tmp.file("x.safetensors"), {{"feat", h}, {"other", Tensor::zeros(Shape{3, 1}, DType::F32)}},
                     {{"feat.names", "img0.png,img1.png"}});
    CHECK_THROWS_AS(read_features(tmp.file("x.safetensors")), UsageError);  // two 2-D tensors: must name one
    const FeatureMatrix m = read_features(tmp.file("x.safetensors") + ":feat");
    CHECK(m.row(1)[1] == 1.5f);
    CHECK(m.names[1] == "img1.png");
    CHECK_THROWS_WITH_AS(read_features(tmp.file("x.safetensors") + ":nope"), doctest::Contains("nope"), FormatError);
  }

  TEST_CASE("standardisation uses the population mean and deviation and leaves constant features unscaled") {
    const FeatureMatrix x = FeatureMatrix::from(2, 3, {1, 3, 5, 3, 7, 5});
    const Standardizer s = Standardizer::fit({&x});
    CHECK(s.mean == std::vector<double>{2, 5, 5});
    CHECK(s.scale == std::vector<double>{1, 2, 1});
    CHECK(s.apply(x).row(0)[1] == -1.0f);
  }

  TEST_CASE("accuracy is reported overall, on real rows and on generated rows") {
    const Accuracy a = accuracy({0, 0, 0, 1, 1}, {0, 1, 0, 1, 1});
    CHECK(a.overall == doctest::Approx(0.8));
    CHECK(a.real == doctest::Approx(2.0 / 3));
    CHECK(a.generated == 1.0);
  }

  TEST_CASE("ROC-AUC counts a tie between a real and a generated row as one half") {
    // Pairs (real, generated): (0.1, 0.9) ordered, (0.5, 0.5) tied -> AUC = (1·2 + 1·1 + 0.5·1 + 1·1)/4.
    CHECK(roc_auc({0, 1, 0, 1}, {0.1, 0.9, 0.5, 0.5}) == doctest::Approx(0.875));
    CHECK(average_precision({0, 1}, {0.2, 0.8}) == 1.0);
    CHECK(std::isnan(roc_auc({1, 1}, {0.2, 0.8})));
  }

  TEST_CASE("the group table has one row per group and one for all rows") {
    const auto t = group_table({"sd", "real", "mj", "real"}, {1, 0, 1, 0}, {0.9, 0.1, 0.4, 0.2}, {1, 0, 0, 0});
    REQUIRE(t.size() == 4);
    CHECK(t[0].group == "mj");
    CHECK(t[0].acc.generated == 0.0);
    CHECK(t[3].group == "all");
    CHECK(t[3].acc.overall == doctest::Approx(0.75));
    CHECK(t[3].auc == 1.0);
  }

  TEST_CASE("a kernel cache of a few rows gives the same SVM as one holding the whole matrix") {
    const FeatureMatrix real = blob(60, 5, -0.3f, 1), fake = blob(60, 5, 0.3f, 2);
    Svm big, small;
    small.options.cache_bytes = 4 * 120 * 4;  // four rows of 120 floats
    big.fit(real, fake);
    small.fit(real, fake);
    CHECK(small.support_ids == big.support_ids);
    const auto a = big.score(real), b = small.score(real);
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-5));
  }

  TEST_CASE("an SVM with a feature-index selection equals one fitted on those columns") {
    const FeatureMatrix real = blob(30, 5, -0.5f, 12), fake = blob(30, 5, 0.5f, 13);
    const std::vector<int64_t> keep{4, 0, 2};
    Svm selected, manual;
    selected.options.indices = keep;
    selected.fit(real, fake);
    manual.fit(select_columns(real, keep), select_columns(fake, keep));
    CHECK(selected.support_ids == manual.support_ids);
    CHECK(selected.score(fake) == manual.score(select_columns(fake, keep)));
    CHECK_THROWS_AS(selected.score(blob(2, 3, 0, 1)), ShapeError);  // index 4 of 3 columns
  }

  TEST_CASE("every head saves and loads back to the same scores") {
    TempDir tmp;
    const FeatureMatrix real = blob(40, 4, -1, 3), fake = blob(40, 4, 1, 4);
    LinearProbe<float> p;
    p.options.standardize = true;
    p.fit(real, fake);
    p.save(tmp.file("p.safetensors"));
    Svm s;
    s.options.probability = true;
    s.fit(real, fake);
    s.save(tmp.file("s.safetensors"));
    GaussianMixture g;
    g.options.components = 2;
    g.options.covariance = CovarianceType::Diag;
    g.fit(real);
    g.save(tmp.file("g.safetensors"));
    CHECK(load_head(tmp.file("p.safetensors")).index() == 0);
    CHECK(score(load_head(tmp.file("p.safetensors")), fake) == p.score(fake));
    CHECK(score(load_head(tmp.file("s.safetensors")), fake) == s.score(fake));
    CHECK(Svm::load(tmp.file("s.safetensors")).probability(fake) == s.probability(fake));
    CHECK(score(load_head(tmp.file("g.safetensors")), fake) == g.score(fake));
    CHECK(threshold(load_head(tmp.file("g.safetensors"))) == g.threshold());
  }

  TEST_CASE("every head with PCA scores the same rows identically after save and load") {
    TempDir tmp;
    const FeatureMatrix real = blob(40, 6, -1, 3), fake = blob(40, 6, 1, 4);
    LinearProbe<float> p;
    p.options.standardize = true;
    p.options.pca = 3;
    p.fit(real, fake);
    p.save(tmp.file("p.safetensors"));
    Svm s;
    s.options.pca = 0.8;
    s.fit(real, fake);
    s.save(tmp.file("s.safetensors"));
    GaussianMixture g;
    g.options.components = 2;
    g.options.pca = 2;
    g.fit(real);
    g.save(tmp.file("g.safetensors"));
    CHECK(p.features() == 3);
    CHECK(g.dim == 2);
    CHECK(score(load_head(tmp.file("p.safetensors")), fake) == p.score(fake));
    CHECK(score(load_head(tmp.file("s.safetensors")), fake) == s.score(fake));
    CHECK(score(load_head(tmp.file("g.safetensors")), fake) == g.score(fake));
    CHECK(Svm::load(tmp.file("s.safetensors")).pca.components == s.pca.components);
  }

  TEST_CASE("a head with PCA refuses rows of the PCA's output width") {
    const FeatureMatrix real = blob(30, 5, -1, 3), fake = blob(30, 5, 1, 4);
    Svm s;
    s.options.pca = 2;
    s.fit(real, fake);
    CHECK(s.support.cols == 2);
    CHECK_THROWS_AS(s.score(blob(3, 2, 0, 1)), ShapeError);
  }

  TEST_CASE("a one-class mixture's threshold keeps all but the given percentile of its fit rows") {
    const FeatureMatrix real = blob(400, 3, 0, 5);
    GaussianMixture g;
    g.options.components = 2;
    g.options.covariance = CovarianceType::Full;
    g.options.percentile = 5;
    g.fit(real);
    const double flagged = count_correct(g.score(real), g.threshold(), true);
    CHECK(flagged == doctest::Approx(20).epsilon(0.06));  // 5 % of 400, up to interpolation
  }

  TEST_CASE("probe training separates two blobs and is reproducible from its seed") {
    const FeatureMatrix real = blob(200, 8, -1, 6), fake = blob(200, 8, 1, 7);
    LinearProbe<double> a, b;
    a.options.epochs = b.options.epochs = 3;
    a.options.lr = b.options.lr = 0.05;
    a.fit(real, fake);
    b.fit(real, fake);
    CHECK(a.weight == b.weight);
    CHECK(count_correct(a.score(fake), 0.5, true) + count_correct(a.score(real), 0.5, false) >= 390);
  }

  TEST_CASE("a model file of another head or a mismatched width is refused with its name") {
    TempDir tmp;
    Svm s;
    s.fit(blob(10, 3, -1, 8), blob(10, 3, 1, 9));
    s.save(tmp.file("s.safetensors"));
    CHECK_THROWS_WITH_AS(LinearProbe<float>::load(tmp.file("s.safetensors")), doctest::Contains("s.safetensors"), FormatError);
    CHECK_THROWS_AS(s.score(blob(2, 4, 0, 1)), ShapeError);
  }
}

// =================================================================================================
TEST_SUITE("parity") {
  TEST_CASE("the probe is within 1e-5 of torch after one and after three Adam steps") {
    const auto f = SafetensorsFile::open(kData + "probe_adam.safetensors");
    const FeatureMatrix x = matrix(f, "x");
    const auto yd = doubles(f, "y");
    const std::vector<float> y(yd.begin(), yd.end());
    LinearProbe<float> p;
    const auto w0 = doubles(f, "w0");
    p.weight.assign(w0.begin(), w0.end());
    p.bias = static_cast<float>(doubles(f, "b0")[0]);
    std::vector<int64_t> rows(24);
    for (int64_t i = 0; i < 24; ++i) rows[static_cast<size_t>(i)] = i;
    for (int step = 0; step < 3; ++step) {
      p.train_step(x, y, rows.data() + 8 * step, 8);
      if (step == 0 || step == 2) {
        const auto w = doubles(f, step == 0 ? "w1" : "w3");
        for (size_t j = 0; j < w.size(); ++j) CHECK(std::abs(p.weight[j] - w[j]) < 1e-5);
        CHECK(std::abs(p.bias - doubles(f, step == 0 ? "b1" : "b3")[0]) < 1e-5);
      }
    }
  }

  TEST_CASE("SVC decision values are within 1e-3 of scikit-learn's with the same support vectors") {
    for (const std::string name : {"bc_rbf", "bc_rbf_shrinking", "bc_linear", "bc_poly", "bc_sigmoid", "digits_rbf"}) {
      CAPTURE(name);
      const auto f = SafetensorsFile::open(kData + "svm_" + name + ".safetensors");
      Svm s;
      s.options.kernel = parse_kernel(*f.find_metadata("kernel"));
      s.options.C = std::stod(*f.find_metadata("C"));
      s.options.gamma_mode = GammaMode::Value;
      s.options.gamma = std::stod(*f.find_metadata("gamma_value"));
      if (const auto* g = f.find_metadata("gamma"); g && *g == "scale") s.options.gamma_mode = GammaMode::Scale;
      if (const auto* g = f.find_metadata("gamma"); g && *g == "auto") s.options.gamma_mode = GammaMode::Auto;
      if (const auto* d = f.find_metadata("degree")) s.options.degree = std::stoi(*d);
      if (const auto* c = f.find_metadata("coef0")) s.options.coef0 = std::stod(*c);
      s.options.shrinking = *f.find_metadata("shrinking") == "True";
      s.fit(matrix(f, "real"), matrix(f, "fake"));
      CHECK(s.kernel.gamma == doctest::Approx(std::stod(*f.find_metadata("gamma_value"))).epsilon(1e-6));
      const auto sv = doubles(f, "support");
      REQUIRE(s.support_ids.size() == sv.size());
      for (size_t i = 0; i < sv.size(); ++i) CHECK(s.support_ids[i] == static_cast<int64_t>(sv[i]));
      const auto dec = s.score(matrix(f, "test")), expected = doubles(f, "decision");
      double worst = 0;
      for (size_t i = 0; i < dec.size(); ++i) worst = std::max(worst, std::abs(dec[i] - expected[i]));
      CHECK(worst < 1e-3);
      CHECK(std::abs(s.intercept - doubles(f, "intercept")[0]) < 1e-3);
    }
  }

  TEST_CASE("Platt's sigmoid matches scikit-learn's sigmoid calibration") {
    const auto f = SafetensorsFile::open(kData + "platt.safetensors");
    const auto dec = doubles(f, "decision"), lab = doubles(f, "labels"), ab = doubles(f, "AB");
    std::vector<int> labels(lab.begin(), lab.end());
    const PlattSigmoid p = PlattSigmoid::fit(dec, labels);
    CHECK(p.A == doctest::Approx(ab[0]).epsilon(1e-4));
    CHECK(p.B == doctest::Approx(ab[1]).epsilon(1e-4));
  }

  TEST_CASE("Gaussian mixture log-likelihoods are within 1e-6 relative of scikit-learn's from the same start") {
    for (const std::string cov : {"full", "tied", "diag", "spherical"}) {
      CAPTURE(cov);
      const auto f = SafetensorsFile::open(kData + "gmm_" + cov + ".safetensors");
      GaussianMixture g;
      g.options.components = 4;
      g.options.covariance = parse_covariance(cov);
      GmmParams init{doubles(f, "weights_init"), doubles(f, "means_init"), doubles(f, "prec_chol_init")};
      g.fit(matrix(f, "fit"), init);
      CHECK(g.n_iter == static_cast<int>(doubles(f, "n_iter")[0]));
      CHECK(g.lower_bound == doctest::Approx(std::stod(*f.find_metadata("lower_bound"))).epsilon(1e-6));
      const auto ll = g.log_likelihood(matrix(f, "test"));
      const auto hi = doubles(f, "test_ll_hi"), lo = doubles(f, "test_ll_lo");
      double worst = 0;
      for (size_t i = 0; i < ll.size(); ++i) worst = std::max(worst, std::abs(ll[i] - (hi[i] + lo[i])) / std::abs(hi[i] + lo[i]));
      CHECK(worst < 1e-6);
      const auto fhi = doubles(f, "fit_ll_hi"), flo = doubles(f, "fit_ll_lo");
      std::vector<double> fit_ll(fhi.size());
      for (size_t i = 0; i < fhi.size(); ++i) fit_ll[i] = fhi[i] + flo[i];
      CHECK(-g.threshold() == doctest::Approx(doubles(f, "percentile_0_05")[0]).epsilon(1e-6));
    }
  }

  TEST_CASE("PCA's variances, sign-fixed components and projections are within 1e-5 of scikit-learn's") {
    for (const std::string name : {"digits", "digits_wide", "lowrank"}) {
      CAPTURE(name);
      const auto f = SafetensorsFile::open(kData + "pca_" + name + ".safetensors");
      const FeatureMatrix x = name == "lowrank" ? lowrank_rows(f) : matrix(f, "x");
      const Pca p = Pca::fit({&x}, doubles(f, "n_components")[0]);
      CHECK(p.solver == (name == "lowrank" ? "randomized" : "exact"));  // digits_wide: the Gram side
      CHECK(column_relative_error(p.mean, doubles(f, "mean"), x.cols) < 1e-6);
      const auto ev = doubles(f, "explained_variance");
      for (size_t i = 0; i < ev.size(); ++i) CHECK(p.explained_variance[i] == doctest::Approx(ev[i]).epsilon(1e-5));
      const auto ratio = doubles(f, "explained_variance_ratio");
      for (size_t i = 0; i < ratio.size(); ++i) CHECK(p.explained_variance_ratio[i] == doctest::Approx(ratio[i]).epsilon(1e-5));
      const auto comps = doubles(f, "components");
      std::vector<double> got_t(comps.size()), want_t(comps.size());  // one column per component
      const int64_t k = p.out_features(), d = x.cols;
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < d; ++j)
          got_t[static_cast<size_t>(j * k + i)] = p.components[static_cast<size_t>(i * d + j)],
          want_t[static_cast<size_t>(j * k + i)] = comps[static_cast<size_t>(i * d + j)];
      CHECK(column_relative_error(got_t, want_t, k) < 1e-5);
      const FeatureMatrix t = p.apply(x);
      CHECK(column_relative_error(std::vector<double>(t.values.begin(), t.values.end()), doubles(f, "transformed"), k) < 1e-5);
    }
  }

  TEST_CASE("PCA with a variance fraction keeps as many components as scikit-learn's") {
    const auto f = SafetensorsFile::open(kData + "pca_digits_fraction.safetensors");
    const FeatureMatrix x = matrix(SafetensorsFile::open(kData + "pca_digits.safetensors"), "x");
    const Pca p = Pca::fit({&x}, 0.9);
    CHECK(p.out_features() == static_cast<int64_t>(doubles(f, "n_components")[0]));
    const auto ev = doubles(f, "explained_variance");
    for (size_t i = 0; i < ev.size(); ++i) CHECK(p.explained_variance[i] == doctest::Approx(ev[i]).epsilon(1e-5));
  }

  TEST_CASE("average precision and ROC-AUC equal scikit-learn's on scores with ties") {
    const auto f = SafetensorsFile::open(kData + "metrics.safetensors");
    const auto lab = doubles(f, "labels");
    const std::vector<int> labels(lab.begin(), lab.end());
    const auto scores = doubles(f, "scores");
    CHECK(average_precision(labels, scores) == doctest::Approx(doubles(f, "ap")[0]).epsilon(1e-6));
    CHECK(roc_auc(labels, scores) == doctest::Approx(doubles(f, "auc")[0]).epsilon(1e-6));
  }
}

// =================================================================================================
TEST_SUITE("cli") {
  TEST_CASE("fit, score and eval run end to end and score writes name,score,generated") {
    if (!have_cli()) return;
    TempDir tmp;
    save_safetensors(tmp.file("train.safetensors"), {});
    const FeatureMatrix real = blob(30, 4, -1, 10), fake = blob(30, 4, 1, 11);
    save_safetensors(tmp.file("f.safetensors"), {{"real", tensor_of(real)}, {"fake", tensor_of(fake)}});
    const std::string f = tmp.file("f.safetensors");
    for (const std::string head : {"svm", "probe"}) {
      CAPTURE(head);
      const std::string extra = head == "probe" ? " --epochs 20 --lr 0.01" : " --kernel linear --C 0.5";
      const auto r = cli("fit " + head + " --real " + f + ":real --fake " + f + ":fake --out " + tmp.file("m.safetensors") + extra);
      REQUIRE_MESSAGE(r.exit_code == 0, r.output);
      REQUIRE(cli("score --model " + tmp.file("m.safetensors") + " --features " + f + ":real --output " + tmp.file("r.csv")).exit_code == 0);
      REQUIRE(cli("score --model " + tmp.file("m.safetensors") + " --features " + f + ":fake --output " + tmp.file("sd.csv")).exit_code == 0);
      const std::string csv = test::read_file(tmp.file("r.csv"));
      CHECK(csv.starts_with("name,score,generated\n0,"));
      CHECK(std::count(csv.begin(), csv.end(), '\n') == 31);
      const auto e = cli("eval --real " + tmp.file("r.csv") + " --fake " + tmp.file("sd.csv"));
      CHECK(e.exit_code == 0);
      CHECK(e.output.find("sd ") != std::string::npos);
      CHECK(e.output.find("all ") != std::string::npos);
      CHECK(e.output.find("100") != std::string::npos);  // separable blobs: 100 % accuracy
    }
    const auto g = cli("fit gmm --real " + f + ":real --components 2 --covariance diag --out " + tmp.file("g.safetensors"));
    CHECK_MESSAGE(g.exit_code == 0, g.output);
  }

  TEST_CASE("fit --pca saves the projection in the model and score applies it to full-width rows") {
    if (!have_cli()) return;
    TempDir tmp;
    const FeatureMatrix real = blob(30, 6, -1, 12), fake = blob(30, 6, 1, 13);
    save_safetensors(tmp.file("f.safetensors"), {{"real", tensor_of(real)}, {"fake", tensor_of(fake)}});
    const std::string f = tmp.file("f.safetensors");
    const auto r = cli("fit svm --real " + f + ":real --fake " + f + ":fake --pca 2 --out " + tmp.file("m.safetensors"));
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    CHECK(r.output.find("pca: 6 -> 2 features") != std::string::npos);
    const auto m = SafetensorsFile::open(tmp.file("m.safetensors"));
    CHECK(m.get("pca.components").shape() == Shape{2, 6});
    CHECK(m.get("svm.support_vectors").shape()[1] == 2);
    REQUIRE(cli("score --model " + tmp.file("m.safetensors") + " --features " + f + ":fake --output " + tmp.file("s.csv")).exit_code == 0);
    const std::string csv = test::read_file(tmp.file("s.csv"));
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 31);
    const auto g = cli("fit gmm --real " + f + ":real --components 2 --pca 0.5 --out " + tmp.file("g.safetensors"));
    CHECK_MESSAGE(g.exit_code == 0, g.output);
    for (const std::string bad : {"0", "1.5", "-2", "x"})
      CHECK(cli("fit probe --real " + f + ":real --fake " + f + ":fake --pca " + bad + " --out " + tmp.file("p.safetensors")).exit_code == 1);
    CHECK(cli("fit svm --real " + f + ":real --fake " + f + ":fake --pca 7 --out " + tmp.file("p.safetensors")).exit_code == 1);
    CHECK_FALSE(fs::exists(tmp.file("p.safetensors")));
  }

  TEST_CASE("eval with a labels file reads groups from it") {
    if (!have_cli()) return;
    TempDir tmp;
    test::write_file(tmp.file("s.csv"), "name,score,generated\na,0.9,1\nb,0.2,0\nc,0.4,0\n");
    test::write_file(tmp.file("l.csv"), "name,label,group\na,1,sdxl\nb,0,real\nc,1,midjourney\n");
    const auto r = cli("eval --scores " + tmp.file("s.csv") + " --labels " + tmp.file("l.csv"));
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("midjourney") != std::string::npos);
    CHECK(r.output.find("66.67") != std::string::npos);  // 2 of 3 right overall
  }

  TEST_CASE("bad options exit 1 and bad inputs exit 2 naming the file, leaving no output") {
    if (!have_cli()) return;
    TempDir tmp;
    CHECK(cli("fit").exit_code == 1);
    CHECK(cli("fit tree --real x --out y").exit_code == 1);
    CHECK(cli("fit probe --real x --fake y --out z --kernel rbf").exit_code == 1);  // an svm option
    CHECK(cli("fit gmm --real x --out z --covariance round").exit_code == 1);
    test::write_file(tmp.file("bad.safetensors"), "not a safetensors file");
    const auto r = cli("fit svm --real " + tmp.file("bad.safetensors") + " --fake " + tmp.file("bad.safetensors") + " --out " + tmp.file("m.safetensors"));
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("bad.safetensors") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.file("m.safetensors")));
    const auto s = cli("score --model " + tmp.file("none.safetensors") + " --features x --output " + tmp.file("s.csv"));
    CHECK(s.exit_code == 2);
    CHECK(s.output.find("none.safetensors") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.file("s.csv")));
    test::write_file(tmp.file("s.csv"), "name,score\n");
    CHECK(cli("eval --real " + tmp.file("s.csv") + " --fake " + tmp.file("s.csv")).exit_code == 2);
  }
}

// =================================================================================================
namespace {

const std::string kShared = std::string(GENSCOPE_SHARED_DIR) + "/data/";

bool have_shared() {
  if (fs::exists(kShared + "uar_aim3b_dev.safetensors") && fs::exists(kShared + "uar_linear_head.pth")) return true;
  MESSAGE("skipped: ", kShared, " is absent (the shared data folder beside the checkout)");
  return false;
}

struct DevSplit {
  FeatureMatrix real_fit, fake_fit, real_test, fake_test;
};

DevSplit dev_split() {
  const auto f = SafetensorsFile::open(kShared + "uar_aim3b_dev.safetensors");
  const FeatureMatrix real = matrix(f, "real"), fake = matrix(f, "fake");
  return {real.slice_rows(0, 1000), fake.slice_rows(0, 1000), real.slice_rows(1000, 2000), fake.slice_rows(1000, 2000)};
}

}  // namespace

TEST_SUITE("shared") {
  TEST_CASE("UAR's released head converted by genscope scores 99.68 % on all 4000 rows") {
    if (!have_shared() || !have_cli()) return;
    TempDir tmp;
    const auto r = cli("convert --from " + kShared + "uar_linear_head.pth --to " + tmp.file("uar.safetensors"));
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    const auto head = load_head(tmp.file("uar.safetensors"));
    REQUIRE(head.index() == 0);  // a linear probe, loaded directly
    const auto f = SafetensorsFile::open(kShared + "uar_aim3b_dev.safetensors");
    const double real_ok = count_correct(score(head, matrix(f, "real")), 0.5, false);
    const double fake_ok = count_correct(score(head, matrix(f, "fake")), 0.5, true);
    CHECK(real_ok == 1993);  // 99.65 %
    CHECK(fake_ok == 1994);  // 99.70 %
    CHECK((real_ok + fake_ok) / 4000 == doctest::Approx(0.9968).epsilon(1e-4));

    // The same head through `genscope score`.
    const auto s = cli("score --model " + tmp.file("uar.safetensors") + " --features " + kShared +
                       "uar_aim3b_dev.safetensors:fake --output " + tmp.file("fake.csv"));
    REQUIRE_MESSAGE(s.exit_code == 0, s.output);
    CHECK(s.output.find("1994 generated") != std::string::npos);
  }

  TEST_CASE("the probe fitted from UAR's head with --init keeps its accuracy") {
    if (!have_shared() || !have_cli()) return;
    TempDir tmp;
    REQUIRE(cli("convert --from " + kShared + "uar_linear_head.pth --to " + tmp.file("uar.safetensors")).exit_code == 0);
    auto p = LinearProbe<float>::load(tmp.file("uar.safetensors"));
    const DevSplit d = dev_split();
    p.fit(d.real_fit, d.fake_fit);
    const double ok = count_correct(p.score(d.real_test), 0.5, false) + count_correct(p.score(d.fake_test), 0.5, true);
    CHECK(ok / 2000 >= 0.985);
  }

  // UAR's single epoch is for its large training set; on these 2000 rows one epoch reaches
  // 96.65 %, so the probe runs UAR's optimiser (Adam, lr 1e-3, batch 32) for 50 epochs.
  TEST_CASE("the probe fitted with UAR's optimiser on pairs 0..999 scores at least 98.5 % on 1000..1999") {
    if (!have_shared()) return;
    const DevSplit d = dev_split();
    LinearProbe<float> p;
    p.options.epochs = 50;
    p.fit(d.real_fit, d.fake_fit);
    const double ok = count_correct(p.score(d.real_test), 0.5, false) + count_correct(p.score(d.fake_test), 0.5, true);
    MESSAGE("probe accuracy: ", ok / 20, " %");
    CHECK(ok / 2000 >= 0.985);
  }
}

// The SVM on 2000 × 3072 features is the slowest of these; its own ctest entry.
TEST_SUITE("shared_svm") {
  TEST_CASE("the SVM with RAID's settings is within 0.3 points of scikit-learn's 97.45 %") {
    if (!have_shared()) return;
    const DevSplit d = dev_split();
    Svm s;
    s.options.gamma_mode = GammaMode::Auto;  // ThunderSVM's default: 1 / n_features
    s.fit(d.real_fit, d.fake_fit);
    const auto sr = s.score(d.real_test), sf = s.score(d.fake_test);
    const double ok = count_correct(sr, 0, false) + count_correct(sf, 0, true);
    MESSAGE("svm accuracy: ", ok / 20, " %, ", s.support.rows, " support vectors");
    CHECK(std::abs(ok / 20 - 97.45) <= 0.3);
  }
}
