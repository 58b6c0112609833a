// genscope/detect/pca.hpp — principal component analysis a detector owns and saves.
//
// As scikit-learn's PCA (sklearn/decomposition/_pca.py, whiten=False), fitted after the head's
// standardisation and applied by score() after it:
//   mean     μ = column means of the fit rows (double);
//   axes     the top-k right singular vectors of the centred rows X_c, i.e. the top-k
//            eigenvectors of X_cᵀX_c; explained_variance_i = σ_i² / (n − 1);
//            explained_variance_ratio_i = σ_i² / Σ_j σ_j² (the total is the trace, Σ ‖column‖²,
//            so it needs no other eigenvalue);
//   signs    svd_flip(U, Vt, u_based_decision=False), sklearn ≥ 1.5's choice for PCA: in every
//            component the entry of largest magnitude is made positive;
//   k        an integer count, or a fraction 0 < f < 1: the fewest components whose cumulative
//            explained variance ratio exceeds f (numpy searchsorted(cumsum, f, 'right') + 1);
//   x'       (x − μ) · componentsᵀ.
// Two solvers, chosen as sklearn's 'auto' does in spirit:
//   exact       when min(n, D) ≤ 500, k ≥ 0.8·min(n, D) or k is a fraction: the symmetric
//               eigenproblem of the smaller of X_cᵀX_c (D×D) and X_cX_cᵀ (n×n, the Gram matrix;
//               then v_i = X_cᵀu_i / σ_i), formed in double, solved by Householder
//               tridiagonalisation and the implicit QL method (EISPACK tred2/tql2, as in JAMA's
//               EigenvalueDecomposition);
//   randomized  otherwise: Halko, Martinsson & Tropp (2011) Algorithm 4.4 with sklearn's
//               _randomized_svd settings (k + 10 columns, 7 power iterations when k < 0.1·min(n,D),
//               else 4): Y = X_c Ω, then q times Q = orth(Y), Z = orth(X_cᵀQ), Y = X_c Z; finally
//               Z = X_cᵀQ and the eigenproblem of ZᵀZ (l×l) gives σ² and v = Z u / σ. The big
//               products go through ops::gemm (f32); orth is CholeskyQR in double (Fukaya et
//               al. 2014; one pass between power iterations, CholeskyQR2 for the final basis),
//               shifted when the Gram matrix is not numerically definite. Like
//               sklearn's randomized solver it approximates the trailing components.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "genscope/core/thread_pool.hpp"
#include "genscope/detect/dot_f64.hpp"
#include "genscope/detect/features.hpp"
#include "genscope/detect/model_file.hpp"
#include "genscope/ops/gemm.hpp"

namespace genscope::detect {

namespace pca_detail {

// Eigen-decomposition of the symmetric n×n matrix a (row-major, overwritten): eigenvalues in
// descending order into w, eigenvectors as the ROWS of a (row i belongs to w[i]).
// tred2 (Householder reduction to tridiagonal form, accumulating the transformations) then tql2
// (implicit QL with Wilkinson-like shifts), EISPACK via JAMA; V is kept as in JAMA for tred2 and
// transposed for tql2 so that its rotations run along contiguous rows.
inline void symmetric_eigen(std::vector<double>& a, int64_t n, std::vector<double>& w) {
  auto V = [&](int64_t i, int64_t j) -> double& { return a[static_cast<size_t>(i * n + j)]; };
  std::vector<double> d(static_cast<size_t>(n)), e(static_cast<size_t>(n), 0.0);
  auto D = [&](int64_t i) -> double& { return d[static_cast<size_t>(i)]; };
  auto E = [&](int64_t i) -> double& { return e[static_cast<size_t>(i)]; };
  for (int64_t j = 0; j < n; ++j) D(j) = V(n - 1, j);
  for (int64_t i = n - 1; i > 0; --i) {  // tred2
    double scale = 0, h = 0;
    for (int64_t k = 0; k < i; ++k) scale += std::abs(D(k));
    if (scale == 0) {
      E(i) = D(i - 1);
      for (int64_t j = 0; j < i; ++j) D(j) = V(i - 1, j), V(i, j) = 0, V(j, i) = 0;
    } else {
      for (int64_t k = 0; k < i; ++k) D(k) /= scale, h += D(k) * D(k);
      double f = D(i - 1), g = std::sqrt(h);
      if (f > 0) g = -g;
      E(i) = scale * g;
      h -= f * g;
      D(i - 1) = f - g;
      for (int64_t j = 0; j < i; ++j) E(j) = 0;
      for (int64_t j = 0; j < i; ++j) {
        f = D(j);
        V(j, i) = f;
        g = E(j) + V(j, j) * f;
        for (int64_t k = j + 1; k <= i - 1; ++k) g += V(k, j) * D(k), E(k) += V(k, j) * f;
        E(j) = g;
      }
      f = 0;
      for (int64_t j = 0; j < i; ++j) E(j) /= h, f += E(j) * D(j);
      const double hh = f / (h + h);
      for (int64_t j = 0; j < i; ++j) E(j) -= hh * D(j);
      for (int64_t j = 0; j < i; ++j) {
        f = D(j);
        g = E(j);
        for (int64_t k = j; k <= i - 1; ++k) V(k, j) -= f * E(k) + g * D(k);
        D(j) = V(i - 1, j);
        V(i, j) = 0;
      }
    }
    D(i) = h;
  }
  for (int64_t i = 0; i < n - 1; ++i) {  // accumulate the transformations
    V(n - 1, i) = V(i, i);
    V(i, i) = 1;
    const double h = D(i + 1);
    if (h != 0) {
      for (int64_t k = 0; k <= i; ++k) D(k) = V(k, i + 1) / h;
      parallel_for(0, i + 1, 32, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
          double g = 0;
          for (int64_t k = 0; k <= i; ++k) g += V(k, i + 1) * V(k, j);
          for (int64_t k = 0; k <= i; ++k) V(k, j) -= g * D(k);
        }
      });
    }
    for (int64_t k = 0; k <= i; ++k) V(k, i + 1) = 0;
  }
  for (int64_t j = 0; j < n; ++j) D(j) = V(n - 1, j), V(n - 1, j) = 0;
  V(n - 1, n - 1) = 1;
  E(0) = 0;

  std::vector<double> t = transposed(a.data(), n, n);  // row i of t = column i of V
  auto W = [&](int64_t i, int64_t k) -> double& { return t[static_cast<size_t>(i * n + k)]; };
  for (int64_t i = 1; i < n; ++i) E(i - 1) = E(i);  // tql2
  E(n - 1) = 0;
  double f = 0, tst1 = 0;
  const double eps = std::numeric_limits<double>::epsilon();
  for (int64_t l = 0; l < n; ++l) {
    tst1 = std::max(tst1, std::abs(D(l)) + std::abs(E(l)));
    int64_t m = l;
    while (m < n && std::abs(E(m)) > eps * tst1) ++m;
    if (m > l) {
      int iter = 0;
      do {
        if (++iter > 60) fail<InputError>("pca: the eigenvalue iteration did not converge (non-finite features?)");
        double g = D(l), p = (D(l + 1) - g) / (2 * E(l)), r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        D(l) = E(l) / (p + r);
        D(l + 1) = E(l) * (p + r);
        const double dl1 = D(l + 1);
        double h = g - D(l);
        for (int64_t i = l + 2; i < n; ++i) D(i) -= h;
        f += h;
        p = D(m);
        double c = 1, c2 = c, c3 = c, s = 0, s2 = 0;
        const double el1 = E(l + 1);
        for (int64_t i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * E(i);
          h = c * p;
          r = std::hypot(p, E(i));
          E(i + 1) = s * r;
          s = E(i) / r;
          c = p / r;
          p = c * D(i) - s * g;
          D(i + 1) = h + s * (c * g + s * D(i));
          double* wi = &W(i, 0);
          double* wi1 = &W(i + 1, 0);
          for (int64_t k = 0; k < n; ++k) {
            const double hk = wi1[k];
            wi1[k] = s * wi[k] + c * hk;
            wi[k] = c * wi[k] - s * hk;
          }
        }
        p = -s * s2 * c3 * el1 * E(l) / dl1;
        E(l) = s * p;
        D(l) = c * p;
      } while (std::abs(E(l)) > eps * tst1);
    }
    D(l) += f;
    E(l) = 0;
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return D(x) > D(y); });
  w.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t o = order[static_cast<size_t>(i)];
    w[static_cast<size_t>(i)] = D(o);
    std::copy(t.begin() + o * n, t.begin() + (o + 1) * n, a.begin() + i * n);
  }
}

// Lower Cholesky factor of the l×l matrix g in place; false when not numerically definite.
inline bool cholesky_in_place(std::vector<double>& g, int64_t l) {
  for (int64_t j = 0; j < l; ++j) {
    double s = g[static_cast<size_t>(j * l + j)];
    for (int64_t k = 0; k < j; ++k) s -= g[static_cast<size_t>(j * l + k)] * g[static_cast<size_t>(j * l + k)];
    if (!(s > 0)) return false;
    const double r = std::sqrt(s);
    g[static_cast<size_t>(j * l + j)] = r;
    for (int64_t i = j + 1; i < l; ++i) {
      double t = g[static_cast<size_t>(i * l + j)];
      for (int64_t k = 0; k < j; ++k) t -= g[static_cast<size_t>(i * l + k)] * g[static_cast<size_t>(j * l + k)];
      g[static_cast<size_t>(i * l + j)] = t / r;
    }
  }
  return true;
}

// One CholeskyQR pass on the columns of y [rows, l] (row-major): G = YᵀY = L Lᵀ, Y ← Y L⁻ᵀ.
// L⁻¹ is formed (l³/3) so that the update is one blocked product, (Y L⁻ᵀ)_ij = y_i · (L⁻¹)_j,
// instead of a triangular solve per row. `shift` is added to G's diagonal first (shifted
// CholeskyQR).
inline bool cholesky_qr(std::vector<double>& y, int64_t rows, int64_t l, double shift) {
  const std::vector<double> yt = transposed(y.data(), rows, l);
  std::vector<double> g(static_cast<size_t>(l * l));
  dot_block_f64(yt.data(), l, yt.data(), l, rows, g.data(), l);
  for (int64_t j = 0; j < l; ++j) g[static_cast<size_t>(j * l + j)] += shift;
  if (!cholesky_in_place(g, l)) return false;
  std::vector<double> inv(static_cast<size_t>(l * l), 0.0);  // L⁻¹, lower: column c solves L z = e_c
  parallel_for(0, l, 8, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t i = c; i < l; ++i) {
        double s = i == c ? 1.0 : 0.0;
        for (int64_t k = c; k < i; ++k) s -= g[static_cast<size_t>(i * l + k)] * inv[static_cast<size_t>(k * l + c)];
        inv[static_cast<size_t>(i * l + c)] = s / g[static_cast<size_t>(i * l + i)];
      }
  });
  std::vector<double> q(y.size());
  dot_block_f64(y.data(), rows, inv.data(), l, l, q.data(), l);
  y = std::move(q);
  return true;
}

// Orthonormal columns spanning y's: CholeskyQR2 (`passes` 2), or one pass where only a well-
// conditioned basis is needed (between power iterations), or shifted CholeskyQR3 when YᵀY is
// not numerically positive definite (Fukaya, Kannan, Nakatsukasa, Yamamoto, Yanagisawa 2020:
// shift 11(rows·l + l(l+1)) u ‖Y‖², here with ‖Y‖_F² ≥ ‖Y‖₂²).
inline void orthonormalise(std::vector<double>& y, int64_t rows, int64_t l, int passes = 2) {
  std::vector<double> keep = y;
  if (cholesky_qr(y, rows, l, 0) && (passes < 2 || cholesky_qr(y, rows, l, 0))) return;
  y = std::move(keep);
  double fro = 0;
  for (double v : y) fro += v * v;
  const double shift = 11.0 * static_cast<double>(rows * l + l * (l + 1)) * std::numeric_limits<double>::epsilon() * fro;
  if (!cholesky_qr(y, rows, l, shift) || !cholesky_qr(y, rows, l, 0) || !cholesky_qr(y, rows, l, 0))
    fail<InputError>("pca: the randomized range finder lost rank (features with non-finite values?)");
}

// Standard normal values from mt19937_64 by Box–Muller, so a seed gives the same matrix on every
// standard library (std::normal_distribution's algorithm is unspecified).
inline std::vector<float> gaussian(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(count);
  const double scale = 1.0 / 18446744073709551616.0;  // 2⁻⁶⁴
  for (size_t i = 0; i < count; i += 2) {
    const double u1 = (static_cast<double>(rng()) + 1.0) * scale, u2 = static_cast<double>(rng()) * scale;
    const double r = std::sqrt(-2 * std::log(u1)), a = 2 * std::numbers::pi * u2;
    v[i] = static_cast<float>(r * std::cos(a));
    if (i + 1 < count) v[i + 1] = static_cast<float>(r * std::sin(a));
  }
  return v;
}

}  // namespace pca_detail

struct Pca {
  std::vector<double> mean;                      // [D]; empty: PCA off
  std::vector<double> components;                // [k, D], row-major
  std::vector<double> explained_variance;        // [k]
  std::vector<double> explained_variance_ratio;  // [k]
  std::string solver;                            // "exact" or "randomized"

  bool enabled() const { return !mean.empty(); }
  int64_t in_features() const { return static_cast<int64_t>(mean.size()); }
  int64_t out_features() const { return static_cast<int64_t>(explained_variance.size()); }

  // Fit on the rows of one or more matrices taken together. n_components: an integer count
  // ≥ 1, or a fraction in (0, 1) of the variance to explain. seed: the randomized solver's Ω.
  static Pca fit(const std::vector<const FeatureMatrix*>& parts, double n_components, uint64_t seed = 0) {
    const int64_t d = parts.at(0)->cols;
    int64_t n = 0;
    for (const FeatureMatrix* m : parts) {
      if (m->cols != d) fail<ShapeError>("pca: ", m->cols, " features vs ", d);
      n += m->rows;
    }
    const bool fraction = n_components > 0 && n_components < 1;
    if (!(n_components > 0) || (!fraction && n_components != std::floor(n_components)))
      fail<UsageError>("pca: n_components must be an integer >= 1 or a fraction in (0, 1), got ", n_components);
    const int64_t m = std::min(n, d);
    if (n < 2) fail<UsageError>("pca: needs at least 2 rows, got ", n);
    if (!fraction && n_components > static_cast<double>(m))
      fail<UsageError>("pca: ", n_components, " components requested; at most min(rows, features) = ", m);

    Pca p;
    p.mean.assign(static_cast<size_t>(d), 0.0);
    for (const FeatureMatrix* f : parts)
      for (int64_t i = 0; i < f->rows; ++i)
        for (int64_t j = 0; j < d; ++j) p.mean[static_cast<size_t>(j)] += f->row(i)[j];
    for (double& v : p.mean) v /= static_cast<double>(n);
    std::vector<double> xc(static_cast<size_t>(n * d));  // centred rows, double
    int64_t r = 0;
    for (const FeatureMatrix* f : parts)
      for (int64_t i = 0; i < f->rows; ++i, ++r)
        for (int64_t j = 0; j < d; ++j) xc[static_cast<size_t>(r * d + j)] = f->row(i)[j] - p.mean[static_cast<size_t>(j)];
    double total = 0;  // Σ σ_j² = trace(X_cᵀX_c)
    for (double v : xc) total += v * v;

    const int64_t k_req = fraction ? m : static_cast<int64_t>(n_components);
    std::vector<double> sigma2, comps;  // descending σ², and the matching rows v_i [·, d]
    if (fraction || m <= 500 || static_cast<double>(k_req) >= 0.8 * static_cast<double>(m)) {
      p.solver = "exact";
      exact(xc, n, d, k_req, sigma2, comps);
    } else {
      p.solver = "randomized";
      randomized(xc, n, d, k_req, seed, sigma2, comps);
    }
    int64_t k = k_req;
    if (fraction) {  // searchsorted(cumsum(ratio), f, side='right') + 1
      double cum = 0;
      k = 0;
      while (k < m && cum + sigma2[static_cast<size_t>(k)] / total <= n_components) cum += sigma2[static_cast<size_t>(k++)] / total;
      k = std::min(k + 1, m);
    }
    p.components.assign(comps.begin(), comps.begin() + k * d);
    for (int64_t i = 0; i < k; ++i) {
      double* v = p.components.data() + i * d;  // svd_flip, v-based: largest |v_j| positive
      int64_t arg = 0;
      for (int64_t j = 1; j < d; ++j)
        if (std::abs(v[j]) > std::abs(v[arg])) arg = j;
      if (v[arg] < 0)
        for (int64_t j = 0; j < d; ++j) v[j] = -v[j];
      const double s2 = std::max(0.0, sigma2[static_cast<size_t>(i)]);
      p.explained_variance.push_back(s2 / static_cast<double>(n - 1));
      p.explained_variance_ratio.push_back(total > 0 ? s2 / total : 0.0);
    }
    return p;
  }

  // (x − μ) · componentsᵀ, in double, rounded to f32 (or the input itself when off).
  FeatureMatrix apply(const FeatureMatrix& x) const {
    if (!enabled()) return x;
    const int64_t d = in_features(), k = out_features();
    if (x.cols != d) fail<ShapeError>("pca: features have ", x.cols, " columns, the model's PCA expects ", d);
    std::vector<double> xc(static_cast<size_t>(x.rows * d)), y(static_cast<size_t>(x.rows * k));
    for (int64_t i = 0; i < x.rows; ++i)
      for (int64_t j = 0; j < d; ++j) xc[static_cast<size_t>(i * d + j)] = x.row(i)[j] - mean[static_cast<size_t>(j)];
    if (x.rows > 0) dot_block_f64(xc.data(), x.rows, components.data(), k, d, y.data(), k);
    FeatureMatrix out{x.rows, k, std::vector<float>(y.begin(), y.end()), x.names};
    return out;
  }

  void save(ModelWriter& w) const {
    if (!enabled()) return;
    w.meta("pca.solver", solver);
    w.tensor("pca.mean", mean, Shape{in_features()});
    w.tensor("pca.components", components, Shape{out_features(), in_features()});
    w.tensor("pca.explained_variance", explained_variance, Shape{out_features()});
    w.tensor("pca.explained_variance_ratio", explained_variance_ratio, Shape{out_features()});
  }
  static Pca load(const ModelReader& r) {
    Pca p;
    if (!r.file().contains("pca.mean")) return p;
    r.tensor("pca.mean", p.mean, 1);
    const Shape s = r.tensor("pca.components", p.components, 2);
    r.tensor("pca.explained_variance", p.explained_variance, 1);
    r.tensor("pca.explained_variance_ratio", p.explained_variance_ratio, 1);
    if (s[1] != p.in_features() || s[0] != p.out_features() || p.explained_variance_ratio.size() != p.explained_variance.size())
      fail<FormatError>(r.path(), ": pca.components is ", s, " for pca.mean [", p.in_features(), "] and pca.explained_variance [",
                        p.out_features(), "]");
    if (r.has_meta("pca.solver")) p.solver = r.meta("pca.solver");
    return p;
  }

 private:
  // Top-k of the eigenproblem of the smaller of X_cᵀX_c and X_cX_cᵀ, in double.
  static void exact(const std::vector<double>& xc, int64_t n, int64_t d, int64_t k, std::vector<double>& sigma2,
                    std::vector<double>& comps) {
    if (d <= n) {
      const std::vector<double> xt = transposed(xc.data(), n, d);
      std::vector<double> c(static_cast<size_t>(d * d));
      dot_block_f64(xt.data(), d, xt.data(), d, n, c.data(), d);
      pca_detail::symmetric_eigen(c, d, sigma2);
      comps.assign(c.begin(), c.begin() + k * d);  // eigenvectors are the right singular vectors
    } else {
      std::vector<double> g(static_cast<size_t>(n * n));
      dot_block_f64(xc.data(), n, xc.data(), n, d, g.data(), n);
      pca_detail::symmetric_eigen(g, n, sigma2);
      right_vectors(xc, n, d, g.data(), k, sigma2, comps);
    }
    sigma2.resize(static_cast<size_t>(std::min(n, d)));
  }

  // v_i = X_cᵀ u_i / σ_i for the first k rows u_i of u [·, n].
  static void right_vectors(const std::vector<double>& xc, int64_t n, int64_t d, const double* u, int64_t k,
                            const std::vector<double>& sigma2, std::vector<double>& comps) {
    const std::vector<double> xt = transposed(xc.data(), n, d);
    comps.assign(static_cast<size_t>(k * d), 0.0);
    std::vector<double> vt(static_cast<size_t>(d * k));
    dot_block_f64(xt.data(), d, u, k, n, vt.data(), k);  // [d, k] = X_cᵀ U
    for (int64_t i = 0; i < k; ++i) {
      const double s = std::sqrt(std::max(sigma2[static_cast<size_t>(i)], std::numeric_limits<double>::min()));
      for (int64_t j = 0; j < d; ++j) comps[static_cast<size_t>(i * d + j)] = vt[static_cast<size_t>(j * k + i)] / s;
    }
  }

  static void randomized(const std::vector<double>& xc, int64_t n, int64_t d, int64_t k, uint64_t seed,
                         std::vector<double>& sigma2, std::vector<double>& comps) {
    const int64_t m = std::min(n, d), l = std::min(m, k + 10);
    const int q = static_cast<double>(k) < 0.1 * static_cast<double>(m) ? 7 : 4;
    const std::vector<float> a(xc.begin(), xc.end());  // X_c [n, d] in f32 for ops::gemm
    std::vector<float> omega = pca_detail::gaussian(static_cast<size_t>(d * l), seed), yf(static_cast<size_t>(n * l)),
                       zf(static_cast<size_t>(d * l));
    auto to_f32 = [](const std::vector<double>& v, std::vector<float>& f) { f.assign(v.begin(), v.end()); };
    // Y = X_c Ω [n, l]; Z = X_cᵀ Q [d, l].
    auto times_a = [&](const std::vector<float>& b, std::vector<double>& y) {
      ops::gemm(ops::Trans::No, ops::Trans::No, n, l, d, 1.0f, a.data(), d, b.data(), l, 0.0f, yf.data(), l);
      y.assign(yf.begin(), yf.end());
    };
    auto times_at = [&](const std::vector<float>& b, std::vector<double>& z) {
      ops::gemm(ops::Trans::Yes, ops::Trans::No, d, l, n, 1.0f, a.data(), d, b.data(), l, 0.0f, zf.data(), l);
      z.assign(zf.begin(), zf.end());
    };
    std::vector<double> y, z;
    std::vector<float> bf;
    times_a(omega, y);
    for (int it = 0; it < q; ++it) {
      pca_detail::orthonormalise(y, n, l, 1);
      to_f32(y, bf);
      times_at(bf, z);
      pca_detail::orthonormalise(z, d, l, 1);
      to_f32(z, bf);
      times_a(bf, y);
    }
    pca_detail::orthonormalise(y, n, l);
    // B = QᵀX_c = Zᵀ with Z = X_cᵀQ, here in double for the final, accuracy-setting product.
    const std::vector<double> xt = transposed(xc.data(), n, d), qt = transposed(y.data(), n, l);
    z.assign(static_cast<size_t>(d * l), 0.0);
    dot_block_f64(xt.data(), d, qt.data(), l, n, z.data(), l);  // [d, l]
    const std::vector<double> zt = transposed(z.data(), d, l);   // [l, d] = B
    std::vector<double> g(static_cast<size_t>(l * l));
    dot_block_f64(zt.data(), l, zt.data(), l, d, g.data(), l);  // B Bᵀ = U_B Σ² U_Bᵀ
    pca_detail::symmetric_eigen(g, l, sigma2);
    // v_i = Bᵀ u_i / σ_i = Z u_i / σ_i.
    std::vector<double> vt(static_cast<size_t>(d * k));
    dot_block_f64(z.data(), d, g.data(), k, l, vt.data(), k);
    comps.assign(static_cast<size_t>(k * d), 0.0);
    for (int64_t i = 0; i < k; ++i) {
      const double s = std::sqrt(std::max(sigma2[static_cast<size_t>(i)], std::numeric_limits<double>::min()));
      for (int64_t j = 0; j < d; ++j) comps[static_cast<size_t>(i * d + j)] = vt[static_cast<size_t>(j * k + i)] / s;
    }
  }
};

}  // namespace genscope::detect
