#!/usr/bin/env python3
"""Write genscope's detector-head test fixtures (tests/data/detect/) from the reference
implementations: PyTorch (the linear probe's Adam step), scikit-learn (SVC = libsvm, Platt's
sigmoid, GaussianMixture, PCA, average_precision_score, roc_auc_score).

    pip install torch numpy scikit-learn safetensors
    python3 tools/reference/make_detect_fixtures.py             # tests/data/detect/
    python3 tools/reference/make_detect_fixtures.py --example   # examples/data/uar_sample.safetensors

Deterministic (every random draw is seeded). Data: scikit-learn's bundled breast_cancer and
digits data sets, standardised here in float64 and rounded to float32, and the rounded values
are what both scikit-learn and genscope see. safetensors via genscope cannot hold f64, so expected
values are stored as f32 (their tolerances are far above f32 rounding) and integers as i64.
"""
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from sklearn.calibration import _sigmoid_calibration
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.svm import SVC

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "detect"


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def i64(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.int64))


def standardised(x):
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    sd[sd == 0] = 1
    return ((x - x.mean(axis=0)) / sd).astype(np.float32)


def probe():
    """nn.Linear + BCEWithLogitsLoss + Adam(lr 1e-3): three steps on batches of 8 in order."""
    torch.manual_seed(0)
    d, b = 16, 8
    x = torch.randn(3 * b, d)
    y = (torch.rand(3 * b) > 0.5).float()
    lin = torch.nn.Linear(d, 1)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    after = []
    for s in range(3):
        opt.zero_grad()
        loss = loss_fn(lin(x[s * b:(s + 1) * b]).squeeze(1), y[s * b:(s + 1) * b])
        loss.backward()
        opt.step()
        after.append((lin.weight.detach().clone(), lin.bias.detach().clone()))
    save_file({"x": f32(x), "y": f32(y), "w0": f32(w0), "b0": f32(b0), "w1": f32(after[0][0]), "b1": f32(after[0][1]),
               "w3": f32(after[2][0]), "b3": f32(after[2][1])}, str(OUT / "probe_adam.safetensors"),
              metadata={"source": "torch %s: nn.Linear(16, 1), BCEWithLogitsLoss, Adam(lr=1e-3), 3 steps, batches 0-7, 8-15, 16-23" % torch.__version__})


def svm_case(name, x, y, n_fit, **params):
    """SVC on the first n_fit rows (class 0 = 'real', class 1 = 'generated'), decision on the rest."""
    xf, yf, xt = x[:n_fit], y[:n_fit], x[n_fit:]
    clf = SVC(**params).fit(xf.astype(np.float64), yf)
    # genscope's fit takes the class-0 rows then the class-1 rows, each in order: libsvm's grouping.
    order = np.concatenate([np.flatnonzero(yf == 0), np.flatnonzero(yf == 1)])
    position = np.empty(n_fit, dtype=np.int64)
    position[order] = np.arange(n_fit)
    sv = np.sort(position[clf.support_])
    coef = np.zeros(n_fit)
    coef[position[clf.support_]] = clf.dual_coef_[0]
    meta = {k: str(v) for k, v in params.items()}
    meta["gamma_value"] = repr(float(clf._gamma))
    meta["source"] = "scikit-learn %s SVC(%s)" % (__import__("sklearn").__version__, ", ".join("%s=%r" % kv for kv in params.items()))
    save_file({"real": f32(xf[yf == 0]), "fake": f32(xf[yf == 1]), "test": f32(xt),
               "decision": f32(clf.decision_function(xt.astype(np.float64))), "support": i64(sv),
               "dual_coef": f32(coef[sv]), "intercept": f32([clf.intercept_[0]])},
              str(OUT / ("svm_%s.safetensors" % name)), metadata=meta)


def svms():
    bc = load_breast_cancer()
    rng = np.random.RandomState(0)
    perm = rng.permutation(len(bc.target))
    x, y = standardised(bc.data)[perm], bc.target[perm]
    svm_case("bc_rbf", x, y, 400, kernel="rbf", C=1.0, gamma="scale", tol=1e-3, shrinking=False)
    svm_case("bc_rbf_shrinking", x, y, 400, kernel="rbf", C=1.0, gamma="scale", tol=1e-3, shrinking=True)
    svm_case("bc_linear", x, y, 400, kernel="linear", C=0.5, tol=1e-3, shrinking=False)
    svm_case("bc_poly", x, y, 400, kernel="poly", C=1.0, gamma="scale", degree=3, coef0=1.0, tol=1e-3, shrinking=False)
    svm_case("bc_sigmoid", x, y, 400, kernel="sigmoid", C=1.0, gamma=0.01, coef0=0.0, tol=1e-3, shrinking=False)
    dg = load_digits()
    keep = (dg.target == 3) | (dg.target == 8)
    xd = standardised(dg.data[keep])
    yd = (dg.target[keep] == 8).astype(np.int64)
    perm = np.random.RandomState(1).permutation(len(yd))
    svm_case("digits_rbf", xd[perm], yd[perm], 250, kernel="rbf", C=10.0, gamma="auto", tol=1e-3, shrinking=False)


def platt():
    """Platt's sigmoid: libsvm's sigmoid_train minimises the same objective as sklearn's
    _sigmoid_calibration (targets (N+ + 1)/(N+ + 2), 1/(N- + 2)); the optimum is unique."""
    rng = np.random.RandomState(2)
    y = (rng.rand(300) > 0.4).astype(np.int64)
    dec = rng.randn(300) + 1.2 * (2 * y - 1)
    a, b = _sigmoid_calibration(dec, y)
    save_file({"decision": f32(dec), "labels": i64(y), "AB": f32([a, b])}, str(OUT / "platt.safetensors"),
              metadata={"source": "sklearn.calibration._sigmoid_calibration, scikit-learn %s" % __import__("sklearn").__version__})


def gmms():
    bc = load_breast_cancer()
    x = standardised(bc.data)[np.random.RandomState(3).permutation(len(bc.target))]
    xf, xt = x[:450], x[450:]
    k, d = 4, x.shape[1]
    rng = np.random.RandomState(4)
    means = xf[rng.choice(len(xf), k, replace=False)].astype(np.float64)
    weights = np.full(k, 1.0 / k)
    scale = 1.0 + 0.25 * np.arange(k)  # component c starts with precision 1/(1 + c/4)
    for cov in ["full", "tied", "diag", "spherical"]:
        # Diagonal precisions, so that their Cholesky factors are the same upper or lower.
        if cov == "full":
            prec = np.stack([np.eye(d) / s for s in scale])
            chol = np.stack([np.eye(d) / np.sqrt(s) for s in scale])
        elif cov == "tied":
            prec, chol = np.eye(d) / 1.5, np.eye(d) / np.sqrt(1.5)
        elif cov == "diag":
            prec = np.stack([np.ones(d) / s for s in scale])
            chol = np.sqrt(prec)
        else:
            prec = 1.0 / scale
            chol = np.sqrt(prec)
        g = GaussianMixture(n_components=k, covariance_type=cov, reg_covar=1e-6, tol=1e-3, max_iter=100,
                            weights_init=weights, means_init=means, precisions_init=prec, random_state=0)
        g.fit(xf.astype(np.float64))
        fit_ll = g.score_samples(xf.astype(np.float64))
        save_file({"fit": f32(xf), "test": f32(xt), "weights_init": f32(weights), "means_init": f32(means),
                   "prec_chol_init": f32(chol.reshape(-1)),
                   "test_ll_hi": f32(g.score_samples(xt.astype(np.float64))),
                   "test_ll_lo": f32(g.score_samples(xt.astype(np.float64)) - g.score_samples(xt.astype(np.float64)).astype(np.float32)),
                   "fit_ll_hi": f32(fit_ll), "fit_ll_lo": f32(fit_ll - fit_ll.astype(np.float32)),
                   "weights": f32(g.weights_), "percentile_0_05": f32([np.percentile(fit_ll, 0.05)]),
                   "n_iter": i64([g.n_iter_])},
                  str(OUT / ("gmm_%s.safetensors" % cov)),
                  metadata={"covariance": cov, "lower_bound": repr(float(g.lower_bound_)),
                            "source": "scikit-learn %s GaussianMixture(4, %s, reg_covar=1e-6, tol=1e-3, given init)" % (__import__("sklearn").__version__, cov)})


def pcas():
    """PCA(svd_solver='full'): scipy's SVD of the centred rows, signs by svd_flip on Vt (the
    solver genscope's exact path reproduces). digits: 1797 x 64 (covariance side), its first 50
    rows (n < D: the Gram side), and 0.9 of the variance; lowrank: 600 x 700 rows of rank 30
    (a b, small integers: exact in f32; only a and b are stored), 20 components, where genscope takes its randomized path."""
    def case(name, x, n_components, extra):
        x = np.asarray(x, dtype=np.float32)
        p = PCA(n_components=n_components, svd_solver="full").fit(x.astype(np.float64))
        t = p.transform(x.astype(np.float64))
        save_file(dict({"mean": f32(p.mean_), "components": f32(p.components_),
                        "explained_variance": f32(p.explained_variance_),
                        "explained_variance_ratio": f32(p.explained_variance_ratio_), "transformed": f32(t),
                        "n_components": i64([p.n_components_])}, **extra),
                  str(OUT / ("pca_%s.safetensors" % name)),
                  metadata={"n_components": repr(n_components),
                            "source": "scikit-learn %s PCA(n_components=%r, svd_solver='full')" % (__import__("sklearn").__version__, n_components)})
    dg = load_digits().data
    case("digits", dg, 20, {"x": f32(dg)})
    case("digits_wide", dg[:50], 10, {"x": f32(dg[:50])})
    case("digits_fraction", dg, 0.9, {})  # x: pca_digits.safetensors
    # Small integers, so x = a b is exact in f32 and genscope rebuilds it from a and b.
    rng = np.random.RandomState(6)
    a = np.round(rng.randn(600, 30) * np.geomspace(40, 2, 30))
    b = rng.randint(-3, 4, size=(30, 700)).astype(np.float64)
    case("lowrank", a @ b, 20, {"a": f32(a), "b": f32(b)})


def metrics():
    rng = np.random.RandomState(5)
    y = (rng.rand(200) > 0.45).astype(np.int64)
    s = np.round(rng.randn(200) + y, 1)  # rounded: many tied scores
    save_file({"labels": i64(y), "scores": f32(s), "ap": f32([average_precision_score(y, s.astype(np.float32))]),
               "auc": f32([roc_auc_score(y, s.astype(np.float32))])}, str(OUT / "metrics.safetensors"),
              metadata={"source": "sklearn.metrics average_precision_score, roc_auc_score, scikit-learn %s" % __import__("sklearn").__version__})


if __name__ == "__main__" and "--example" not in __import__("sys").argv:
    OUT.mkdir(parents=True, exist_ok=True)
    probe()
    svms()
    platt()
    gmms()
    pcas()
    metrics()
    print("wrote", sorted(p.name for p in OUT.glob("*.safetensors")))


def example_sample():
    """examples/data/uar_sample.safetensors: 100 fit and 100 test pairs of ../shared's UAR
    features (f16, unchanged), for the README's fit/score/eval command. Runs only where
    ../shared is present."""
    src = OUT.parents[3] / "shared" / "data" / "uar_aim3b_dev.safetensors"
    if not src.exists():
        print("skipped examples/data/uar_sample.safetensors:", src, "is absent")
        return
    from safetensors import safe_open
    with safe_open(str(src), "np") as f:
        real, fake = f.get_tensor("real"), f.get_tensor("fake")
        images = f.metadata()["images"].split(",")
    parts = {"real_fit": (real, 0, 100), "fake_fit": (fake, 0, 100), "real_test": (real, 1000, 1100), "fake_test": (fake, 1000, 1100)}
    tensors = {k: np.ascontiguousarray(a[b:e]) for k, (a, b, e) in parts.items()}
    meta = {k + ".names": ",".join(("" if k.startswith("real") else "vae_") + images[i] for i in range(b, e))
            for k, (_, b, e) in parts.items()}
    meta["source"] = ("rows 0-99 (fit) and 1000-1099 (test) of uar_aim3b_dev.safetensors: AIM-3B features of ImageNet-2012 "
                      "test images (real) and their SD v1.4 VAE reconstructions (fake), from the UAR repository (Jmh0527/UAR, data/)")
    out = OUT.parents[2] / "examples" / "data" / "uar_sample.safetensors"
    save_file(tensors, str(out), metadata=meta)
    print("wrote", out, out.stat().st_size, "bytes")


if __name__ == "__main__" and "--example" in __import__("sys").argv:
    example_sample()
