#!/usr/bin/env python3
"""Write the PyTorch checkpoint fixtures of tests/data/torch/ with the real torch.save.

genscope reads torch checkpoints without Python (include/genscope/io/torch_checkpoint.hpp);
these fixtures are what its parity tests compare against. Every checkpoint is written by torch
itself, in the zip format (torch >= 1.6 default) and the legacy format
(_use_new_zipfile_serialization=False); expected.txt lists, independently of any pickle, the
tensors a reader must find, with their bytes as genscope holds them:

    fixture <TAB> key <TAB> dtype <TAB> shape (comma-separated, empty for a scalar) <TAB> hex bytes

dtype is genscope's name after loading: f64 is expected as f32 (rounded to nearest, which is
what numpy's astype does), int8/int16/uint16 as i32; the bytes are little-endian, row-major,
contiguous (views are expected materialised).

The malicious fixtures carry a __reduce__ that would run `touch genscope_pwned_marker` through
os.system / subprocess / builtins.exec if unpickled by Python; writing them runs nothing
(__reduce__ only returns a tuple), and genscope must refuse them without creating the marker.

Usage (PyPI's CPU wheel is enough; nothing is downloaded at run time):
    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch numpy
    /tmp/tv/bin/python tools/reference/make_torch_fixtures.py [OUT_DIR]   # default tests/data/torch
"""
import argparse
import collections
import io
import os
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import torch

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "tests" / "data" / "torch"
expected_lines = []


def expect(fixture, key, tensor):
    """Record the tensor a reader must produce for `key` of `fixture`."""
    t = tensor.detach().contiguous()
    if t.dtype == torch.bfloat16:
        dtype, data = "bf16", t.view(torch.int16).numpy().astype("<i2").tobytes()
    elif t.dtype == torch.float64:
        dtype, data = "f32", t.numpy().astype("<f4").tobytes()
    else:
        mapping = {
            torch.float32: ("f32", "<f4"), torch.float16: ("f16", "<f2"), torch.int64: ("i64", "<i8"),
            torch.int32: ("i32", "<i4"), torch.int16: ("i32", "<i4"), torch.int8: ("i32", "<i4"),
            torch.uint8: ("u8", "u1"), torch.bool: ("bool", "u1"),
        }
        if hasattr(torch, "uint16"):
            mapping[torch.uint16] = ("i32", "<i4")
        dtype, np_type = mapping[t.dtype]
        data = t.numpy().astype(np_type).tobytes() if t.dtype != torch.uint16 else t.to(torch.int32).numpy().astype("<i4").tobytes()
    shape = ",".join(str(d) for d in t.shape)
    expected_lines.append(f"{fixture}\t{key}\t{dtype}\t{shape}\t{data.hex()}")


def save(obj, name, legacy=False):
    path = OUT / name
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def dtypes_dict():
    g = torch.Generator().manual_seed(0)
    d = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(5, generator=g).bfloat16(),
        "f64": torch.randn(2, 2, generator=g, dtype=torch.float64) * 1e3,
        "i64": torch.arange(-3, 3, dtype=torch.int64).reshape(2, 3) * 1_000_000_007,
        "i32": torch.tensor([[-7, 8], [2**31 - 1, -(2**31)]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767, 5], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 0, -1], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    if hasattr(torch, "uint16"):  # saved through _rebuild_tensor_v3 with an untyped storage
        d["u16"] = torch.tensor([0, 1, 65535], dtype=torch.uint16)
    return d


def views_dict():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "base": base,
        "transposed": base.t(),           # shares base's storage, strides (1, 6)
        "offset": base[1:3, 2:5],         # storage offset 8, strides (6, 1)
        "row": base[2],                   # offset 12
        "strided": base[:, ::2],          # strides (6, 2)
        "half_t": base.half().t(),        # its own storage, transposed
    }


class UserThing:
    """A user class: genscope must keep it as an opaque placeholder and drop it."""

    def __init__(self):
        self.depth = 3
        self.tags = ["a", "b"]


def install_fake_yacs():
    # SPAI checkpoints pickle a yacs CfgNode; make the same global appear without yacs installed.
    yacs = types.ModuleType("yacs")
    config = types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    config.CfgNode = CfgNode
    yacs.config = config
    sys.modules["yacs"] = yacs
    sys.modules["yacs.config"] = config
    return CfgNode


class Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def rezip_deflated(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


def make_big_endian(src, dst):
    # torch only writes the machine's byte order; emulate a big-endian writer by rewriting the
    # byteorder record and byte-swapping the (single, float32) storage.
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, dtype="<f4").astype(">f4").tobytes()
            zout.writestr(info.filename, data)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        if old.name != "README.md":
            old.unlink()

    # 1. every dtype, zip and legacy
    d = dtypes_dict()
    for name, legacy in (("zip_dtypes.pt", False), ("legacy_dtypes.pt", True)):
        # torch's own legacy loader cannot read uint16 (an untyped storage has no .dtype), so
        # the legacy file leaves it out.
        dd = {k: v for k, v in d.items() if not (legacy and k == "u16")}
        save(dd, name, legacy)
        for k, v in dd.items():
            expect(name, k, v)
    rezip_deflated(OUT / "zip_dtypes.pt", OUT / "zip_deflated.pt")
    for k, v in d.items():
        expect("zip_deflated.pt", k, v)

    # 2. shared storages with transposed, offset and strided views
    v = views_dict()
    for name, legacy in (("zip_views.pt", False), ("legacy_views.pt", True)):
        save(v, name, legacy)
        for k, t in v.items():
            expect(name, k, t)

    # 3. a training checkpoint: nested dicts, non-tensor objects, OrderedDict state dict with
    #    DataParallel's module. prefix, a Parameter, a numpy scalar, an argparse.Namespace.
    g = torch.Generator().manual_seed(1)
    sd = collections.OrderedDict()
    sd["module.conv.weight"] = torch.nn.Parameter(torch.randn(2, 1, 3, 3, generator=g))
    sd["module.conv.bias"] = torch.randn(2, generator=g)
    sd["module.bn.num_batches_tracked"] = torch.tensor(7)
    sd["module.fc.weight"] = torch.randn(3, 2, generator=g).t().contiguous().t()  # non-contiguous
    ckpt = {
        "epoch": 12,
        "arch": "resnet-ish",
        "args": argparse.Namespace(lr=0.01, name="run"),
        "user": UserThing(),
        "best_acc": np.float64(0.875),
        "state_dict": sd,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
    }
    for name, legacy in (("zip_nested.pt", False), ("legacy_nested.pt", True)):
        save(ckpt, name, legacy)
        for k, t in sd.items():
            expect(name, k, t)

    # 4. a whole nn.Module pickled (torch.save(model)): flattened through _parameters/_modules
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    save(model, "zip_module.pt")
    for k, t in model.state_dict().items():
        expect("zip_module.pt", k, t)

    # 5. layouts: a Stable-Diffusion-like full .ckpt (legacy), an SPAI-like checkpoint with a
    #    yacs CfgNode, and an AIM backbone + head pair (and one overlapping the head).
    g = torch.Generator().manual_seed(3)
    sdc = {
        "global_step": 470000,
        "state_dict": collections.OrderedDict([
            ("first_stage_model.encoder.conv_in.weight", torch.randn(2, 3, 1, 1, generator=g)),
            ("first_stage_model.decoder.conv_out.bias", torch.randn(3, generator=g)),
            ("first_stage_model.quant_conv.weight", torch.randn(2, 2, 1, 1, generator=g)),
            ("model.diffusion_model.input_blocks.0.0.weight", torch.randn(2, 2, generator=g).half()),
            ("model.diffusion_model.out.2.bias", torch.randn(2, generator=g).half()),
            ("cond_stage_model.transformer.text_model.embeddings.position_ids", torch.arange(4).reshape(1, 4)),
            ("model_ema.decay", torch.tensor(0.9999)),
        ]),
    }
    save(sdc, "sd_full.ckpt", legacy=True)
    for k, t in sdc["state_dict"].items():
        expect("sd_full.ckpt", k, t)

    CfgNode = install_fake_yacs()
    cfg = CfgNode()
    cfg["MODEL"] = CfgNode({"NAME": "spai"})
    spai = {
        "model": collections.OrderedDict([
            ("backbone.patch_embed.proj.weight", torch.randn(2, 3, 2, 2, generator=g)),
            ("mlp.fc.weight", torch.randn(1, 2, generator=g)),
        ]),
        "config": cfg,
        "epoch": 30,
    }
    save(spai, "spai.pth")
    for k, t in spai["model"].items():
        expect("spai.pth", k, t)

    backbone = {"model": {"trunk.blocks.0.attn.qkv.weight": torch.randn(6, 2, generator=g).bfloat16(),
                          "trunk.post_trunk_norm.weight": torch.ones(2)}}
    head = collections.OrderedDict([("linear.weight", torch.randn(1, 2, generator=g)), ("linear.bias", torch.zeros(1))])
    save(backbone, "aim_backbone.pt")
    save(head, "aim_head.pt")
    save({"linear.bias": torch.ones(1)}, "aim_overlap.pt")
    for k, t in backbone["model"].items():
        expect("aim_backbone.pt", k, t)
    for k, t in head.items():
        expect("aim_head.pt", k, t)

    # 6. big-endian byte order (rewritten, see make_big_endian)
    be = {"w": torch.tensor([[1.5, -2.0, 3.25], [1e-3, 7.0, -0.5]])}
    save(be, "be_src.pt")
    make_big_endian(OUT / "be_src.pt", OUT / "zip_bigendian.pt")
    (OUT / "be_src.pt").unlink()
    expect("zip_bigendian.pt", "w", be["w"])

    # 7. malicious pickles: must be refused, and must not create the marker file.
    marker = "touch genscope_pwned_marker"
    import subprocess  # noqa: F401  (only named in the pickle, never called here)
    save({"w": torch.ones(1), "x": Evil(os.system, marker)}, "malicious_os_system.pt")
    save({"w": torch.ones(1), "x": Evil(os.system, marker)}, "malicious_legacy.pt", legacy=True)
    save(Evil(subprocess.check_call, ["touch", "genscope_pwned_marker"]), "malicious_subprocess.pt")
    save({"x": Evil(exec, "import os; os.system('" + marker + "')")}, "malicious_exec.pt")

    # 8. inflate vectors: the same bytes stored and deflated at several levels (level 0 gives
    #    stored deflate blocks, small inputs fixed-Huffman blocks, larger ones dynamic blocks).
    rng = np.random.default_rng(4)
    samples = {
        "random": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
        "text": (b"genscope reads torch checkpoints without python. " * 40) + bytes(range(256)),
        "tiny": b"abcabcabcabcabc",
        "empty": b"",
        "runs": b"\0" * 5000 + b"\1" * 300,
    }
    with zipfile.ZipFile(OUT / "inflate_vectors.zip", "w") as z:
        for name, data in samples.items():
            z.writestr(name + ".stored", data, compress_type=zipfile.ZIP_STORED)
            for level in (0, 1, 9):
                z.writestr(f"{name}.deflate{level}", data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)

    (OUT / "expected.txt").write_text(
        "# written by tools/reference/make_torch_fixtures.py with torch " + torch.__version__ + "\n"
        "# fixture\tkey\tdtype\tshape\thex (little-endian, row-major, as genscope loads it)\n"
        + "\n".join(expected_lines) + "\n")

    # Sanity: torch reads back every non-malicious fixture (weights_only=False: they hold
    # user objects; this runs only on files this script just wrote).
    for p in sorted(OUT.glob("*")):
        if p.name.startswith("malicious") or p.suffix in (".txt", ".zip", ".md"):
            continue
        if p.name == "spai.pth" or p.name.startswith("zip_nested") or p.name.startswith("legacy_nested") or p.name == "zip_module.pt":
            continue  # hold user classes defined in __main__ of this script; loaded above already
        torch.load(p, weights_only=False)
    total = sum(p.stat().st_size for p in OUT.glob("*"))
    print(f"wrote {len(list(OUT.glob('*')))} files, {total} bytes, {len(expected_lines)} expected tensors to {OUT}")
    assert not Path("genscope_pwned_marker").exists()


if __name__ == "__main__":
    main()
