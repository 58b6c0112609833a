#!/usr/bin/env python3
"""Time PyTorch eager (CPU, f32) on the shapes of bench/bench_vit.cpp and print genscope's figures
beside it.

    pip install torch timm
    cmake --build build --target bench_vit
    python3 tools/bench_vit_torch.py --bench build/bench/bench_vit [--threads N] [--repeats R]

The same thread count is given to both: torch.set_num_threads(N) and GENSCOPE_NUM_THREADS=N
(default: os.cpu_count()). Each model runs in its own process, for both sides, so that peak
resident memory (ru_maxrss) is per model. Models (random weights, eval, no_grad):
  vit_b16_224   timm vit_base_patch16_224, class-token feature, batch 1 and 8
  aim_600m_224  AIM-600M (apple/ml-aim aim_600M, rebuilt below from aim-v1/aim/v1/torch/layers.py):
                blocks 0-19 (the probe reads 14-19), the attention probe → x_cls, batch 1
The time is the median of R timed runs after one warm-up.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def aim_600m():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    width, heads, patch, depth, probe = 1536, 12, 14, 20, range(14, 20)

    def sincos(h, w, dim):  # SinCosPosEmbed
        def one(d, pos):
            omega = 1.0 / 10000 ** (torch.arange(d // 2).float() / (d / 2.0))
            out = pos.reshape(-1)[:, None] * omega[None, :]
            return torch.cat([torch.sin(out), torch.cos(out)], dim=1)
        grid = torch.stack(torch.meshgrid(torch.arange(w).float(), torch.arange(h).float(), indexing="xy")).reshape(2, 1, h, w)
        return torch.cat([one(dim // 2, grid[0]), one(dim // 2, grid[1])], dim=1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm_1, self.norm_2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
            self.qkv, self.proj = nn.Linear(width, 3 * width, bias=False), nn.Linear(width, width, bias=False)
            self.fc1, self.fc2 = nn.Linear(width, 4 * width, bias=False), nn.Linear(4 * width, width, bias=False)

        def forward(self, x):
            B, N, C = x.shape
            q, k, v = self.qkv(self.norm_1(x)).reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4).unbind(0)
            x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C))
            return x + self.fc2(F.gelu(self.fc1(self.norm_2(x))))

    class Aim(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, width, patch, patch)
            self.norm = nn.LayerNorm(width, eps=1e-6)
            self.blocks = nn.ModuleList([Block() for _ in range(depth)])
            self.bn = nn.BatchNorm1d(width, affine=False, eps=1e-6)
            self.k, self.v = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)
            self.cls_token = nn.Parameter(torch.randn(1, 1, width) * 0.02)

        def forward(self, x):
            _, _, h, w = x.shape
            x = self.norm(self.proj(x).flatten(2).transpose(1, 2)) + sincos(h // patch, w // patch, width)
            feats = []
            for blk in self.blocks:
                x = blk(x)
                feats.append(x)
            x = torch.stack([feats[i] for i in probe], dim=-1).mean(dim=-1)
            B, N, C = x.shape
            x = self.bn(x.transpose(-2, -1)).transpose(-2, -1)
            q = self.cls_token.expand(B, -1, -1).reshape(B, 1, heads, C // heads).permute(0, 2, 1, 3)
            k = self.k(x).reshape(B, N, heads, C // heads).permute(0, 2, 1, 3)
            v = self.v(x).reshape(B, N, heads, C // heads).permute(0, 2, 1, 3)
            return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, C)

    return Aim()


def run_torch(name, batch, threads, repeats):
    """One model in this process; prints JSON {ms, peak_mb}."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if name == "vit_b16_224":
        import timm
        model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    else:
        model = aim_600m()
    model.eval()
    x = torch.randn(batch, 3, 224, 224)
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"ms": statistics.median(times) * 1e3, "peak_mb": peak}))


def run_genscope(bench, name, batch, threads, repeats):
    env = dict(os.environ, GENSCOPE_NUM_THREADS=str(threads))
    out = subprocess.run([bench, f"--benchmark_filter=^{name}/batch:{batch}/", "--benchmark_format=json",
                          f"--benchmark_repetitions={repeats}", "--benchmark_report_aggregates_only=true"],
                         env=env, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)["benchmarks"]
    median = next(r for r in rows if r.get("aggregate_name") == "median")
    return {"ms": median["real_time"], "peak_mb": median["peak_MB"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="build/bench/bench_vit")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("--torch-one", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_one:
        run_torch(a.torch_one[0], int(a.torch_one[1]), a.threads, a.repeats)
        return
    cases = [("vit_b16_224", 1), ("vit_b16_224", 8), ("aim_600m_224", 1)]
    print(f"threads {a.threads}, median of {a.repeats}")
    print(f"{'model':<14} {'batch':>5} {'torch ms':>10} {'genscope ms':>12} {'speed-up':>9} {'torch MB':>9} {'genscope MB':>12}")
    for name, batch in cases:
        if a.only and a.only != name:
            continue
        t = json.loads(subprocess.run([sys.executable, __file__, "--threads", str(a.threads), "--repeats", str(a.repeats),
                                       "--torch-one", name, str(batch)], check=True, capture_output=True, text=True).stdout)
        g = run_genscope(a.bench, name, batch, a.threads, a.repeats)
        print(f"{name:<14} {batch:>5} {t['ms']:>10.1f} {g['ms']:>12.1f} {t['ms'] / g['ms']:>8.2f}x {t['peak_mb']:>9.0f} {g['peak_mb']:>12.0f}",
              flush=True)


if __name__ == "__main__":
    main()
