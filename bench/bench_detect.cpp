// Benchmarks of the detector heads on ../shared/data/uar_aim3b_dev.safetensors (the dev split of
// REFERENCE.md: pairs 0..999 fit, 1000..1999 test): SVM fit and predict with RAID's settings,
// Gaussian mixture fit (diag on all 3072 features; full on the first 256, as full covariances
// of 3072 features are 6 Cholesky factorisations of 3072² matrices per EM step). Each benchmark
// runs once per repetition; counters report what was fitted. Compare with scikit-learn in one
// run: python3 tools/bench_detect_sklearn.py build/bench/bench_detect. Also PCA to 256 components
// of the 2000 fit rows (sklearn's 'auto' picks its randomized solver for this shape too).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include "genscope/detect/gmm.hpp"
#include "genscope/detect/pca.hpp"
#include "genscope/detect/svm.hpp"

using namespace genscope;
using namespace genscope::detect;

namespace {

#ifndef GENSCOPE_SHARED_DIR
#define GENSCOPE_SHARED_DIR "../shared"
#endif

struct Dev {
  FeatureMatrix real_fit, fake_fit, test;
  bool ok = false;
};

const Dev& dev() {
  static const Dev d = [] {
    Dev out;
    const char* env = std::getenv("GENSCOPE_SHARED_DIR");
    const std::string path = std::string(env ? env : GENSCOPE_SHARED_DIR) + "/data/uar_aim3b_dev.safetensors";
    if (!std::filesystem::exists(path)) return out;
    const auto f = SafetensorsFile::open(path);
    const FeatureMatrix real = features_from_tensor(f.get("real"), "real"), fake = features_from_tensor(f.get("fake"), "fake");
    out.real_fit = real.slice_rows(0, 1000);
    out.fake_fit = fake.slice_rows(0, 1000);
    out.test = real.slice_rows(1000, 2000);
    const FeatureMatrix ft = fake.slice_rows(1000, 2000);
    out.test.values.insert(out.test.values.end(), ft.values.begin(), ft.values.end());
    out.test.names.insert(out.test.names.end(), ft.names.begin(), ft.names.end());
    out.test.rows += ft.rows;
    out.ok = true;
    return out;
  }();
  return d;
}

bool need_data(benchmark::State& state) {
  if (dev().ok) return true;
  state.SkipWithError("../shared/data/uar_aim3b_dev.safetensors is absent (set GENSCOPE_SHARED_DIR)");
  return false;
}

Svm raid_svm() {
  Svm s;
  s.options.gamma_mode = GammaMode::Auto;  // C 1, tol 1e-3, no shrinking: the defaults
  return s;
}

void BM_SvmFit(benchmark::State& state) {
  if (!need_data(state)) return;
  Svm s;
  for (auto _ : state) {
    s = raid_svm();
    s.fit(dev().real_fit, dev().fake_fit);
  }
  state.counters["support_vectors"] = static_cast<double>(s.support.rows);
  state.counters["smo_iterations"] = static_cast<double>(s.iterations);
}

void BM_SvmPredict(benchmark::State& state) {
  if (!need_data(state)) return;
  Svm s = raid_svm();
  s.fit(dev().real_fit, dev().fake_fit);
  for (auto _ : state) benchmark::DoNotOptimize(s.score(dev().test));
  state.counters["rows"] = static_cast<double>(dev().test.rows);
}

// GMM as REFERENCE.md's one-class row: 6 components, reg 1e-6, seed 0, fit on 1000 real rows.
void BM_GmmFit(benchmark::State& state) {
  if (!need_data(state)) return;
  const bool full = state.range(0) == 1;
  const FeatureMatrix x = full ? select_columns(dev().real_fit, [] {
    std::vector<int64_t> c(256);
    for (int64_t i = 0; i < 256; ++i) c[static_cast<size_t>(i)] = i;
    return c;
  }())
                               : dev().real_fit;
  GaussianMixture g;
  for (auto _ : state) {
    g = GaussianMixture{};
    g.options.covariance = full ? CovarianceType::Full : CovarianceType::Diag;
    g.fit(x);
  }
  state.SetLabel(full ? "full, 256 features" : "diag, 3072 features");
  state.counters["em_iterations"] = g.n_iter;
}

// PCA to 256 components of the 2000 fit rows (1000 real, 1000 generated): the randomized solver.
void BM_PcaFit(benchmark::State& state) {
  if (!need_data(state)) return;
  Pca p;
  for (auto _ : state) p = Pca::fit({&dev().real_fit, &dev().fake_fit}, 256);
  double explained = 0;
  for (double v : p.explained_variance_ratio) explained += v;
  state.SetLabel(p.solver);
  state.counters["explained_variance_pct"] = 100 * explained;
}

}  // namespace

BENCHMARK(BM_PcaFit)->Unit(benchmark::kMillisecond)->Iterations(1)->Repetitions(3);
BENCHMARK(BM_SvmFit)->Unit(benchmark::kMillisecond)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(false);
BENCHMARK(BM_SvmPredict)->Unit(benchmark::kMillisecond)->Iterations(1)->Repetitions(3);
BENCHMARK(BM_GmmFit)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(1)->Repetitions(3);
