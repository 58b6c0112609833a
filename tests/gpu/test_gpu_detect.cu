// GPU cases for the detector heads (part of test_gpu; needs a GPU, not run by ctest): the SVM
// decision kernels of test_kernels_detect.cpp natively, and detect::SvmCuda against the CPU
// Svm::score on scikit-learn's fixtures (tests/data/detect/svm_*.safetensors: every kernel
// type) and on a model with an index selection, standardisation and PCA.
// Tolerance: both sides take f32 dot products (ops::gemm, cuBLASLt F32) in different summation
// orders and round each kernel value to f32, then sum in double; decision values agree to 1e-4
// of their largest magnitude, and the predicted class agrees wherever |decision| > 1e-3.
#include "../test_kernels_detect.cpp"

#include <string>

#include "genscope/detect/svm.hpp"
#include "genscope/detect/svm_cuda.hpp"

namespace {

// tests/data/detect: GENSCOPE_TEST_DATA where the build defines it, else beside this file's
// folder (test_gpu is built without the test-data definition).
std::string detect_data() {
#if defined(GENSCOPE_TEST_DATA)
  return std::string(GENSCOPE_TEST_DATA) + "/detect/";
#else
  std::string here = __FILE__;                     // .../tests/gpu/test_gpu_detect.cu
  here = here.substr(0, here.rfind('/'));          // .../tests/gpu
  return here.substr(0, here.rfind('/') + 1) + "data/detect/";
#endif
}
const std::string kDetectData = detect_data();

detect::FeatureMatrix fixture_matrix(const SafetensorsFile& f, const std::string& name) {
  return detect::features_from_tensor(f.get(name), f.path() + ":" + name);
}

void check_same_decisions(const std::vector<double>& gpu, const std::vector<double>& cpu) {
  REQUIRE(gpu.size() == cpu.size());
  double err = 0, scale = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    err = std::max(err, std::abs(gpu[i] - cpu[i]));
    scale = std::max(scale, std::abs(cpu[i]));
    if (std::abs(cpu[i]) > 1e-3) CHECK((gpu[i] > 0) == (cpu[i] > 0));
  }
  CHECK(err <= 1e-4 * scale);
}

}  // namespace

TEST_SUITE("gpu_detect") {

TEST_CASE("SvmCuda's decision values equal the CPU SVM's on scikit-learn's fixtures for every kernel") {
  for (const std::string name : {"bc_rbf", "bc_linear", "bc_poly", "bc_sigmoid", "digits_rbf"}) {
    CAPTURE(name);
    const auto f = SafetensorsFile::open(kDetectData + "svm_" + name + ".safetensors");
    detect::Svm s;
    s.options.kernel = detect::parse_kernel(*f.find_metadata("kernel"));
    s.options.C = std::stod(*f.find_metadata("C"));
    s.options.gamma_mode = detect::GammaMode::Value;
    s.options.gamma = std::stod(*f.find_metadata("gamma_value"));
    if (const auto* d = f.find_metadata("degree")) s.options.degree = std::stoi(*d);
    if (const auto* c = f.find_metadata("coef0")) s.options.coef0 = std::stod(*c);
    s.fit(fixture_matrix(f, "real"), fixture_matrix(f, "fake"));
    const detect::SvmCuda gpu(s);
    CHECK(gpu.support_vectors() == s.support.rows);
    const auto test = fixture_matrix(f, "test");
    check_same_decisions(gpu.score(test), s.score(test));
  }
}

TEST_CASE("SvmCuda applies the model's index selection, standardisation and PCA as score does") {
  const auto f = SafetensorsFile::open(kDetectData + "svm_digits_rbf.safetensors");
  detect::Svm s;
  s.options.standardize = true;
  s.options.pca = 12;
  for (int64_t c = 0; c < 64; c += 2) s.options.indices.push_back(c);  // every other pixel
  s.fit(fixture_matrix(f, "real"), fixture_matrix(f, "fake"));
  const detect::SvmCuda gpu(s);
  const auto test = fixture_matrix(f, "test");
  check_same_decisions(gpu.score(test), s.score(test));
  CHECK_THROWS_AS(gpu.score(detect::select_columns(test, {0, 1})), ShapeError);  // indices reach column 62
}

TEST_CASE("SvmCuda scores rows in several chunks as in one") {
  const auto f = SafetensorsFile::open(kDetectData + "svm_bc_rbf.safetensors");
  detect::Svm s;
  s.fit(fixture_matrix(f, "real"), fixture_matrix(f, "fake"));
  const detect::FeatureMatrix test = fixture_matrix(f, "test");
  detect::FeatureMatrix many = test;
  while (many.rows <= (int64_t{64} << 20) / s.support.rows) {  // past one chunk of 64 Mi dot products
    many.values.insert(many.values.end(), test.values.begin(), test.values.end());
    many.rows += test.rows;
  }
  const auto all = detect::SvmCuda(s).score(many);
  const auto one = detect::SvmCuda(s).score(test);
  size_t differ = 0;
  for (size_t i = 0; i < all.size(); ++i) differ += all[i] != one[i % one.size()];
  CHECK(differ == 0);
}

}  // TEST_SUITE
