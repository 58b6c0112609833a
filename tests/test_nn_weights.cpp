// Tests of nn/weights.hpp: scoped key lookup and the errors a wrong checkpoint produces.
// The checkpoint is written here with known names and shapes; expected keys follow from the
// joining rule (prefix "." name), stated in the header.
#include <doctest/doctest.h>

#include <string>

#include "genscope/nn/weights.hpp"
#include "support.hpp"

using namespace genscope;

namespace {

struct Checkpoint {
  test::TempDir dir{"genscope-weights"};
  std::string path = dir.file("model.safetensors");
  Checkpoint() {
    Tensor w = Tensor::zeros({4, 3}, DType::F32);
    w.data<float>()[5] = 2.5f;
    save_safetensors(path, {{"blocks.0.attn.qkv.weight", w}, {"blocks.0.attn.qkv.bias", Tensor::zeros({4}, DType::F32)},
                            {"norm.weight", Tensor::zeros({3}, DType::F16)}});
  }
};

std::string message_of(auto&& fn) { return test::message_of<FormatError>(fn, "(no FormatError)"); }

}  // namespace

TEST_SUITE("nn") {

TEST_CASE("nested scopes join their names with dots") {
  Checkpoint c;
  const nn::Weights qkv = nn::Weights::open(c.path).scope("blocks.0").scope("attn").scope("qkv");
  CHECK(qkv.key("weight") == "blocks.0.attn.qkv.weight");
  CHECK(qkv.has("bias"));
  CHECK(qkv.get("weight", {4, 3}).item({1, 2}) == 2.5);
}

TEST_CASE("an empty scope name leaves the scope unchanged") {
  Checkpoint c;
  const nn::Weights w = nn::Weights::open(c.path);
  CHECK(w.scope("").key("norm.weight") == "norm.weight");
  CHECK(w.scope("").get("norm.weight").dtype() == DType::F16);
}

TEST_CASE("a missing tensor is an error naming the file and the full key") {
  Checkpoint c;
  const nn::Weights blk = nn::Weights::open(c.path).scope("blocks.1");
  const std::string msg = message_of([&] { blk.get("attn.qkv.weight"); });
  CHECK(msg.find(c.path) != std::string::npos);
  CHECK(msg.find("'blocks.1.attn.qkv.weight'") != std::string::npos);
}

TEST_CASE("a tensor of the wrong shape is an error naming both shapes") {
  Checkpoint c;
  const nn::Weights w = nn::Weights::open(c.path);
  const std::string msg = message_of([&] { w.get("blocks.0.attn.qkv.weight", {3, 4}); });
  CHECK(msg.find("blocks.0.attn.qkv.weight") != std::string::npos);
  CHECK(msg.find("[4, 3]") != std::string::npos);
  CHECK(msg.find("[3, 4]") != std::string::npos);
}

TEST_CASE("an optional tensor that is absent comes back undefined") {
  Checkpoint c;
  const nn::Weights w = nn::Weights::open(c.path);
  CHECK_FALSE(w.get_optional("norm.bias").defined());
  CHECK(w.get_optional("norm.weight").defined());
}

}  // TEST_SUITE
