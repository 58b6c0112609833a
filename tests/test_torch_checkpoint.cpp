// Tests of the PyTorch checkpoint reader (io/zip.hpp, io/pickle.hpp, io/torch_checkpoint.hpp,
// io/checkpoint_layouts.hpp) and of `genscope convert`.
//
// Suites:
//   parity            — checkpoints written by the real torch.save (tools/reference/
//                       make_torch_fixtures.py) against tests/data/torch/expected.txt, which lists
//                       every tensor's bytes independently of any pickle;
//   torch_checkpoint  — malformed, hostile and hand-built inputs (pickles and zips assembled here
//                       byte by byte from pickletools' and APPNOTE's definitions), and the CLI;
//   shared            — UAR's released linear head from ../shared/data, converted bit-exactly.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "genscope/io/checkpoint_layouts.hpp"
#include "genscope/io/pickle.hpp"
#include "genscope/io/safetensors.hpp"
#include "genscope/io/torch_checkpoint.hpp"
#include "genscope/io/zip.hpp"
#include "support.hpp"

using namespace genscope;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

const std::string kTorchData = std::string(GENSCOPE_TEST_DATA) + "/torch/";

std::span<const uint8_t> span_of(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

// The bytes of a tensor, contiguous, as genscope holds them.
std::string tensor_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

const StateDictEntry* find_entry(const StateDict& sd, const std::string& name) {
  for (const auto& e : sd.entries)
    if (e.name == name) return &e;
  return nullptr;
}

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("genscope-torch") {}
};

// ---- byte builders ----------------------------------------------------------------------------

void le(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A stored zip archive, optionally with every ZIP64 record (APPNOTE 4.3.14-4.3.15, 4.5.3).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& members, bool zip64 = false) {
  std::string out, cd;
  for (const auto& [name, data] : members) {
    const uint64_t offset = out.size();
    const uint32_t crc = zip_detail::crc32(span_of(data));
    const uint32_t size32 = zip64 ? 0xFFFFFFFFu : static_cast<uint32_t>(data.size());
    std::string local_extra;
    if (zip64) {
      le(local_extra, 1, 2);
      le(local_extra, 16, 2);
      le(local_extra, data.size(), 8);
      le(local_extra, data.size(), 8);
    }
    le(out, 0x04034b50, 4);
    le(out, zip64 ? 45 : 20, 2);
    le(out, 0, 2);
    le(out, 0, 2);  // stored
    le(out, 0, 4);  // time, date
    le(out, crc, 4);
    le(out, size32, 4);
    le(out, size32, 4);
    le(out, name.size(), 2);
    le(out, local_extra.size(), 2);
    out += name + local_extra + data;
    std::string extra;
    if (zip64) {
      le(extra, 1, 2);
      le(extra, 24, 2);
      le(extra, data.size(), 8);
      le(extra, data.size(), 8);
      le(extra, offset, 8);
    }
    le(cd, 0x02014b50, 4);
    le(cd, 45, 2);
    le(cd, zip64 ? 45 : 20, 2);
    le(cd, 0, 2);
    le(cd, 0, 2);
    le(cd, 0, 4);
    le(cd, crc, 4);
    le(cd, size32, 4);
    le(cd, size32, 4);
    le(cd, name.size(), 2);
    le(cd, extra.size(), 2);
    le(cd, 0, 2);  // comment
    le(cd, 0, 2);  // disk
    le(cd, 0, 2);
    le(cd, 0, 4);
    le(cd, zip64 ? 0xFFFFFFFFu : offset, 4);
    cd += name + extra;
  }
  const uint64_t cd_offset = out.size();
  out += cd;
  if (zip64) {
    const uint64_t z = out.size();
    le(out, 0x06064b50, 4);
    le(out, 44, 8);
    le(out, 45, 2);
    le(out, 45, 2);
    le(out, 0, 4);
    le(out, 0, 4);
    le(out, members.size(), 8);
    le(out, members.size(), 8);
    le(out, cd.size(), 8);
    le(out, cd_offset, 8);
    le(out, 0x07064b50, 4);
    le(out, 0, 4);
    le(out, z, 8);
    le(out, 1, 4);
  }
  le(out, 0x06054b50, 4);
  le(out, 0, 4);
  le(out, zip64 ? 0xFFFF : members.size(), 2);
  le(out, zip64 ? 0xFFFF : members.size(), 2);
  le(out, zip64 ? 0xFFFFFFFFu : cd.size(), 4);
  le(out, zip64 ? 0xFFFFFFFFu : cd_offset, 4);
  le(out, 0, 2);
  return out;
}

// A pickle assembled opcode by opcode (Lib/pickletools.py names).
struct P {
  std::string s = "\x80\x02";
  P& op(const std::string& o) { s += o; return *this; }
  P& str(const std::string& v) {  // BINUNICODE
    s += 'X';
    le(s, v.size(), 4);
    s += v;
    return *this;
  }
  P& i1(int v) { s += 'K'; s.push_back(static_cast<char>(v)); return *this; }
  P& global(const std::string& m, const std::string& n) { s += "c" + m + "\n" + n + "\n"; return *this; }
  // torch._utils._rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())
  P& tensor(const std::string& cls, const std::string& key, int numel, int offset, std::vector<int> size, std::vector<int> stride) {
    global("torch._utils", "_rebuild_tensor_v2");
    op("(");
    op("(").str("storage").global("torch", cls).str(key).str("cpu").i1(numel).op("t").op("Q");
    i1(offset);
    op("(");
    for (int v : size) i1(v);
    op("t(");
    for (int v : stride) i1(v);
    op("t\x89");
    global("collections", "OrderedDict").op(")R");
    return op("tR");
  }
  std::string done() { return s + "."; }
};

std::string floats(std::initializer_list<float> v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), std::data(v), s.size());
  return s;
}

// A torch zip checkpoint with a hand-written data.pkl and storages.
std::string torch_zip(const std::string& pkl, const std::vector<std::pair<std::string, std::string>>& storages, bool zip64 = false) {
  std::vector<std::pair<std::string, std::string>> m = {{"archive/data.pkl", pkl}, {"archive/byteorder", "little"}};
  for (const auto& [k, v] : storages) m.emplace_back("archive/data/" + k, v);
  return make_zip(m, zip64);
}

pickle::Node* load_pickle(pickle::Arena& a, const std::string& bytes) { return pickle::load(a, span_of(bytes), "test.pkl").value; }

// ---- CLI ----

// genscope ARGS, run in the folder CWD.
test::CommandResult cli(const std::string& args, const std::string& cwd) {
  return test::run_command("cd '" + cwd + "' && " + std::string(GENSCOPE_CLI) + " " + args);
}

bool have_cli() { return std::string(GENSCOPE_CLI).size() > 0; }

}  // namespace

// =================================================================================================
TEST_SUITE("parity") {
  TEST_CASE("every tensor of every torch fixture matches expected.txt") {
    std::istringstream lines(test::read_file(kTorchData + "expected.txt", /*must_exist=*/true));
    std::map<std::string, std::unique_ptr<TorchCheckpoint>> files;
    std::map<std::string, StateDict> dicts;
    std::string line;
    int checked = 0;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string field;
      while (std::getline(ss, field, '\t')) f.push_back(field);
      if (f.size() == 4) f.push_back("");  // empty tensor: no hex
      REQUIRE(f.size() == 5);
      const std::string& fixture = f[0];
      if (!files.count(fixture)) {
        files[fixture] = std::make_unique<TorchCheckpoint>(TorchCheckpoint::open(kTorchData + fixture));
        dicts[fixture] = files[fixture]->state_dict();
      }
      CAPTURE(fixture);
      CAPTURE(f[1]);
      const StateDictEntry* e = find_entry(dicts[fixture], f[1]);
      REQUIRE(e != nullptr);
      REQUIRE(e->tensor != nullptr);
      const Tensor t = files[fixture]->tensor(e->tensor, e->name);
      CHECK(dtype_name(t.dtype()) == f[2]);
      std::string shape;
      for (int d = 0; d < t.dim(); ++d) shape += (d ? "," : "") + std::to_string(t.size(d));
      CHECK(shape == f[3]);
      CHECK(tensor_bytes(t) == unhex(f[4]));
      ++checked;
    }
    CHECK(checked >= 79);
  }

  TEST_CASE("zip format: stored tensors are zero-copy views sharing the mapping") {
    auto ck = TorchCheckpoint::open(kTorchData + "zip_views.pt");
    CHECK(ck.format() == TorchFormat::Zip);
    CHECK(ck.archive_prefix() == "zip_views");
    const StateDict sd = ck.state_dict();
    const Tensor base = ck.tensor(find_entry(sd, "base")->tensor);
    const Tensor tr = ck.tensor(find_entry(sd, "transposed")->tensor);
    const Tensor off = ck.tensor(find_entry(sd, "offset")->tensor);
    CHECK_FALSE(base.storage()->owns_memory());
    CHECK(base.storage()->data() == tr.storage()->data());  // one storage, two views
    CHECK(tr.strides() == Shape{1, 6});
    CHECK_FALSE(tr.is_contiguous());
    CHECK(off.offset() == 8);
    CHECK(off.strides() == Shape{6, 1});
    CHECK(off.item({1, 2}) == 16.0);
    CHECK(reinterpret_cast<uintptr_t>(base.data_ptr()) % 64 == 0);  // torch aligns records to 64 bytes
  }

  TEST_CASE("legacy format: magic, sys_info, object, keys, storages") {
    auto ck = TorchCheckpoint::open(kTorchData + "legacy_views.pt");
    CHECK(ck.format() == TorchFormat::Legacy);
    CHECK(ck.little_endian());
    const StateDict sd = ck.state_dict();
    const Tensor tr = ck.tensor(find_entry(sd, "transposed")->tensor);
    CHECK(tr.item({5, 3}) == 23.0);
    CHECK(ck.tensor(find_entry(sd, "row")->tensor).item({0}) == 12.0);
  }

  TEST_CASE("nested training checkpoint: state_dict found, Parameter, placeholders reported") {
    for (const char* name : {"zip_nested.pt", "legacy_nested.pt"}) {
      CAPTURE(name);
      auto ck = TorchCheckpoint::open(kTorchData + name);
      const StateDict sd = ck.state_dict();
      CHECK(sd.source == "'state_dict'");
      REQUIRE(sd.entries.size() == 4);
      CHECK(sd.entries[0].name == "module.conv.weight");
      CHECK(sd.entries[0].tensor->tensor->parameter);
      const auto& u = ck.unknown_globals();
      CHECK(std::find(u.begin(), u.end(), "argparse.Namespace") != u.end());
      CHECK(std::find(u.begin(), u.end(), "__main__.UserThing") != u.end());
      std::map<std::string, std::string> ignored(sd.ignored.begin(), sd.ignored.end());
      CHECK(ignored["epoch"] == "int");
      CHECK(ignored["args"] == "argparse.Namespace object");
      CHECK(ignored["user"] == "__main__.UserThing object");
      CHECK(ignored.count("optimizer") == 1);
      const Tensor fc = ck.tensor(find_entry(sd, "module.fc.weight")->tensor);
      CHECK(fc.shape() == Shape{3, 2});
    }
  }

  TEST_CASE("a whole pickled nn.Module is flattened like Module.state_dict()") {
    auto ck = TorchCheckpoint::open(kTorchData + "zip_module.pt");
    const StateDict sd = ck.state_dict();
    std::vector<std::string> names;
    for (const auto& e : sd.entries)
      if (e.tensor) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                            "1.num_batches_tracked"});
  }

  TEST_CASE("SPAI checkpoint: yacs CfgNode is an inert placeholder, state dict under 'model'") {
    auto ck = TorchCheckpoint::open(kTorchData + "spai.pth");
    const auto& u = ck.unknown_globals();
    CHECK(std::find(u.begin(), u.end(), "yacs.config.CfgNode") != u.end());
    const StateDict sd = ck.state_dict({}, layout_spec(CheckpointLayout::Spai).state_dict_keys);
    CHECK(sd.source == "'model'");
    CHECK(sd.tensor_count() == 2);
  }

  TEST_CASE("deflated archive and big-endian byte order") {
    auto a = TorchCheckpoint::open(kTorchData + "zip_deflated.pt");
    auto b = TorchCheckpoint::open(kTorchData + "zip_dtypes.pt");
    const StateDict sa = a.state_dict(), sb = b.state_dict();
    REQUIRE(sa.entries.size() == sb.entries.size());
    for (size_t i = 0; i < sa.entries.size(); ++i)
      CHECK(tensor_bytes(a.tensor(sa.entries[i].tensor)) == tensor_bytes(b.tensor(sb.entries[i].tensor)));
    auto be = TorchCheckpoint::open(kTorchData + "zip_bigendian.pt");
    CHECK_FALSE(be.little_endian());
    const Tensor w = be.tensor(be.state_dict().entries.at(0).tensor);
    CHECK(w.item({0, 2}) == 3.25);
    CHECK(w.item({1, 2}) == -0.5);
  }

  TEST_CASE("inflate matches the stored copy for stored, fixed and dynamic deflate blocks") {
    const std::string bytes = test::read_file(kTorchData + "inflate_vectors.zip", /*must_exist=*/true);
    ZipArchive z(span_of(bytes), "inflate_vectors.zip");
    int n = 0;
    for (const auto& e : z.entries()) {
      if (e.method != 8) continue;
      CAPTURE(e.name);
      const std::string base = e.name.substr(0, e.name.find('.'));
      const auto ref = z.stored_span(z.at(base + ".stored"));
      const auto got = z.read(e);
      CHECK(std::equal(got.begin(), got.end(), ref.begin(), ref.end()));
      ++n;
    }
    CHECK(n == 15);
  }

  TEST_CASE("inflate: stored blocks after Huffman blocks (zlib sync/full flush)") {
    // zlib.compressobj(9, DEFLATED, -15): "hello hello hello hello genscope", Z_SYNC_FLUSH (an
    // empty stored block after a Huffman block), bytes(range(40))*2, Z_FULL_FLUSH, "end".
    const std::string stream = unhex(
        "ca48cdc9c957c8c020d353f38a93f30b5201000000ffff6260646266616563e7e0e4e2e6e1e5e317101412161115139790949296919593575054525651555327561d000000ffff4bcd4b0100");
    std::string expected = "hello hello hello hello genscope";
    for (int r = 0; r < 2; ++r)
      for (int i = 0; i < 40; ++i) expected.push_back(static_cast<char>(i));
    expected += "end";
    const auto out = inflate_raw(span_of(stream), expected.size(), "flush");
    CHECK(std::string(out.begin(), out.end()) == expected);
    CHECK_THROWS_AS(inflate_raw(span_of(stream), expected.size() - 1, "short"), FormatError);
    CHECK_THROWS_AS(inflate_raw(span_of(stream.substr(0, 30)), expected.size(), "cut"), FormatError);
  }

  TEST_CASE("convert: layouts on real torch files") {
    // sd-vae takes first_stage_model.* from a full SD .ckpt and strips the prefix.
    auto sd = TorchCheckpoint::open(kTorchData + "sd_full.ckpt");
    const StateDict d = sd.state_dict({}, layout_spec(CheckpointLayout::SdVae).state_dict_keys);
    std::vector<std::string> names;
    for (const auto& e : d.entries) names.push_back(e.name);
    const LayoutResult vae = apply_layout(CheckpointLayout::SdVae, names, "sd_full.ckpt");
    REQUIRE(vae.kept.size() == 3);
    CHECK(vae.kept[0].first == "encoder.conv_in.weight");
    CHECK(vae.kept[2].first == "quant_conv.weight");
    CHECK(vae.dropped.size() == 4);
    const LayoutResult unet = apply_layout(CheckpointLayout::SdUnet, names, "sd_full.ckpt");
    REQUIRE(unet.kept.size() == 2);
    CHECK(unet.kept[0].first == "input_blocks.0.0.weight");
    CHECK_THROWS_AS(apply_layout(CheckpointLayout::Clip, names, "sd_full.ckpt"), FormatError);
    // auto strips module. from the DataParallel state dict.
    auto nested = TorchCheckpoint::open(kTorchData + "zip_nested.pt");
    names.clear();
    for (const auto& e : nested.state_dict().entries) names.push_back(e.name);
    const LayoutResult a = apply_layout(CheckpointLayout::Auto, names, "zip_nested.pt");
    CHECK(a.kept[0].first == "conv.weight");
  }
}

// =================================================================================================
TEST_SUITE("torch_checkpoint") {
  TEST_CASE("malicious pickles are refused with SecurityError") {
    for (const char* name : {"malicious_os_system.pt", "malicious_legacy.pt", "malicious_subprocess.pt", "malicious_exec.pt"}) {
      CAPTURE(name);
      CHECK_THROWS_AS(TorchCheckpoint::open(kTorchData + name), SecurityError);
      try {
        TorchCheckpoint::open(kTorchData + name);
      } catch (const SecurityError& e) {
        CHECK(std::string(e.what()).find(name) != std::string::npos);  // names the file
      }
    }
  }

  TEST_CASE("security policy: forbidden globals by GLOBAL, STACK_GLOBAL and INST") {
    pickle::Arena a;
    for (const auto& mn : std::vector<std::pair<std::string, std::string>>{
             {"os", "system"}, {"posix", "system"}, {"nt", "system"}, {"subprocess", "Popen"}, {"sys", "exit"},
             {"builtins", "eval"}, {"builtins", "exec"}, {"builtins", "getattr"}, {"builtins", "__import__"},
             {"__builtin__", "open"}, {"shutil", "rmtree"}, {"socket", "socket"}, {"importlib", "import_module"},
             {"pickle", "loads"}, {"marshal", "loads"}, {"runpy", "run_path"}, {"pty", "spawn"}, {"os.path", "join"}}) {
      const std::string& m = mn.first;  // (not a structured binding: clang 14 cannot capture those)
      const std::string& n = mn.second;
      CAPTURE(m);
      CAPTURE(n);
      CHECK_THROWS_AS(load_pickle(a, P().global(m, n).done()), SecurityError);
      CHECK_THROWS_AS(load_pickle(a, P().str(m).str(n).op("\x93").done()), SecurityError);
      CHECK_THROWS_AS(load_pickle(a, P().op("(i" + m + "\n" + n + "\n").done()), SecurityError);
    }
    // Refused at the opcode: nothing after it (here, garbage) is even parsed.
    CHECK_THROWS_AS(load_pickle(a, P().global("os", "system").op("\xff\xff").done()), SecurityError);
    // Safe builtins and unknown globals are fine.
    pickle::Node* s = load_pickle(a, P().global("builtins", "set").op("(](").i1(1).i1(2).op("etR").done());
    CHECK(s->kind == pickle::Kind::Set);
    pickle::Node* o = load_pickle(a, P().global("mypkg.models", "Net").op(")\x81}").str("k").i1(3).op("sb").done());
    CHECK(o->kind == pickle::Kind::Object);
    CHECK(o->state->get("k")->i == 3);
  }

  TEST_CASE("pickle machine: scalars, containers, memo, protocols 0-5") {
    pickle::Arena a;
    // protocol 4 with FRAME, MEMOIZE, SHORT_BINUNICODE, BININT, LONG1, BINFLOAT, NEWTRUE, tuple, dict
    std::string p = "\x80\x04\x95";
    std::string body = "}\x94(\x8c\x01""a\x94J\xff\xff\xff\xff\x8c\x01""b\x8a\x05\x00\x00\x00\x00\x80\x8c\x01""c"
                       "G\x3f\xf8\x00\x00\x00\x00\x00\x00\x8c\x01""d\x88K\x01\x86\x94\x8c\x01""e]\x94(h\x02h\x01""eu."s;
    le(p, body.size(), 8);
    p += body;
    pickle::Node* d = load_pickle(a, p);
    REQUIRE(d->kind == pickle::Kind::Dict);
    CHECK(d->get("a")->i == -1);
    CHECK(d->get("b")->i == -(int64_t{1} << 39));  // 5-byte LONG1, sign-extended
    CHECK(d->get("c")->f == 1.5);
    CHECK(d->get("d")->kind == pickle::Kind::Tuple);
    CHECK(d->get("e")->items.size() == 2);
    CHECK(d->get("e")->items[1]->s == "a");  // memo 1 is the key 'a'
    // LONG1 up to 8 bytes is an int, sign-extended.
    CHECK(load_pickle(a, P().op(std::string("\x8a\x02\x00\x80", 4)).done())->i == -32768);
    CHECK(load_pickle(a, P().op(std::string("\x8a\x01\x7f", 3)).done())->i == 127);
    // protocol 0 text opcodes
    pickle::Node* t = load_pickle(a, "(dp0\nS'x\\n'\np1\nI42\nsVcaf\\u00e9\np2\n(lp3\nL123L\naF2.5\nas.");
    CHECK(t->get("x\n")->i == 42);
    REQUIRE(t->get("caf\xc3\xa9") != nullptr);
    CHECK(t->get("caf\xc3\xa9")->items.size() == 2);
    CHECK(load_pickle(a, "I01\n.")->b);
    // protocol 2 bytes: _codecs.encode(str, 'latin1')
    pickle::Node* b = load_pickle(a, P().global("_codecs", "encode").str("\xc3\xbf\x01").str("latin1").op("\x86R").done());
    CHECK(b->kind == pickle::Kind::Bytes);
    CHECK(b->s == std::string("\xff\x01"));
    // OrderedDict via REDUCE + SETITEMS keeps order and non-string keys
    pickle::Node* od = load_pickle(a, P().global("collections", "OrderedDict").op(")R(").str("z").i1(1).i1(7).i1(2).op("u").done());
    REQUIRE(od->entries.size() == 2);
    CHECK(od->entries[1].first->i == 7);
  }

  TEST_CASE("pickle machine: malformed input is a FormatError with the offset") {
    pickle::Arena a;
    const std::vector<std::string> bad = {
        "",                              // no STOP
        "\x80\x02",                      // no STOP
        "\x80\x09N.",                    // protocol 9
        "X\xff\xff\xff\x7f" "abc.",      // string longer than the input
        "\x8a\x10\x01.",                 // LONG1 past the end
        "h\x05.",                        // memo key never defined
        "a.",                            // APPEND on empty stack
        "NN.",                           // two values at STOP
        "(N.",                           // MARK left at STOP
        "N}a.",                          // APPEND to a dict
        "Q.",                            // BINPERSID without a loader
        "\x82\x01.",                     // EXT1
        "\xfe.",                         // unknown opcode
        "cfoo\n",                        // unterminated GLOBAL
        "\x8c\x01" "a\x8c\x01" "b\x86\x93.",  // STACK_GLOBAL of a tuple
        "N\x85\x85R.",                  // REDUCE with a non-tuple argument list
    };
    for (size_t i = 0; i < bad.size(); ++i) {
      CAPTURE(i);
      CHECK_THROWS_AS(load_pickle(a, bad[i]), FormatError);
    }
    try {
      load_pickle(a, "NNh\x05.");
      FAIL("expected an error");
    } catch (const FormatError& e) {
      CHECK(std::string(e.what()).find("test.pkl: malformed pickle at byte 2") != std::string::npos);
    }
  }

  TEST_CASE("pickle machine: cycles and deep nesting do not recurse") {
    pickle::Arena a;
    // A list containing itself: ]q\0h\0a.
    pickle::Node* l = load_pickle(a, "\x80\x02]q\x00h\x00" "a."s);
    CHECK(l->items.at(0) == l);
    CHECK(pickle::describe(l) == "list (1 items)");
    // 200000 nested lists: built iteratively, freed flat by the arena.
    std::string deep = "\x80\x02";
    for (int i = 0; i < 200000; ++i) deep += "]";
    for (int i = 0; i < 199999; ++i) deep += "a";
    deep += ".";
    CHECK(load_pickle(a, deep)->kind == pickle::Kind::List);
    // A state dict whose dict contains itself is reported, not followed forever.
    pickle::Arena b;
    pickle::Node* d = load_pickle(b, "\x80\x02}q\x00(X\x01\x00\x00\x00sh\x00u."s);
    CHECK_THROWS_AS(find_state_dict(d, "x.pt", "", {}), FormatError);
  }

  TEST_CASE("hand-built torch zip: storages, views, bounds") {
    const std::string data = floats({1, 2, 3, 4, 5, 6});
    P p;
    p.op("}(").str("w").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
    p.str("t").tensor("FloatStorage", "0", 6, 1, {2, 2}, {1, 3}).op("u");
    for (bool zip64 : {false, true}) {
      CAPTURE(zip64);
      const std::string file = torch_zip(p.done(), {{"0", data}}, zip64);
      auto ck = TorchCheckpoint::from_memory(span_of(file), "hand.pt");
      const StateDict sd = ck.state_dict();
      REQUIRE(sd.entries.size() == 2);
      const Tensor t = ck.tensor(sd.entries[1].tensor);
      CHECK(t.item({0, 1}) == 5.0);
      CHECK(t.item({1, 0}) == 3.0);
    }
    // A view past the end of its storage.
    P over;
    over.op("}(").str("w").tensor("FloatStorage", "0", 6, 4, {2, 3}, {3, 1}).op("u");
    const std::string over_file = torch_zip(over.done(), {{"0", data}});  // must outlive the checkpoint
    auto ck = TorchCheckpoint::from_memory(span_of(over_file), "over.pt");
    CHECK_THROWS_AS(ck.tensor(ck.state_dict().entries[0].tensor), FormatError);
    // numel larger than the record.
    P big;
    big.op("}(").str("w").tensor("FloatStorage", "0", 60, 0, {2, 3}, {3, 1}).op("u");
    CHECK_THROWS_AS(TorchCheckpoint::from_memory(span_of(torch_zip(big.done(), {{"0", data}})), "big.pt"), FormatError);
    // Missing record.
    CHECK_THROWS_AS(TorchCheckpoint::from_memory(span_of(torch_zip(big.done(), {})), "missing.pt"), FormatError);
    // Complex storage: the tensor is refused, not the file.
    P cplx;
    cplx.op("}(").str("w").tensor("ComplexFloatStorage", "0", 3, 0, {3}, {1}).op("u");
    const std::string cplx_file = torch_zip(cplx.done(), {{"0", data}});
    auto cc = TorchCheckpoint::from_memory(span_of(cplx_file), "c.pt");
    CHECK_THROWS_WITH_AS(cc.tensor(cc.state_dict().entries[0].tensor), doctest::Contains("not supported by genscope"), FormatError);
  }

  TEST_CASE("zip reader: corruption is detected") {
    std::string file = test::read_file(kTorchData + "zip_dtypes.pt", /*must_exist=*/true);
    // CRC: flip one byte of the first storage record's data.
    {
      ZipArchive z(span_of(file), "x");
      const ZipEntry& e = z.at("zip_dtypes/data/0");
      std::string bad = file;
      bad[e.data_offset] ^= 0x55;
      auto ck = TorchCheckpoint::from_memory(span_of(bad), "crc.pt");
      const StateDict sd = ck.state_dict();
      bool thrown = false;
      for (const auto& en : sd.entries) {
        try {
          ck.tensor(en.tensor);
        } catch (const FormatError& err) {
          thrown = std::string(err.what()).find("CRC-32") != std::string::npos;
        }
      }
      CHECK(thrown);
    }
    CHECK_THROWS_AS(TorchCheckpoint::from_memory(span_of(file.substr(0, file.size() - 30)), "trunc.pt"), FormatError);
    CHECK_THROWS_AS(TorchCheckpoint::from_memory(span_of(std::string("PK\3\4garbage")), "g.pt"), FormatError);
    CHECK_THROWS_AS(TorchCheckpoint::from_memory(span_of(std::string("hello")), "h.pt"), FormatError);
    CHECK_THROWS_AS(TorchCheckpoint::open(kTorchData + "does-not-exist.pt"), IoError);
  }

  TEST_CASE("every truncation and many byte flips fail cleanly") {
    for (const char* name : {"zip_dtypes.pt", "legacy_dtypes.pt", "legacy_views.pt", "zip_deflated.pt"}) {
      CAPTURE(name);
      const std::string file = test::read_file(kTorchData + name, /*must_exist=*/true);
      auto exercise = [](const std::string& bytes) {
        try {
          auto ck = TorchCheckpoint::from_memory(span_of(bytes), "mut.pt");
          for (const auto& e : ck.state_dict().entries)
            if (e.tensor) (void)tensor_bytes(ck.tensor(e.tensor));
        } catch (const Error&) {
        }
      };
      for (size_t n = 0; n < file.size(); n += 7) exercise(file.substr(0, n));
      for (size_t i = 0; i < file.size(); i += 3) {
        std::string m = file;
        m[i] = static_cast<char>(m[i] ^ 0xA5);
        exercise(m);
      }
    }
  }

  TEST_CASE("state dict finding: --select, ambiguity, module. prefix") {
    pickle::Arena a;
    const std::string data = floats({1, 2});
    P p;
    p.op("}(").str("backbone").op("}(").str("w").tensor("FloatStorage", "0", 2, 0, {2}, {1}).op("u");
    p.str("head").op("}(").str("w").tensor("FloatStorage", "0", 2, 0, {2}, {1}).op("u").op("u");
    const std::string file = torch_zip(p.done(), {{"0", data}});
    auto ck = TorchCheckpoint::from_memory(span_of(file), "two.pt");
    CHECK_THROWS_WITH_AS(ck.state_dict(), doctest::Contains("choose one with --select"), FormatError);
    CHECK(ck.state_dict("head").entries.at(0).name == "w");
    CHECK(ck.state_dict("head/w").entries.at(0).name == "w");
    CHECK_THROWS_WITH_AS(ck.state_dict("tail"), doctest::Contains("keys: 'backbone'"), UsageError);
    // auto layout: module. removed only when every key has it
    auto r = apply_layout(CheckpointLayout::Auto, {"module.a", "module.b"}, "f");
    CHECK(r.kept[1].first == "b");
    r = apply_layout(CheckpointLayout::Auto, {"module.a", "b"}, "f");
    CHECK(r.kept[0].first == "module.a");
    r = apply_layout(CheckpointLayout::Auto, {"module._orig_mod.a"}, "f");
    CHECK(r.kept[0].first == "a");
  }

  TEST_CASE("convert CLI: exit codes, refused pickle leaves nothing, merge, layouts, dtype") {
    if (!have_cli()) {
      MESSAGE("GENSCOPE_CLI is empty: the genscope program was not built; skipping");
      return;
    }
    TempDir tmp;
    const std::string d = kTorchData;
    // refused pickle: exit 2, no output, the command it carries did not run
    for (const char* m : {"malicious_os_system.pt", "malicious_legacy.pt", "malicious_exec.pt", "malicious_subprocess.pt"}) {
      CAPTURE(m);
      const auto r = cli("convert --from " + d + m + " --to out.safetensors", tmp.path.string());
      CHECK(r.exit_code == 2);
      CHECK(r.output.find("refusing to load") != std::string::npos);
      CHECK_FALSE(fs::exists(tmp.file("out.safetensors")));
      CHECK_FALSE(fs::exists(tmp.file("genscope_pwned_marker")));
    }
    CHECK(cli("convert --from " + d + "zip_nested.pt --to o.safetensors --layout nope", tmp.path.string()).exit_code == 1);
    CHECK(cli("convert --to o.safetensors", tmp.path.string()).exit_code == 1);
    CHECK(cli("convert --from " + d + "zip_nested.pt --to o.safetensors --dtype f8", tmp.path.string()).exit_code == 1);
    CHECK(cli("convert --from " + d + "missing.pt --to o.safetensors", tmp.path.string()).exit_code == 2);
    CHECK_FALSE(fs::exists(tmp.file("o.safetensors")));

    auto r = cli("convert --from " + d + "zip_nested.pt --to nested.safetensors", tmp.path.string());
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("wrote nested.safetensors: 4 tensors, 112 bytes") != std::string::npos);
    CHECK(r.output.find("'args' (argparse.Namespace object)") != std::string::npos);
    {
      auto st = SafetensorsFile::open(tmp.file("nested.safetensors"));
      CHECK(st.names() == std::vector<std::string>{"conv.weight", "conv.bias", "bn.num_batches_tracked", "fc.weight"});
      auto ck = TorchCheckpoint::open(d + "zip_nested.pt");
      CHECK(tensor_bytes(st.get("fc.weight")) == tensor_bytes(ck.tensor(find_entry(ck.state_dict(), "module.fc.weight")->tensor)));
    }
    // AIM: backbone + head merged; an overlapping head is refused.
    r = cli("convert --layout aim --from " + d + "aim_backbone.pt --from " + d + "aim_head.pt --to aim.safetensors", tmp.path.string());
    CHECK(r.exit_code == 0);
    CHECK(SafetensorsFile::open(tmp.file("aim.safetensors")).names().size() == 4);
    r = cli("convert --from " + d + "aim_head.pt --from " + d + "aim_overlap.pt --to ov.safetensors", tmp.path.string());
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("overlapping") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp.file("ov.safetensors")));
    // sd-vae out of a full SD checkpoint, converted to f16
    r = cli("convert --layout sd-vae --dtype f16 --from " + d + "sd_full.ckpt --to vae.safetensors", tmp.path.string());
    CHECK(r.exit_code == 0);
    {
      auto st = SafetensorsFile::open(tmp.file("vae.safetensors"));
      CHECK(st.names() == std::vector<std::string>{"encoder.conv_in.weight", "decoder.conv_out.bias", "quant_conv.weight"});
      CHECK(st.info("quant_conv.weight").dtype_name == "F16");
    }
    // --select, and an f64 tensor stored as f32
    r = cli("convert --from " + d + "zip_dtypes.pt --to dt.safetensors", tmp.path.string());
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("stored 1 float64 tensors as f32") != std::string::npos);
    r = cli("convert --from " + d + "spai.pth --select model --to spai.safetensors", tmp.path.string());
    CHECK(r.exit_code == 0);
    CHECK(cli("convert --from " + d + "spai.pth --select nothing --to x.safetensors", tmp.path.string()).exit_code == 1);
  }
}

// =================================================================================================
TEST_SUITE("shared") {
  TEST_CASE("UAR linear head converts bit-exactly") {
    const std::string path = std::string(GENSCOPE_SHARED_DIR) + "/data/uar_linear_head.pth";
    REQUIRE_MESSAGE(fs::exists(path), "missing ", path, " (UAR's released head; the shared data folder beside the checkout)");
    auto ck = TorchCheckpoint::open(path);
    CHECK(ck.format() == TorchFormat::Zip);
    CHECK(ck.archive_prefix() == "epoch_0_model");
    const StateDict sd = ck.state_dict();
    REQUIRE(sd.entries.size() == 2);
    CHECK(sd.entries[0].name == "linear.weight");
    CHECK(sd.entries[1].name == "linear.bias");
    const Tensor w = ck.tensor(sd.entries[0].tensor), b = ck.tensor(sd.entries[1].tensor);
    CHECK(w.shape() == Shape{1, 3072});
    CHECK(b.shape() == Shape{1});
    CHECK(w.dtype() == DType::F32);
    CHECK_FALSE(w.storage()->owns_memory());  // zero-copy view of the mapping

    // The raw records, read by the zip reader alone.
    const std::string raw = test::read_file(path, /*must_exist=*/true);
    ZipArchive z(span_of(raw), path);
    const auto rw = z.stored_span(z.at("epoch_0_model/data/0"));
    const auto rb = z.stored_span(z.at("epoch_0_model/data/1"));

    TempDir tmp;
    const std::string out = tmp.file("uar_head.safetensors");
    save_safetensors(out, {{"linear.weight", w}, {"linear.bias", b}});
    auto st = SafetensorsFile::open(out);
    CHECK(tensor_bytes(st.get("linear.weight")) == std::string(reinterpret_cast<const char*>(rw.data()), rw.size()));
    CHECK(tensor_bytes(st.get("linear.bias")) == std::string(reinterpret_cast<const char*>(rb.data()), rb.size()));

    if (have_cli()) {
      const auto r = cli("convert --from " + path + " --to cli.safetensors", tmp.path.string());
      CHECK(r.exit_code == 0);
      auto c = SafetensorsFile::open(tmp.file("cli.safetensors"));
      CHECK(tensor_bytes(c.get("linear.weight")) == std::string(reinterpret_cast<const char*>(rw.data()), rw.size()));
      CHECK(tensor_bytes(c.get("linear.bias")) == std::string(reinterpret_cast<const char*>(rb.data()), rb.size()));
    }
  }
}
