#!/usr/bin/env python3
"""Run genscope's CPU benchmarks and the same shapes in PyTorch; print both, the ratio and % of peak.

    pip install torch
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target bench_gemm bench_conv2d bench_peak
    python3 tools/bench_compare.py [--build build] [--suites gemm conv2d] [--filter REGEX] [--min-time 1.0]
                                   [--repetitions 3] [--cpu-time]

Threads: both sides use N = $GENSCOPE_NUM_THREADS or nproc (the bench binaries get
GENSCOPE_NUM_THREADS=N, PyTorch torch.set_num_threads(N)). Each benchmark is run once in the
genscope binary (--benchmark_format=json, filtered to that one benchmark) and immediately after in
PyTorch, alternating for --repetitions rounds; each side's best round is reported, so load from
other processes hits both alike. Peak: bench_peak's peak_fma/threads:N (best round). On a machine
busy with other jobs, GENSCOPE_NUM_THREADS=1 ... --cpu-time compares rates per CPU second of the
one compute thread (Google Benchmark's cpu_time, Python's time.thread_time), which time slicing
by other processes does not inflate.

Benchmark names (what this script parses) are Google Benchmark's ArgNames form:

    <op>/<key>:<value>/<key>:<value>...[/real_time]      e.g. gemm/M:1024/N:1024/K:1024

<op> selects the PyTorch twin in TORCH_OPS below and the key:value pairs (integers) are passed to
it as a dict. Each twin returns (fn, amount, unit): fn() runs the op once in PyTorch, amount is
the flops (unit "GFLOP/s") or bytes moved (unit "GB/s") of one call, the same count the C++
benchmark puts in its counter of that name. To compare a new op, give its benchmark a name in
this scheme and add an entry to TORCH_OPS; ops without an entry are listed with genscope's
number only.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


# ---- the PyTorch twins, one entry per benchmark <op> ---------------------------------------------
def _linear(p, wdtype=torch.float32):
    x, w, b = torch.randn(p["M"], p["K"]), torch.randn(p["N"], p["K"]).to(wdtype), torch.randn(p["N"])
    if wdtype == torch.float32:
        return (lambda: F.linear(x, w, b)), 2.0 * p["M"] * p["N"] * p["K"], "GFLOP/s"
    # Stored f16, computed in f32: PyTorch's CPU path converts the weight on every call.
    return (lambda: F.linear(x, w.float(), b)), 2.0 * p["M"] * p["N"] * p["K"], "GFLOP/s"


def _gemm(p):
    a, b = torch.randn(p["M"], p["K"]), torch.randn(p["K"], p["N"])
    return (lambda: torch.mm(a, b)), 2.0 * p["M"] * p["N"] * p["K"], "GFLOP/s"


def _conv_flops(p, y):
    return 2.0 * p["O"] * y.shape[2] * y.shape[3] * p["C"] * p["k"] * p["k"]


def _conv2d(p):
    x, w, b = torch.randn(1, p["C"], p["H"], p["W"]), torch.randn(p["O"], p["C"], p["k"], p["k"]), torch.randn(p["O"])
    fn = lambda: F.conv2d(x, w, b, stride=p["stride"], padding=p["pad"])
    return fn, _conv_flops(p, fn()), "GFLOP/s"


def _conv2d_down(p):
    # diffusers Downsample2D (SD VAE encoder): F.pad(x, (0, 1, 0, 1)) then a stride-2 conv.
    x, w, b = torch.randn(1, p["C"], p["H"], p["W"]), torch.randn(p["O"], p["C"], p["k"], p["k"]), torch.randn(p["O"])
    fn = lambda: F.conv2d(F.pad(x, (0, 1, 0, 1)), w, b, stride=p["stride"])
    return fn, _conv_flops(p, fn()), "GFLOP/s"


TORCH_OPS = {
    "gemm": _gemm,                                      # bench_gemm: C = A·B
    "linear": _linear,                                  # bench_gemm: F.linear, f32 weight
    "linear_f16": lambda p: _linear(p, torch.float16),  # bench_gemm: f16-stored weight
    "conv2d": _conv2d,                                  # bench_conv2d: symmetric padding
    "conv2d_down": _conv2d_down,                        # bench_conv2d: (0, 1, 0, 1) pad, stride 2
    # bench_ops (issue 3: norms, activations, softmax, elementwise, attention, FFT); the amounts
    # are the C++ counters': GB/s = bytes read + written, attention 4·H·Tq·Tk·D, FFT 5·N·log2(N).
    "layer_norm": lambda p: (lambda x, w: (lambda: F.layer_norm(x, x.shape[-1:], w, w, 1e-6), 8.0 * x.numel(), "GB/s"))(
        torch.randn(p["rows"], p["dim"]), torch.randn(p["dim"])),
    "group_norm_silu": lambda p: (lambda x, w: (lambda: F.silu(F.group_norm(x, 32, w, w, 1e-6)), 8.0 * x.numel(), "GB/s"))(
        torch.randn(1, p["ch"], p["hw"], p["hw"]), torch.randn(p["ch"])),
    "softmax": lambda p: (lambda x: (lambda: torch.softmax(x, -1), 8.0 * x.numel(), "GB/s"))(torch.randn(p["rows"], p["cols"])),
    "gelu": lambda p: (lambda x: (lambda: F.gelu(x), 8.0 * x.numel(), "GB/s"))(torch.randn(p["rows"], p["dim"])),
    "gelu_tanh": lambda p: (lambda x: (lambda: F.gelu(x, approximate="tanh"), 8.0 * x.numel(), "GB/s"))(
        torch.randn(p["rows"], p["dim"])),
    "quick_gelu": lambda p: (lambda x: (lambda: x * torch.sigmoid(1.702 * x), 8.0 * x.numel(), "GB/s"))(
        torch.randn(p["rows"], p["dim"])),
    "silu": lambda p: (lambda x: (lambda: F.silu(x), 8.0 * x.numel(), "GB/s"))(torch.randn(p["rows"], p["dim"])),
    "add": lambda p: (lambda x, b: (lambda: x + b, 8.0 * x.numel(), "GB/s"))(torch.randn(p["rows"], p["dim"]), torch.randn(p["dim"])),
    "mean": lambda p: (lambda x: (lambda: x.mean(-1), 4.0 * x.numel(), "GB/s"))(torch.randn(p["rows"], p["dim"])),
    "upsample_nearest": lambda p: (lambda x: (lambda: F.interpolate(x, scale_factor=2.0, mode="nearest"), 20.0 * x.numel(), "GB/s"))(
        torch.randn(1, p["ch"], p["hw"], p["hw"])),
    "cosine_similarity": lambda p: (lambda x, y: (lambda: F.cosine_similarity(x, y, dim=1), 8.0 * x.numel(), "GB/s"))(
        torch.randn(p["rows"], p["dim"]), torch.randn(p["rows"], p["dim"])),
    "attention": lambda p: (lambda q, k, v: (lambda: F.scaled_dot_product_attention(q, k, v),
                                             4.0 * p["heads"] * p["tokens"] ** 2 * p["dim"], "GFLOP/s"))(
        *(torch.randn(1, p["heads"], p["tokens"], p["dim"]) for _ in range(3))),
    "attention_memory": lambda p: (lambda q, k, v: (lambda: F.scaled_dot_product_attention(q, k, v),
                                                    4.0 * p["queries"] * p["keys"] * p["dim"], "GFLOP/s"))(
        torch.randn(1, 1, p["queries"], p["dim"]), 0.05 * torch.randn(1, 1, p["keys"], p["dim"]), torch.randn(1, 1, p["keys"], p["dim"])),
    "fft2_real": lambda p: (lambda x: (lambda: torch.fft.fft2(x), 5.0 * x[0].numel() * torch.tensor(float(x[0].numel())).log2().item()
                                       * p["channels"], "GFLOP/s"))(torch.randn(p["channels"], p["size"], p["size"])),
    "fft2": lambda p: (lambda x: (lambda: torch.fft.fft2(x), 5.0 * x[0].numel() * torch.tensor(float(x[0].numel())).log2().item()
                                  * p["channels"], "GFLOP/s"))(torch.randn(p["channels"], p["size"], p["size"], dtype=torch.complex64)),
}

# ---- running -----------------------------------------------------------------------------------
NAME = re.compile(r"^([A-Za-z0-9_]+)((?:/[A-Za-z0-9_]+:-?\d+)*)")


def parse_name(name):
    m = NAME.match(name)
    if not m:
        return None, {}
    params = {}
    for part in m.group(2).split("/")[1:]:
        k, v = part.split(":")
        params[k] = int(v)
    return m.group(1), params


def run_bench(binary, env, filt, min_time):
    out = subprocess.run([str(binary), f"--benchmark_filter={filt}", "--benchmark_format=json",
                          f"--benchmark_min_time={min_time}"], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)["benchmarks"]


def list_benches(binary, env):
    out = subprocess.run([str(binary), "--benchmark_list_tests=true"], env=env, check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def time_torch(fn, min_time, clock=time.perf_counter):
    for _ in range(2):
        fn()
    n, start = 0, clock()
    while True:
        fn()
        n += 1
        elapsed = clock() - start
        if elapsed >= min_time and n >= 3:
            return elapsed / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(ROOT / "build"), help="CMake build folder with bench/ (default build)")
    ap.add_argument("--suites", nargs="+", default=["gemm", "conv2d"], help="bench_<suite> binaries to run")
    ap.add_argument("--filter", default="", help="regex on benchmark names")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per benchmark, side and round")
    ap.add_argument("--repetitions", type=int, default=3, help="alternating rounds per benchmark; the best counts")
    ap.add_argument("--cpu-time", action="store_true",
                    help="rate per CPU second of the benchmark thread instead of per wall second (needs 1 thread; "
                         "for a machine shared with other jobs)")
    args = ap.parse_args()

    threads = int(os.environ.get("GENSCOPE_NUM_THREADS") or os.cpu_count())
    if args.cpu_time and threads != 1:
        sys.exit("--cpu-time measures one thread: run with GENSCOPE_NUM_THREADS=1")
    clock = time.thread_time if args.cpu_time else time.perf_counter
    def rate(res, unit):  # genscope's counter, per CPU second with --cpu-time
        return res[unit] * (res["real_time"] / res["cpu_time"] if args.cpu_time else 1.0)
    torch.set_num_threads(threads)
    env = dict(os.environ, GENSCOPE_NUM_THREADS=str(threads))
    bench_dir = Path(args.build) / "bench"

    peak = None
    peak_bin = bench_dir / "bench_peak"
    if peak_bin.exists():
        for _ in range(args.repetitions):
            for b in run_bench(peak_bin, env, f"peak_fma/threads:{threads}/", args.min_time):
                peak = max(peak or 0.0, rate(b, "GFLOP/s"))
    print(f"threads {threads}; torch {torch.__version__}; {'CPU' if args.cpu_time else 'wall'} time; peak f32 "
          + (f"{peak:.1f} GFLOP/s (bench_peak, all threads)" if peak else "unknown (build bench_peak)"))

    rows = []
    for suite in args.suites:
        binary = bench_dir / f"bench_{suite}"
        if not binary.exists():
            sys.exit(f"{binary}: not built (cmake --build {args.build} --target bench_{suite})")
        for name in list_benches(binary, env):
            if args.filter and not re.search(args.filter, name):
                continue
            op, params = parse_name(name)
            twin = TORCH_OPS[op](params) if op in TORCH_OPS else None
            ours = theirs = unit = None
            # Alternate the two sides and keep each side's best round: on a shared machine, load
            # from other processes only ever slows a round down.
            for _ in range(args.repetitions):
                results = run_bench(binary, env, "^" + re.escape(name) + "$", args.min_time)
                if not results:
                    break
                res = results[0]
                unit = "GFLOP/s" if "GFLOP/s" in res else "GB/s" if "GB/s" in res else None
                if unit:
                    ours = max(ours or 0.0, rate(res, unit))
                if twin:
                    fn, amount, tunit = twin
                    with torch.inference_mode():
                        seconds = time_torch(fn, args.min_time, clock)
                    theirs = max(theirs or 0.0, amount / seconds / 1e9)
                    unit = unit or tunit
            if ours is None and theirs is None:
                continue
            rows.append((name.replace("/real_time", ""), unit, ours, theirs))
            print(f"  {rows[-1][0]}: {ours and round(ours, 1)} vs {theirs and round(theirs, 1)}", file=sys.stderr)

    def fmt(v):
        return "-" if v is None else f"{v:.1f}"

    print("| op / shape | unit | genscope | PyTorch | genscope / PyTorch | % of peak |")
    print("|---|---|---:|---:|---:|---:|")
    for name, unit, ours, theirs in rows:
        ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
        pct = f"{100 * ours / peak:.0f}%" if ours and peak and unit == "GFLOP/s" else "-"
        print(f"| {name} | {unit or '-'} | {fmt(ours)} | {fmt(theirs)} | {ratio} | {pct} |")


if __name__ == "__main__":
    main()
