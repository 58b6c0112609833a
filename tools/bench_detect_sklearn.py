#!/usr/bin/env python3
"""Time scikit-learn and genscope side by side on the detector heads, in one run.

    pip install numpy scikit-learn safetensors threadpoolctl
    cmake --build build --target bench_detect
    python3 tools/bench_detect_sklearn.py build/bench/bench_detect [--threads N]

Data: ../shared/data/uar_aim3b_dev.safetensors, pairs 0..999 to fit, 1000..1999 to test, f16
widened to f32 (REFERENCE.md's split). scikit-learn runs on one core (libsvm is single-threaded;
BLAS limited to 1 thread with threadpoolctl); genscope with GENSCOPE_NUM_THREADS=N (default 1,
so that the ratio is per core). Each timing is the best of 3.
  SVM: SVC(rbf, C=1, gamma=1/3072, tol=1e-3, shrinking=False), RAID's settings: fit, predict.
  GMM: GaussianMixture(6, reg_covar=1e-6, random_state=0, init_params='k-means++'): diag on the
       3072 features, full on the first 256. genscope's k-means++ seeding differs from sklearn's,
       so the EM iteration counts are printed too, and the time per iteration compared.
  PCA: PCA(256) on the 2000 fit rows (sklearn's 'auto' = randomized here, as genscope's solver).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]


def best_of(n, fn):
    best, out = float("inf"), None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def sklearn_times():
    d = load_file(str(ROOT.parent / "shared" / "data" / "uar_aim3b_dev.safetensors"))
    real, fake = d["real"].astype(np.float32), d["fake"].astype(np.float32)
    x_fit = np.concatenate([real[:1000], fake[:1000]]).astype(np.float64)
    y_fit = np.r_[np.zeros(1000), np.ones(1000)]
    x_test = np.concatenate([real[1000:], fake[1000:]]).astype(np.float64)
    y_test = np.r_[np.zeros(1000), np.ones(1000)]
    out = {}
    with threadpool_limits(1):
        t, svc = best_of(3, lambda: SVC(C=1.0, gamma=1 / 3072, tol=1e-3, shrinking=False).fit(x_fit, y_fit))
        out["svm_fit"] = (t, "%d SVs" % svc.support_.size)
        t, pred = best_of(3, lambda: svc.predict(x_test))
        out["svm_predict"] = (t, "accuracy %.2f %%" % (100 * (pred == y_test).mean()))
        t, p = best_of(3, lambda: PCA(256, random_state=0).fit(x_fit))
        out["pca_fit"] = (t, "%s solver, %.2f %% of the variance" % (p._fit_svd_solver, 100 * p.explained_variance_ratio_.sum()))
        for name, cov, cols in [("gmm_diag", "diag", 3072), ("gmm_full", "full", 256)]:
            xr = real[:1000, :cols].astype(np.float64)
            t, g = best_of(3, lambda: GaussianMixture(6, covariance_type=cov, reg_covar=1e-6, random_state=0,
                                                      init_params="k-means++").fit(xr))
            out[name] = (t, "%d EM iterations" % g.n_iter_, g.n_iter_)
    return out


def genscope_times(binary, threads):
    env = dict(os.environ, GENSCOPE_NUM_THREADS=str(threads))
    r = subprocess.run([binary, "--benchmark_format=json"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    runs = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = {"BM_SvmFit": "svm_fit", "BM_SvmPredict": "svm_predict", "BM_GmmFit/0": "gmm_diag",
                "BM_GmmFit/1": "gmm_full", "BM_PcaFit": "pca_fit"}.get(b["run_name"].split("/iterations")[0])
        if name is None:
            continue
        t = b["real_time"] / 1000.0  # ms -> s
        extra = b.get("em_iterations", b.get("support_vectors", b.get("explained_variance_pct")))
        if name not in runs or t < runs[name][0]:
            runs[name] = (t, extra)
    return runs


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
    sk = sklearn_times()
    gs = genscope_times(sys.argv[1], threads)
    print("%-12s %12s %14s %8s   %s" % ("benchmark", "sklearn s", "genscope s", "ratio", "notes"))
    for k in ["svm_fit", "svm_predict", "gmm_diag", "gmm_full", "pca_fit"]:
        note = sk[k][1]
        ratio = sk[k][0] / gs[k][0]
        if k.startswith("gmm"):
            per_it = (sk[k][0] / sk[k][2]) / (gs[k][0] / gs[k][1])
            note += " vs %d in genscope; per EM iteration %.1fx" % (gs[k][1], per_it)
        if k == "pca_fit":
            note += " vs %.2f %% in genscope" % gs[k][1]
        print("%-12s %12.3f %14.3f %7.1fx   %s" % (k, sk[k][0], gs[k][0], ratio, note))
    t_sk = sk["svm_fit"][0] + sk["svm_predict"][0]
    t_gs = gs["svm_fit"][0] + gs["svm_predict"][0]
    print("svm fit+predict: sklearn %.2f s, genscope %.2f s (%d thread(s)): %.1fx" % (t_sk, t_gs, threads, t_sk / t_gs))


if __name__ == "__main__":
    main()
