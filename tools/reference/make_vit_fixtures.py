#!/usr/bin/env python3
"""Write genscope's Vision Transformer parity fixtures (tests/data/vit/).

    pip install torch timm transformers safetensors numpy pillow  # torch 2.15, timm 1.0.31, transformers 5.24 used
    python3 tools/reference/make_vit_fixtures.py

For each layout genscope reads, a small configuration (width 64, 3 blocks, MLP 128, patch 8,
32x32 input) with seeded random weights is built from the reference implementation, and two
files are written:

  <layout>.safetensors           the weights, under exactly the reference's checkpoint keys
  <layout>_expected.safetensors  `pixels` [2, 3, 32, 32] and what the reference computes from
                                 them: `block.N` (every block's output, all tokens), the final
                                 outputs named below, and for some layouts `alt.*` at other sizes

The layouts and their references:
  aim       apple/ml-aim's AIM v1 (aim/v1/torch/layers.py, models.py), rebuilt below from the
            published definition with the same module names (no dependency on its package). Probe
            layers 1..2, 2 probe heads. `features` is the attention-probe x_cls, `logits` the
            head's linear. `alt.*` at 48x40 (the sin-cos table is computed for any grid).
  clip      transformers' CLIPVisionModelWithProjection (quick-GELU, eps 1e-5): `embeddings`
            (after pre_layrnorm), `last_hidden_state`, `pooled` (post_layernorm of the class
            token), `image_embeds` (visual_projection).
  spai-vit  SPAI's BEiT-style ViT (mever-team/spai spai/models/vision_transformer.py) is timm's
            BEiT with absolute position embeddings, q/v biases, no layer scale, LN eps 1e-6;
            timm.models.beit.Beit computes it, keys prefixed `mfvit.vit.` as in SPAI's
            checkpoints. `features` [2, 3, 16, 64]: every block without the class token, as
            SPAI's forward_features with return_features.
  timm-vit  timm's VisionTransformer (vit_base_patch16_224's structure): `features`
            (forward_features), `pooled` (pre-logits), `logits`. `alt.*` at 48x40 and `small.*`
            at 24x16 with dynamic_img_size=True: the position embedding resized by timm's
            resample_abs_pos_embed (bicubic, antialias), up and down.

Also crop_expected.safetensors, for UAR's rich-texture crop (Jmh0527/UAR feature_extract.py,
Patch.smash_recons, quoted below): a noise image [300, 260, 3] u8, and for seeds 0 and
12345678901 the 192 windows UAR draws after random.seed(seed) (`seedS.windows` [192, 3]: top,
left, exact integer score) and the index UAR keeps (`seedS.best`, its float32 scores'
argsort()[-1]); `small.image` (a side under 224) and `small.resized`, PIL's
resize((224, 224), BILINEAR) of it, the except branch of ImageFeatureDataset.__getitem__.

Once, not committed: `python3 tools/reference/make_vit_fixtures.py --full DIR` writes AIM-600M,
CLIP ViT-L/14 and SPAI's ViT-B/16 with random weights and the feature each gives for
tests/data/images/rgb.png (DIR/<name>.safetensors, DIR/<name>_expected.safetensors); compare with
`genscope features --arch aim|clip|spai-vit --weights DIR/<name>.safetensors --input
tests/data/images/rgb.png --output OUT.safetensors`.

The references run in float64, so the expected values carry no float32 rounding of their own;
genscope (float32) is held to 1e-4 relative. `image.*` entries are end-to-end values for
tests/data/images/rgb.png through each layout's preprocessing, for the `genscope features`
tests. Deterministic: the same versions write the same bytes. Total size about 2.8 MB.
"""
import functools
import os
import random
import sys

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "vit")
WIDTH, DEPTH, HEADS, MLP, PATCH, SIZE, BATCH = 64, 3, 2, 128, 8, 32, 2


# ---- AIM v1, rebuilt from apple/ml-aim aim-v1/aim/v1/torch/layers.py ---------------------------

def sincos_1d(dim, pos):  # SinCosPosEmbed._get_1d_sincos_pos_embed_from_grid
    omega = torch.arange(dim // 2).double() / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = pos.reshape(-1)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(h, w, dim):  # SinCosPosEmbed.forward (cls_token=False)
    grid = torch.meshgrid(torch.arange(w).double(), torch.arange(h).double(), indexing="xy")
    grid = torch.stack(grid, dim=0).reshape([2, 1, h, w])
    return torch.cat([sincos_1d(dim // 2, grid[0]), sincos_1d(dim // 2, grid[1])], dim=1)


class AimConfig:
    def __init__(self, width, depth, heads, mlp, patch):
        self.width, self.depth, self.heads, self.mlp, self.patch = width, depth, heads, mlp, patch


SMALL_AIM = AimConfig(WIDTH, DEPTH, HEADS, MLP, PATCH)


class AimPatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.proj = nn.Conv2d(3, c.width, c.patch, c.patch)
        self.norm = nn.LayerNorm(c.width, eps=1e-6)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class AimPreprocessor(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.patchifier = AimPatchEmbed(c)

    def forward(self, x):
        _, _, h, w = x.shape
        tokens = self.patchifier(x)
        return tokens + sincos_2d(h // self.c.patch, w // self.c.patch, self.c.width).to(tokens.dtype).unsqueeze(0)


class AimAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.heads
        self.qkv = nn.Linear(c.width, 3 * c.width, bias=False)
        self.proj = nn.Linear(c.width, c.width, bias=False)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class AimMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c.width, c.mlp, bias=False)
        self.fc2 = nn.Linear(c.mlp, c.width, bias=False)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class AimBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn = AimAttention(c)
        self.norm_1 = nn.LayerNorm(c.width, eps=1e-6)
        self.mlp = AimMlp(c)
        self.norm_2 = nn.LayerNorm(c.width, eps=1e-6)

    def forward(self, x):
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class AimTrunk(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.blocks = nn.ModuleList([AimBlock(c) for _ in range(c.depth)])
        self.post_trunk_norm = nn.LayerNorm(c.width, eps=1e-6)


class AimHead(nn.Module):  # AttentionPoolingClassifier, returning (logits, x_cls) as UAR's fork does
    def __init__(self, c, heads, classes):
        super().__init__()
        self.heads = heads
        self.k = nn.Linear(c.width, c.width, bias=False)
        self.v = nn.Linear(c.width, c.width, bias=False)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.width) * 0.02)
        self.linear = nn.Linear(c.width, classes, bias=False)
        self.bn = nn.BatchNorm1d(c.width, affine=False, eps=1e-6)

    def forward(self, x):
        B, N, C = x.shape
        x = self.bn(x.transpose(-2, -1)).transpose(-2, -1)
        q = self.cls_token.expand(B, -1, -1).reshape(B, 1, self.heads, C // self.heads).permute(0, 2, 1, 3)
        k = self.k(x).reshape(B, N, self.heads, C // self.heads).permute(0, 2, 1, 3)
        v = self.v(x).reshape(B, N, self.heads, C // self.heads).permute(0, 2, 1, 3)
        x_cls = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, 1, C).mean(dim=1)
        return self.linear(x_cls), x_cls


class Aim(nn.Module):
    def __init__(self, probe_layers, probe_heads, classes, c=SMALL_AIM):
        super().__init__()
        self.preprocessor = AimPreprocessor(c)
        self.trunk = AimTrunk(c)
        self.head = AimHead(c, probe_heads, classes)
        self.probe_layers = probe_layers

    def forward(self, x):  # AIMMixin.forward + Transformer.forward (up to max_block_id) + AverageLayers
        x = self.preprocessor(x)
        feats = []
        for blk in self.trunk.blocks[:max(self.probe_layers) + 1]:  # max_block_id
            x = blk(x)
            feats.append(x)
        trunk_norm = self.trunk.post_trunk_norm(x)
        pooled = torch.stack([feats[i] for i in self.probe_layers], dim=-1).mean(dim=-1)
        logits, x_cls = self.head(pooled)
        return feats, trunk_norm, logits, x_cls


IMAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "images", "rgb.png")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def to_tensor(img, mean, std):
    """torchvision ToTensor + Normalize in float32 (as torch computes them), then float64, [1, 3, H, W]."""
    x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
    x = (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    return x.unsqueeze(0).double()


# ---- helpers ------------------------------------------------------------------------------------

def randomise(model, gen, scale=0.15):
    """Every parameter and buffer random, so that no term of the computation can hide: weights
    N(0, 0.15), norm scales 1 + N(0, 0.1), BatchNorm variances in [0.5, 1.5]."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=gen, dtype=torch.float64)
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen, dtype=torch.float64))
            elif t.dim() == 1 and ("norm" in name or "layrnorm" in name) and name.endswith("weight"):
                t.copy_(1.0 + 0.1 * r)
            else:
                t.copy_(scale * r)


def pixels(gen, h=SIZE, w=SIZE):
    return torch.randn(BATCH, 3, h, w, generator=gen, dtype=torch.float64)


def f32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def block_hooks(blocks):
    outs = []
    handles = [b.register_forward_hook(lambda m, i, o: outs.append(o[0] if isinstance(o, tuple) else o)) for b in blocks]
    return outs, handles


def save(name, weights, expected):
    save_file(f32(weights), os.path.join(OUT, f"{name}.safetensors"), metadata={"format": "pt"})
    save_file(f32(expected), os.path.join(OUT, f"{name}_expected.safetensors"))
    print(name, len(weights), "weights,", len(expected), "expected tensors")


# ---- the four layouts ---------------------------------------------------------------------------

@torch.no_grad()
def make_aim():
    gen = torch.Generator().manual_seed(5001)
    model = Aim(probe_layers=(1, 2), probe_heads=2, classes=7).double().eval()
    randomise(model, gen)
    exp = {}
    for prefix, (h, w) in (("", (SIZE, SIZE)), ("alt.", (48, 40))):
        x = pixels(gen, h, w)
        feats, trunk_norm, logits, x_cls = model(x)
        exp[prefix + "pixels"] = x
        for i, f in enumerate(feats):
            exp[f"{prefix}block.{i}"] = f
        exp[prefix + "trunk_norm"] = trunk_norm
        exp[prefix + "logits"] = logits
        exp[prefix + "features"] = x_cls
    # End to end, as `genscope features --arch aim` sees tests/data/images/rgb.png (37x23): the
    # rich-texture crop falls back to PIL's bilinear resize to 224x224; ImageNet normalisation.
    x = to_tensor(Image.open(IMAGE).convert("RGB").resize((224, 224), Image.BILINEAR), IMAGENET_MEAN, IMAGENET_STD)
    exp["image.features"] = model(x)[3]
    weights = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save("aim", weights, exp)


@torch.no_grad()
def make_clip():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
    gen = torch.Generator().manual_seed(5002)
    cfg = CLIPVisionConfig(hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                           image_size=SIZE, patch_size=PATCH, projection_dim=32, hidden_act="quick_gelu",
                           attn_implementation="eager")
    model = CLIPVisionModelWithProjection(cfg).double().eval()
    randomise(model, gen)
    x = pixels(gen)
    out = model(pixel_values=x, output_hidden_states=True)
    vm = model.vision_model(pixel_values=x)
    exp = {"pixels": x, "embeddings": out.hidden_states[0], "last_hidden_state": out.last_hidden_state,
           "pooled": vm.pooler_output, "image_embeds": out.image_embeds}
    for i, h in enumerate(out.hidden_states[1:]):
        exp[f"block.{i}"] = h
    weights = {k: v for k, v in model.state_dict().items()}
    weights["vision_model.embeddings.position_ids"] = torch.arange((SIZE // PATCH) ** 2 + 1).unsqueeze(0)  # the stray int64 buffer
    save_file({k: (v if v.dtype == torch.int64 else v.to(torch.float32)).contiguous() for k, v in weights.items()},
              os.path.join(OUT, "clip.safetensors"), metadata={"format": "pt"})
    save_file(f32(exp), os.path.join(OUT, "clip_expected.safetensors"))
    print("clip", len(weights), "weights,", len(exp), "expected tensors")


@torch.no_grad()
def make_spai():
    from timm.models.beit import Beit
    gen = torch.Generator().manual_seed(5003)
    model = Beit(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP / WIDTH,
                 qkv_bias=True, use_abs_pos_emb=True, use_rel_pos_bias=False, use_shared_rel_pos_bias=False,
                 init_values=None, num_classes=0, norm_layer=functools.partial(nn.LayerNorm, eps=1e-6)).double().eval()
    randomise(model, gen)
    x = pixels(gen)
    outs, handles = block_hooks(model.blocks)
    model.forward_features(x)
    for h in handles:
        h.remove()
    exp = {"pixels": x, "features": torch.stack([o[:, 1:] for o in outs], dim=1)}
    for i, o in enumerate(outs):
        exp[f"block.{i}"] = o
    # SPAI's checkpoints hold the backbone under mfvit.vit.; its mean-pooling fc_norm is not used
    # by SPAI's feature path and is left out.
    weights = {"mfvit.vit." + k: v for k, v in model.state_dict().items() if not k.startswith("fc_norm")}
    save("spai-vit", weights, exp)


@torch.no_grad()
def make_timm():
    from timm.models.vision_transformer import VisionTransformer
    gen = torch.Generator().manual_seed(5004)
    model = VisionTransformer(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                              mlp_ratio=MLP / WIDTH, num_classes=5, dynamic_img_size=True).double().eval()
    randomise(model, gen)
    exp = {}
    for prefix, (h, w) in (("", (SIZE, SIZE)), ("alt.", (48, 40)), ("small.", (24, 16))):
        x = pixels(gen, h, w)
        outs, handles = block_hooks(model.blocks)
        feats = model.forward_features(x)
        for hd in handles:
            hd.remove()
        exp[prefix + "pixels"] = x
        for i, o in enumerate(outs):
            exp[f"{prefix}block.{i}"] = o
        exp[prefix + "features"] = feats
        exp[prefix + "pooled"] = model.forward_head(feats, pre_logits=True)
        exp[prefix + "logits"] = model.forward_head(feats)
    # End to end, as `genscope features --arch timm-vit` sees tests/data/images/rgb.png: timm's
    # eval transform at this model's size 32 (crop_pct 0.9): Resize(floor(32 / 0.9) = 35,
    # bicubic) of the shorter side, CenterCrop(32), Normalize(0.5, 0.5).
    img = Image.open(IMAGE).convert("RGB")
    w, h = img.size
    short, size = 35, 32
    nw, nh = (int(short * w / h), short) if w >= h else (short, int(short * h / w))
    img = img.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))  # torchvision CenterCrop
    img = img.crop((left, top, left + size, top + size))
    x = to_tensor(img, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    exp["image.pooled"] = model.forward_head(model.forward_features(x), pre_logits=True)
    save("timm-vit", model.state_dict(), exp)


# ---- UAR's rich-texture crop ---------------------------------------------------------------------

def get_pixel_flictuation(x):  # UAR feature_extract.py Patch.get_pixel_flictuation, verbatim
    res = 0
    res += np.sum(np.abs(x[:, :-1] - x[:, 1:]))
    res += np.sum(np.abs(x[:-1, :] - x[1:, :]))
    res += np.sum(np.abs(x[:-1, :-1] - x[1:, 1:]))
    res += np.sum(np.abs(x[1:, :-1] - x[:-1, 1:]))
    return res


def make_crop():
    rng = np.random.default_rng(5005)
    # Noise whose amplitude varies over the image, so that windows differ clearly in texture.
    h, w, size = 300, 260, 224
    amp = np.linspace(10, 120, w)[None, :, None] * np.linspace(0.5, 1.0, h)[:, None, None]
    img = np.clip(128 + rng.standard_normal((h, w, 3)) * amp, 0, 255).astype(np.uint8)
    exp = {"image": torch.from_numpy(img)}
    x32 = img.astype(np.float32)
    x64 = img.astype(np.int64)
    for seed in (0, 12345678901):
        random.seed(seed)
        windows, uar_scores = [], []
        for _ in range(192):  # Patch.smash_recons
            top = random.randint(0, x32.shape[0] - size)
            left = random.randint(0, x32.shape[1] - size)
            uar_scores.append(get_pixel_flictuation(x32[top:top + size, left:left + size]))
            windows.append([top, left, int(get_pixel_flictuation(x64[top:top + size, left:left + size]))])
        exp[f"seed{seed}.windows"] = torch.tensor(windows, dtype=torch.int64)
        exp[f"seed{seed}.best"] = torch.tensor([int(np.argsort(np.array(uar_scores))[-1])], dtype=torch.int64)
    small = rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)
    exp["small.image"] = torch.from_numpy(small)
    exp["small.resized"] = torch.from_numpy(np.array(Image.fromarray(small).resize((224, 224), Image.BILINEAR)))
    save_file({k: v.contiguous() for k, v in exp.items()}, os.path.join(OUT, "crop_expected.safetensors"))
    print("crop", len(exp), "tensors")


# ---- full-size configurations, once (not committed) -------------------------------------------------

def pil_center(resize, crop, interp):
    """torchvision Resize(resize, interp) + CenterCrop(crop) of the test image on PIL."""
    img = Image.open(IMAGE).convert("RGB")
    w, h = img.size
    nw, nh = (int(resize * w / h), resize) if w >= h else (resize, int(resize * h / w))
    img = img.resize((nw, nh), interp)
    top, left = int(round((nh - crop) / 2.0)), int(round((nw - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


@torch.no_grad()
def make_full(out):
    """AIM-600M, CLIP ViT-L/14 and SPAI's ViT-B/16 with random weights (N(0, 0.02)) and the
    feature `genscope features` gives for tests/data/images/rgb.png with each default."""
    from timm.models.beit import Beit
    from transformers import CLIPVisionConfig, CLIPVisionModel
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(6001)

    model = Aim(probe_layers=range(14, 20), probe_heads=12, classes=1000, c=AimConfig(1536, 24, 12, 6144, 14)).double().eval()
    randomise(model, gen, 0.02)
    x = to_tensor(Image.open(IMAGE).convert("RGB").resize((224, 224), Image.BILINEAR), IMAGENET_MEAN, IMAGENET_STD)
    feats = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(f32(feats), os.path.join(out, "aim-600m.safetensors"))
    save_file(f32({"features": model(x)[3]}), os.path.join(out, "aim-600m_expected.safetensors"))
    del model, feats
    print("aim-600m written", flush=True)

    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=224, patch_size=14, hidden_act="quick_gelu", attn_implementation="eager")
    model = CLIPVisionModel(cfg).double().eval()
    randomise(model, gen, 0.02)
    x = to_tensor(pil_center(224, 224, Image.BICUBIC), (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    save_file(f32(model.state_dict()), os.path.join(out, "clip-l14.safetensors"))
    save_file(f32({"features": model(pixel_values=x).pooler_output}), os.path.join(out, "clip-l14_expected.safetensors"))
    del model
    print("clip-l14 written", flush=True)

    model = Beit(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, qkv_bias=True,
                 use_abs_pos_emb=True, use_rel_pos_bias=False, init_values=None, num_classes=0,
                 norm_layer=functools.partial(nn.LayerNorm, eps=1e-6)).double().eval()
    randomise(model, gen, 0.02)
    x = to_tensor(pil_center(256, 224, Image.BICUBIC), IMAGENET_MEAN, IMAGENET_STD)
    outs, handles = block_hooks(model.blocks)
    model.forward_features(x)
    expected = torch.cat([o[:, 1:].mean(dim=1) for o in outs], dim=1)  # --pool mean over every block
    weights = {"mfvit.vit." + k: v for k, v in model.state_dict().items() if not k.startswith("fc_norm")}
    save_file(f32(weights), os.path.join(out, "spai-b16.safetensors"))
    save_file(f32({"features": expected}), os.path.join(out, "spai-b16_expected.safetensors"))
    print("spai-b16 written", flush=True)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        make_full(sys.argv[2])
        sys.exit(0)
    os.makedirs(OUT, exist_ok=True)
    make_aim()
    make_clip()
    make_spai()
    make_timm()
    make_crop()
