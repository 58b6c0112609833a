// Tests of the Vision Transformers (models/vit*.hpp, models/aim_head.hpp, nn/*) and the
// rich-texture crop. Parity fixtures (tests/data/vit/, tools/reference/make_vit_fixtures.py) hold
// small random-weight models of each layout run by the reference implementations in float64:
// apple/ml-aim's AIM v1 rebuilt from its published definition, transformers' CLIP, timm's BEiT
// (SPAI's ViT) and timm's VisionTransformer. genscope (float32) must agree to 1e-4 relative.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <cstdint>
#include <string>
#include <vector>

#include "genscope/io/rich_texture_crop.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/models/aim_head.hpp"
#include "genscope/models/vit.hpp"
#include "genscope/models/vit_features.hpp"
#include "genscope/nn/weights.hpp"

using namespace genscope;
using models::VitArch;

namespace {

const std::string kDir = std::string(GENSCOPE_TEST_DATA) + "/vit/";

// max |a − b| / max |b|: the error relative to the tensor's scale.
double relative_error(const Tensor& actual, const Tensor& expected) {
  REQUIRE(actual.shape() == expected.shape());
  const Tensor a = actual.to(DType::F32), e = expected.to(DType::F32);
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a.data<float>()[i]) - e.data<float>()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(e.data<float>()[i])));
  }
  REQUIRE(scale > 0);
  return diff / scale;
}

constexpr double kTolerance = 1e-4;

struct Fixture {
  nn::Weights weights;
  SafetensorsFile expected;
  explicit Fixture(const std::string& name)
      : weights(nn::Weights::open(kDir + name + ".safetensors")), expected(kDir + name + "_expected.safetensors") {}
  Tensor operator[](const std::string& key) const { return expected.get(key); }
};

// The small fixtures have width 64 and 2 heads (head dim 32), so the head count is given.
models::VisionTransformer load(const Fixture& f, VitArch arch) {
  models::VitLoadOptions opt;
  opt.heads = 2;
  return models::VisionTransformer::load(f.weights, arch, opt);
}

void check_blocks(const Fixture& f, const models::VisionTransformer& vit, const std::string& prefix = "") {
  const models::VitTrace t = vit.forward(f[prefix + "pixels"], {0, 1, 2});
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(relative_error(t.kept[static_cast<size_t>(i)], f[prefix + "block." + std::to_string(i)]) <= kTolerance);
  }
}

}  // namespace

TEST_SUITE("vit") {

TEST_CASE("the sin-cos table encodes the column in the first half and the row in the second") {
  // D = 8: quarter 2, ω = (1, 0.01). Patch at row 1, column 2 of a 2 x 3 grid.
  const Tensor t = models::sincos_pos_embed_2d(2, 3, 8);
  REQUIRE(t.shape() == Shape{6, 8});
  const double expected[8] = {std::sin(2.0), std::sin(0.02), std::cos(2.0), std::cos(0.02),
                              std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01)};
  for (int d = 0; d < 8; ++d) CHECK(t.item({5, d}) == doctest::Approx(expected[d]).epsilon(1e-6));
}

TEST_CASE("resampling a constant position table keeps it constant, up and down") {
  Tensor grid = Tensor::empty({16, 3}, DType::F32);
  for (int64_t i = 0; i < grid.numel(); ++i) grid.data<float>()[i] = 0.25f;
  for (auto [gh, gw] : {std::pair<int64_t, int64_t>{6, 5}, {3, 2}, {4, 7}}) {
    const Tensor r = models::resample_pos_embed(grid, 4, 4, gh, gw);
    REQUIRE(r.shape() == Shape{gh * gw, 3});
    for (int64_t i = 0; i < r.numel(); ++i) CHECK(r.data<float>()[i] == doctest::Approx(0.25f).epsilon(1e-6));
  }
}

TEST_CASE("the published AIM probe layers depend on the width") {
  CHECK(models::aim_best_layers(1536) == std::pair<int64_t, int64_t>{14, 19});
  CHECK(models::aim_best_layers(2048) == std::pair<int64_t, int64_t>{12, 17});
  CHECK(models::aim_best_layers(3072) == std::pair<int64_t, int64_t>{12, 17});
  CHECK(models::aim_best_layers(4096) == std::pair<int64_t, int64_t>{14, 19});
  CHECK_THROWS_AS(models::aim_best_layers(64), UsageError);
}

TEST_CASE("a checkpoint of another layout fails naming the missing tensor") {
  const nn::Weights w = nn::Weights::open(kDir + "timm-vit.safetensors");
  try {
    models::VisionTransformer::load(w, VitArch::Clip);
    FAIL("loading timm weights as CLIP must fail");
  } catch (const FormatError& e) {
    CHECK(std::string(e.what()).find("vision_model.embeddings.patch_embedding.weight") != std::string::npos);
    CHECK(std::string(e.what()).find("timm-vit.safetensors") != std::string::npos);
  }
}

TEST_CASE("a head count that does not divide the width is a usage error") {
  const nn::Weights w = nn::Weights::open(kDir + "timm-vit.safetensors");
  models::VitLoadOptions opt;
  opt.heads = 3;
  CHECK_THROWS_AS(models::VisionTransformer::load(w, VitArch::TimmVit, opt), UsageError);
}

TEST_CASE("the configuration is read off the checkpoint") {
  const models::VisionTransformer vit = load(Fixture("timm-vit"), VitArch::TimmVit);
  CHECK(vit.config.width == 64);
  CHECK(vit.config.depth == 3);
  CHECK(vit.config.patch == 8);
  CHECK(vit.config.mlp_hidden == 128);
  CHECK(vit.config.pos_grid_h == 4);
  CHECK(vit.config.class_token);
}

TEST_CASE("an input size that is not a multiple of the patch is refused") {
  const models::VisionTransformer vit = load(Fixture("timm-vit"), VitArch::TimmVit);
  CHECK_THROWS_AS(vit.forward(Tensor::zeros({1, 3, 30, 32}, DType::F32)), ShapeError);
}

TEST_CASE("a block beyond those loaded is refused") {
  const nn::Weights w = nn::Weights::open(kDir + "timm-vit.safetensors");
  models::VitLoadOptions opt;
  opt.heads = 2;
  opt.blocks = 2;
  const auto vit = models::VisionTransformer::load(w, VitArch::TimmVit, opt);
  CHECK(vit.blocks.size() == 2);
  CHECK_THROWS_AS(vit.forward(Tensor::zeros({1, 3, 32, 32}, DType::F32), {2}), UsageError);
}

}  // TEST_SUITE("vit")

TEST_SUITE("parity") {

TEST_CASE("AIM blocks match apple/ml-aim") {
  const Fixture f("aim");
  check_blocks(f, load(f, VitArch::Aim));
}

TEST_CASE("AIM's post-trunk norm matches apple/ml-aim") {
  const Fixture f("aim");
  const auto vit = load(f, VitArch::Aim);
  CHECK(relative_error(vit.final_norm.forward(vit.forward(f["pixels"]).last), f["trunk_norm"]) <= kTolerance);
}

TEST_CASE("AIM's attention probe gives apple/ml-aim's x_cls and logits") {
  const Fixture f("aim");
  const auto vit = load(f, VitArch::Aim);
  const auto head = models::AttentionPoolingClassifier::load(f.weights.scope("head"), 64, 2);
  const models::VitTrace t = vit.forward(f["pixels"], {1, 2});
  const models::AimHeadOutput out = head.forward(models::average_layers(t.kept));
  CHECK(relative_error(out.x_cls, f["features"]) <= kTolerance);
  CHECK(relative_error(out.logits, f["logits"]) <= kTolerance);
}

TEST_CASE("AIM features at 48x40 use a sin-cos table for that grid") {
  const Fixture f("aim");
  check_blocks(f, load(f, VitArch::Aim), "alt.");
  models::VitFeatureOptions opt;
  opt.heads = 2;
  opt.layers = std::pair<int64_t, int64_t>{1, 2};
  const auto fx = models::VitFeatureExtractor::load(f.weights, VitArch::Aim, opt);
  CHECK(relative_error(fx.features(f["alt.pixels"]), f["alt.features"]) <= kTolerance);
}

TEST_CASE("CLIP embeddings and blocks match transformers") {
  const Fixture f("clip");
  const auto vit = load(f, VitArch::Clip);
  CHECK(relative_error(vit.embed(f["pixels"]), f["embeddings"]) <= kTolerance);
  check_blocks(f, vit);
}

TEST_CASE("CLIP's pooled output and image embeddings match transformers") {
  const Fixture f("clip");
  models::VitFeatureOptions opt;
  opt.heads = 2;
  CHECK(relative_error(models::VitFeatureExtractor::load(f.weights, VitArch::Clip, opt).features(f["pixels"]), f["pooled"]) <= kTolerance);
  opt.project = true;
  CHECK(relative_error(models::VitFeatureExtractor::load(f.weights, VitArch::Clip, opt).features(f["pixels"]), f["image_embeds"]) <= kTolerance);
}

TEST_CASE("a CLIP checkpoint without the vision_model prefix (transformers 5's CLIPVisionModel) reads the same") {
  const Fixture f("clip");
  const SafetensorsFile src(kDir + "clip.safetensors");
  std::vector<std::pair<std::string, Tensor>> bare;
  for (const auto& name : src.names())
    if (name.starts_with("vision_model.")) bare.emplace_back(name.substr(13), src.get(name));
  const std::string path = (std::filesystem::temp_directory_path() / "genscope-test-clip-bare.safetensors").string();
  save_safetensors(path, bare);
  models::VitFeatureOptions opt;
  opt.heads = 2;
  const Tensor pooled = models::VitFeatureExtractor::load(nn::Weights::open(path), VitArch::Clip, opt).features(f["pixels"]);
  std::filesystem::remove(path);
  CHECK(relative_error(pooled, f["pooled"]) <= kTolerance);
}

TEST_CASE("SPAI's ViT blocks match timm's BEiT with q and v biases") {
  const Fixture f("spai-vit");
  check_blocks(f, load(f, VitArch::SpaiVit));
}

TEST_CASE("SPAI's ViT returns every block without the class token") {
  const Fixture f("spai-vit");
  const auto vit = load(f, VitArch::SpaiVit);
  const models::VitTrace t = vit.forward(f["pixels"], {0, 1, 2});
  const Tensor expected = f["features"];  // [2, 3, 16, 64]
  for (int64_t i = 0; i < 3; ++i) CHECK(relative_error(t.kept[static_cast<size_t>(i)].slice(1, 1, 17).contiguous(), expected.select(1, i).contiguous()) <= kTolerance);
}

TEST_CASE("timm ViT blocks, features, pre-logits and logits match timm") {
  const Fixture f("timm-vit");
  const auto vit = load(f, VitArch::TimmVit);
  check_blocks(f, vit);
  CHECK(relative_error(vit.final_norm.forward(vit.forward(f["pixels"]).last), f["features"]) <= kTolerance);
  models::VitFeatureOptions opt;
  opt.heads = 2;
  const Tensor pooled = models::VitFeatureExtractor::load(f.weights, VitArch::TimmVit, opt).features(f["pixels"]);
  CHECK(relative_error(pooled, f["pooled"]) <= kTolerance);
  const auto head = nn::Linear::load(f.weights.scope("head"), 64, 5);
  CHECK(relative_error(head.forward(pooled), f["logits"]) <= kTolerance);
}

TEST_CASE("timm ViT at 48x40 resamples its position table as timm does") {
  const Fixture f("timm-vit");
  const auto vit = load(f, VitArch::TimmVit);
  check_blocks(f, vit, "alt.");
  CHECK(relative_error(vit.final_norm.forward(vit.forward(f["alt.pixels"]).last), f["alt.features"]) <= kTolerance);
}

TEST_CASE("timm ViT at 24x16 shrinks its position table with antialiasing as timm does") {
  const Fixture f("timm-vit");
  const auto vit = load(f, VitArch::TimmVit);
  check_blocks(f, vit, "small.");
  CHECK(relative_error(vit.final_norm.forward(vit.forward(f["small.pixels"]).last), f["small.features"]) <= kTolerance);
}

}  // TEST_SUITE("parity")

TEST_SUITE("crop") {

TEST_CASE("the seeded generator draws what CPython's random.seed and randint draw") {
  const SafetensorsFile f(kDir + "crop_expected.safetensors");
  const Tensor image = f.get("image");
  for (const uint64_t seed : {uint64_t{0}, uint64_t{12345678901}}) {
    CAPTURE(seed);
    const Tensor expected = f.get("seed" + std::to_string(seed) + ".windows");
    const auto windows = texture_candidates(image, 224, 192, seed);
    REQUIRE(windows.size() == 192);
    for (int64_t i = 0; i < 192; ++i) {
      CHECK(windows[static_cast<size_t>(i)].top == expected.item({i, 0}));
      CHECK(windows[static_cast<size_t>(i)].left == expected.item({i, 1}));
    }
  }
}

TEST_CASE("each window's score is UAR's summed absolute neighbour differences") {
  const SafetensorsFile f(kDir + "crop_expected.safetensors");
  const auto windows = texture_candidates(f.get("image"), 224, 192, 0);
  const Tensor expected = f.get("seed0.windows");
  for (int64_t i = 0; i < 192; ++i) CHECK(windows[static_cast<size_t>(i)].score == expected.item({i, 2}));
}

TEST_CASE("the score of a tiny window counts all four directions over every channel") {
  // 2 x 2 x 2 window: pixels (channel 0) 0 1 / 3 7, channel 1 all 5. Horizontal |0−1| + |3−7| = 5,
  // vertical |0−3| + |1−7| = 9, diagonal |0−7| = 7, anti-diagonal |3−1| = 2: 23.
  Tensor img = Tensor::zeros({2, 2, 2}, DType::U8);
  const uint8_t c0[4] = {0, 1, 3, 7};
  for (int i = 0; i < 4; ++i) {
    img.data<uint8_t>()[i * 2] = c0[i];
    img.data<uint8_t>()[i * 2 + 1] = 5;
  }
  CHECK(texture_score(img, 0, 0, 2) == 23);
}

TEST_CASE("the crop keeps the window UAR keeps") {
  const SafetensorsFile f(kDir + "crop_expected.safetensors");
  const Tensor image = f.get("image");
  for (const uint64_t seed : {uint64_t{0}, uint64_t{12345678901}}) {
    CAPTURE(seed);
    const std::string s = "seed" + std::to_string(seed);
    const int64_t best = static_cast<int64_t>(f.get(s + ".best").item({0}));
    const int64_t top = static_cast<int64_t>(f.get(s + ".windows").item({best, 0})), left = static_cast<int64_t>(f.get(s + ".windows").item({best, 1}));
    const Tensor crop = rich_texture_crop(image, seed);
    REQUIRE(crop.shape() == Shape{224, 224, 3});
    const Tensor want = image.slice(0, top, top + 224).slice(1, left, left + 224).contiguous();
    CHECK(std::memcmp(crop.data_ptr(), want.data_ptr(), want.nbytes()) == 0);
  }
}

TEST_CASE("an image with a side under 224 is resized to 224 x 224 with PIL's bilinear filter") {
  const SafetensorsFile f(kDir + "crop_expected.safetensors");
  const Tensor crop = rich_texture_crop(f.get("small.image"), 0);
  const Tensor want = f.get("small.resized");
  REQUIRE(crop.shape() == want.shape());
  CHECK(std::memcmp(crop.data_ptr(), want.data_ptr(), want.nbytes()) == 0);
}

}  // TEST_SUITE("crop")
