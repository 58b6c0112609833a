// genscope fit svm|probe --real R --fake F --out M.safetensors [options]
// genscope fit gmm --real R --out M.safetensors [options] — fit a detector head on features.
//
// R, F name feature matrices (detect/features.hpp: FILE.safetensors[:TENSOR], FILE.npy or a
// folder of .npy files). The model is written atomically with its hyper-parameters in the
// metadata; `genscope score --model M` uses it. Options that belong to another head are usage
// errors, so a typo cannot silently fall back to a default.
#pragma once

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "args.hpp"
#include "genscope/detect/gmm.hpp"
#include "genscope/detect/linear_probe.hpp"
#include "genscope/detect/svm.hpp"
#include "genscope/io/npy.hpp"

namespace genscope::cli {

namespace fit_detail {

inline double get_double(const Args& args, const std::string& name, double fallback, double lo, double hi) {
  const auto v = args.get(name);
  if (!v) return fallback;
  double x = 0;
  const auto r = std::from_chars(v->data(), v->data() + v->size(), x);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size() || !(x >= lo && x <= hi))
    fail<UsageError>("fit: option '--", name, "' expects a number in [", lo, ", ", hi, "], got '", *v, "'");
  return x;
}

// The options given that the head does not take.
inline void check_options(const Args& args, const std::string& head, const std::set<std::string>& allowed) {
  for (const std::string name : {"fake", "kernel", "C", "gamma", "tol", "shrinking", "probability", "indices", "degree",
                                 "coef0", "cache-mb", "epochs", "lr", "batch", "seed", "init", "components", "covariance",
                                 "percentile", "reg-covar", "max-iter", "n-init", "pca"})
    if (args.has(name) && !allowed.count(name)) fail<UsageError>("fit ", head, ": option '--", name, "' does not apply to ", head);
}

// --pca: an integer count of components (>= 1), or a fraction 0 < f < 1 of the variance to
// explain (scikit-learn's PCA n_components); 0 (absent) is off.
inline double get_pca(const Args& args) {
  const auto v = args.get("pca");
  if (!v) return 0;
  double x = 0;
  const auto r = std::from_chars(v->data(), v->data() + v->size(), x);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size() || !(x > 0) || (x >= 1 && x != std::floor(x)) || x > 1e9)
    fail<UsageError>("fit: option '--pca' expects a number of components (an integer >= 1) or a fraction of the variance in (0, 1), got '",
                     *v, "'");
  return x;
}

inline void print_pca(const detect::Pca& p) {
  if (!p.enabled()) return;
  double explained = 0;
  for (double v : p.explained_variance_ratio) explained += v;
  std::printf("pca: %lld -> %lld features (%s solver), %.2f %% of the variance\n", static_cast<long long>(p.in_features()),
              static_cast<long long>(p.out_features()), p.solver.c_str(), 100 * explained);
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline detect::FeatureMatrix read(const Args& args, const std::string& name) {
  const std::string spec = args.require(name);
  detect::FeatureMatrix m = detect::read_features(spec);
  std::printf("read %s: %lld rows x %lld features\n", spec.c_str(), static_cast<long long>(m.rows), static_cast<long long>(m.cols));
  return m;
}

}  // namespace fit_detail

inline int run_fit(int argc, char** argv) {
  using namespace fit_detail;
  Args args("fit", "svm|probe --real R --fake F --out M.safetensors [options]\n       genscope fit gmm --real R --out M.safetensors [options]",
            {{"real", "R", "real features: FILE.safetensors[:TENSOR], FILE.npy or a folder of .npy"},
             {"fake", "F", "generated features (svm, probe)"},
             {"out", "M.safetensors", "where to write the model (atomically)"},
             {"standardize", "", "standardise features (mean 0, variance 1) inside the model"},
             {"pca", "K", "project on the top K principal axes inside the model (after --standardize); 0<K<1: the fewest axes explaining that fraction of the variance"},
             {"kernel", "K", "svm: linear, rbf (default), poly, sigmoid"},
             {"C", "C", "svm: penalty (default 1)"},
             {"gamma", "G", "svm: a value, scale (default, 1/(D·Var X)) or auto (1/D, RAID's)"},
             {"degree", "N", "svm: poly degree (default 3)"},
             {"coef0", "R", "svm: poly/sigmoid coef0 (default 0)"},
             {"tol", "T", "svm: stopping tolerance (default 1e-3); gmm: EM tolerance (default 1e-3)"},
             {"shrinking", "", "svm: use libsvm's shrinking heuristic (default off, as RAID)"},
             {"probability", "", "svm: fit Platt probabilities (5-fold CV)"},
             {"indices", "I.npy", "svm: keep only these feature columns (RAID's important_indices)"},
             {"cache-mb", "MB", "svm: kernel cache size (default 200)"},
             {"epochs", "N", "probe: epochs (default 1)"},
             {"lr", "LR", "probe: Adam learning rate (default 1e-3)"},
             {"batch", "N", "probe: batch size (default 32)"},
             {"seed", "S", "probe: shuffle seed; gmm: k-means++ seed; svm: CV seed; all: randomized PCA seed (default 0)"},
             {"init", "M.safetensors", "probe: start from this head (e.g. UAR's, converted)"},
             {"components", "K", "gmm: mixture components (default 6)"},
             {"covariance", "TYPE", "gmm: full (default), diag, tied, spherical"},
             {"percentile", "P", "gmm: threshold percentile of the real log-likelihoods, in % (default 0.05)"},
             {"reg-covar", "R", "gmm: added to covariance diagonals (default 1e-6)"},
             {"max-iter", "N", "gmm: EM iterations at most (default 100)"},
             {"n-init", "N", "gmm: initialisations, best kept (default 1)"}});
  if (!args.parse(argc, argv, 2)) return 0;
  if (args.positionals().size() != 1) fail<UsageError>("fit: expected one head: svm, probe or gmm");
  const std::string head = args.positionals()[0];
  const std::string out = args.require("out");
  const bool standardize = args.has("standardize");
  const auto t0 = std::chrono::steady_clock::now();

  if (head == "probe") {
    check_options(args, head, {"fake", "epochs", "lr", "batch", "seed", "init", "pca"});
    detect::LinearProbe<float> probe;
    if (auto init = args.get("init")) {
      probe = detect::LinearProbe<float>::load(*init);
      std::printf("starting from %s (%lld features)\n", init->c_str(), static_cast<long long>(probe.features()));
    }
    probe.options.epochs = static_cast<int>(args.get_int("epochs", 0, 1000000).value_or(1));
    probe.options.lr = get_double(args, "lr", 1e-3, 0, 1e6);
    probe.options.batch = static_cast<int>(args.get_int("batch", 1, 1 << 30).value_or(32));
    probe.options.seed = static_cast<uint64_t>(args.get_int("seed", 0, INT64_MAX).value_or(0));
    probe.options.standardize = standardize;
    probe.options.pca = get_pca(args);
    if (args.has("init") && (standardize || args.has("pca")))
      fail<UsageError>("fit probe: --standardize and --pca cannot be combined with --init");
    const auto real = read(args, "real"), fake = read(args, "fake");
    if (args.has("init") && probe.features() != real.cols)
      fail<UsageError>("fit probe: --init head has ", probe.features(), " features, the data ", real.cols);
    probe.fit(real, fake);
    print_pca(probe.pca);
    probe.save(out);
    std::printf("probe: %lld rows, %d epoch(s), fit in %.2f s; wrote %s\n", static_cast<long long>(real.rows + fake.rows),
                probe.options.epochs, seconds_since(t0), out.c_str());
  } else if (head == "svm") {
    check_options(args, head, {"fake", "kernel", "C", "gamma", "tol", "shrinking", "probability", "indices", "degree", "coef0",
                               "cache-mb", "seed", "pca"});
    detect::Svm svm;
    auto& o = svm.options;
    if (auto k = args.get("kernel")) {
      try {
        o.kernel = detect::parse_kernel(*k);
      } catch (const UsageError& e) {
        fail<UsageError>("fit svm: option '--kernel': ", e.what());
      }
    }
    o.C = get_double(args, "C", 1.0, 1e-300, 1e300);
    if (auto g = args.get("gamma")) {
      if (*g == "scale") o.gamma_mode = detect::GammaMode::Scale;
      else if (*g == "auto") o.gamma_mode = detect::GammaMode::Auto;
      else o.gamma_mode = detect::GammaMode::Value, o.gamma = get_double(args, "gamma", 0, 1e-300, 1e300);
    }
    o.degree = static_cast<int>(args.get_int("degree", 0, 100).value_or(3));
    o.coef0 = get_double(args, "coef0", 0.0, -1e300, 1e300);
    o.tol = get_double(args, "tol", 1e-3, 1e-300, 1e300);
    o.shrinking = args.has("shrinking");
    o.probability = args.has("probability");
    o.standardize = standardize;
    o.pca = get_pca(args);
    o.cache_bytes = static_cast<int64_t>(args.get_int("cache-mb", 1, 1 << 20).value_or(200)) << 20;
    o.seed = static_cast<uint64_t>(args.get_int("seed", 0, INT64_MAX).value_or(0));
    if (auto ind = args.get("indices")) {
      const Tensor t = load_npy(*ind);
      if (t.dtype() != DType::I64 || t.dim() != 1) fail<FormatError>(*ind, ": indices must be a 1-D integer array, got ", t.str());
      o.indices.assign(t.data<int64_t>(), t.data<int64_t>() + t.numel());
    }
    const auto real = read(args, "real"), fake = read(args, "fake");
    if (!o.indices.empty())
      for (int64_t c : o.indices)
        if (c < 0 || c >= real.cols) fail<InputError>(*args.get("indices"), ": index ", c, " out of range [0, ", real.cols, ")");
    svm.fit(real, fake);
    print_pca(svm.pca);
    svm.save(out);
    std::printf("svm: %s kernel, gamma %.6g, %lld support vectors, %lld iterations, fit in %.2f s; wrote %s\n",
                std::string(detect::kernel_name(o.kernel)).c_str(), svm.kernel.gamma, static_cast<long long>(svm.support.rows),
                static_cast<long long>(svm.iterations), seconds_since(t0), out.c_str());
  } else if (head == "gmm") {
    check_options(args, head, {"components", "covariance", "percentile", "reg-covar", "tol", "max-iter", "n-init", "seed", "pca"});
    detect::GaussianMixture gmm;
    auto& o = gmm.options;
    o.components = static_cast<int>(args.get_int("components", 1, 100000).value_or(6));
    if (auto c = args.get("covariance")) {
      try {
        o.covariance = detect::parse_covariance(*c);
      } catch (const UsageError& e) {
        fail<UsageError>("fit gmm: option '--covariance': ", e.what());
      }
    }
    o.percentile = get_double(args, "percentile", 0.05, 0, 100);
    o.reg_covar = get_double(args, "reg-covar", 1e-6, 0, 1e300);
    o.tol = get_double(args, "tol", 1e-3, 0, 1e300);
    o.max_iter = static_cast<int>(args.get_int("max-iter", 1, 1 << 30).value_or(100));
    o.n_init = static_cast<int>(args.get_int("n-init", 1, 1 << 20).value_or(1));
    o.seed = static_cast<uint64_t>(args.get_int("seed", 0, INT64_MAX).value_or(0));
    o.standardize = standardize;
    o.pca = get_pca(args);
    const auto real = read(args, "real");
    gmm.fit(real);
    print_pca(gmm.pca);
    gmm.save(out);
    std::printf("gmm: %d %s components, %d EM iterations (%s), mean log-likelihood %.6g, threshold %.6g; fit in %.2f s; wrote %s\n",
                gmm.K(), std::string(detect::covariance_name(o.covariance)).c_str(), gmm.n_iter,
                gmm.converged ? "converged" : "not converged", gmm.lower_bound, gmm.ll_threshold, seconds_since(t0), out.c_str());
  } else {
    fail<UsageError>("fit: unknown head '", head, "' (svm, probe, gmm)");
  }
  return 0;
}

}  // namespace genscope::cli
