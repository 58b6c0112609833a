#!/usr/bin/env python3
"""Write genscope's SD VAE (AutoencoderKL) test fixtures (tests/data/vae/) from PyPI diffusers.

    pip install torch diffusers safetensors numpy pillow     # diffusers 0.42 and torch 2.x were used
    python3 tools/reference/make_vae_fixtures.py
    python3 tools/reference/make_vae_fixtures.py --full /tmp/sd14   # once: full SD v1.4 config (not committed)

No model hub: each AutoencoderKL is built from a config and given seeded random weights (conv
weights ~ N(0, 1/fan_in), biases and norm affines ~ N(., 0.1)) so every tensor matters. The
weights are stored as f16 (to keep the fixtures small) and the references are computed with the
f16-rounded values, in float64 on the CPU, stored as float32, so the reference carries no float32
rounding of its own.

Writes:
  * small_diffusers.safetensors — config A: block_out_channels (32, 64), 2 layers per block,
    4 latent channels, diffusers key layout, f16 weights (as `.fp16` variants store them);
  * small_ldm.safetensors — config B: block_out_channels (32, 32, 64), 1 layer per block, the
    original single-file layout ("first_stage_model.encoder.down.0.block.0...", 1x1-conv
    attention weights, reversed up-block index), f16 weights. The layout is built here by the table below and checked by converting it back with
    diffusers' own convert_ldm_vae_checkpoint, which must give the diffusers state dict exactly;
  * small_io.safetensors — per config X in {a, b}: x_X (input in [-1, 1]), mean_X / logvar_X
    (latent_dist.mean / .logvar, logvar already clamped to [-30, 20]), decoded_X
    (vae.decode(mean).sample), noise_X (torch.manual_seed(7); torch.randn of the latent shape,
    float32, as DiagonalGaussianDistribution.sample draws it) and sample_X (latent_dist.sample()
    after torch.manual_seed(7), computed in float32); then for config A an image whose size is not
    a multiple of the downsampling factor: xodd_a, and reconodd_a = reflect-pad bottom/right
    to a multiple (torch.nn.functional.pad mode="reflect"), encode (mode), decode, crop back;
  * reconstruct_in.png / reconstruct_out.png — the `genscope reconstruct --mode` flow on a
    23x30 RGB image with config A: x/255*2-1, reflect pad, encode mean, decode, crop,
    (y/2+0.5).clamp(0,1), *255+0.5 truncated to uint8 (torchvision.utils.save_image's rounding).
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from PIL import Image
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "vae")


def make_vae(block_out_channels, layers_per_block, seed):
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        latent_channels=4,
        norm_num_groups=32,
        scaling_factor=0.18215,
    )
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return vae.eval()


def round_to_f16(vae):
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(p.half().float())
    return vae


def diffusers_to_ldm(sd, n_blocks):
    """The original single-file (LDM) names of a diffusers state dict; attention weights as 1x1 convs."""
    out = {}
    for k, v in sd.items():
        n = k
        for i in range(n_blocks):
            n = n.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            n = n.replace(f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv")
            j = n_blocks - 1 - i
            n = n.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{j}.block.")
            n = n.replace(f"decoder.up_blocks.{i}.upsamplers.0.conv", f"decoder.up.{j}.upsample.conv")
        n = n.replace("conv_shortcut", "nin_shortcut")
        n = n.replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
        if "mid_block.attentions.0" in n:
            n = n.replace("mid_block.attentions.0", "mid.attn_1")
            n = n.replace("group_norm", "norm").replace("to_q", "q").replace("to_k", "k").replace("to_v", "v")
            n = n.replace("to_out.0", "proj_out")
            if v.dim() == 2:
                v = v[:, :, None, None]
        n = n.replace("conv_norm_out", "norm_out")
        out["first_stage_model." + n] = v.contiguous()
    return out


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def run_config(vae, x):
    """mean, logvar, decode(mean) in float64."""
    with torch.no_grad():
        dist = vae.double().encode(x.double()).latent_dist
        decoded = vae.decode(dist.mean).sample
    return dist.mean, dist.logvar, decoded


def sample_f32(vae, x):
    """latent_dist.sample() after torch.manual_seed(7), in float32 as a user would run it."""
    with torch.no_grad():
        dist = vae.float().encode(x.float()).latent_dist
        torch.manual_seed(7)
        noise = torch.randn(dist.mean.shape, dtype=torch.float32)
        torch.manual_seed(7)
        s = dist.sample()
    return noise, s


def reflect_roundtrip(vae, x, factor):
    h, w = x.shape[-2:]
    ph, pw = (-h) % factor, (-w) % factor
    xp = F.pad(x, (0, pw, 0, ph), mode="reflect")
    with torch.no_grad():
        vae = vae.double()
        y = vae.decode(vae.encode(xp.double()).latent_dist.mean).sample
    return y[..., :h, :w]


def small_fixtures():
    os.makedirs(OUT, exist_ok=True)
    io = {}

    # Config A: diffusers layout, f16 weights; the reference uses the f16-rounded values.
    vae_a = round_to_f16(make_vae((32, 64), 2, seed=1))
    save_file({k: v.half() for k, v in vae_a.state_dict().items()}, os.path.join(OUT, "small_diffusers.safetensors"))
    g = torch.Generator().manual_seed(2)
    x = torch.rand((1, 3, 24, 40), generator=g) * 2 - 1
    mean, logvar, dec = run_config(vae_a, x)
    io.update(x_a=f32(x), mean_a=f32(mean), logvar_a=f32(logvar), decoded_a=f32(dec))
    noise, s = sample_f32(vae_a, x)
    io.update(noise_a=f32(noise), sample_a=f32(s))
    xodd = torch.rand((1, 3, 21, 35), generator=g) * 2 - 1
    io.update(xodd_a=f32(xodd), reconodd_a=f32(reflect_roundtrip(vae_a, xodd, 2)))

    # Config B: original single-file layout, f16 weights; the reference uses the f16-rounded values.
    vae_b = round_to_f16(make_vae((32, 32, 64), 1, seed=3))
    sd_b = {k: v.half() for k, v in vae_b.state_dict().items()}
    ldm = diffusers_to_ldm(sd_b, 3)
    back = convert_ldm_vae_checkpoint(ldm, {"down_block_types": [0] * 3, "up_block_types": [0] * 3})
    assert set(back) == set(sd_b), set(back) ^ set(sd_b)
    for k in sd_b:
        assert torch.equal(back[k].reshape(sd_b[k].shape), sd_b[k]), k
    save_file(ldm, os.path.join(OUT, "small_ldm.safetensors"))
    x = torch.rand((1, 3, 28, 36), generator=g) * 2 - 1  # latent 4x7x9: not a multiple of 16 draws
    mean, logvar, dec = run_config(vae_b, x)
    io.update(x_b=f32(x), mean_b=f32(mean), logvar_b=f32(logvar), decoded_b=f32(dec))
    noise, s = sample_f32(vae_b, x)
    io.update(noise_b=f32(noise), sample_b=f32(s))
    save_file(io, os.path.join(OUT, "small_io.safetensors"))

    # The reconstruct CLI flow on a PNG (config A, --mode).
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, size=(23, 30, 3), dtype=np.uint8)
    Image.fromarray(img).save(os.path.join(OUT, "reconstruct_in.png"))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255 * 2 - 1
    y = reflect_roundtrip(vae_a, x, 2)
    y = (y / 2 + 0.5).clamp(0, 1)
    out = (y * 255 + 0.5).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    Image.fromarray(out).save(os.path.join(OUT, "reconstruct_out.png"))
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


def full_fixture(out_dir):
    """SD v1.4's configuration with random weights; 64x64 and 256x256 inputs. Not committed (335 MB)."""
    os.makedirs(out_dir, exist_ok=True)
    vae = make_vae((128, 256, 512, 512), 2, seed=5)
    save_file({k: f32(v) for k, v in vae.state_dict().items()}, os.path.join(out_dir, "sd14_random.safetensors"))
    g = torch.Generator().manual_seed(6)
    io = {}
    for size in (64, 256):
        x = torch.rand((1, 3, size, size), generator=g) * 2 - 1
        mean, logvar, dec = run_config(vae, x)
        io.update({f"x_{size}": f32(x), f"mean_{size}": f32(mean), f"decoded_{size}": f32(dec)})
        vae = vae.float()
    save_file(io, os.path.join(out_dir, "sd14_io.safetensors"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", metavar="DIR", help="write the full SD v1.4 config fixture to DIR instead")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.full:
        full_fixture(args.full)
    else:
        small_fixtures()
