#!/usr/bin/env python3
"""Write genscope's CPU-op parity fixtures (tests/data/ops/) with PyTorch.

    pip install torch safetensors        # CPU torch is enough
    python3 tools/reference/make_ops_fixtures.py

Deterministic (torch.manual_seed(0), f32 math on the CPU, one thread). Writes three files, each
tensor named "<case>.<role>" (inputs and torch's output), read by tests/test_ops.cpp,
tests/test_attention.cpp and tests/test_fft.cpp:

  ops.safetensors        layer_norm, group_norm (+ SiLU), softmax, GELU erf/tanh, quick-GELU,
                         SiLU, GEGLU, broadcasting add/sub/mul/div, sum/mean/var/max, nearest 2x
                         upsample, cosine_similarity — model shapes reduced, and edge shapes
  attention.safetensors  torch.nn.functional.scaled_dot_product_attention: ViT-like, VAE-like
                         (1 head), cross attention (Tq != Tk, Dv != D), bool and additive masks
                         with a fully blocked row, a custom scale, a single token
  fft.safetensors        torch.fft.fft2 / ifft2 / fftshift / ifftshift: sizes 1, 7, 97 (prime:
                         Bluestein), 194, 224, 256, 12x20; complex numbers as view_as_real [..., 2]

Where torch's f32 kernel is itself inaccurate (a layer_norm of rows 1000 ± 0.01) the expected
value is torch in float64 on the same f32 inputs, as noted at the case.
f16/bf16 inputs are stored in their own dtype; the expected output is torch's f32 op applied to
the same values widened to f32 (genscope computes in f32 and returns f32).
"""
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "ops"

torch.manual_seed(0)
torch.set_num_threads(1)


def randn(*shape, scale=1.0, offset=0.0):
    return (torch.randn(*shape) * scale + offset).float()


def geglu_diffusers(projected, approximate="none"):
    # diffusers/models/activations.py, GEGLU.forward after self.proj:
    #   hidden_states, gate = hidden_states.chunk(2, dim=-1)
    #   return hidden_states * self.gelu(gate)
    hidden_states, gate = projected.chunk(2, dim=-1)
    return hidden_states * F.gelu(gate, approximate=approximate)


def ops_fixtures():
    t = {}

    # ---- layer_norm: ViT-B width (768) with affine and eps 1e-6; odd width without affine and a
    # large offset (stability); width 1 (output = bias); a transposed view; f16 and bf16 inputs.
    x = randn(5, 768)
    w, b = randn(768, scale=0.5, offset=1.0), randn(768, scale=0.1)
    t |= {"ln_vit.x": x, "ln_vit.w": w, "ln_vit.b": b, "ln_vit.out": F.layer_norm(x, (768,), w, b, 1e-6)}
    # 1000 ± 0.01 is ill-conditioned in f32: torch's own f32 kernel is off by ~1e-2 here, so the
    # expected output is torch in float64 on the same f32 values, rounded to f32.
    x = randn(3, 4, 7, scale=0.01, offset=1000.0)
    t |= {"ln_offset.x": x, "ln_offset.out": F.layer_norm(x.double(), (7,), None, None, 1e-5).float()}
    x, w, b = randn(4, 1), randn(1), randn(1)
    t |= {"ln_one.x": x, "ln_one.w": w, "ln_one.b": b, "ln_one.out": F.layer_norm(x, (1,), w, b, 1e-5)}
    xt = randn(33, 6)  # the test normalises xt.T: rows of 33 with stride 6
    w33 = randn(33)
    t |= {"ln_strided.xt": xt, "ln_strided.w": w33, "ln_strided.out": F.layer_norm(xt.t(), (33,), w33, None, 1e-5)}
    x16 = randn(4, 64).half()
    t |= {"ln_f16.x": x16, "ln_f16.out": F.layer_norm(x16.float(), (64,), None, None, 1e-5)}
    xb = randn(4, 64, scale=3.0).bfloat16()
    t |= {"ln_bf16.x": xb, "ln_bf16.out": F.layer_norm(xb.float(), (64,), None, None, 1e-5)}

    # ---- group_norm: SD VAE (32 groups, eps 1e-6, affine) at 64 channels of 8x8; with fused SiLU;
    # no affine with 3 groups of 2 channels on 5x3; f16 and bf16 inputs.
    x = randn(1, 64, 8, 8, scale=2.0, offset=0.5)
    w, b = randn(64, scale=0.3, offset=1.0), randn(64, scale=0.3)
    gn = F.group_norm(x, 32, w, b, 1e-6)
    t |= {"gn_vae.x": x, "gn_vae.w": w, "gn_vae.b": b, "gn_vae.out": gn, "gn_vae.out_silu": F.silu(gn)}
    x = randn(2, 6, 5, 3)
    t |= {"gn_plain.x": x, "gn_plain.out": F.group_norm(x, 3, None, None, 1e-5)}
    x16 = randn(2, 8, 4, 4).half()
    w, b = randn(8), randn(8)
    t |= {"gn_f16.x": x16, "gn_f16.w": w, "gn_f16.b": b, "gn_f16.out": F.group_norm(x16.float(), 4, w, b, 1e-5)}
    xb = randn(1, 8, 3, 3).bfloat16()
    t |= {"gn_bf16.x": xb, "gn_bf16.out": F.group_norm(xb.float(), 2, None, None, 1e-5)}

    # ---- softmax: attention-probability rows (197 tokens), a middle dim, one element, a row with
    # -inf entries and logits far from 0.
    x = randn(3, 197, scale=3.0)
    t |= {"softmax_rows.x": x, "softmax_rows.out": torch.softmax(x, -1)}
    x = randn(4, 5, 6)
    t |= {"softmax_mid.x": x, "softmax_mid.out": torch.softmax(x, 1)}
    x = randn(1)
    t |= {"softmax_one.x": x, "softmax_one.out": torch.softmax(x, 0)}
    x = randn(2, 9, scale=5.0, offset=1e4)
    x[0, 3] = float("-inf")
    x[1, ::2] = float("-inf")
    t |= {"softmax_inf.x": x, "softmax_inf.out": torch.softmax(x, -1)}

    # ---- activations over [-10, 10] plus a few far values.
    x = torch.cat([torch.linspace(-10, 10, 2001), torch.tensor([-30.0, -18.0, 18.0, 30.0, 0.0])]).float()
    t |= {
        "act.x": x,
        "act.gelu": F.gelu(x),
        "act.gelu_tanh": F.gelu(x, approximate="tanh"),
        "act.quick_gelu": x * torch.sigmoid(1.702 * x),  # CLIP's QuickGELU
        "act.silu": F.silu(x),
        "act.relu": F.relu(x),
    }
    # GEGLU: the Linear projection output (dim_out * 2 = 48) of 2x5 tokens.
    proj = F.linear(randn(2, 5, 16), randn(48, 16, scale=0.25), randn(48, scale=0.1))
    t |= {"geglu.proj": proj, "geglu.out": geglu_diffusers(proj), "geglu.out_tanh": geglu_diffusers(proj, "tanh")}
    x16 = randn(3, 8).half()
    t |= {"act_f16.x": x16, "act_f16.gelu": F.gelu(x16.float())}

    # ---- broadcasting binary ops.
    a, b = randn(4, 1, 6), randn(3, 1, scale=0.5, offset=2.0)
    t |= {"bin.a": a, "bin.b": b}
    t |= {"bin.add": a + b, "bin.sub": a - b, "bin.mul": a * b, "bin.div": a / b}
    a, s = randn(2, 3), torch.tensor(1.5)
    t |= {"bin_scalar.a": a, "bin_scalar.s": s, "bin_scalar.div": s / a, "bin_scalar.mul": a * s}
    a16, b32 = randn(5, 7).half(), randn(7)
    t |= {"bin_f16.a": a16, "bin_f16.b": b32, "bin_f16.add": a16.float() + b32}
    at = randn(6, 5)  # the test uses at.T [5, 6] (strided) - row [6]
    r = randn(6)
    t |= {"bin_strided.at": at, "bin_strided.r": r, "bin_strided.sub": at.t() - r}

    # ---- reductions along each dim of a [4, 5, 6] tensor, values offset from zero.
    x = randn(4, 5, 6, scale=2.0, offset=3.0)
    t["red.x"] = x
    for d in range(3):
        t[f"red.sum{d}"] = x.sum(d)
        t[f"red.mean{d}"] = x.mean(d)
        t[f"red.var{d}"] = x.var(d, unbiased=True)
        t[f"red.var_biased{d}"] = x.var(d, unbiased=False)
        t[f"red.max{d}"] = x.amax(d)
    t["red.mean1_keepdim"] = x.mean(1, keepdim=True)
    x = randn(3, 1000, scale=0.1, offset=100.0)
    t |= {"red_long.x": x, "red_long.var": x.var(-1), "red_long.sum": x.sum(-1)}

    # ---- nearest 2x upsample (torch.nn.Upsample(scale_factor=2.0, mode="nearest") in the SD VAE).
    x = randn(2, 3, 5, 7)
    t |= {"up.x": x, "up.out": F.interpolate(x, scale_factor=2.0, mode="nearest")}
    x16 = randn(1, 2, 3, 4).half()
    t |= {"up_f16.x": x16, "up_f16.out": F.interpolate(x16.float(), scale_factor=2.0, mode="nearest")}

    # ---- cosine similarity: CLIP-embedding-like rows; broadcast; a vector below eps; a zero row.
    a, b = randn(4, 512), randn(4, 512)
    t |= {"cos_rows.a": a, "cos_rows.b": b, "cos_rows.out": F.cosine_similarity(a, b, dim=1)}
    a, b = randn(3, 1, 16), randn(1, 5, 16)
    t |= {"cos_bcast.a": a, "cos_bcast.b": b, "cos_bcast.out": F.cosine_similarity(a, b, dim=-1)}
    a = torch.tensor([[1e-9, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-2.0, 0.5, 1.0]])
    t |= {"cos_eps.a": a, "cos_eps.b": b, "cos_eps.out": F.cosine_similarity(a, b, dim=1, eps=1e-8)}
    return t


def attention_fixtures():
    t = {}

    def case(name, q, k, v, mask=None, scale=None):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        t.update({f"{name}.q": q, f"{name}.k": k, f"{name}.v": v, f"{name}.out": out})
        if mask is not None:
            t[f"{name}.mask"] = mask
        if scale is not None:
            t[f"{name}.scale"] = torch.tensor([scale])

    # ViT-like: 197 tokens (crosses the 64-query and 128-key tiles), 2 heads of 32.
    case("vit", randn(1, 2, 197, 32), randn(1, 2, 197, 32), randn(1, 2, 197, 32))
    # SD VAE mid-block-like: one head, 130 tokens, 96 dims, large logits.
    case("vae", randn(1, 1, 130, 96, scale=2.0), randn(1, 1, 130, 96, scale=2.0), randn(1, 1, 130, 96))
    # Cross attention: 7 queries over 300 keys, D = 16, Dv = 24, batch 2.
    case("cross", randn(2, 1, 7, 16), randn(2, 1, 300, 16), randn(2, 1, 300, 24))
    # Bool mask [9, 33] broadcast over batch 2 and 2 heads; True = attend; row 4 fully blocked.
    m = torch.rand(9, 33) > 0.3
    m[4] = False
    case("mask_bool", randn(2, 2, 9, 8), randn(2, 2, 33, 8), randn(2, 2, 33, 8), mask=m)
    # Additive float mask [1, 2, 9, 33] with -inf entries and row 0 fully -inf.
    fm = randn(1, 2, 9, 33)
    fm[torch.rand(1, 2, 9, 33) < 0.2] = float("-inf")
    fm[:, :, 0] = float("-inf")
    case("mask_add", randn(1, 2, 9, 8), randn(1, 2, 33, 8), randn(1, 2, 33, 8), mask=fm)
    case("scale", randn(1, 3, 20, 12), randn(1, 3, 25, 12), randn(1, 3, 25, 12), scale=0.3)
    case("single", randn(1, 1, 1, 1), randn(1, 1, 1, 1), randn(1, 1, 1, 1))
    return t


def fft_fixtures():
    t = {}

    def complex_case(name, h, w, batch=1):
        z = torch.complex(randn(batch, h, w), randn(batch, h, w))
        t.update({f"{name}.x": torch.view_as_real(z).contiguous(),
                  f"{name}.fft2": torch.view_as_real(torch.fft.fft2(z)).contiguous(),
                  f"{name}.ifft2": torch.view_as_real(torch.fft.ifft2(z)).contiguous()})

    def real_case(name, h, w, batch=1):
        x = randn(batch, h, w)
        t.update({f"{name}.x": x, f"{name}.fft2": torch.view_as_real(torch.fft.fft2(x)).contiguous()})

    complex_case("c_7x97", 7, 97, batch=2)      # generic radix 7; 97 prime: Bluestein
    complex_case("c_12x20", 12, 20, batch=3)    # radices 4, 3, 5
    complex_case("c_1x1", 1, 1)
    complex_case("c_194x5", 194, 5)             # 2 * 97: Bluestein over a composite length
    real_case("r_224", 16, 224)                 # SPAI-style 224 rows (4*4*2*7)
    real_case("r_256", 256, 12, batch=2)        # power of two columns
    real_case("r_1x9", 1, 9)
    # fftshift / ifftshift on even and odd sizes (the spectral detector centres the spectrum).
    x = torch.arange(5 * 6, dtype=torch.float32).reshape(5, 6)
    t |= {"shift.x": x, "shift.fftshift": torch.fft.fftshift(x), "shift.ifftshift": torch.fft.ifftshift(x),
          "shift.fftshift_dim0": torch.fft.fftshift(x, dim=0)}
    return t


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, tensors in (("ops", ops_fixtures()), ("attention", attention_fixtures()), ("fft", fft_fixtures())):
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        path = OUT / f"{name}.safetensors"
        save_file(tensors, str(path), metadata={"generator": "tools/reference/make_ops_fixtures.py", "torch": torch.__version__})
        print(f"{path.relative_to(ROOT)}: {len(tensors)} tensors, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
