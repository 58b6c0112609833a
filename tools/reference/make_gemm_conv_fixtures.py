#!/usr/bin/env python3
"""Write the PyTorch reference fixtures for genscope's GEMM and conv2d (issue 3).

    pip install torch safetensors numpy
    python3 tools/reference/make_gemm_conv_fixtures.py

Writes (seeded, CPU, float32; the same files on every run):
  tests/data/gemm/gemm.safetensors      torch.nn.functional.linear and torch.matmul cases
  tests/data/conv2d/conv2d.safetensors  torch.nn.functional.conv2d cases

Each case is a group of tensors named <op>.<case>.<role>:
  linear.<case>.x / .w / .b (optional) / .y          y = act(F.linear(x, w, b)); .act holds the
                                                       activation code (0 none, 1 GELU erf)
  matmul.<case>.a / .b / .y                          y = a @ b, or for "trans" cases a = at.T,
                                                       b = bt.T from the stored .at / .bt
  conv2d.<case>.x / .w / .b (optional) / .y / .params
      params (int64) = [stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right,
                        dilation_h, dilation_w, groups, act]  (act: 0 none, 1 SiLU)
      asymmetric padding is F.pad(x, (left, right, top, bottom)) then F.conv2d without padding,
      exactly as diffusers' SD VAE Downsample2D does for its (0, 1, 0, 1) pad.
Weights stored as f16/bf16 (cases named *_f16 / *_bf16) are converted to f32 with .float() for
the reference product, which is what genscope's on-the-fly conversion must reproduce.
Shapes are model shapes at reduced size (ViT qkv/MLP, SD VAE resnet/downsample convs) and edge
shapes: 1×1×1, sizes that are not multiples of the kernels' tiles, K = 1, K above one cache
block (384), transposed operands, groups, depthwise, dilation, stride 2, asymmetric padding.
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
torch.manual_seed(20261201)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def write(path, tensors, note):
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    # One metadata key: the Rust serializer orders several keys randomly, and the files should
    # come out byte-identical on every run.
    save_file(tensors, str(path), metadata={
        "generator": f"tools/reference/make_gemm_conv_fixtures.py, torch {torch.__version__}: {note}"})
    print(f"{path.relative_to(ROOT)}: {len(tensors)} tensors, {path.stat().st_size} bytes")


def gemm_fixtures():
    t = {}

    def linear(name, m_shape, out_f, bias=True, act=0, wdtype=torch.float32):
        x = rand(*m_shape)
        w = rand(out_f, m_shape[-1]).to(wdtype)
        b = rand(out_f) if bias else None
        y = F.linear(x, w.float(), b)
        if act == 1:
            y = F.gelu(y)
        t[f"linear.{name}.x"] = x
        t[f"linear.{name}.w"] = w
        if bias:
            t[f"linear.{name}.b"] = b
        t[f"linear.{name}.y"] = y
        t[f"linear.{name}.act"] = torch.tensor([act], dtype=torch.int64)

    linear("vit_qkv_small", (2, 17, 64), 192)          # ViT qkv at width 64, 17 tokens, batch 2
    linear("vit_mlp_gelu", (33, 96), 384, act=1)        # fc1 + GELU (erf)
    linear("vit_fc2", (33, 384), 96)                   # fc2, K = 384: exactly one cache block
    linear("one", (1, 1), 1)                           # 1×1×1
    linear("odd_no_bias", (13, 37), 29, bias=False)    # no size a multiple of a tile
    linear("k1", (7, 1), 45)                           # K = 1
    linear("k_over_block", (30, 777), 100)             # K = 777: three passes of KC = 384
    linear("weight_f16", (19, 80), 50, wdtype=torch.float16)
    linear("weight_bf16", (19, 80), 50, wdtype=torch.bfloat16)

    def matmul(name, a_shape, b_shape):
        a, b = rand(*a_shape), rand(*b_shape)
        t[f"matmul.{name}.a"], t[f"matmul.{name}.b"], t[f"matmul.{name}.y"] = a, b, a @ b

    matmul("plain", (23, 31), (31, 19))
    matmul("one", (1, 1), (1, 1))
    matmul("batched", (3, 2, 9, 16), (3, 2, 16, 11))
    matmul("shared_b", (4, 10, 12), (12, 7))
    matmul("shared_a", (10, 12), (4, 12, 7))
    # Transposed operands: y = at.T @ bt.T with at [K, M], bt [N, K] stored contiguous.
    at, bt = rand(31, 23), rand(19, 31)
    t["matmul.trans.at"], t["matmul.trans.bt"], t["matmul.trans.y"] = at, bt, at.T @ bt.T
    # Attention scores: q [2, 3, 17, 8] @ k.transpose(-1, -2), k stored [2, 3, 17, 8].
    q, k = rand(2, 3, 17, 8), rand(2, 3, 17, 8)
    t["matmul.scores.q"], t["matmul.scores.k"], t["matmul.scores.y"] = q, k, q @ k.transpose(-1, -2)
    write(ROOT / "tests/data/gemm/gemm.safetensors", t, "F.linear and torch.matmul reference cases")


def conv_fixtures():
    t = {}

    def conv(name, x_shape, w_shape, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1), groups=1,
             bias=True, act=0, wdtype=torch.float32):
        x = rand(*x_shape)
        w = rand(*w_shape).to(wdtype)
        b = rand(w_shape[0]) if bias else None
        top, bottom, left, right = pad
        xp = F.pad(x, (left, right, top, bottom))
        y = F.conv2d(xp, w.float(), b, stride=stride, dilation=dilation, groups=groups)
        if act == 1:
            y = F.silu(y)
        t[f"conv2d.{name}.x"] = x
        t[f"conv2d.{name}.w"] = w
        if bias:
            t[f"conv2d.{name}.b"] = b
        t[f"conv2d.{name}.y"] = y
        t[f"conv2d.{name}.params"] = torch.tensor(
            [stride[0], stride[1], top, bottom, left, right, dilation[0], dilation[1], groups, act], dtype=torch.int64)

    conv("vae_resnet_small", (1, 32, 16, 16), (32, 32, 3, 3), pad=(1, 1, 1, 1))
    conv("vae_down", (1, 16, 16, 16), (16, 16, 3, 3), stride=(2, 2), pad=(0, 1, 0, 1))
    conv("vae_down_odd", (1, 8, 15, 13), (8, 8, 3, 3), stride=(2, 2), pad=(0, 1, 0, 1))
    conv("conv_in_batch2", (2, 3, 20, 20), (8, 3, 3, 3), pad=(1, 1, 1, 1))
    conv("one", (1, 1, 1, 1), (1, 1, 1, 1))
    conv("odd_kernel_3x5", (1, 5, 11, 13), (7, 5, 3, 5), pad=(1, 1, 2, 2), bias=False)
    conv("stride2", (1, 6, 17, 19), (10, 6, 3, 3), stride=(2, 2), pad=(1, 1, 1, 1))
    conv("dilation2", (1, 4, 20, 18), (6, 4, 3, 3), pad=(2, 2, 2, 2), dilation=(2, 2))
    conv("groups2", (1, 8, 12, 12), (12, 4, 3, 3), pad=(1, 1, 1, 1), groups=2)
    conv("depthwise", (1, 6, 9, 9), (6, 1, 3, 3), pad=(1, 1, 1, 1), groups=6)
    conv("pointwise", (2, 16, 7, 9), (24, 16, 1, 1))
    conv("pointwise_stride2", (1, 8, 9, 9), (4, 8, 1, 1), stride=(2, 2))
    conv("silu", (1, 8, 10, 10), (8, 8, 3, 3), pad=(1, 1, 1, 1), act=1)
    conv("wide_rows", (1, 3, 5, 70), (4, 3, 3, 3), pad=(1, 1, 1, 1))      # output rows wider than a tile
    conv("k_over_block", (1, 64, 8, 8), (16, 64, 3, 3), pad=(1, 1, 1, 1))  # K = 576 > 384
    conv("asymmetric_mixed", (1, 5, 13, 17), (6, 5, 3, 2), stride=(1, 2), pad=(2, 0, 1, 3), dilation=(2, 1))
    conv("weight_f16", (1, 8, 9, 9), (8, 8, 3, 3), pad=(1, 1, 1, 1), wdtype=torch.float16)
    conv("weight_bf16", (1, 8, 9, 9), (8, 8, 3, 3), pad=(1, 1, 1, 1), wdtype=torch.bfloat16)
    write(ROOT / "tests/data/conv2d/conv2d.safetensors", t, "F.conv2d reference cases")


if __name__ == "__main__":
    gemm_fixtures()
    conv_fixtures()
