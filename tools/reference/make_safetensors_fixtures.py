#!/usr/bin/env python3
"""Write genscope's safetensors test fixtures (tests/data/safetensors/) and fuzz seeds.

    pip install numpy safetensors      # torch is not needed
    python3 tools/reference/make_safetensors_fixtures.py

Writes, all tiny:
  * valid files written by the reference `safetensors` package (its Rust serializer): every
    dtype genscope reads, scalars, zero-size tensors, metadata, dtypes genscope cannot hold, an
    empty file and a 2-shard checkpoint with a transformers-style index.json. numpy has no
    bfloat16, so bf16 tensors go through `safetensors.serialize_file` with
    TensorSpec(dtype="bfloat16") over the raw uint16 bit patterns (RNE-rounded from f32 here);
  * valid files built by hand that the Python package accepts (a header length that leaves the
    data misaligned, unknown fields, whitespace, header order != data order), each checked by
    loading it with the package;
  * expected.txt: what the C++ test checks, computed here with numpy, in a plain format so the
    test does not need genscope's JSON parser to read it;
  * malformed/: one file per way a file can be broken, with README.md and manifest.tsv; each
    is also given to the Python package and its verdict recorded (genscope is stricter in a
    few documented places);
  * tests/fuzz/corpus/safetensors/: seeds for the fuzzer (copies of the files above).

Running the script again rewrites identical files except for the order of `__metadata__` keys,
which the Rust serializer takes from a HashMap (randomly seeded); expected.txt follows the file.
"""
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, safe_open, serialize_file
from safetensors.numpy import load, save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "safetensors"
BAD = OUT / "malformed"
CORPUS = ROOT / "tests" / "fuzz" / "corpus" / "safetensors"

# numpy dtype -> safetensors dtype string, for the expectation file.
ST_DTYPE = {
    "float32": "F32", "float16": "F16", "int32": "I32", "int64": "I64", "uint8": "U8",
    "bool": "BOOL", "float64": "F64", "int8": "I8", "uint16": "U16",
}


def f32_to_bf16_bits(x):
    """Round float32 to bfloat16 (nearest even), as uint16 bit patterns."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def save_with_specs(tensors, path, metadata=None):
    """serialize_file with explicit TensorSpecs: tensors maps name -> (dtype string, array)."""
    specs = {}
    keep = []
    for name, (dtype, arr) in tensors.items():
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        specs[name] = TensorSpec(dtype=dtype, shape=list(arr.shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    serialize_file(specs, str(path), metadata=metadata)
    del keep


def header_of(data):
    """The header of a safetensors byte string as an ordered list of (key, value)."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n].decode("utf-8"), object_pairs_hook=list)


def fmt_value(v, dtype):
    if dtype in ("F32", "F16", "BF16"):
        f = float(v)
        if np.isnan(f):
            return "nan"
        if np.isinf(f):
            return "inf" if f > 0 else "-inf"
        return repr(f)
    if dtype == "BOOL":
        return "1" if bool(v) else "0"
    return str(int(v))


expect_lines = []


def expect_file(relpath, values_of=None):
    """Record the header order, dtypes, shapes and values of a valid file. `values_of` maps a
    tensor name to its expected values as float/int (needed for bf16, which numpy cannot load);
    by default the values are loaded back with safetensors.numpy, i.e. by the reference reader."""
    path = OUT / relpath
    data = path.read_bytes()
    header = header_of(data)
    loaded = {}
    with safe_open(str(path), framework="np") as f:
        for key in f.keys():
            try:
                loaded[key] = f.get_tensor(key)
            except Exception:  # dtypes numpy cannot hold (bf16, f8): values come from values_of
                pass
    count = 0
    for key, info in header:
        if key == "__metadata__":
            for k, v in info:  # object_pairs_hook=list: pairs in file order
                expect_lines.append(f"meta {relpath} {k.encode().hex() or '-'} {v.encode().hex() or '-'}")
            continue
        assert not any(c.isspace() for c in key), key
        info = dict(info)
        dtype = info["dtype"]
        shape = ",".join(str(d) for d in info["shape"]) or "-"
        if values_of and key in values_of:
            vals = np.asarray(values_of[key]).reshape(-1)
        elif key in loaded:
            vals = loaded[key].reshape(-1)
        else:
            vals = None
        if dtype in ("F32", "F16", "BF16", "I32", "I64", "U8", "BOOL"):
            assert vals is not None, (relpath, key)
            text = " ".join(fmt_value(v, dtype) for v in vals)
        else:
            text = "unsupported"
        expect_lines.append(f"tensor {relpath} {key} {dtype} {shape} {text}".rstrip())
        count += 1
    expect_lines.append(f"count {relpath} {count}")


def write_valid():
    # 1. Every dtype genscope reads, written by the package.
    bf16_src = np.array([[1.0, -3.14159], [1e38, 0.1]], dtype=np.float32)
    bf16_bits = f32_to_bf16_bits(bf16_src)
    tensors = {
        "f32": ("float32", np.array([[0.0, -1.5, 3.25], [1e-8, 65504.0, -0.0]], dtype=np.float32)),
        "f32_special": ("float32", np.array([np.inf, -np.inf, np.nan, 1e-45], dtype=np.float32)),
        "f16": ("float16", np.array([[6e-8, 65504.0], [-2.5, 0.1], [np.inf, -0.0]], dtype=np.float16)),
        "bf16": ("bfloat16", bf16_bits),
        "i32": ("int32", np.array([-2147483648, -1, 0, 2147483647], dtype=np.int32)),
        "i64": ("int64", np.array([[-9223372036854775808, 9007199254740993], [0, 9223372036854775807]], dtype=np.int64)),
        "u8": ("uint8", np.array([[0], [128], [255]], dtype=np.uint8)),
        "bool": ("bool", np.array([True, False, True, True, False])),
    }
    save_with_specs(tensors, OUT / "dtypes.safetensors", metadata={"format": "np", "written_by": "safetensors " + safetensors.__version__})
    expect_file("dtypes.safetensors", values_of={"bf16": bf16_bits_to_f32(bf16_bits)})

    # 2. Scalars, zero-size tensors, odd names and metadata, through safetensors.numpy.save_file.
    save_file(
        {
            "scalar": np.array(2.5, dtype=np.float32),
            "empty": np.zeros((0,), dtype=np.float32),
            "empty_3d": np.zeros((3, 0, 2), dtype=np.int64),
            "one": np.array([7], dtype=np.uint8),
            "encoder/layer.0.weight": np.arange(4, dtype=np.float32).reshape(2, 2) / 8,
            "émoji_🙂.bias": np.array([1.0, -1.0], dtype=np.float16),
        },
        str(OUT / "edge_cases.safetensors"),
        metadata={"quote\"back\\slash": "tab\there", "newline": "a\nb", "unicode": "日本語 🙂", "empty": ""},
    )
    expect_file("edge_cases.safetensors")

    # 3. Valid dtypes genscope cannot hold: listed, but get() refuses them.
    f8 = np.array([0x38, 0xC0], dtype=np.uint8)  # F8_E4M3 bit patterns of 1.0, -2.0
    save_with_specs(
        {
            "f64": ("float64", np.array([1.0, 2.0])),
            "i8": ("int8", np.array([-1, 0, 1], dtype=np.int8)),
            "u16": ("uint16", np.array([1, 65535], dtype=np.uint16)),
            "f8": ("float8_e4m3fn", f8),
            "ok": ("float32", np.array([0.5, 0.25], dtype=np.float32)),
        },
        OUT / "unsupported_dtypes.safetensors",
    )
    expect_file("unsupported_dtypes.safetensors", values_of={"ok": [0.5, 0.25]})

    # 4. No tensors at all.
    save_file({}, str(OUT / "empty.safetensors"))
    expect_file("empty.safetensors")

    # 5. A 2-shard checkpoint with an index.json as transformers' save_pretrained writes it.
    shards = {
        "model-00001-of-00002.safetensors": {
            "embed.weight": np.arange(6, dtype=np.float32).reshape(3, 2) - 2.5,
            "embed.position_ids": np.arange(3, dtype=np.int64),
        },
        "model-00002-of-00002.safetensors": {
            "head.weight": np.array([[1.0, 2.0]], dtype=np.float16),
            "head.mask": np.array([1, 0, 1, 1], dtype=np.uint8),
        },
    }
    (OUT / "sharded").mkdir(exist_ok=True)
    weight_map, total = {}, 0
    for fname, ts in shards.items():
        save_file(ts, str(OUT / "sharded" / fname), metadata={"format": "pt"})
        for k, v in ts.items():
            weight_map[k] = fname
            total += v.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (OUT / "sharded" / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    rel = "sharded/model.safetensors.index.json"
    for k, v in index["metadata"].items():
        expect_lines.append(f"meta {rel} {k.encode().hex()} {str(v).encode().hex()}")
    for name, fname in index["weight_map"].items():
        arr = shards[fname][name]
        shape = ",".join(str(d) for d in arr.shape) or "-"
        dtype = ST_DTYPE[arr.dtype.name]
        expect_lines.append(f"tensor {rel} {name} {dtype} {shape} " + " ".join(fmt_value(v, dtype) for v in arr.reshape(-1)))
    expect_lines.append(f"count {rel} {len(weight_map)}")
    for fname in shards:
        expect_file(f"sharded/{fname}")

    # 6. Hand-built files the reference reader accepts.
    handmade = {}
    # The header length leaves the buffer at an odd file offset: f32/i64 data is misaligned and
    # must be copied. (The package itself always pads the header to a multiple of 8.)
    f32 = np.array([1.5, -2.0, 1e30], dtype=np.float32)
    i64 = np.array([-5, 1 << 40], dtype=np.int64)
    hdr = json.dumps({"f32": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                      "i64": {"dtype": "I64", "shape": [2], "data_offsets": [12, 28]}}, separators=(",", ":")).encode()
    hdr += b" " * ((1 - (8 + len(hdr))) % 8)  # 8 + N == 1 (mod 8)
    assert (8 + len(hdr)) % 8 == 1
    handmade["misaligned.safetensors"] = struct.pack("<Q", len(hdr)) + hdr + f32.tobytes() + i64.tobytes()
    # Unknown fields in a tensor entry are ignored by the Rust crate (no deny_unknown_fields).
    w = np.array([1, 2, 3, 4], dtype=np.int32)
    hdr = b'{"w":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16],"quantization":{"bits":4},"note":"ignored"}}'
    hdr += b" " * (-len(hdr) % 8)
    handmade["extra_fields.safetensors"] = struct.pack("<Q", len(hdr)) + hdr + w.tobytes()
    # JSON whitespace inside the header and as padding (serde_json accepts any JSON whitespace).
    hdr = b'{\n  "w" : {\t"dtype": "I32",\r\n "shape": [ 4 ], "data_offsets": [0, 16] }\n}\n\t \r'
    hdr += b" " * (-len(hdr) % 8)
    handmade["whitespace_header.safetensors"] = struct.pack("<Q", len(hdr)) + hdr + w.tobytes()
    # Header order differs from the data order; names() follows the header.
    a = np.array([1.0, 2.0], dtype=np.float32)
    b = np.array([3, 4], dtype=np.int32)
    hdr = b'{"second":{"dtype":"I32","shape":[2],"data_offsets":[8,16]},"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    hdr += b" " * (-len(hdr) % 8)
    handmade["header_order.safetensors"] = struct.pack("<Q", len(hdr)) + hdr + a.tobytes() + b.tobytes()
    # Zero-size tensors may sit at any offset where a tensor begins or ends.
    hdr = b'{"z0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"z1":{"dtype":"I64","shape":[2,0],"data_offsets":[8,8]}}'
    hdr += b" " * (-len(hdr) % 8)
    handmade["zero_size_offsets.safetensors"] = struct.pack("<Q", len(hdr)) + hdr + a.tobytes()
    for fname, data in handmade.items():
        load(data)  # the reference reader must accept it
        (OUT / fname).write_bytes(data)
        expect_file(fname)


# ---- malformed files ----------------------------------------------------------------------------

def st(header, data=b"", n=None, pad=True):
    """A safetensors byte string from a header (dict -> compact JSON, or raw bytes)."""
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if n is None else n) + h + data


def T(dtype="F32", shape=(4,), offsets=(0, 16), **extra):
    as_json = lambda v: v if isinstance(v, str) else list(v)  # a string stays a (wrong) string
    return {"dtype": dtype, "shape": as_json(shape), "data_offsets": as_json(offsets), **extra}


W = "layer.weight"  # the tensor named in entry-level errors
D16 = bytes(range(16))
GOOD = {W: T()}


def malformed():
    """(file name, tensor named in the error or "", what is wrong, bytes)."""
    deep = "[" * 200 + "]" * 200
    cases = [
        # -- the 8-byte length and the header bytes
        ("empty_file", "", "0 bytes: no header length", b""),
        ("too_short", "", "5 bytes, shorter than the 8-byte header length", b"\x10\x00\x00\x00\x00"),
        ("header_length_zero", "", "header length 0", struct.pack("<Q", 0) + b"{}      "),
        ("header_length_past_end", "", "header length 1000 in a 24-byte file", st({}, n=1000) + b"\0" * 8),
        ("header_length_huge", "", "header length 2^63", st({}, n=1 << 63)),
        ("header_length_max", "", "header length 2^64-1 (overflows 8 + N)", st({}, n=(1 << 64) - 1)),
        ("header_length_over_limit", "", "header length 100000008, over the 100 MB limit", st({}, n=100_000_008)),
        ("header_whitespace_only", "", "header of 8 spaces: no JSON object", struct.pack("<Q", 8) + b" " * 8),
        ("header_not_object", "", "header is a JSON array", st(b"[1, 2]")),
        ("header_leading_space", "", "header does not begin with '{' (format: MUST)", st(b" {}")),
        ("header_bom", "", "header starts with a UTF-8 byte order mark", st(b"\xef\xbb\xbf{}")),
        ("header_garbage", "", "binary garbage after '{'", st(b"{\x00\xff\xfe\x01garbage\x02\x03")),
        ("header_truncated_json", "", "JSON cut off in the middle", st(b'{"layer.weight":{"dtype":"F32"', D16)),
        ("header_trailing_comma", "", "trailing comma in an object", st(b'{"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},}', D16)),
        ("header_trailing_garbage", "", "bytes after the JSON object besides padding", st(b'{} x')),
        ("header_nul_padding", "", "header padded with NUL bytes instead of spaces", st(b"{}\0\0\0\0\0\0", pad=False)),
        ("header_single_quotes", "", "single-quoted strings", st(b"{'layer.weight':{}}")),
        ("header_not_utf8", "", "a key with invalid UTF-8 (0xff)", st(b'{"layer\xff":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', D16)),
        ("header_overlong_utf8", "", "a key with an overlong UTF-8 encoding of '/'", st(b'{"a\xc0\xaf":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', D16)),
        ("header_lone_surrogate", "", "a key with a lone \\ud800 escape", st(b'{"\\ud800":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', D16)),
        ("header_control_char", "", "a raw newline inside a key", st(b'{"layer\nweight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', D16)),
        ("header_too_deep", "", "arrays nested 200 deep in an unknown field", st(('{"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"x":' + deep + "}}").encode(), D16)),
        ("header_leading_zero", "", "a number with a leading zero (shape [04])", st(b'{"layer.weight":{"dtype":"F32","shape":[04],"data_offsets":[0,16]}}', D16)),
        ("header_nan", "", "NaN is not JSON", st(b'{"layer.weight":{"dtype":"F32","shape":[NaN],"data_offsets":[0,16]}}', D16)),
        # -- __metadata__
        ("metadata_not_object", "", "__metadata__ is a string", st({"__metadata__": "x", **GOOD}, D16)),
        ("metadata_null", "", "__metadata__ is null (serde reads it as absent; genscope wants an object)", st({"__metadata__": None, **GOOD}, D16)),
        ("metadata_number_value", "", "a __metadata__ value is a number", st({"__metadata__": {"epoch": 3}, **GOOD}, D16)),
        ("metadata_nested_value", "", "a __metadata__ value is an object", st({"__metadata__": {"a": {"b": "c"}}, **GOOD}, D16)),
        ("metadata_duplicate_key", "", "a key twice in __metadata__", st(b'{"__metadata__":{"a":"1","a":"2"},"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', D16)),
        # -- tensor entries
        ("duplicate_tensor", "", "the same tensor name twice", st(b'{"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', D16)),
        ("duplicate_field", "", "\"dtype\" twice in one entry", st(b'{"layer.weight":{"dtype":"F32","dtype":"I32","shape":[4],"data_offsets":[0,16]}}', D16)),
        ("entry_not_object", W, "a tensor entry is an array", st({W: [0, 16]}, D16)),
        ("dtype_unknown", W, "dtype \"F33\"", st({W: T(dtype="F33")}, D16)),
        ("dtype_lowercase", W, "dtype \"f32\" (dtypes are upper case)", st({W: T(dtype="f32")}, D16)),
        ("dtype_not_string", W, "dtype is a number", st({W: T(dtype=32)}, D16)),
        ("dtype_missing", W, "no dtype", st({W: {"shape": [4], "data_offsets": [0, 16]}}, D16)),
        ("shape_missing", W, "no shape", st({W: {"dtype": "F32", "data_offsets": [0, 16]}}, D16)),
        ("shape_not_array", W, "shape is a string", st({W: T(shape="2x2")}, D16)),
        ("shape_negative", W, "shape [-1, 4]", st({W: T(shape=(-1, 4))}, D16)),
        ("shape_float", W, "shape [2.0, 2]", st(b'{"layer.weight":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}}', D16)),
        ("shape_exponent", W, "shape [4e0]", st(b'{"layer.weight":{"dtype":"F32","shape":[4e0],"data_offsets":[0,16]}}', D16)),
        ("shape_string_dim", W, "shape [\"4\"]", st({W: T(shape=("4",))}, D16)),
        ("shape_dim_over_u64", W, "shape [2^64]", st({W: T(shape=(1 << 64,))}, D16)),
        ("shape_overflow", W, "shape [2^32, 2^32, 4]: the element count overflows 64 bits", st({W: T(shape=(1 << 32, 1 << 32, 4))}, D16)),
        ("shape_bytes_overflow", W, "shape [2^62] of F32: the byte count overflows 64 bits", st({W: T(shape=(1 << 62,))}, D16)),
        ("shape_zero_size_huge", W, "shape [0, 2^40, 2^40]: zero elements, but strides would overflow", st({W: T(shape=(0, 1 << 40, 1 << 40), offsets=(0, 0))})),
        ("shape_too_many_dims", W, "9 dimensions (genscope's limit is 8)", st({W: T(shape=(1,) * 8 + (4,))}, D16)),
        ("subbyte_partial", W, "F4 [3] is 12 bits, not whole bytes", st({W: T(dtype="F4", shape=(3,), offsets=(0, 2))}, b"\0\0")),
        ("offsets_missing", W, "no data_offsets", st({W: {"dtype": "F32", "shape": [4]}}, D16)),
        ("offsets_not_array", W, "data_offsets is a string", st({W: T(offsets="0-16")}, D16)),
        ("offsets_one_value", W, "data_offsets [0]", st({W: T(offsets=(0,))}, D16)),
        ("offsets_three_values", W, "data_offsets [0, 16, 16]", st({W: T(offsets=(0, 16, 16))}, D16)),
        ("offsets_float", W, "data_offsets [0, 16.0]", st(b'{"layer.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16.0]}}', D16)),
        ("offsets_negative", W, "data_offsets [-16, 0]", st({W: T(offsets=(-16, 0))}, D16)),
        ("offsets_strings", W, "data_offsets [\"0\", \"16\"]", st({W: T(offsets=("0", "16"))}, D16)),
        ("offsets_reversed", W, "data_offsets [16, 0]", st({W: T(offsets=(16, 0))}, D16)),
        ("offsets_size_mismatch", W, "data_offsets [0, 12] for F32 [4] (16 bytes)", st({W: T(offsets=(0, 12))}, D16[:12])),
        ("offsets_out_of_range", W, "data_offsets [0, 2^40] in a 16-byte buffer", st({W: T(shape=(1 << 38,), offsets=(0, 1 << 40))}, D16)),
        ("truncated_data", W, "the file ends 8 bytes into the tensor's 16", st(GOOD, D16[:8])),
        ("offsets_overlap", "second", "[0, 16] and [8, 24] overlap", st({"first": T(), "second": T(offsets=(8, 24))}, D16 + D16[:8])),
        ("offsets_same_range", "second", "two tensors share [0, 16]", st({"first": T(), "second": T()}, D16)),
        ("offsets_hole", "second", "4 unused bytes between [0, 16] and [20, 36]", st({"first": T(), "second": T(offsets=(20, 36))}, D16 + b"HOLE" + D16)),
        ("offsets_hole_at_start", W, "the only tensor starts at 4", st({W: T(offsets=(4, 20))}, b"HOLE" + D16)),
        ("trailing_bytes", "", "4 bytes after the last tensor", st(GOOD, D16 + b"TAIL")),
        ("no_tensors_with_data", "", "no tensors but 8 bytes of data", st({}, b"POLYGLOT")),
        # -- found when the tensor is fetched
        ("bool_invalid_value", "flags", "a BOOL byte of 2 (found by get())", st({"flags": T(dtype="BOOL", offsets=(0, 4))}, b"\x00\x01\x02\x01")),
    ]
    return cases


def write_malformed():
    if BAD.exists():
        shutil.rmtree(BAD)
    BAD.mkdir(parents=True)
    rows = []
    for name, tensor, what, data in malformed():
        fname = name + ".safetensors"
        (BAD / fname).write_bytes(data)
        try:
            out = deserialize(data)
            # deserialize does not look at values; the BOOL check is genscope's own.
            verdict = "accepts"
            assert out is not None
        except Exception:
            verdict = "rejects"
        rows.append((fname, tensor, what, verdict))
    with open(BAD / "manifest.tsv", "w") as f:
        f.write("# file\ttensor named in the error (empty: none)\twhat is wrong\n")
        for fname, tensor, what, _ in rows:
            f.write(f"{fname}\t{tensor}\t{what}\n")
    with open(BAD / "README.md", "w") as f:
        f.write("# Malformed safetensors files\n\n"
                "Written by `tools/reference/make_safetensors_fixtures.py`; listed in `manifest.tsv`, which\n"
                "`tests/test_safetensors.cpp` reads. genscope must reject every one with a `FormatError` that\n"
                "names the file (and the tensor, where the manifest gives one), at `SafetensorsFile::open` or,\n"
                "for `bool_invalid_value`, at `get()`. The last column is what the reference Python package\n"
                f"(safetensors {safetensors.__version__}, `safetensors.deserialize`) does with the same bytes;\n"
                "where it accepts, genscope is deliberately stricter:\n\n"
                "* duplicate keys: the format says they are disallowed; serde_json keeps the last one;\n"
                "* `__metadata__: null`: serde reads it as absent; genscope requires an object;\n"
                "* a header not starting with `{`: the format says the header MUST begin with `{`;\n"
                "* more than 8 dimensions: genscope's `Shape` holds at most 8;\n"
                "* a zero-size shape whose other dimensions multiply past 2^62: strides would overflow;\n"
                "* BOOL bytes other than 0 and 1: reading them as C++ `bool` is undefined behaviour.\n\n"
                "| file | what is wrong | Python package |\n|---|---|---|\n")
        for fname, _, what, verdict in rows:
            f.write(f"| `{fname}` | {what.replace('|', '/')} | {verdict} |\n")
    return rows


def write_corpus():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir(parents=True)
    for p in sorted(OUT.rglob("*.safetensors")):
        name = p.relative_to(OUT).as_posix().replace("/", "_")
        if p.stat().st_size <= 4096:
            shutil.copyfile(p, CORPUS / name)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.glob("*.safetensors"):
        p.unlink()
    write_valid()
    with open(OUT / "expected.txt", "w") as f:
        f.write("# Written by tools/reference/make_safetensors_fixtures.py from what numpy and the reference\n"
                "# safetensors package read back. One record per line, fields separated by single spaces:\n"
                "#   tensor FILE NAME DTYPE SHAPE VALUES...   in header order; SHAPE is 2,3 or - for a scalar;\n"
                "#                                           VALUES all elements, row-major, or 'unsupported'\n"
                "#   meta FILE KEY_HEX VALUE_HEX            UTF-8 as hex, '-' for the empty string\n"
                "#   count FILE N                           number of tensors\n")
        f.write("\n".join(expect_lines) + "\n")
    rows = write_malformed()
    write_corpus()
    for p in [*OUT.rglob("*"), *CORPUS.rglob("*")]:  # the package writes 0600 temp files; keep the tree uniform
        if p.is_file():
            p.chmod(0o644)
    rejected = sum(1 for r in rows if r[3] == "rejects")
    print(f"wrote {OUT}: {len(expect_lines)} expectation lines, {len(rows)} malformed files "
          f"({rejected} also rejected by the Python package)")


if __name__ == "__main__":
    main()
