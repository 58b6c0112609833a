// genscope/detect/gmm.hpp — Zhong et al.'s one-class head: a Gaussian mixture of real images.
//
// EM as scikit-learn's GaussianMixture (sklearn/mixture/_gaussian_mixture.py), in double:
//   E-step  log N(x | μ_k, Σ_k) = −½(D log 2π + ‖(x − μ_k)ᵀ P_k‖²) + Σ log diag(P_k), where P_k is
//           the Cholesky factor of the precision (_estimate_log_gaussian_prob); responsibilities
//           and the per-row log-likelihood by log-sum-exp over log π_k + log N;
//   M-step  n_k = Σ_i r_ik + 10ε, μ_k = Σ_i r_ik x_i / n_k, covariances per type
//           (_estimate_gaussian_covariances_{full,tied,diag,spherical}) + reg_covar on the
//           diagonal, π_k = n_k / n;
//   stop    when the mean log-likelihood changes by less than tol, or after max_iter; of n_init
//           runs the one with the highest final lower bound is kept.
// Initialisation: given weights/means/precisions (sklearn's weights_init, means_init,
// precisions_init), or greedy k-means++ seeding as sklearn's kmeans_plusplus with every row assigned
// to its nearest seed, then one M-step.
//
// Optional standardisation then PCA (detect/pca.hpp), fitted on the real rows, saved with the
// mixture and applied by score(); the mixture lives in the PCA's space.
//
// As a detector: score = −log-likelihood (higher = less typical of real images = more likely
// generated); threshold = −(the `percentile`-th percentile of the fit rows' log-likelihoods,
// numpy's linear interpolation), so that 100 − percentile % of the real fit rows are kept.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "genscope/core/thread_pool.hpp"
#include "genscope/detect/dot_f64.hpp"
#include "genscope/detect/features.hpp"
#include "genscope/detect/model_file.hpp"
#include "genscope/detect/pca.hpp"
#include "genscope/detect/standardize.hpp"

namespace genscope::detect {

enum class CovarianceType { Full, Tied, Diag, Spherical };

inline std::string_view covariance_name(CovarianceType c) {
  switch (c) {
    case CovarianceType::Full: return "full";
    case CovarianceType::Tied: return "tied";
    case CovarianceType::Diag: return "diag";
    case CovarianceType::Spherical: return "spherical";
  }
  return "?";
}

inline CovarianceType parse_covariance(std::string_view s) {
  for (auto c : {CovarianceType::Full, CovarianceType::Tied, CovarianceType::Diag, CovarianceType::Spherical})
    if (covariance_name(c) == s) return c;
  fail<UsageError>("unknown covariance type '", s, "' (full, tied, diag, spherical)");
}

struct GmmOptions {
  int components = 6;
  CovarianceType covariance = CovarianceType::Full;
  double reg_covar = 1e-6;
  double tol = 1e-3;
  int max_iter = 100;
  int n_init = 1;
  uint64_t seed = 0;
  double percentile = 0.05;  // in percent: 0.05 keeps 99.95 % of the fit rows as real
  bool standardize = false;
  double pca = 0;  // > 0: PCA to this many components (or variance fraction < 1), fitted on the real rows
};

// Parameters of a mixture. prec_chol holds, per covariance type (sklearn's precisions_cholesky_):
//   full: K × D × D (upper triangular P with P Pᵀ = Σ⁻¹), tied: D × D, diag: K × D, spherical: K.
struct GmmParams {
  std::vector<double> weights, means, prec_chol;
};

// Lower Cholesky factor of the symmetric positive definite D×D matrix a (in place).
inline void cholesky_lower(std::vector<double>& a, int64_t d, int component) {
  for (int64_t j = 0; j < d; ++j) {
    const double* rj = a.data() + j * d;
    const double s = rj[j] - dot_f64(rj, rj, j);
    if (!(s > 0))
      fail<InputError>("gmm: covariance of component ", component,
                       " is not positive definite; increase reg_covar or use fewer components");
    const double l = std::sqrt(s);
    a[static_cast<size_t>(j * d + j)] = l;
    parallel_for(j + 1, d, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) a[static_cast<size_t>(i * d + j)] = (a[static_cast<size_t>(i * d + j)] - dot_f64(a.data() + i * d, rj, j)) / l;
    });
    for (int64_t k = j + 1; k < d; ++k) a[static_cast<size_t>(j * d + k)] = 0;
  }
}

// sklearn's _compute_precision_cholesky for one full matrix: P = (L⁻¹)ᵀ with Σ = L Lᵀ.
inline std::vector<double> precision_cholesky(std::vector<double> cov, int64_t d, int component) {
  cholesky_lower(cov, d, component);
  std::vector<double> p(static_cast<size_t>(d * d), 0.0);  // p = (L⁻¹)ᵀ: column c of L⁻¹ is row c of p
  parallel_for(0, d, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // Forward substitution L z = e_c; z_i = 0 for i < c.
      double* z = p.data() + c * d;
      for (int64_t i = c; i < d; ++i)
        z[i] = ((i == c ? 1.0 : 0.0) - dot_f64(cov.data() + i * d + c, z + c, i - c)) / cov[static_cast<size_t>(i * d + i)];
    }
  });
  // p currently holds (L⁻¹)ᵀ row-major transposed: p[c][i] = (L⁻¹)[i][c] = P[c][i]. Already P.
  return p;
}

// The fit rows in double, in the layouts the products need (computed once per fit).
struct GmmData {
  int64_t n = 0, d = 0;
  std::vector<double> x, x2;    // [n, d]: x and x² (element-wise; diag and spherical only)
  std::vector<double> xt;       // [d, n]: x's transpose (full only: the M-step's centred columns)
  std::vector<double> xtx;      // [d, d]: xᵀx (tied only)

  static GmmData of(const FeatureMatrix& m, CovarianceType cov, bool for_fit) {
    GmmData g{m.rows, m.cols, std::vector<double>(m.values.begin(), m.values.end()), {}, {}, {}};
    const bool diagonal = cov == CovarianceType::Diag || cov == CovarianceType::Spherical;
    if (diagonal) {
      g.x2 = g.x;
      for (double& v : g.x2) v *= v;
    }
    if (!for_fit) return g;
    if (cov == CovarianceType::Full) g.xt = transposed(g.x.data(), g.n, g.d);
    if (cov == CovarianceType::Tied) {
      const std::vector<double> xt = transposed(g.x.data(), g.n, g.d);
      g.xtx.resize(static_cast<size_t>(g.d * g.d));
      dot_block_f64(xt.data(), g.d, xt.data(), g.d, g.n, g.xtx.data(), g.d);
    }
    return g;
  }
};

class GaussianMixture {
 public:
  GmmOptions options;
  Standardizer standardize;
  Pca pca;
  GmmParams params;
  int64_t dim = 0;  // after standardisation and PCA
  double lower_bound = -std::numeric_limits<double>::infinity();
  int n_iter = 0;
  bool converged = false;
  double ll_threshold = 0;  // log-likelihood below which a row is called generated

  int K() const { return static_cast<int>(params.weights.size()); }

  // Fit with k-means++ initialisation (n_init runs, seeded), keep the best run.
  void fit(const FeatureMatrix& real) { fit_impl(real, nullptr); }

  // Fit from given initial parameters (sklearn's weights_init, means_init, precisions_init given
  // as Cholesky factors of the precisions, the layout of GmmParams::prec_chol).
  void fit(const FeatureMatrix& real, const GmmParams& init) { fit_impl(real, &init); }

  // Per-row log-likelihood log p(x) (sklearn's score_samples).
  std::vector<double> log_likelihood(const FeatureMatrix& x_in) const {
    if (x_in.cols != input_features())
      fail<ShapeError>("gmm: features have ", x_in.cols, " columns, the model expects ", input_features());
    const GmmData x = GmmData::of(pca.apply(standardize.apply(x_in)), options.covariance, false);
    std::vector<double> ll, resp;
    e_step(x, params, ll, resp);
    return ll;
  }

  // Columns log_likelihood() expects: the PCA's input width, or the mixture's.
  int64_t input_features() const { return pca.enabled() ? pca.in_features() : dim; }

  std::vector<double> score(const FeatureMatrix& x) const {
    std::vector<double> s = log_likelihood(x);
    for (double& v : s) v = -v;
    return s;
  }
  double threshold() const { return -ll_threshold; }
  std::string_view threshold_meaning() const {
    return "-log-likelihood at the given percentile of the real fit rows: generated when less likely than that";
  }

  void save(const std::string& path) const {
    ModelWriter w;
    w.meta("genscope.head", "gmm");
    w.meta("gmm.covariance", std::string(covariance_name(options.covariance)));
    w.meta("gmm.components", K());
    w.meta("gmm.reg_covar", options.reg_covar);
    w.meta("gmm.tol", options.tol);
    w.meta("gmm.max_iter", options.max_iter);
    w.meta("gmm.n_init", options.n_init);
    w.meta("gmm.seed", std::to_string(options.seed));
    w.meta("gmm.percentile", options.percentile);
    w.meta("gmm.ll_threshold", ll_threshold);
    w.tensor("gmm.weights", params.weights, Shape{K()});
    w.tensor("gmm.means", params.means, Shape{K(), dim});
    w.tensor("gmm.precisions_cholesky", params.prec_chol, Shape{static_cast<int64_t>(params.prec_chol.size())});
    standardize.save(w);
    pca.save(w);
    w.save(path);
  }

  static GaussianMixture load(const std::string& path) {
    ModelReader r(path);
    if (r.meta("genscope.head") != "gmm") fail<FormatError>(path, ": is a '", r.meta("genscope.head"), "' model, not a gmm");
    GaussianMixture g;
    g.options.covariance = parse_covariance(r.meta("gmm.covariance"));
    g.options.percentile = r.meta_number("gmm.percentile");
    g.options.reg_covar = r.meta_number("gmm.reg_covar");
    g.ll_threshold = r.meta_number("gmm.ll_threshold");
    r.tensor("gmm.weights", g.params.weights, 1);
    const Shape m = r.tensor("gmm.means", g.params.means, 2);
    g.dim = m[1];
    g.options.components = g.K();
    if (m[0] != g.K()) fail<FormatError>(path, ": gmm.means has ", m[0], " rows for ", g.K(), " weights");
    r.tensor("gmm.precisions_cholesky", g.params.prec_chol, 1);
    if (g.params.prec_chol.size() != g.prec_size(g.K(), g.dim))
      fail<FormatError>(path, ": gmm.precisions_cholesky has ", g.params.prec_chol.size(), " values, expected ",
                        g.prec_size(g.K(), g.dim));
    g.standardize = Standardizer::load(r);
    g.pca = Pca::load(r);
    if (g.pca.enabled() && g.pca.out_features() != g.dim)
      fail<FormatError>(path, ": pca.components has ", g.pca.out_features(), " rows for means of ", g.dim, " features");
    if (g.standardize.enabled() && static_cast<int64_t>(g.standardize.mean.size()) != g.input_features())
      fail<FormatError>(path, ": standardize.mean does not match gmm.means (or pca.mean)");
    return g;
  }

 private:
  size_t prec_size(int64_t k, int64_t d) const {
    switch (options.covariance) {
      case CovarianceType::Full: return static_cast<size_t>(k * d * d);
      case CovarianceType::Tied: return static_cast<size_t>(d * d);
      case CovarianceType::Diag: return static_cast<size_t>(k * d);
      case CovarianceType::Spherical: return static_cast<size_t>(k);
    }
    return 0;
  }

  void fit_impl(const FeatureMatrix& real, const GmmParams* init) {
    if (options.components < 1) fail<UsageError>("gmm: components must be >= 1");
    if (real.rows < options.components) fail<UsageError>("gmm: ", real.rows, " rows for ", options.components, " components");
    if (options.max_iter < 1 || options.n_init < 1) fail<UsageError>("gmm: max_iter and n_init must be >= 1");
    standardize = options.standardize ? Standardizer::fit({&real}) : Standardizer{};
    FeatureMatrix xf = standardize.apply(real);
    pca = options.pca > 0 ? Pca::fit({&xf}, options.pca, options.seed) : Pca{};
    xf = pca.apply(xf);
    const GmmData x = GmmData::of(xf, options.covariance, true);
    dim = x.d;
    std::mt19937_64 rng(options.seed);
    double best = -std::numeric_limits<double>::infinity();
    const int runs = init ? 1 : options.n_init;
    for (int run = 0; run < runs; ++run) {
      GmmParams p = init ? *init : kmeanspp_init(xf, x, rng);
      if (init) check_init(p);
      double lb = -std::numeric_limits<double>::infinity();
      bool conv = false;
      int it = 0;
      std::vector<double> ll, resp;
      for (it = 1; it <= options.max_iter; ++it) {
        const double prev = lb;
        lb = e_step(x, p, ll, resp);
        m_step(x, resp, p);
        if (std::abs(lb - prev) < options.tol) {
          conv = true;
          break;
        }
      }
      if (lb > best || best == -std::numeric_limits<double>::infinity()) {
        best = lb;
        params = p;
        n_iter = std::min(it, options.max_iter);
        converged = conv;
      }
    }
    lower_bound = best;
    std::vector<double> ll, resp;
    e_step(x, params, ll, resp);
    ll_threshold = percentile(ll, options.percentile);
  }

  void check_init(const GmmParams& p) const {
    const int64_t k = options.components;
    if (static_cast<int64_t>(p.weights.size()) != k || static_cast<int64_t>(p.means.size()) != k * dim ||
        p.prec_chol.size() != prec_size(k, dim))
      fail<UsageError>("gmm: initial parameters do not match ", k, " components of dimension ", dim);
  }

  // numpy.percentile with linear interpolation; q in percent.
  static double percentile(std::vector<double> v, double q) {
    if (!(q >= 0 && q <= 100)) fail<UsageError>("gmm: percentile must be in [0, 100], got ", q);
    std::sort(v.begin(), v.end());
    const double pos = q / 100 * static_cast<double>(v.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
  }

  // Log N(x_i | k) + log π_k for every row and component into lp [n, K], with sklearn's
  // formulas (_estimate_log_gaussian_prob): full/tied ‖x P − μ P‖², diag/spherical
  // Σ x² P² − 2 Σ x μ P² + Σ μ² P², the products as double A·Bᵀ blocks.
  void weighted_log_prob(const GmmData& x, const GmmParams& p, std::vector<double>& lp) const {
    const int64_t n = x.n, d = x.d, k = static_cast<int64_t>(p.weights.size());
    lp.assign(static_cast<size_t>(n * k), 0.0);
    const double log2pi = std::log(2 * std::numbers::pi);
    std::vector<double> log_det(static_cast<size_t>(k), 0.0), q(static_cast<size_t>(n * k), 0.0);
    if (options.covariance == CovarianceType::Full || options.covariance == CovarianceType::Tied) {
      // y = x [P_1 … P_K] as one product (tied: one P); P is upper triangular, so row j of Pᵀ
      // stops at feature j (DotShape::b_prefix), half the multiply-adds of a full product.
      const bool tied = options.covariance == CovarianceType::Tied;
      const int64_t kp = tied ? 1 : k;
      std::vector<double> pt(static_cast<size_t>(kp * d * d)), y(static_cast<size_t>(n * kp * d));
      for (int64_t c = 0; c < kp; ++c) {
        const std::vector<double> t = transposed(p.prec_chol.data() + c * d * d, d, d);
        std::copy(t.begin(), t.end(), pt.begin() + c * d * d);
      }
      gemm_nt_f64(x.x.data(), n, pt.data(), kp * d, d, y.data(), kp * d, DotShape{false, d});
      for (int64_t c = 0; c < k; ++c) {
        const int64_t cp = tied ? 0 : c;
        const double* P = p.prec_chol.data() + cp * d * d;
        for (int64_t j = 0; j < d; ++j) log_det[static_cast<size_t>(c)] += std::log(P[j * d + j]);
        std::vector<double> mp(static_cast<size_t>(d), 0.0);  // μ P
        for (int64_t t = 0; t < d; ++t)
          for (int64_t j = t; j < d; ++j) mp[static_cast<size_t>(j)] += p.means[static_cast<size_t>(c * d + t)] * P[t * d + j];
        parallel_for(0, n, 16, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) {
            const double* yi = y.data() + (i * kp + cp) * d;
            double s = 0;
            for (int64_t j = 0; j < d; ++j) {
              const double v = yi[j] - mp[static_cast<size_t>(j)];
              s += v * v;
            }
            q[static_cast<size_t>(i * k + c)] = s;
          }
        });
      }
    } else {
      // prec[c, j] = P², and μ·prec; spherical repeats its one precision over the features.
      std::vector<double> prec(static_cast<size_t>(k * d)), mprec(static_cast<size_t>(k * d)), cst(static_cast<size_t>(k), 0.0);
      for (int64_t c = 0; c < k; ++c)
        for (int64_t j = 0; j < d; ++j) {
          const double pc = options.covariance == CovarianceType::Diag ? p.prec_chol[static_cast<size_t>(c * d + j)]
                                                                        : p.prec_chol[static_cast<size_t>(c)];
          const double mu = p.means[static_cast<size_t>(c * d + j)];
          prec[static_cast<size_t>(c * d + j)] = pc * pc;
          mprec[static_cast<size_t>(c * d + j)] = mu * pc * pc;
          cst[static_cast<size_t>(c)] += mu * mu * pc * pc;
          log_det[static_cast<size_t>(c)] += std::log(pc);
        }
      std::vector<double> a(static_cast<size_t>(n * k)), b(static_cast<size_t>(n * k));
      dot_block_f64(x.x2.data(), n, prec.data(), k, d, a.data(), k);
      dot_block_f64(x.x.data(), n, mprec.data(), k, d, b.data(), k);
      for (int64_t i = 0; i < n * k; ++i)
        q[static_cast<size_t>(i)] = cst[static_cast<size_t>(i % k)] - 2 * b[static_cast<size_t>(i)] + a[static_cast<size_t>(i)];
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c)
        lp[static_cast<size_t>(i * k + c)] = -0.5 * (static_cast<double>(d) * log2pi + q[static_cast<size_t>(i * k + c)]) +
                                             log_det[static_cast<size_t>(c)] + std::log(p.weights[static_cast<size_t>(c)]);
  }

  // Per-row log-likelihood (log-sum-exp) and responsibilities; returns the mean log-likelihood.
  double e_step(const GmmData& x, const GmmParams& p, std::vector<double>& ll, std::vector<double>& resp) const {
    weighted_log_prob(x, p, resp);
    const int64_t n = x.n, k = static_cast<int64_t>(p.weights.size());
    ll.assign(static_cast<size_t>(n), 0.0);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      double* r = resp.data() + i * k;
      const double m = *std::max_element(r, r + k);
      double s = 0;
      for (int64_t c = 0; c < k; ++c) s += std::exp(r[c] - m);
      const double lse = m + std::log(s);
      for (int64_t c = 0; c < k; ++c) r[c] = std::exp(r[c] - lse);
      ll[static_cast<size_t>(i)] = lse;
      total += lse;
    }
    return total / static_cast<double>(n);
  }

  // Weights, means and covariances from responsibilities (sklearn's
  // _estimate_gaussian_parameters), then the precision Cholesky factors.
  void m_step(const GmmData& x, const std::vector<double>& resp, GmmParams& p) const {
    const int64_t n = x.n, d = x.d, k = options.components;
    const double eps10 = 10 * std::numeric_limits<double>::epsilon();
    std::vector<double> nk(static_cast<size_t>(k), eps10);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) nk[static_cast<size_t>(c)] += resp[static_cast<size_t>(i * k + c)];
    const bool diagonal = options.covariance == CovarianceType::Diag || options.covariance == CovarianceType::Spherical;
    std::vector<double> var;  // respᵀ x² (diag, spherical), summed in the same pass as respᵀ x
    if (diagonal) var.assign(static_cast<size_t>(k * d), 0.0);
    weighted_row_sums(x, resp, k, p.means, diagonal ? &var : nullptr);
    for (int64_t c = 0; c < k; ++c)
      for (int64_t j = 0; j < d; ++j) p.means[static_cast<size_t>(c * d + j)] /= nk[static_cast<size_t>(c)];

    p.weights.resize(static_cast<size_t>(k));
    double nsum = 0;
    for (double v : nk) nsum += v;
    for (int64_t c = 0; c < k; ++c) p.weights[static_cast<size_t>(c)] = nk[static_cast<size_t>(c)] / nsum;

    p.prec_chol.assign(prec_size(k, d), 0.0);
    if (options.covariance == CovarianceType::Diag || options.covariance == CovarianceType::Spherical) {
      // Σ_kj = respᵀx² / n_k − 2 μ·μ + μ² + reg (sklearn's diag form); spherical: the mean over j.

      for (int64_t c = 0; c < k; ++c) {
        double mean_var = 0;
        for (int64_t j = 0; j < d; ++j) {
          const double m = p.means[static_cast<size_t>(c * d + j)];
          double& v = var[static_cast<size_t>(c * d + j)];
          v = v / nk[static_cast<size_t>(c)] - 2 * (m * m) + m * m + options.reg_covar;
          mean_var += v;
        }
        if (options.covariance == CovarianceType::Diag) {
          for (int64_t j = 0; j < d; ++j) p.prec_chol[static_cast<size_t>(c * d + j)] = 1 / std::sqrt(check_var(var[static_cast<size_t>(c * d + j)], c));
        } else {
          p.prec_chol[static_cast<size_t>(c)] = 1 / std::sqrt(check_var(mean_var / static_cast<double>(d), c));
        }
      }
      return;
    }
    if (options.covariance == CovarianceType::Tied) {
      // Σ = (xᵀx − Σ_k n_k μ_k μ_kᵀ) / Σ n_k + reg I (sklearn's tied form).
      std::vector<double> cov = x.xtx;
      for (int64_t c = 0; c < k; ++c)
        for (int64_t a = 0; a < d; ++a)
          for (int64_t b = 0; b < d; ++b)
            cov[static_cast<size_t>(a * d + b)] -= nk[static_cast<size_t>(c)] * p.means[static_cast<size_t>(c * d + a)] * p.means[static_cast<size_t>(c * d + b)];
      for (auto& v : cov) v /= nsum;
      for (int64_t j = 0; j < d; ++j) cov[static_cast<size_t>(j * d + j)] += options.reg_covar;
      p.prec_chol = precision_cholesky(std::move(cov), d, 0);
      return;
    }
    // Full: Σ_k = (r_k ∘ (x − μ_k))ᵀ (x − μ_k) / n_k + reg I (sklearn's form), computed as the
    // Gram matrix SᵀS of S = √r_k ∘ (x − μ_k), which is symmetric: only its lower half is
    // computed (DotShape::lower) and mirrored. The differences are kept transposed, [d, n].
    std::vector<double> st(static_cast<size_t>(d * n)), cov(static_cast<size_t>(d * d)), sr(static_cast<size_t>(n));
    for (int64_t c = 0; c < k; ++c) {
      const double* mu = p.means.data() + c * d;
      for (int64_t i = 0; i < n; ++i) sr[static_cast<size_t>(i)] = std::sqrt(resp[static_cast<size_t>(i * k + c)]);
      parallel_for(0, d, 16, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j)
          for (int64_t i = 0; i < n; ++i)
            st[static_cast<size_t>(j * n + i)] = sr[static_cast<size_t>(i)] * (x.xt[static_cast<size_t>(j * n + i)] - mu[j]);
      });
      gemm_nt_f64(st.data(), d, st.data(), d, n, cov.data(), d, DotShape{true, 0});
      for (int64_t a = 0; a < d; ++a)
        for (int64_t b = a + 1; b < d; ++b) cov[static_cast<size_t>(a * d + b)] = cov[static_cast<size_t>(b * d + a)];
      for (auto& v : cov) v /= nk[static_cast<size_t>(c)];
      for (int64_t j = 0; j < d; ++j) cov[static_cast<size_t>(j * d + j)] += options.reg_covar;
      const auto P = precision_cholesky(cov, d, static_cast<int>(c));
      std::copy(P.begin(), P.end(), p.prec_chol.begin() + c * d * d);
    }
  }

  // sums [K, d] = respᵀ x and, if sq_sums, respᵀ x² (element-wise square): per row i, K axpys
  // sums_c += r_ic · x_i over contiguous rows (BLAS's outer-product form of respᵀ·X, without a
  // transpose), each thread owning a slice of the columns so that its K accumulating row slices
  // stay in cache while x streams through once.
  static void weighted_row_sums(const GmmData& x, const std::vector<double>& resp, int64_t k, std::vector<double>& sums,
                                std::vector<double>* sq_sums) {
    const int64_t n = x.n, d = x.d;
    sums.assign(static_cast<size_t>(k * d), 0.0);
    parallel_for(0, (d + 255) / 256, 1, [&](int64_t b0, int64_t b1) {
      const int64_t j0 = b0 * 256, j1 = std::min(d, b1 * 256);
      for (int64_t i = 0; i < n; ++i) {
        const double* xi = x.x.data() + i * d;
        for (int64_t c = 0; c < k; ++c) {
          const double r = resp[static_cast<size_t>(i * k + c)];
          if (r == 0) continue;  // hard k-means++ assignments: most are zero
          double* s = sums.data() + c * d;
          for (int64_t j = j0; j < j1; ++j) s[j] += r * xi[j];
          if (sq_sums) {
            double* q = sq_sums->data() + c * d;
            for (int64_t j = j0; j < j1; ++j) q[j] += r * (xi[j] * xi[j]);
          }
        }
      }
    });
  }

  static double check_var(double v, int64_t c) {
    if (!(v > 0)) fail<InputError>("gmm: variance of component ", c, " is not positive; increase reg_covar");
    return v;
  }

  // Greedy k-means++ seeds as sklearn's kmeans_plusplus (sklearn/cluster/_kmeans.py, after
  // Arthur & Vassilvitskii 2007): the first seed uniformly at random; each next one is the best
  // of 2 + ⌊ln k⌋ candidates drawn with probability ∝ D(x)² (searchsorted on the cumulative
  // sum), "best" meaning the lowest total Σ_i min(D(x_i)², d(x_i, candidate)²). Then every row
  // is assigned to its nearest seed and one M-step gives the initial parameters (sklearn's
  // _initialize with init_params='k-means++'). Squared distances are ‖x_i‖² + ‖x_j‖² − 2 x_i·x_j
  // clamped at 0, sklearn's _euclidean_distances with precomputed squared norms. The draws come
  // from mt19937_64 (53-bit uniforms), so a seed gives the same seeds on every platform; they
  // are not numpy's draws.
  GmmParams kmeanspp_init(const FeatureMatrix& x, const GmmData& data, std::mt19937_64& rng) const {
    const int64_t n = x.rows, d = x.cols, k = options.components;
    std::vector<double> sq(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) sq[static_cast<size_t>(i)] = dot_f64(data.x.data() + i * d, data.x.data() + i * d, d);
    auto dist2 = [&](int64_t i, int64_t j) {
      return std::max(0.0, sq[static_cast<size_t>(i)] + sq[static_cast<size_t>(j)] -
                               2 * dot_f64(data.x.data() + i * d, data.x.data() + j * d, d));
    };
    auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
    auto distances_to = [&](int64_t s, const std::vector<double>& bound, std::vector<double>& out) {
      out.resize(static_cast<size_t>(n));
      parallel_for(0, n, 64, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          out[static_cast<size_t>(i)] = bound.empty() ? dist2(i, s) : std::min(bound[static_cast<size_t>(i)], dist2(i, s));
      });
    };
    std::vector<int64_t> seeds{static_cast<int64_t>(rng() % static_cast<uint64_t>(n))};
    std::vector<double> closest, cumsum(static_cast<size_t>(n)), trial, best_trial;
    distances_to(seeds[0], {}, closest);
    const int trials = 2 + static_cast<int>(std::log(static_cast<double>(k)));
    while (static_cast<int64_t>(seeds.size()) < k) {
      double total = 0;
      for (int64_t i = 0; i < n; ++i) cumsum[static_cast<size_t>(i)] = total += closest[static_cast<size_t>(i)];
      double best_pot = std::numeric_limits<double>::infinity();
      int64_t best = 0;
      for (int t = 0; t < trials; ++t) {
        const double r = uniform() * total;
        const int64_t cand = std::min<int64_t>(n - 1, std::lower_bound(cumsum.begin(), cumsum.end(), r) - cumsum.begin());
        distances_to(cand, closest, trial);
        double pot = 0;
        for (double v : trial) pot += v;
        if (pot < best_pot) best_pot = pot, best = cand, best_trial.swap(trial);
      }
      seeds.push_back(best);
      closest.swap(best_trial);
    }
    std::vector<double> resp(static_cast<size_t>(n * k), 0.0);
    parallel_for(0, n, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        int64_t best = 0;
        double bd = std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < k; ++c) {
          const double v = dist2(i, seeds[static_cast<size_t>(c)]);
          if (v < bd) bd = v, best = c;
        }
        resp[static_cast<size_t>(i * k + best)] = 1;
      }
    });
    GmmParams p;
    m_step(data, resp, p);
    return p;
  }
};

}  // namespace genscope::detect
