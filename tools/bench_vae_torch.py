#!/usr/bin/env python3
"""Time diffusers' AutoencoderKL on the CPU, side by side with genscope's bench/bench_vae.cpp.

    pip install torch diffusers safetensors
    python3 tools/bench_vae_torch.py --write-weights /tmp/sd14_random.safetensors   # once
    python3 tools/bench_vae_torch.py --weights /tmp/sd14_random.safetensors [--genscope build/bench/bench_vae]

SD v1.4's VAE configuration with seeded random weights (no model hub; speed and memory do not
depend on the values). For each size (256², 512²) a fresh process runs encode (posterior mean)
+ decode in float32 under torch.inference_mode(): one warm-up, then the median of --repeat runs,
and its peak RSS (getrusage ru_maxrss, the whole process: Python, torch and the weights included;
loaded_rss_mb is the same high-water mark right after loading, before any pass) and the process
CPU time of a pass (all threads; on shared cores steadier than wall time).
With --genscope, bench_vae runs in its own process per size with the same weights and thread
count, and the two are printed together.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SD14 = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)


def write_weights(path):
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    torch.manual_seed(0)
    vae = AutoencoderKL(**SD14)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, path)
    print("wrote", path)


def run_one(weights, size, repeat, threads):
    """In a child process: time one size, print a JSON line."""
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file

    torch.set_num_threads(threads)
    vae = AutoencoderKL(**SD14).eval()
    vae.load_state_dict(load_file(weights))
    g = torch.Generator().manual_seed(1)
    x = torch.rand((1, 3, size, size), generator=g) * 2 - 1
    loaded_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times, cpu = [], []
    with torch.inference_mode():
        for i in range(repeat + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            y = vae.decode(vae.encode(x).latent_dist.mean).sample
            if i:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(size=size, seconds=statistics.median(times), cpu_seconds=statistics.median(cpu),
                          peak_rss_mb=rss_mb, loaded_rss_mb=loaded_rss_mb)))


def run_genscope(binary, weights, size, threads):
    env = dict(os.environ, GENSCOPE_BENCH_VAE=weights, GENSCOPE_NUM_THREADS=str(threads))
    out = subprocess.run([binary, f"--benchmark_filter=BM_VaeEncodeDecode/{size}", "--benchmark_format=json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    b = json.loads(out)["benchmarks"][0]
    seconds = b["real_time"] if b["time_unit"] == "s" else b["real_time"] / 1e3
    return dict(size=size, seconds=seconds, cpu_seconds=b["cpu_s"], peak_rss_mb=b["peak_rss_MB"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-weights", metavar="FILE")
    ap.add_argument("--weights", metavar="FILE")
    ap.add_argument("--genscope", metavar="BENCH_VAE", help="path of genscope's bench_vae to run side by side")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_weights:
        write_weights(args.write_weights)
        return
    if not args.weights:
        ap.error("--weights FILE is required (write one with --write-weights)")
    if args.child:
        run_one(args.weights, args.child, args.repeat, args.threads)
        return
    print(f"SD v1.4 VAE, encode (mean) + decode, f32, CPU, {args.threads} threads")
    print("wall seconds (median), process CPU seconds (all threads; steadier on shared cores), peak RSS MB")
    print(f"{'size':>6} {'torch s':>9} {'cpu s':>7} {'torch MB':>9} {'genscope s':>11} {'cpu s':>7} {'genscope MB':>12} {'speed-up':>9} {'by cpu':>7} {'memory':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--weights", args.weights, "--child", str(size),
                              "--repeat", str(args.repeat), "--threads", str(args.threads)],
                             check=True, capture_output=True, text=True).stdout
        t = json.loads(out.strip().splitlines()[-1])
        line = f"{size:>6} {t['seconds']:>9.2f} {t['cpu_seconds']:>7.2f} {t['peak_rss_mb']:>9.0f}"
        if args.genscope:
            g = run_genscope(args.genscope, args.weights, size, args.threads)
            line += (f" {g['seconds']:>11.2f} {g['cpu_seconds']:>7.2f} {g['peak_rss_mb']:>12.0f} {t['seconds'] / g['seconds']:>8.2f}x"
                     f" {t['cpu_seconds'] / g['cpu_seconds']:>6.2f}x {g['peak_rss_mb'] / t['peak_rss_mb']:>7.2f}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
