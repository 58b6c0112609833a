// Tests of the SD VAE (models/vae*.hpp, nn/{conv2d,group_norm,resnet_block,vae_attention}.hpp):
// AutoencoderKL against PyPI diffusers on small configurations with seeded random weights
// (tests/data/vae/, written by tools/reference/make_vae_fixtures.py), the key tables against
// names quoted from diffusers' conversion code, the reflect padding and the tiling against their
// definitions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "genscope/io/safetensors.hpp"
#include "genscope/models/vae.hpp"
#include "genscope/models/vae_layouts.hpp"
#include "genscope/models/vae_tiling.hpp"
#include "genscope/ops/upsample.hpp"

using namespace genscope;
using namespace genscope::models;

namespace {

const std::string kData = std::string(GENSCOPE_TEST_DATA) + "/vae/";

const SafetensorsFile& io() {
  static const SafetensorsFile f(kData + "small_io.safetensors");
  return f;
}
Tensor ref(const std::string& name) { return io().get(name).contiguous(); }

const AutoencoderKL& model_a() {
  static const AutoencoderKL m = AutoencoderKL::load(kData + "small_diffusers.safetensors");
  return m;
}
const AutoencoderKL& model_b() {
  static const AutoencoderKL m = AutoencoderKL::load(kData + "small_ldm.safetensors");
  return m;
}

// max |a − b| / max |b|: the error relative to the reference's scale.
double rel_error(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const Tensor ac = a.contiguous().to(DType::F32), bc = b.contiguous().to(DType::F32);
  const float* pa = ac.data<float>();
  const float* pb = bc.data<float>();
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < ac.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(pa[i]) - pb[i]));
    scale = std::max(scale, std::abs(static_cast<double>(pb[i])));
  }
  return diff / scale;
}

// A scratch file removed afterwards.
struct TempFile {
  std::string path;
  TempFile() : path((std::filesystem::temp_directory_path() / ("genscope-vae-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++) + ".safetensors")).string()) {}
  ~TempFile() { std::remove(path.c_str()); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

}  // namespace

TEST_SUITE("vae_layouts") {

TEST_CASE("original single-file names follow diffusers' conversion table") {
  // Pairs quoted from diffusers/loaders/single_file_utils.py (convert_ldm_vae_checkpoint), 4 blocks.
  const std::pair<const char*, const char*> pairs[] = {
      {"encoder.conv_in.weight", "encoder.conv_in.weight"},
      {"encoder.down_blocks.1.resnets.0.conv_shortcut.weight", "encoder.down.1.block.0.nin_shortcut.weight"},
      {"encoder.down_blocks.2.resnets.1.norm2.bias", "encoder.down.2.block.1.norm2.bias"},
      {"encoder.down_blocks.0.downsamplers.0.conv.weight", "encoder.down.0.downsample.conv.weight"},
      {"encoder.mid_block.resnets.0.conv1.weight", "encoder.mid.block_1.conv1.weight"},
      {"decoder.mid_block.resnets.1.norm1.weight", "decoder.mid.block_2.norm1.weight"},
      {"encoder.mid_block.attentions.0.group_norm.weight", "encoder.mid.attn_1.norm.weight"},
      {"decoder.mid_block.attentions.0.to_q.bias", "decoder.mid.attn_1.q.bias"},
      {"encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid.attn_1.proj_out.weight"},
      {"encoder.conv_norm_out.weight", "encoder.norm_out.weight"},
      {"decoder.up_blocks.0.resnets.2.conv2.weight", "decoder.up.3.block.2.conv2.weight"},
      {"decoder.up_blocks.2.resnets.0.conv_shortcut.bias", "decoder.up.1.block.0.nin_shortcut.bias"},
      {"decoder.up_blocks.1.upsamplers.0.conv.weight", "decoder.up.2.upsample.conv.weight"},
      {"quant_conv.weight", "quant_conv.weight"},
      {"post_quant_conv.bias", "post_quant_conv.bias"},
  };
  for (const auto& [diffusers, original] : pairs) CHECK(vae_file_key(VaeLayout::Original, diffusers, 4) == original);
}

TEST_CASE("legacy diffusers names rename only the mid-block attention projections") {
  CHECK(vae_file_key(VaeLayout::DiffusersLegacy, "encoder.mid_block.attentions.0.to_k.weight", 4) == "encoder.mid_block.attentions.0.key.weight");
  CHECK(vae_file_key(VaeLayout::DiffusersLegacy, "decoder.mid_block.attentions.0.to_out.0.bias", 4) == "decoder.mid_block.attentions.0.proj_attn.bias");
  CHECK(vae_file_key(VaeLayout::DiffusersLegacy, "decoder.mid_block.attentions.0.group_norm.bias", 4) == "decoder.mid_block.attentions.0.group_norm.bias");
  CHECK(vae_file_key(VaeLayout::DiffusersLegacy, "decoder.up_blocks.0.resnets.0.conv1.weight", 4) == "decoder.up_blocks.0.resnets.0.conv1.weight");
}

TEST_CASE("the configuration is read from the weight shapes") {
  const VaeConfig& a = model_a().config;
  CHECK(a.block_out_channels == std::vector<int64_t>{32, 64});
  CHECK(a.layers_per_block == 2);
  CHECK(a.latent_channels == 4);
  CHECK(a.downsample_factor() == 2);
  CHECK(model_a().layout() == VaeLayout::Diffusers);
  const VaeConfig& b = model_b().config;
  CHECK(b.block_out_channels == std::vector<int64_t>{32, 32, 64});
  CHECK(b.layers_per_block == 1);
  CHECK(b.downsample_factor() == 4);
  CHECK(model_b().layout() == VaeLayout::Original);
  CHECK(b.scaling_factor == doctest::Approx(0.18215));
}

TEST_CASE("a file that is not a VAE is refused naming the file and the missing key") {
  TempFile f;
  save_safetensors(f.path, {{"head.weight", Tensor::zeros({2, 2}, DType::F32)}});
  try {
    (void)AutoencoderKL::load(f.path);
    FAIL("expected a FormatError");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find(f.path) != std::string::npos);
    CHECK(std::string(e.what()).find("encoder.conv_in.weight") != std::string::npos);
  }
}

TEST_CASE("a tensor of the wrong shape is refused naming the key in the file's own layout") {
  TempFile f;
  const SafetensorsFile src(kData + "small_ldm.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& name : src.names())
    tensors.emplace_back(name, name == "first_stage_model.decoder.up.0.block.0.conv1.weight" ? Tensor::zeros({32, 32, 1, 1}, DType::F32) : src.get(name));
  save_safetensors(f.path, tensors);
  try {
    (void)AutoencoderKL::load(f.path);
    FAIL("expected a FormatError");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("'first_stage_model.decoder.up.0.block.0.conv1.weight' has shape [32, 32, 1, 1]") != std::string::npos);
  }
}

}  // TEST_SUITE

TEST_SUITE("vae_parity") {

TEST_CASE("diffusers layout: the encoder's posterior mean and logvar match diffusers") {
  const VaePosterior p = model_a().encode(ref("x_a"));
  CHECK(rel_error(p.mean, ref("mean_a")) <= 1e-4);
  CHECK(rel_error(p.logvar, ref("logvar_a")) <= 1e-4);
}

TEST_CASE("diffusers layout: decoding the mean matches diffusers") {
  CHECK(rel_error(model_a().decode(ref("mean_a")), ref("decoded_a")) <= 1e-4);
}

TEST_CASE("original single-file layout: encode and decode match diffusers") {
  const VaePosterior p = model_b().encode(ref("x_b"));
  CHECK(rel_error(p.mean, ref("mean_b")) <= 1e-4);
  CHECK(rel_error(p.logvar, ref("logvar_b")) <= 1e-4);
  CHECK(rel_error(model_b().decode(ref("mean_b")), ref("decoded_b")) <= 1e-4);
}

TEST_CASE("legacy attention names load to the same model") {
  // The diffusers fixture with the mid-block attentions renamed as diffusers < 0.14 saved them.
  TempFile f;
  const SafetensorsFile src(kData + "small_diffusers.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  const std::pair<std::string, std::string> legacy[] = {{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  for (std::string name : src.names()) {
    const Tensor t = src.get(name);
    for (const auto& [from, to] : legacy)
      if (auto pos = name.find(from); pos != std::string::npos) name.replace(pos, from.size(), to);
    tensors.emplace_back(name, t.to(DType::F32));
  }
  save_safetensors(f.path, tensors);
  const AutoencoderKL m = AutoencoderKL::load(f.path);
  CHECK(m.layout() == VaeLayout::DiffusersLegacy);
  CHECK(rel_error(m.encode(ref("x_a")).mean, ref("mean_a")) <= 1e-4);
  CHECK(rel_error(m.decode(ref("mean_a")), ref("decoded_a")) <= 1e-4);
}

TEST_CASE("the fused nearest-2x upsampling conv equals convolving the materialised upsampled image") {
  // Reference: torch's order, F.interpolate(scale 2, nearest) then Conv2d(3x3, padding 1), here
  // with ops::upsample_nearest and the implicit-GEMM ops::conv2d on the whole image; odd sizes so
  // tiles straddle the border. Both conv paths (implicit GEMM, Winograd) read through the upsampling.
  const nn::Conv2d& conv = *model_a().decoder.up_blocks[0].upsampler;
  Tensor x = Tensor::empty({2, conv.in_channels(), 7, 5}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::sin(0.3f * static_cast<float>(i));
  bool& winograd = ops::conv_winograd_enabled();
  const bool saved = winograd;
  winograd = false;
  const Tensor whole = ops::conv2d(ops::upsample_nearest(x, 2), conv.weight, &conv.bias, ops::Conv2dParams::make(1, 1));
  CHECK(rel_error(upsample2x_conv3x3(conv, x), whole) <= 1e-6);
  winograd = saved;
  CHECK(rel_error(upsample2x_conv3x3(conv, x), whole) <= 1e-5);
}

TEST_CASE("Winograd F(2x2,3x3) matches the implicit GEMM, with upsampling, residual and activation") {
  // 48 channels: above kWinogradMinChannels; 9×7 and 13×11 outputs leave partial 2×2 tiles.
  const int64_t c = 48, o = 40;
  auto filled = [](Shape shape, float f) {
    Tensor t = Tensor::empty(shape, DType::F32);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = std::sin(f * static_cast<float>(i) + 0.1f);
    return t;
  };
  const Tensor w = filled({o, c, 3, 3}, 0.37f), b = filled({o}, 0.7f);
  bool& winograd = ops::conv_winograd_enabled();
  const bool saved = winograd;
  for (int64_t up : {1, 2}) {
    const Tensor x = filled({2, c, 9, 7}, 0.11f);
    const Tensor r = filled({2, o, 9 * up, 7 * up}, 0.23f);
    for (auto act : {ops::Activation::None, ops::Activation::Silu}) {
      ops::Conv2dParams p = ops::Conv2dParams::make(1, 1);
      p.act = act;
      winograd = false;
      const Tensor direct = ops::conv2d(x, w, &b, p, {.upsample = up, .residual = &r});
      winograd = true;
      const Tensor fast = ops::conv2d(x, w, &b, p, {.upsample = up, .residual = &r});
      CHECK(rel_error(fast, direct) <= 1e-5);
    }
    // Accumulating onto out (residual == out), as the ResNet blocks do.
    for (bool on : {false, true}) {
      winograd = on;
      Tensor acc = r.clone();
      ops::conv2d_into(acc, x, w, &b, ops::Conv2dParams::make(1, 1), {.upsample = up, .residual = &acc});
      winograd = false;
      CHECK(rel_error(acc, ops::conv2d(x, w, &b, ops::Conv2dParams::make(1, 1), {.upsample = up, .residual = &r})) <= 1e-5);
    }
  }
  winograd = saved;
}

TEST_CASE("GroupNorm in place is group_norm bit for bit") {
  Tensor x = Tensor::empty({2, 64, 5, 3}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 3.0f + std::sin(0.29f * static_cast<float>(i));
  Tensor w = Tensor::empty({64}, DType::F32), b = Tensor::empty({64}, DType::F32);
  for (int64_t i = 0; i < 64; ++i) w.data<float>()[i] = 1.0f + 0.01f * static_cast<float>(i), b.data<float>()[i] = 0.1f * std::cos(static_cast<float>(i));
  for (bool silu : {false, true}) {
    const Tensor ref = ops::group_norm(x, 32, w, b, 1e-6f, silu);
    Tensor y = x.clone();
    ops::group_norm_inplace(y, 32, w, b, 1e-6f, silu);
    CHECK(rel_error(y, ref) == 0.0);
  }
}

TEST_CASE("a ResNet block reuses an input handed over and leaves a shared one untouched") {
  const nn::ResnetBlock2D& block = model_a().decoder.up_blocks[0].resnets[0];
  Tensor x = Tensor::empty({1, block.conv1.in_channels(), 6, 5}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::cos(0.17f * static_cast<float>(i));
  const Tensor keep = x.clone();
  const Tensor shared = block(x);  // x still held here: not overwritten
  CHECK(rel_error(x, keep) == 0.0);
  const Tensor moved = block(std::move(x));
  CHECK(rel_error(moved, shared) <= 1e-6);  // in place the shortcut may be summed before the bias
}

TEST_CASE("a ResNet block that narrows writes its shortcut over its input with the same result") {
  // decoder.up_blocks.1.resnets.0: 64 → 32 channels with a 1×1 conv_shortcut. 131×129 pixels:
  // the in-place shortcut's runs of 16384 pixels end with a partial one.
  const nn::ResnetBlock2D& block = model_a().decoder.up_blocks[1].resnets[0];
  REQUIRE(block.conv_shortcut.weight.defined());
  Tensor x = Tensor::empty({1, 64, 131, 129}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::cos(0.013f * static_cast<float>(i));
  const Tensor separate = block(x);  // x shared: the shortcut goes to a new tensor
  const Tensor direct_shortcut = block.conv_shortcut(x);
  const void* storage = x.data_ptr();
  const Tensor in_place_shortcut = block.shortcut_in_place(x.clone());
  CHECK(rel_error(in_place_shortcut, direct_shortcut) == 0.0);
  const Tensor moved = block(std::move(x));
  CHECK(moved.data_ptr() == storage);  // the output lives in the input's memory
  CHECK(rel_error(moved, separate) <= 1e-6);
}

TEST_CASE("a conv reading its input through GroupNorm+SiLU equals the conv of the normalised tensor") {
  // ops::ConvFusion::input_norm, on the Winograd path (applied while reading) and the implicit
  // GEMM (a normalised copy); zero padding must stay zero, not SiLU(GroupNorm(0)).
  const nn::ResnetBlock2D& block = model_a().encoder.down_blocks[1].resnets[1];  // 64 → 64
  Tensor x = Tensor::empty({2, 64, 9, 7}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 2.0f + std::sin(0.07f * static_cast<float>(i));
  bool& winograd = ops::conv_winograd_enabled();
  const bool saved = winograd;
  for (bool on : {true, false}) {
    CAPTURE(on);
    winograd = on;
    const Tensor normalised = block.norm1(x, /*silu=*/true);
    const ops::GroupNormMap map = block.norm1.map(x, /*silu=*/true);
    CHECK(rel_error(block.conv1(x, ops::ConvFusion{.input_norm = &map}), block.conv1(normalised)) <= 1e-6);
  }
  winograd = saved;
}

TEST_CASE("seeded noise is torch.randn after torch.manual_seed") {
  CHECK(rel_error(torch_randn(ref("noise_a").shape(), 7), ref("noise_a")) <= 1e-5);
  CHECK(rel_error(torch_randn(ref("noise_b").shape(), 7), ref("noise_b")) <= 1e-5);  // 252 draws: the tail path
}

TEST_CASE("a seeded posterior sample matches latent_dist.sample() after torch.manual_seed") {
  CHECK(rel_error(model_a().encode(ref("x_a")).sample(7), ref("sample_a")) <= 1e-4);
  CHECK(rel_error(model_b().encode(ref("x_b")).sample(7), ref("sample_b")) <= 1e-4);
}

}  // TEST_SUITE

TEST_SUITE("vae_tiling") {

TEST_CASE("reflect padding mirrors the bottom rows and right columns without repeating the edge") {
  Tensor x = Tensor::empty({1, 1, 3, 5}, DType::F32);
  for (int64_t i = 0; i < 15; ++i) x.data<float>()[i] = static_cast<float>(i);  // x[r][c] = 5r + c
  const Tensor p = reflect_pad_to_multiple(x, 4);
  REQUIRE(p.shape() == Shape{1, 1, 4, 8});
  // torch.nn.functional.pad(x, (0, 3, 0, 1), mode="reflect"): rows 0 1 2 1, columns 0 1 2 3 4 3 2 1.
  const int rows[] = {0, 1, 2, 1}, cols[] = {0, 1, 2, 3, 4, 3, 2, 1};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 8; ++c) CHECK(p.item({0, 0, r, c}) == 5 * rows[r] + cols[c]);
}

TEST_CASE("a size that is already a multiple is not padded") {
  const Tensor x = Tensor::zeros({1, 3, 16, 24}, DType::F32);
  CHECK(reflect_pad_to_multiple(x, 8).data_ptr() == x.data_ptr());
}

TEST_CASE("an odd-sized round trip matches diffusers on the reflect-padded image, cropped") {
  VaeRunOptions o;
  o.sample = false;
  const Tensor y = vae_roundtrip(model_a(), ref("xodd_a"), o);
  CHECK(y.shape() == Shape{1, 3, 21, 35});
  CHECK(rel_error(y, ref("reconodd_a")) <= 1e-4);
}

TEST_CASE("tiles step by tile minus overlap and the last one is flush with the end") {
  CHECK(tile_starts(100, 40, 10) == std::vector<int64_t>{0, 30, 60});
  CHECK(tile_starts(40, 40, 10) == std::vector<int64_t>{0});
  CHECK(tile_starts(30, 40, 10) == std::vector<int64_t>{0});
  CHECK(tile_starts(41, 40, 10) == std::vector<int64_t>{0, 1});
}

TEST_CASE("blending the tiles of a per-pixel function gives the function of the whole image") {
  // Nearest 2x upsampling acts on each pixel alone, so any tiling must reproduce it exactly up to
  // the rounding of the weight normalisation.
  Tensor x = Tensor::empty({1, 2, 37, 29}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::sin(0.37f * static_cast<float>(i));
  const Tensor whole = ops::upsample_nearest(x, 2);
  const Tensor tiled = run_tiled(x, 12, 4, 2, 1, [](const Tensor& t) { return ops::upsample_nearest(t, 2); });
  CHECK(rel_error(tiled, whole) <= 1e-6);
}

TEST_CASE("blending the tiles of a block-local reduction gives the reduction of the whole image") {
  // 2x2 average pooling (the encoder's direction, 1/2 scale) with tile starts on even pixels.
  auto pool = [](const Tensor& t) {
    Tensor o = Tensor::empty({t.size(0), t.size(1), t.size(2) / 2, t.size(3) / 2}, DType::F32);
    for (int64_t p = 0; p < t.size(0) * t.size(1); ++p)
      for (int64_t i = 0; i < o.size(2); ++i)
        for (int64_t j = 0; j < o.size(3); ++j) {
          const float* r = t.data<float>() + (p * t.size(2) + 2 * i) * t.size(3) + 2 * j;
          o.data<float>()[(p * o.size(2) + i) * o.size(3) + j] = (r[0] + r[1] + r[t.size(3)] + r[t.size(3) + 1]) / 4;
        }
    return o;
  };
  Tensor x = Tensor::empty({1, 3, 36, 52}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::cos(0.21f * static_cast<float>(i));
  CHECK(rel_error(run_tiled(x, 16, 4, 1, 2, pool), pool(x)) <= 1e-6);
}

TEST_CASE("a pixel decoded by one tile only is that tile's own decode") {
  // Latent 16x20 of config A (f = 2) in 16-pixel tiles: latent tiles of 8 with overlap 2 start at
  // rows 0, 6, 8 and columns 0, 6, 12, so pixels [0, 12) x [0, 12) come from the first tile alone
  // and pixels [28, 32) x [28, 40) from the last one alone (its rows 12..15, columns 4..15).
  Tensor z = Tensor::empty({1, 4, 16, 20}, DType::F32);
  for (int64_t i = 0; i < z.numel(); ++i) z.data<float>()[i] = std::sin(0.13f * static_cast<float>(i));
  const Tensor tiled = decode_tiled(model_a(), z, 16);
  REQUIRE(tiled.shape() == Shape{1, 3, 32, 40});
  const Tensor first = model_a().decode(z.slice(2, 0, 8).slice(3, 0, 8).contiguous());
  const Tensor last = model_a().decode(z.slice(2, 8, 16).slice(3, 12, 20).contiguous());
  CHECK(rel_error(tiled.slice(2, 0, 12).slice(3, 0, 12), first.slice(2, 0, 12).slice(3, 0, 12)) <= 1e-6);
  CHECK(rel_error(tiled.slice(2, 28, 32).slice(3, 28, 40), last.slice(2, 12, 16).slice(3, 4, 16)) <= 1e-6);
  // Where tiles overlap the result differs from the untiled decode (GroupNorm statistics are per
  // tile); with random weights that difference is large, so it is reported, not bounded.
  MESSAGE("tiled vs untiled decode, relative max difference: ", rel_error(tiled, model_a().decode(z)));
}

TEST_CASE("a tile as large as the image is the untiled computation") {
  VaeRunOptions o;
  o.sample = false;
  const Tensor x = ref("x_a");
  const Tensor untiled = vae_roundtrip(model_a(), x, o);
  o.tile = 64;
  CHECK(rel_error(vae_roundtrip(model_a(), x, o), untiled) == 0);
}

TEST_CASE("the tile is chosen from the memory budget unless given") {
  VaeConfig sd;  // SD v1.4's defaults
  VaeRunOptions o;
  o.memory_budget = vae_peak_bytes(sd, 512, 512);
  CHECK(choose_tile(sd, 512, 512, o) == 0);
  const int64_t t = choose_tile(sd, 4096, 4096, o);
  CHECK(t == 512);
  o.tile = 256;
  CHECK(choose_tile(sd, 4096, 4096, o) == 256);
  o.tile = 100;
  CHECK_THROWS_AS(choose_tile(sd, 4096, 4096, o), UsageError);
}

}  // TEST_SUITE
