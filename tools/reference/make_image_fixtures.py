#!/usr/bin/env python3
"""Write genscope's image test fixtures (tests/data/images/) and the image fuzzer's seeds.

    pip install pillow numpy            # Pillow 13 was used; torchvision is not needed
    apt-get install python3-skimage opencv-doc   # the photographs (Debian packages)
    python3 tools/reference/make_image_fixtures.py

Writes:
  * tests/data/images/*.{png,bmp,tga,gif,ppm,pgm,jpg}: tiny (37x23) files in every format and
    mode genscope's reader handles, written by Pillow or, where Pillow cannot write the mode
    (16-bit RGB PNG, 1/2/4-bit grey, Adam7, 16-bit BMP, odd PNM maxvals, right-to-left TGA,
    a GIF whose first frame is smaller than its screen), by the small writers below;
  * tests/data/images/corrupt/: broken files (truncated, wrong magic, bad zlib, decompression
    bombs, ...) that genscope must refuse with a FormatError naming the file;
  * tests/data/images/expected/*.npy + manifest.tsv: what Pillow does with them and with real
    photographs from Debian's python3-skimage and opencv-doc: Image.open(...).convert("RGB"),
    Image.resize with each filter, torchvision's Resize/CenterCrop/ToTensor/Normalize mirrored
    here in numpy float32 (the torchvision code is quoted in comments), numpy's reflect pad;
  * tests/fuzz/corpus/image/: tiny seeds of each format for the fuzzer.

manifest.tsv has one test per line: an op, then key=value fields. `input` is a path under
tests/data/ or `skimage:NAME` / `opencv:NAME` for a Debian photograph, or `npy:NAME` for pixels
stored here (Pillow's decode of a JPEG, so resize parity does not depend on the JPEG decoder).
The script is deterministic: running it again rewrites identical files (given the same Pillow
and libjpeg-turbo).
"""
import math
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
IMAGES = DATA / "images"
CORRUPT = IMAGES / "corrupt"
EXPECTED = IMAGES / "expected"
CORPUS = ROOT / "tests" / "fuzz" / "corpus" / "image"
SKIMAGE = Path("/usr/lib/python3/dist-packages/skimage/data")
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")

H, W = 23, 37  # the synthetic images: odd, not a multiple of the JPEG block size

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

FILTERS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

manifest = []


# ---- small writers for what Pillow cannot write ---------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_pack_row(row, bit_depth):
    row = np.asarray(row).reshape(-1)
    if bit_depth == 16:
        return row.astype(">u2").tobytes()
    if bit_depth == 8:
        return row.astype(np.uint8).tobytes()
    bits = np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth:].reshape(-1)
    return np.packbits(bits).tobytes()


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples, color_type, bit_depth, palette=None, trns=None, interlace=False):
    """A PNG of `samples` (H x W x C sample values), rows unfiltered, optionally Adam7."""
    a = np.asarray(samples)
    if a.ndim == 2:
        a = a[..., None]
    h, w, _ = a.shape
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for y in range(sub.shape[0]):
            raw += b"\x00" + png_pack_row(sub[y], bit_depth)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    return out + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(b"IEND", b"")


def bmp_bytes(h, w, bpp, rows_bottom_up, palette=None, masks=None, compression=0, top_down=False):
    """A BMP with a 40-byte header (+ bitfield masks) from already packed rows, bottom row first."""
    rows = [r + b"\x00" * ((-len(r)) % 4) for r in rows_bottom_up]
    if top_down:
        rows = rows[::-1]
    data = b"".join(rows)
    pal = b"" if palette is None else b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    extra = b"" if masks is None else struct.pack("<III", *masks)
    info = struct.pack("<IiiHHIIiiII", 40, w, -h if top_down else h, 1, bpp, compression, len(data), 2835, 2835,
                       0 if palette is None else len(palette), 0)
    off = 14 + len(info) + len(extra) + len(pal)
    return b"BM" + struct.pack("<IHHI", off + len(data), 0, 0, off) + info + extra + pal + data


def pnm_bytes(magic, maxval, samples):
    a = np.asarray(samples)
    h, w = a.shape[:2]
    body = a.astype(">u2" if maxval > 255 else np.uint8).tobytes()
    return f"{magic}\n# genscope test\n{w} {h}\n{maxval}\n".encode() + body


def tga16_bytes(rgb555, right_to_left=False):
    """Uncompressed 16-bit (X1R5G5B5) true-colour TGA, bottom-up."""
    h, w = rgb555.shape
    desc = 0x10 if right_to_left else 0
    hdr = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 16, desc)
    return hdr + rgb555[::-1].astype("<u2").tobytes()


# ---- Pillow and torchvision, mirrored --------------------------------------------------------

def pil_rgb(path):
    """What the reference pipelines start from: Image.open(path).convert("RGB") (no EXIF rotation)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def tv_resized_size(h, w, size):
    """torchvision.transforms.functional._compute_resized_output_size for an int size:
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = requested_new_short, int(requested_new_short * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)"""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return new_h, new_w


def tv_resize(img, size, interp):
    """torchvision Resize(size) on a PIL image: F_pil.resize -> img.resize((w, h), interp);
    recent torchvision returns the image unchanged when the size already matches, which is what
    PIL's resize does too (a copy)."""
    nh, nw = tv_resized_size(img.height, img.width, size)
    if (nh, nw) == (img.height, img.width):
        return img
    return img.resize((nw, nh), FILTERS[interp])


def tv_center_crop(img, ch, cw):
    """torchvision.transforms.functional.center_crop on a PIL image (zero padding first if needed)."""
    w, h = img.size
    if cw > w or ch > h:
        padding_ltrb = [
            (cw - w) // 2 if cw > w else 0,
            (ch - h) // 2 if ch > h else 0,
            (cw - w + 1) // 2 if cw > w else 0,
            (ch - h + 1) // 2 if ch > h else 0,
        ]
        img = ImageOps.expand(img, border=tuple(padding_ltrb), fill=0)  # F_pil.pad, padding_mode="constant"
        w, h = img.size
        if cw == w and ch == h:
            return img
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def tv_to_tensor(img):
    """ToTensor: torch.from_numpy(np.array(pic)).permute(2, 0, 1).float().div(255) (float32)."""
    a = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def tv_normalize(t, mean, std):
    """Normalize: tensor.sub_(mean[:, None, None]).div_(std[:, None, None]) in float32."""
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    return ((t - m) / s).astype(np.float32)


# ---- helpers ----------------------------------------------------------------------------------

def resolve(spec):
    kind, _, name = spec.partition(":")
    if kind == "skimage":
        return SKIMAGE / name
    if kind == "opencv":
        return OPENCV / name
    if kind == "npy":
        return EXPECTED / name
    return DATA / spec


def load_input(spec):
    if spec.startswith("npy:"):
        return Image.fromarray(np.load(resolve(spec)))
    return Image.fromarray(pil_rgb(resolve(spec)))


def save_npy(name, array):
    np.save(EXPECTED / name, np.ascontiguousarray(array), allow_pickle=False)
    return name


def add(op, **fields):
    manifest.append(op + "".join(f"\t{k}={v}" for k, v in fields.items()))


def slug(spec):
    return spec.replace("images/", "").replace(":", "_").replace("/", "_")


# ---- synthetic files ---------------------------------------------------------------------------

def synthetic_content():
    rng = np.random.default_rng(20240611)
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.stack([xx * 255 / (W - 1), yy * 255 / (H - 1), 128 + 100 * np.sin((xx + yy) / 5)], -1)
    photo = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)  # JPEG-friendly
    noise = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)  # exercises every value in lossless formats
    return rng, photo, noise


def write_synthetic():
    rng, photo, noise = synthetic_content()
    rgb, rgba, grey = noise[..., :3], noise, noise[..., 0]
    files = {}

    def pil_save(name, img, **kw):
        img.save(IMAGES / name, **kw)
        files[name] = "Pillow"

    def raw(name, data, what):
        (IMAGES / name).write_bytes(data)
        files[name] = what

    # PNG
    pil_save("rgb.png", Image.fromarray(rgb))
    pil_save("rgba.png", Image.fromarray(rgba))
    pil_save("la.png", Image.merge("LA", [Image.fromarray(grey), Image.fromarray(noise[..., 1])]))
    pil_save("l.png", Image.fromarray(grey))
    pal = Image.fromarray(photo).quantize(colors=40, dither=Image.Dither.NONE)
    pil_save("p.png", pal)
    pil_save("p_trns.png", pal, transparency=bytes(range(0, 200, 5)))
    raw("l_trns.png", png_bytes(grey, 0, 8, trns=struct.pack(">H", int(grey[0, 0]))), "grey + tRNS")
    raw("rgb_trns.png", png_bytes(rgb, 2, 8, trns=struct.pack(">HHH", *map(int, rgb[0, 0]))), "RGB + tRNS")
    for bits in (1, 2, 4):
        raw(f"l{bits}.png", png_bytes(rng.integers(0, 2 ** bits, (H, W)), 0, bits), f"{bits}-bit grey")
    raw("p4.png", png_bytes(rng.integers(0, 16, (H, W)), 3, 4, palette=rng.integers(0, 256, (16, 3))), "4-bit palette")
    s16 = rng.integers(0, 65536, (H, W, 4))
    s16[0, :6, :] = [[0] * 4, [255] * 4, [256] * 4, [511] * 4, [65280] * 4, [65535] * 4]
    raw("rgb16.png", png_bytes(s16[..., :3], 2, 16), "16-bit RGB")
    raw("rgba16.png", png_bytes(s16, 6, 16), "16-bit RGBA")
    raw("la16.png", png_bytes(s16[..., :2], 4, 16), "16-bit grey + alpha")
    raw("l16.png", png_bytes(s16[..., 0], 0, 16), "16-bit grey (Pillow: I;16)")
    low16 = rng.integers(0, 400, (H, W))  # mostly below 256, where Pillow's clip matters
    raw("l16_low.png", png_bytes(low16, 0, 16, trns=struct.pack(">H", int(low16[0, 0]))), "16-bit grey, small values, tRNS")
    raw("rgb_adam7.png", png_bytes(rgb, 2, 8, interlace=True), "Adam7 interlaced RGB")
    raw("l16_adam7.png", png_bytes(s16[..., 1], 0, 16, interlace=True), "Adam7 interlaced 16-bit grey")

    # BMP
    pil_save("rgb.bmp", Image.fromarray(rgb))
    pil_save("l.bmp", Image.fromarray(grey))
    pil_save("p.bmp", pal)
    pil_save("1.bmp", Image.fromarray(grey).convert("1"))
    v16 = rng.integers(0, 65536, (H, W)).astype("<u2")
    rows16 = [v16[y].tobytes() for y in range(H)]
    raw("bgr555.bmp", bmp_bytes(H, W, 16, rows16), "16-bit 5-5-5")
    raw("bgr565.bmp", bmp_bytes(H, W, 16, rows16, masks=(0xF800, 0x07E0, 0x001F), compression=3), "16-bit 5-6-5 bitfields")
    v32 = rng.integers(0, 2 ** 32, (H, W), dtype=np.uint64).astype("<u4")
    raw("bgrx_topdown.bmp", bmp_bytes(H, W, 32, [v32[y].tobytes() for y in range(H)], top_down=True), "32-bit, top-down")
    idx4 = np.zeros((H, W + 1), np.uint8)
    idx4[:, :W] = rng.integers(0, 16, (H, W))
    packed4 = (idx4[:, 0::2] << 4) | idx4[:, 1::2]  # two pixels a byte, high nibble first
    rows4 = [packed4[y].tobytes() for y in range(H)]
    raw("p4.bmp", bmp_bytes(H, W, 4, rows4, palette=rng.integers(0, 256, (16, 3))), "4-bit palette")

    # TGA
    pil_save("rgb.tga", Image.fromarray(rgb))
    pil_save("rgb_rle.tga", Image.fromarray(rgb), compression="tga_rle")
    pil_save("rgba.tga", Image.fromarray(rgba))
    pil_save("l.tga", Image.fromarray(grey))
    pil_save("l_rle.tga", Image.fromarray(grey), compression="tga_rle")
    pil_save("p.tga", pal)
    pil_save("rgb_topleft.tga", Image.fromarray(rgb), orientation=1)
    raw("rgb16.tga", tga16_bytes(v16 & 0x7FFF), "16-bit (5-5-5)")
    raw("rgb16_rtl.tga", tga16_bytes(v16 & 0x7FFF, right_to_left=True), "16-bit, right-to-left")

    # GIF (Pillow writes interlaced GIFs by default at this size)
    pil_save("p.gif", pal)
    pil_save("p_trns.gif", pal, transparency=3)
    pil_save("l.gif", Image.fromarray(grey))
    frame2 = Image.fromarray(photo[::-1]).quantize(colors=40, dither=Image.Dither.NONE)
    pal.save(IMAGES / "anim.gif", save_all=True, append_images=[frame2], duration=100, loop=0)
    files["anim.gif"] = "Pillow, 2 frames (the first is decoded)"
    # The same first frame on a larger logical screen (40x30): pixels outside the frame.
    for name, trns in (("partial.gif", None), ("partial_trns.gif", 3)):
        buf = IMAGES / name
        pal.save(buf, transparency=trns) if trns is not None else pal.save(buf)
        b = bytearray(buf.read_bytes())
        b[6:10] = struct.pack("<HH", 40, 30)
        b[11] = 5  # background colour index (Pillow ignores it for the first frame)
        buf.write_bytes(bytes(b))
        files[name] = "Pillow, screen patched to 40x30, background index 5" + (", transparency 3" if trns else "")

    # PNM
    pil_save("rgb.ppm", Image.fromarray(rgb))
    pil_save("l.pgm", Image.fromarray(grey))
    raw("l16.pgm", pnm_bytes("P5", 65535, s16[..., 0]), "maxval 65535 (Pillow: I)")
    raw("l_max1000.pgm", pnm_bytes("P5", 1000, rng.integers(0, 1001, (H, W))), "maxval 1000 (Pillow: I, scaled to 65535)")
    raw("l_max100.pgm", pnm_bytes("P5", 100, rng.integers(0, 101, (H, W))), "maxval 100 (scaled)")
    raw("rgb16.ppm", pnm_bytes("P6", 65535, s16[..., :3]), "maxval 65535 (scaled)")
    raw("rgb_max1000.ppm", pnm_bytes("P6", 1000, rng.integers(0, 1001, (H, W, 3))), "maxval 1000 (scaled)")
    raw("rgb_max15.ppm", pnm_bytes("P6", 15, rng.integers(0, 16, (H, W, 3))), "maxval 15 (scaled)")

    # JPEG
    pil_save("baseline.jpg", Image.fromarray(photo), quality=90)
    pil_save("progressive.jpg", Image.fromarray(photo), quality=90, progressive=True)
    pil_save("s444.jpg", Image.fromarray(photo), quality=90, subsampling=0)
    pil_save("s422.jpg", Image.fromarray(photo), quality=90, subsampling=1)
    pil_save("grey.jpg", Image.fromarray(photo[..., 0]), quality=90)
    pil_save("cmyk.jpg", Image.fromarray(photo).convert("CMYK"), quality=90)
    pil_save("restart.jpg", Image.fromarray(photo), quality=90, restart_marker_blocks=2)
    return files


JPEG_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def jpeg_fields(path):
    from PIL import JpegImagePlugin
    with Image.open(path) as im:
        if im.mode == "RGB":
            return {"jpeg": JPEG_SAMPLING.get(JpegImagePlugin.get_sampling(im), "other")}
        return {"jpeg": im.mode}


def expected_decodes(files):
    for name in sorted(files):
        spec = f"images/{name}"
        path = resolve(spec)
        with Image.open(path) as im:
            mode = im.mode
        a = pil_rgb(path)
        fields = {"input": spec, "pil_mode": mode, "expected": save_npy(f"decode_{name}.npy", a)}
        if name.endswith(".jpg"):
            fields.update(jpeg_fields(path))
        else:
            fields["tolerance"] = 0
        add("decode", **fields)


# ---- corrupt files -----------------------------------------------------------------------------

def write_corrupt():
    """(file, substring the error must contain); every error must also name the file."""
    cases = []

    def put(name, data, expect, why):
        (CORRUPT / name).write_bytes(data)
        cases.append((name, expect, why))

    src = {n: (IMAGES / n).read_bytes() for n in ("rgb.png", "baseline.jpg", "progressive.jpg", "rgb.bmp", "rgb.tga", "rgb_rle.tga", "p.gif", "rgb.ppm", "l.pgm", "p4.bmp")}
    put("empty.png", b"", "empty", "0 bytes")
    put("text.jpg", b"this is not an image\n", "not a", "text with an image extension")
    put("html.png", b"<!DOCTYPE html><html><body>404</body></html>\n", "not a", "an error page saved as .png")
    put("psd.psd", b"8BPS\x00\x01" + bytes(40), "not supported", "Photoshop: stb_image reads it, genscope refuses")
    put("plain.pgm", b"P2\n2 2\n255\n0 1 2 3\n", "not supported", "plain (ASCII) PGM")
    put("pbm.pbm", b"P4\n8 2\n\xff\x00", "not supported", "binary PBM (1-bit)")
    for name, data in src.items():
        stem, ext = name.rsplit(".", 1)
        put(f"{stem}_half.{ext}", data[: len(data) // 2], "truncated" if ext != "jpg" else "", f"{name} cut in half")
        if ext in ("jpg", "ppm", "pgm"):  # the last byte is pixel data or the EOI marker
            put(f"{stem}_cut1.{ext}", data[:-1], "", f"{name} without its last byte")
    # Formats with trailers: PNG's IEND, a BMP row's padding, TGA 2.0's footer, GIF's trailer
    # byte. Cutting those loses no pixels (PIL accepts such files), so cut into the pixels.
    put("rgb_no_iend.png", src["rgb.png"][:-12], "truncated", "rgb.png without its IEND chunk")
    put("rgb_cut4.bmp", src["rgb.bmp"][:-4], "truncated", "rgb.bmp without the last row's padding and last pixel")
    put("rgb_cut30.tga", src["rgb.tga"][:-30], "truncated", "rgb.tga without its footer and last pixels")
    put("rgb_rle_cut30.tga", src["rgb_rle.tga"][:-30], "truncated", "rgb_rle.tga without its footer and last packets")
    put("p_cut3.gif", src["p.gif"][:-3], "truncated", "p.gif without its trailer and the image data's last bytes")
    put("rgb_header.png", src["rgb.png"][:33], "", "PNG signature and IHDR only")
    put("baseline_header.jpg", src["baseline.jpg"][:300], "", "JPEG headers only")
    png = bytearray(src["rgb.png"])
    idat = png.index(b"IDAT")
    png[idat + 8: idat + 40] = bytes(32)  # zeroed deflate data (CRCs are not checked)
    put("rgb_badzlib.png", bytes(png), "corrupt PNG", "IDAT deflate stream zeroed")
    jpg = bytearray(src["baseline.jpg"])
    sof = jpg.index(b"\xff\xc0")
    jpg[sof + 5: sof + 9] = struct.pack(">HH", 0, 0)
    put("baseline_zero_size.jpg", bytes(jpg), "", "SOF0 with 0 x 0 pixels")
    jpg = bytearray(src["baseline.jpg"])
    dht = jpg.index(b"\xff\xc4")
    jpg[dht + 5: dht + 21] = bytes([32] * 16)  # 512 codes: stb_image 2.27 writes past its tables
    put("bad_huffman.jpg", bytes(jpg), "Huffman", "a DHT table claiming 512 codes")
    # Decompression bombs: tiny files whose headers claim more pixels than PIL's limit.
    bomb = bytearray(png_bytes(np.zeros((1, 1), np.uint8), 0, 8))
    bomb[16:24] = struct.pack(">II", 20000, 20000)
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])) & 0xFFFFFFFF)  # IHDR's CRC, for Pillow
    put("bomb.png", bytes(bomb), "pixel", "PNG header claiming 20000 x 20000")
    gif = bytearray(src["p.gif"])
    gif[6:10] = struct.pack("<HH", 65535, 65535)
    put("bomb.gif", bytes(gif), "pixel", "GIF screen of 65535 x 65535")
    jpg = bytearray(src["baseline.jpg"])
    jpg[sof + 5: sof + 9] = struct.pack(">HH", 65500, 65500)
    put("bomb.jpg", bytes(jpg), "pixel", "JPEG SOF claiming 65500 x 65500")
    bmp = bytearray(src["rgb.bmp"])
    bmp[18:26] = struct.pack("<ii", 16000, 16000)
    put("bomb.bmp", bytes(bmp), "pixel", "BMP header claiming 16000 x 16000")
    verdicts = []
    for name, expect, why in cases:
        pil = "accepts"
        try:
            with Image.open(CORRUPT / name) as im:
                im.load()
        except Exception as e:  # noqa: BLE001 - we record what Pillow says, whatever it is
            pil = "rejects: " + type(e).__name__
        add("corrupt", input=f"images/corrupt/{name}", contains=expect or "-", pillow=pil.replace("\t", " "))
        verdicts.append((name, why, pil))
    return verdicts


# ---- photographs: decoding -----------------------------------------------------------------------

LOSSLESS_PHOTOS = ["skimage:astronaut.png", "skimage:camera.png", "skimage:chelsea.png", "skimage:coffee.png",
                   "skimage:horse.png", "skimage:logo.png", "skimage:palette_color.png", "skimage:palette_gray.png",
                   "skimage:green_palette.png", "skimage:checker_bilevel.png", "skimage:foo3x5x4indexed.png",
                   "skimage:no_time_for_that_tiny.gif", "opencv:basketball1.png"]
JPEG_PHOTOS = ["skimage:rocket.jpg", "skimage:retina.jpg", "skimage:hubble_deep_field.jpg", "opencv:baboon.jpg",
               "opencv:fruits.jpg", "opencv:HappyFish.jpg"]


def photo_decodes():
    for spec in LOSSLESS_PHOTOS:
        path = resolve(spec)
        with Image.open(path) as im:
            mode = im.mode
        a = pil_rgb(path)
        stride = 8 if max(a.shape[:2]) > 96 else 1
        add("decode", input=spec, pil_mode=mode, stride=stride, crc32=f"{zlib.crc32(a.tobytes()):08x}",
            expected=save_npy(f"decode_{slug(spec)}.npy", a[::stride, ::stride]), tolerance=0)
    for spec in JPEG_PHOTOS:
        path = resolve(spec)
        a = pil_rgb(path)
        h, w = a.shape[:2]
        n = 64
        for where, (y, x) in (("topright", (0, w - n)), ("center", ((h - n) // 2, (w - n) // 2))):
            add("decode", input=spec, window=f"{y},{x},{n},{n}", **jpeg_fields(path),
                expected=save_npy(f"decode_{slug(spec)}_{where}.npy", a[y:y + n, x:x + n]))
    # Pillow's full decode of one JPEG: the whole-image difference, and the input of the JPEG
    # resize/normalise parity tests below.
    a = pil_rgb(resolve("opencv:HappyFish.jpg"))
    save_npy("pil_HappyFish.npy", a)
    add("decode", input="opencv:HappyFish.jpg", **jpeg_fields(resolve("opencv:HappyFish.jpg")), expected="pil_HappyFish.npy")


# ---- resizing and the pipelines ------------------------------------------------------------------

def resize_case(spec, h, w, interp):
    out = np.asarray(load_input(spec).resize((w, h), FILTERS[interp]))
    add("resize", input=spec, h=h, w=w, interp=interp,
        expected=save_npy(f"resize_{slug(spec)}_{h}x{w}_{interp}.npy", out))


def resizes():
    for interp in ("bicubic", "bilinear"):
        resize_case("skimage:astronaut.png", 224, 224, interp)
    for interp in FILTERS:
        resize_case("skimage:astronaut.png", 91, 37, interp)
    for interp in ("bicubic", "bilinear"):
        resize_case("skimage:astronaut.png", 1, 1, interp)
        resize_case("skimage:camera.png", 77, 100, interp)
    resize_case("skimage:astronaut.png", 5, 7, "bicubic")
    resize_case("skimage:chelsea.png", 149, 225, "bicubic")
    resize_case("skimage:chelsea.png", 1, 451, "bilinear")  # vertical pass only, to one row
    resize_case("images/rgb.png", 200, 300, "bicubic")  # upsampling, non-integer factors
    resize_case("images/rgb.png", 101, 150, "bilinear")
    resize_case("images/rgb.png", 46, 111, "lanczos")
    resize_case("images/rgb.png", 50, 37, "bicubic")  # vertical pass only
    resize_case("images/rgb.png", 23, 80, "bilinear")  # horizontal pass only
    resize_case("images/rgb.png", 23, 37, "bicubic")  # same size: a copy
    resize_case("npy:pil_HappyFish.npy", 97, 129, "bicubic")


def pipeline_case(spec, resize, interp, crop, mean=None, std=None):
    img = load_input(spec)
    if resize:
        img = tv_resize(img, resize, interp)
    if crop:
        img = tv_center_crop(img, crop, crop)
    if mean is None:
        add("resize_crop", input=spec, resize=resize or "-", interp=interp, crop=crop or "-",
            expected=save_npy(f"resize_crop_{slug(spec)}_{resize or 'none'}_{interp}_{crop}.npy", np.asarray(img)))
        return
    t = tv_normalize(tv_to_tensor(img), mean, std)
    add("pipeline", input=spec, resize=resize or "-", interp=interp, crop=crop or "-",
        mean=",".join(map(repr, mean)), std=",".join(map(repr, std)),
        expected=save_npy(f"pipeline_{slug(spec)}_{resize}_{interp}_{crop}.npy", t))


def pipelines():
    pipeline_case("skimage:coffee.png", 224, "bicubic", 224)  # CLIP's resize and crop
    pipeline_case("skimage:chelsea.png", 256, "bilinear", 224)  # ImageNet's
    pipeline_case("skimage:camera.png", 100, "bicubic", 90)  # grey
    pipeline_case("images/rgb.png", 30, "bicubic", 40)  # crop larger than the image: zero padding
    pipeline_case("images/rgb.png", None, "bicubic", 41)
    pipeline_case("npy:pil_HappyFish.npy", 224, "bicubic", 224, CLIP_MEAN, CLIP_STD)  # CLIP, full
    pipeline_case("images/rgb.png", 20, "bilinear", 16, IMAGENET_MEAN, IMAGENET_STD)
    # ToTensor + Normalize for every u8 value: image [1, 256, 3] with pixel v = (v, v, v).
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    for name, mean, std in (("clip", CLIP_MEAN, CLIP_STD), ("imagenet", IMAGENET_MEAN, IMAGENET_STD)):
        add("normalize", mean=",".join(map(repr, mean)), std=",".join(map(repr, std)),
            expected=save_npy(f"normalize_{name}.npy", tv_normalize(tv_to_tensor(ramp), mean, std)))


def crops_and_pads():
    img = load_input("images/rgb.png")
    for ch, cw in ((10, 9), (22, 36), (23, 36), (30, 40), (24, 38), (1, 1), (23, 37)):
        add("center_crop", input="images/rgb.png", h=ch, w=cw,
            expected=save_npy(f"center_crop_{ch}x{cw}.npy", np.asarray(tv_center_crop(img, ch, cw))))
    a = np.asarray(img)
    for t, b, l, r in ((3, 22, 36, 1), (1, 1, 1, 1), (0, 5, 0, 0)):
        # torch.nn.functional.pad(mode="reflect") == numpy's "reflect" (the edge is not repeated)
        out = np.pad(a, ((t, b), (l, r), (0, 0)), mode="reflect")
        add("pad_reflect", input="images/rgb.png", top=t, bottom=b, left=l, right=r,
            expected=save_npy(f"pad_reflect_{t}_{b}_{l}_{r}.npy", out))
    for h, w, size in ((512, 512, 224), (300, 451, 224), (451, 300, 224), (400, 600, 256), (3000, 4000, 224),
                       (4000, 3000, 224), (23, 37, 224), (1, 1000, 224), (1000, 1, 7), (333, 500, 299), (224, 225, 224),
                       (480, 640, 1), (65535, 3, 224)):
        nh, nw = tv_resized_size(h, w, size)
        add("resized_size", h=h, w=w, size=size, out_h=nh, out_w=nw)


# ---- fuzzer seeds ---------------------------------------------------------------------------------

def write_corpus():
    rng = np.random.default_rng(7)
    small = rng.integers(0, 256, (5, 8, 4), dtype=np.uint8)
    rgb, grey = Image.fromarray(small[..., :3]), Image.fromarray(small[..., 0])
    pal = rgb.quantize(colors=8)
    saves = [("rgb.png", rgb, {}), ("rgba.png", Image.fromarray(small), {}), ("p.png", pal, {"transparency": 2}),
             ("rgb.jpg", rgb, {"quality": 80}), ("prog.jpg", rgb, {"progressive": True}), ("grey.jpg", grey, {}),
             ("cmyk.jpg", rgb.convert("CMYK"), {}), ("rgb.bmp", rgb, {}), ("p.bmp", pal, {}), ("rgb.tga", rgb, {}),
             ("rle.tga", rgb, {"compression": "tga_rle"}), ("p.gif", pal, {"transparency": 1}), ("rgb.ppm", rgb, {}),
             ("l.pgm", grey, {})]
    for name, img, kw in saves:
        img.save(CORPUS / name, **kw)
    (CORPUS / "rgb16.png").write_bytes(png_bytes(rng.integers(0, 65536, (5, 8, 3)), 2, 16))
    (CORPUS / "l16_adam7.png").write_bytes(png_bytes(rng.integers(0, 65536, (5, 8)), 0, 16, interlace=True))
    (CORPUS / "l2.png").write_bytes(png_bytes(rng.integers(0, 4, (5, 8)), 0, 2))
    (CORPUS / "bgr565.bmp").write_bytes(bmp_bytes(5, 8, 16, [rng.integers(0, 65536, 8).astype("<u2").tobytes() for _ in range(5)],
                                                  masks=(0xF800, 0x07E0, 0x001F), compression=3))
    (CORPUS / "l16.pgm").write_bytes(pnm_bytes("P5", 65535, rng.integers(0, 65536, (5, 8))))
    (CORPUS / "rgb_max100.ppm").write_bytes(pnm_bytes("P6", 100, rng.integers(0, 101, (5, 8, 3))))
    (CORPUS / "rtl16.tga").write_bytes(tga16_bytes(rng.integers(0, 32768, (5, 8)), right_to_left=True))
    b = bytearray((CORPUS / "p.gif").read_bytes())
    b[6:10] = struct.pack("<HH", 10, 7)
    (CORPUS / "partial.gif").write_bytes(bytes(b))
    b = bytearray((CORPUS / "grey.jpg").read_bytes())
    dht = b.index(b"\xff\xc4")
    b[dht + 5: dht + 21] = bytes([17] * 16)  # 272 codes: the stb 2.27 overflow genscope guards against
    (CORPUS / "bad_huffman.jpg").write_bytes(bytes(b))


# ---- README --------------------------------------------------------------------------------------

def write_readme(files, corrupt_cases):
    lines = ["# Image test fixtures", "",
             "Written by `tools/reference/make_image_fixtures.py` (Pillow " + Image.__version__ + ", numpy " + np.__version__ + ");",
             "read by `tests/test_image.cpp` through `expected/manifest.tsv`. Do not edit by hand.", "",
             "## Synthetic files (37 x 23)", "", "| file | written by / mode |", "|---|---|"]
    lines += [f"| `{n}` | {w} |" for n, w in sorted(files.items())]
    lines += ["", "## corrupt/", "",
              "Each must be refused with a `FormatError` that names the file. The last column is what Pillow",
              "does with the same bytes (`Image.open` + `load`). genscope is stricter than Pillow in three places:",
              "it does not read plain (ASCII) PNM or 1-bit PBM files, and it requires a PNG's IEND chunk.", "", "| file | what is wrong | Pillow " + Image.__version__ + " |", "|---|---|---|"]
    lines += [f"| `{n}` | {why} | {pil} |" for n, why, pil in corrupt_cases]
    (IMAGES / "README.md").write_text("\n".join(lines) + "\n")


def main():
    for p in (SKIMAGE / "astronaut.png", OPENCV / "baboon.jpg"):
        if not p.exists():
            raise SystemExit(f"{p} is missing: apt-get install python3-skimage opencv-doc")
    for d in (IMAGES, CORPUS):
        if d.exists():
            shutil.rmtree(d)
    for d in (IMAGES, CORRUPT, EXPECTED, CORPUS):
        d.mkdir(parents=True, exist_ok=True)
    files = write_synthetic()
    expected_decodes(files)
    corrupt_cases = write_corrupt()
    photo_decodes()
    resizes()
    pipelines()
    crops_and_pads()
    write_corpus()
    write_readme(files, corrupt_cases)
    header = "# op\tkey=value fields (see tools/reference/make_image_fixtures.py)"
    (EXPECTED / "manifest.tsv").write_text(header + "\n" + "\n".join(manifest) + "\n")
    total = sum(p.stat().st_size for p in IMAGES.rglob("*") if p.is_file())
    corpus = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"wrote {len(manifest)} manifest entries; tests/data/images: {total / 1e6:.2f} MB; corpus: {corpus / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
