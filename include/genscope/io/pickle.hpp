// genscope/io/pickle.hpp — a pickle machine that builds a value tree and executes nothing.
//
// PyTorch checkpoints are Python pickles. Loading one with Python's pickle runs whatever
// callables it names (the "__reduce__" attack: a checkpoint that calls os.system). This machine
// reads the same opcodes (Lib/pickletools.py documents every one; protocols 0 to 5) but never
// calls anything: a GLOBAL only produces a Global node naming (module, name), and REDUCE, NEWOBJ,
// INST, OBJ and BUILD only record what would have been called with what. A small whitelist of
// constructors whose meaning is plain data is "applied" instead, building the value they denote:
//
//   collections.OrderedDict(...)                      -> Dict
//   torch._utils._rebuild_tensor / _v2 / _v3          -> Tensor (storage, offset, size, stride)
//   torch._utils._rebuild_parameter(_with_state)      -> the Tensor, marked as a parameter
//   torch._tensor._rebuild_from_type_v2(f, type, a)   -> f(*a) when f is itself whitelisted
//   torch.Size(t), builtins.tuple/list/set/frozenset/dict, _codecs.encode(s, "latin1") (how
//   protocol 2 pickles bytes) -> the plain value
//
// Everything else becomes an opaque Object node (its callable, arguments and BUILD state kept
// for inspection) and is reported in unknown_globals(), so that a caller can skip it with a
// warning: a yacs CfgNode in SPAI checkpoints, an argparse.Namespace, numpy scalars, user
// classes. A GLOBAL naming a module that exists to run code (os, subprocess, sys, builtins'
// eval/exec/getattr/__import__, shutil, socket, importlib, pickle, marshal, runpy, pty, ...)
// is refused with a SecurityError at the opcode itself, before anything else happens: such a
// pickle has no legitimate reason to be in a checkpoint, and saying so is more useful than
// silently turning the attack into a placeholder.
//
// Nodes live in an Arena and point to each other with raw pointers: pickles can build cycles
// (a list containing itself through the memo) and arbitrarily deep nesting, which as a tree of
// shared_ptr would leak or overflow the stack on destruction. The Arena frees them flat. Code
// that walks the tree must bound its depth (kMaxWalkDepth) and not assume it is acyclic.
//
// Every read is bounds-checked against the input span; lengths are checked against the bytes
// that remain before anything is allocated; the memo, the stack and the node count are limited.
// Errors are FormatError / SecurityError naming `where` (the file, and the archive member) and
// the byte offset of the opcode.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope::pickle {

enum class Kind : uint8_t {
  None, Bool, Int, BigInt, Float, String, Bytes, List, Tuple, Dict, Set, Global, Object, Tensor, Storage
};

inline std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::BigInt: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Set: return "set";
    case Kind::Global: return "global";
    case Kind::Object: return "object";
    case Kind::Tensor: return "tensor";
    case Kind::Storage: return "storage";
  }
  return "?";
}

struct Node;

// What torch._utils._rebuild_tensor_v2 (and friends) would build: a strided view of a storage.
// Offset and strides count elements of the storage's dtype, as in torch.
struct TensorInfo {
  Node* storage = nullptr;       // Kind::Storage
  int64_t storage_offset = 0;
  std::vector<int64_t> shape, stride;
  bool requires_grad = false;
  bool parameter = false;        // came through _rebuild_parameter
  std::string dtype;             // _rebuild_tensor_v3 only: torch dtype name ("uint16"); else empty
};

// A storage as the checkpoint's persistent_load described it; the reader owning the bytes fills
// it in (the pickle itself never contains tensor data).
struct StorageInfo {
  std::string key;               // archive record name / legacy storage key
  std::string dtype;             // torch dtype name: "float32", "bfloat16", "uint8", ...
  int64_t numel = 0;             // elements of dtype
  std::string location;          // "cpu", "cuda:0", ...
  int64_t view_offset = 0;       // legacy view of a root storage: offset (elements) ...
  int64_t view_numel = -1;       // ... and length, or -1 for the whole storage
};

struct Node {
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                 // String/Bytes data; BigInt: little-endian two's complement; Global: module
  std::string s2;                // Global: name; BigInt from a text opcode: its decimal digits
  std::vector<Node*> items;      // List/Tuple/Set; Object: the arguments it was called with, then APPENDs
  std::vector<std::pair<Node*, Node*>> entries;  // Dict; Object: SETITEMs
  Node* callable = nullptr;      // Object: the Global (or other node) it was made from
  Node* state = nullptr;         // Object/Dict: the BUILD state (instance __dict__), if any
  std::unique_ptr<TensorInfo> tensor;
  std::unique_ptr<StorageInfo> storage;

  bool is_str() const { return kind == Kind::String; }
  bool is_int() const { return kind == Kind::Int; }
  std::string qualname() const { return s + "." + s2; }  // Global

  // Dict lookup by string key (linear; dicts in checkpoints are small or walked once).
  const Node* get(std::string_view key) const {
    if (kind != Kind::Dict) return nullptr;
    for (const auto& [k, v] : entries)
      if (k->kind == Kind::String && k->s == key) return v;
    return nullptr;
  }
};

// Owns every node of one or more pickles; freed without recursion.
class Arena {
 public:
  explicit Arena(size_t max_nodes = size_t{1} << 24) : max_nodes_(max_nodes) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  Node* make(Kind kind) {
    if (nodes_.size() >= max_nodes_) fail<FormatError>("pickle builds more than ", max_nodes_, " values");
    nodes_.emplace_back();
    nodes_.back().kind = kind;
    return &nodes_.back();
  }
  Node* none() { return none_ ? none_ : (none_ = make(Kind::None)); }
  Node* boolean(bool v) {
    Node*& n = v ? true_ : false_;
    if (!n) {
      n = make(Kind::Bool);
      n->b = v;
    }
    return n;
  }
  size_t size() const { return nodes_.size(); }

 private:
  std::deque<Node> nodes_;  // deque: stable addresses
  size_t max_nodes_;
  Node *none_ = nullptr, *true_ = nullptr, *false_ = nullptr;
};

constexpr int kMaxWalkDepth = 200;

// ---- the security policy ----------------------------------------------------------------------

// Modules whose callables run code, touch the system or load more pickles. Matched exactly and
// as a package prefix ("os" also refuses "os.path").
inline bool is_forbidden_module(std::string_view module) {
  static constexpr std::string_view kModules[] = {
      "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "_posixsubprocess", "sys", "shutil", "socket",
      "importlib", "pickle", "_pickle", "cPickle", "marshal", "runpy", "pty", "commands", "popen2", "ctypes",
      "code", "codeop", "multiprocessing", "pdb", "bdb", "webbrowser", "signal", "asyncio", "threading",
      "_thread", "ftplib", "http", "urllib", "smtplib", "telnetlib", "imp", "zipimport", "pkgutil", "site",
      "tempfile", "io", "_io", "glob", "pip", "setuptools", "dill", "joblib", "timeit", "trace", "cProfile",
      "profile"};
  for (std::string_view m : kModules)
    if (module == m || (module.size() > m.size() && module.substr(0, m.size()) == m && module[m.size()] == '.')) return true;
  return false;
}

// builtins is allowed only for the constructors of plain data (how protocol 2 pickles sets,
// and what some objects' __reduce__ return); eval, exec, getattr, __import__, open, compile,
// setattr, globals, ... are all refused.
inline bool is_safe_builtin(std::string_view name) {
  static constexpr std::string_view kSafe[] = {"set", "frozenset", "list", "dict", "tuple", "bytes", "bytearray",
                                               "int", "float", "complex", "bool", "str", "slice", "range",
                                               "object", "Ellipsis", "NotImplemented"};
  for (std::string_view s : kSafe)
    if (name == s) return true;
  return false;
}

// Throws SecurityError for a global this reader refuses to even name.
inline void check_global(std::string_view module, std::string_view name, const std::string& where) {
  if (module == "builtins" || module == "__builtin__" || module == "__builtins__") {
    if (!is_safe_builtin(name))
      fail<SecurityError>(where, ": refusing to load: the pickle references ", module, ".", name,
                          ", which would execute code (this file is not a plain checkpoint)");
    return;
  }
  if (is_forbidden_module(module))
    fail<SecurityError>(where, ": refusing to load: the pickle references ", module, ".", name,
                        ", which would execute code or touch the system (this file is not a plain checkpoint)");
  // operator.attrgetter/methodcaller turn any object into a call of any of its methods.
  if (module == "operator" && (name == "attrgetter" || name == "methodcaller"))
    fail<SecurityError>(where, ": refusing to load: the pickle references operator.", name, ", which would execute code");
}

// ---- the machine ------------------------------------------------------------------------------

struct Options {
  // BINPERSID / PERSID: turn a persistent id (torch: ('storage', StorageType, key, location,
  // numel[, view])) into a node. Without one, a persistent id is a FormatError.
  std::function<Node*(Arena&, Node* pid)> persistent_load;
  size_t max_memo = size_t{1} << 22;
  size_t max_stack = size_t{1} << 22;
};

struct Result {
  Node* value = nullptr;
  size_t end = 0;  // offset just past the STOP opcode
  std::vector<std::string> unknown_globals;  // "module.name" of every opaque object's callable, once each
};

class Machine {
 public:
  Machine(Arena& arena, std::span<const uint8_t> data, std::string where, const Options& options)
      : a_(arena), d_(data), where_(std::move(where)), opt_(options) {}

  Result run(size_t start = 0) {
    pos_ = start;
    for (;;) {
      if (pos_ >= d_.size()) bad("pickle ends without a STOP opcode");
      op_pos_ = pos_;
      const uint8_t op = d_[pos_++];
      if (op == '.') break;  // STOP
      step(op);
    }
    if (stack_.size() != 1 || !marks_.empty()) bad("STOP with ", stack_.size(), " values on the stack (expected 1)");
    Result r;
    r.value = stack_.back();
    r.end = pos_;
    r.unknown_globals = std::move(unknown_);
    return r;
  }

 private:
  template <class... A>
  [[noreturn]] void bad(A&&... args) const {
    fail<FormatError>(where_, ": malformed pickle at byte ", op_pos_, ": ", std::forward<A>(args)...);
  }

  // ---- input ----
  const uint8_t* take(size_t n) {
    if (n > d_.size() - pos_) bad("truncated (needs ", n, " more bytes, ", d_.size() - pos_, " remain)");
    const uint8_t* p = d_.data() + pos_;
    pos_ += n;
    return p;
  }
  uint64_t le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
    return v;
  }
  std::string_view line() {  // protocol 0 text arguments end with '\n'
    const size_t start = pos_;
    while (pos_ < d_.size() && d_[pos_] != '\n') ++pos_;
    if (pos_ >= d_.size()) bad("unterminated text argument");
    ++pos_;
    return {reinterpret_cast<const char*>(d_.data() + start), pos_ - 1 - start};
  }
  std::string bytes_of(uint64_t n) {
    if (n > d_.size() - pos_) bad("string of ", n, " bytes but only ", d_.size() - pos_, " remain");
    const uint8_t* p = take(static_cast<size_t>(n));
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }

  // ---- stack ----
  void push(Node* n) {
    if (stack_.size() >= opt_.max_stack) bad("stack exceeds ", opt_.max_stack, " values");
    stack_.push_back(n);
  }
  Node* pop() {
    if (stack_.size() <= floor()) bad("pop from an empty stack");
    Node* n = stack_.back();
    stack_.pop_back();
    return n;
  }
  Node* top() {
    if (stack_.size() <= floor()) bad("empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Node*> pop_mark() {  // everything above the topmost MARK, and the MARK
    if (marks_.empty()) bad("no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Node*> items(stack_.begin() + static_cast<ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  // ---- memo ----
  void memo_put(uint64_t index, Node* n) {
    if (memo_.size() >= opt_.max_memo && !memo_.count(index)) bad("memo exceeds ", opt_.max_memo, " entries");
    memo_[index] = n;
  }
  Node* memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) bad("memo key ", index, " is not defined");
    return it->second;
  }

  // ---- node makers ----
  Node* make_int(int64_t v) {
    Node* n = a_.make(Kind::Int);
    n->i = v;
    return n;
  }
  Node* make_str(Kind k, std::string s) {
    Node* n = a_.make(k);
    n->s = std::move(s);
    return n;
  }
  Node* make_seq(Kind k, std::vector<Node*> items) {
    Node* n = a_.make(k);
    n->items = std::move(items);
    return n;
  }
  // LONG1/LONG4: little-endian two's complement of n bytes.
  Node* make_long(const uint8_t* p, size_t n) {
    if (n <= 8) {
      uint64_t v = 0;
      for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
      if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
      return make_int(static_cast<int64_t>(v));
    }
    Node* b = a_.make(Kind::BigInt);
    b->s.assign(reinterpret_cast<const char*>(p), n);
    return b;
  }
  Node* make_global(std::string module, std::string name) {
    check_global(module, name, where_);
    Node* g = a_.make(Kind::Global);
    g->s = std::move(module);
    g->s2 = std::move(name);
    return g;
  }
  Node* make_object(Node* callable, std::vector<Node*> args) {
    Node* o = a_.make(Kind::Object);
    o->callable = callable;
    o->items = std::move(args);
    const std::string name = callable->kind == Kind::Global ? callable->qualname() : std::string("<") + std::string(kind_name(callable->kind)) + ">";
    if (seen_unknown_.insert(name).second) unknown_.push_back(name);
    return o;
  }

  static std::string latin1_to_utf8_bytes(const std::string& utf8, bool& ok) {
    // _codecs.encode(s, "latin1"): every code point of s (< 256) becomes one byte.
    std::string out;
    ok = true;
    for (size_t k = 0; k < utf8.size();) {
      const uint8_t c = static_cast<uint8_t>(utf8[k]);
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        k += 1;
      } else if ((c & 0xE0) == 0xC0 && k + 1 < utf8.size() && c <= 0xC3) {
        out.push_back(static_cast<char>(((c & 0x1F) << 6) | (static_cast<uint8_t>(utf8[k + 1]) & 0x3F)));
        k += 2;
      } else {
        ok = false;
        return out;
      }
    }
    return out;
  }

  int64_t int_arg(Node* n, const char* what) {
    if (n->kind == Kind::Int) return n->i;
    if (n->kind == Kind::Bool) return n->b;
    bad(what, " is a ", kind_name(n->kind), ", not an int");
  }
  std::vector<int64_t> ints_arg(Node* n, const char* what) {
    if (n->kind != Kind::Tuple && n->kind != Kind::List) bad(what, " is a ", kind_name(n->kind), ", not a tuple");
    std::vector<int64_t> v;
    v.reserve(n->items.size());
    for (Node* x : n->items) v.push_back(int_arg(x, what));
    return v;
  }

  Node* rebuild_tensor(const std::vector<Node*>& args, size_t min_args, bool v3) {
    if (args.size() < min_args) bad("tensor rebuild with ", args.size(), " arguments (expected at least ", min_args, ")");
    if (args[0]->kind != Kind::Storage) bad("tensor rebuild from a ", kind_name(args[0]->kind), ", not a storage");
    Node* t = a_.make(Kind::Tensor);
    t->tensor = std::make_unique<TensorInfo>();
    t->tensor->storage = args[0];
    t->tensor->storage_offset = int_arg(args[1], "storage offset");
    t->tensor->shape = ints_arg(args[2], "tensor size");
    t->tensor->stride = ints_arg(args[3], "tensor stride");
    if (t->tensor->shape.size() != t->tensor->stride.size()) bad("tensor size and stride differ in length");
    if (args.size() > 4) t->tensor->requires_grad = args[4]->kind == Kind::Bool && args[4]->b;
    if (v3) {
      if (args[6]->kind != Kind::Global || args[6]->s != "torch") bad("_rebuild_tensor_v3 dtype is not a torch dtype");
      t->tensor->dtype = args[6]->s2;
    }
    return t;
  }

  // REDUCE / NEWOBJ: apply a whitelisted constructor, or record an opaque object.
  Node* apply(Node* callable, std::vector<Node*> args) {
    if (callable->kind != Kind::Global) return make_object(callable, std::move(args));
    const std::string& m = callable->s;
    const std::string& n = callable->s2;
    if (m == "collections" && n == "OrderedDict") {
      Node* d = a_.make(Kind::Dict);
      if (!args.empty() && (args[0]->kind == Kind::List || args[0]->kind == Kind::Tuple))
        for (Node* pair : args[0]->items)
          if ((pair->kind == Kind::Tuple || pair->kind == Kind::List) && pair->items.size() == 2)
            d->entries.emplace_back(pair->items[0], pair->items[1]);
      return d;
    }
    if (m == "torch._utils") {
      if (n == "_rebuild_tensor") return rebuild_tensor(args, 4, false);
      if (n == "_rebuild_tensor_v2") return rebuild_tensor(args, 5, false);
      if (n == "_rebuild_tensor_v3") return rebuild_tensor(args, 7, true);
      if (n == "_rebuild_parameter" || n == "_rebuild_parameter_with_state") {
        if (args.empty() || args[0]->kind != Kind::Tensor) return make_object(callable, std::move(args));
        args[0]->tensor->parameter = true;
        if (args.size() > 1 && args[1]->kind == Kind::Bool) args[0]->tensor->requires_grad = args[1]->b;
        return args[0];
      }
    }
    if (m == "torch._tensor" && n == "_rebuild_from_type_v2" && args.size() >= 3 &&
        (args[2]->kind == Kind::Tuple || args[2]->kind == Kind::List)) {
      // (func, new_type, args, state): the subclass (torch.Tensor, nn.Parameter) does not change
      // the data; apply func when it is itself whitelisted.
      if (++apply_depth_ > 8) bad("nested _rebuild_from_type_v2");
      Node* r = apply(args[0], args[2]->items);
      --apply_depth_;
      return r;
    }
    if (m == "torch" && n == "Size" && args.size() == 1 && args[0]->kind == Kind::Tuple) return args[0];
    if (m == "_codecs" && n == "encode" && args.size() == 2 && args[0]->is_str() && args[1]->is_str()) {
      const std::string& enc = args[1]->s;
      if (enc == "latin1" || enc == "latin-1" || enc == "iso-8859-1") {
        bool ok = false;
        std::string raw = latin1_to_utf8_bytes(args[0]->s, ok);
        if (ok) return make_str(Kind::Bytes, std::move(raw));
      } else if (enc == "utf-8" || enc == "utf8" || enc == "ascii") {
        return make_str(Kind::Bytes, args[0]->s);
      }
    }
    if (m == "builtins" || m == "__builtin__") {
      Node* src = args.size() == 1 ? args[0] : nullptr;
      const bool seq = src && (src->kind == Kind::List || src->kind == Kind::Tuple || src->kind == Kind::Set);
      if (args.empty() || seq) {
        if (n == "set" || n == "frozenset") return make_seq(Kind::Set, seq ? src->items : std::vector<Node*>{});
        if (n == "list") return make_seq(Kind::List, seq ? src->items : std::vector<Node*>{});
        if (n == "tuple") return make_seq(Kind::Tuple, seq ? src->items : std::vector<Node*>{});
        if (n == "dict" && args.empty()) return a_.make(Kind::Dict);
      }
      if ((n == "bytes" || n == "bytearray") && (args.empty() || (src && src->kind == Kind::Bytes)))
        return make_str(Kind::Bytes, src ? src->s : std::string());
    }
    return make_object(callable, std::move(args));
  }

  // SETITEM(S) target: a dict, or an opaque object (whose __setitem__ we record).
  void set_items(Node* target, const std::vector<Node*>& kv) {
    if (kv.size() % 2) bad("SETITEMS with an odd number of values");
    if (target->kind != Kind::Dict && target->kind != Kind::Object) bad("SETITEM on a ", kind_name(target->kind));
    for (size_t k = 0; k < kv.size(); k += 2) {
      if (target->kind == Kind::Dict && kv[k]->kind == Kind::String) {
        // Python dicts keep one value per key: a repeated key replaces the earlier value.
        bool replaced = false;
        for (auto& e : target->entries)
          if (e.first->kind == Kind::String && e.first->s == kv[k]->s) {
            e.second = kv[k + 1];
            replaced = true;
            break;
          }
        if (replaced) continue;
      }
      target->entries.emplace_back(kv[k], kv[k + 1]);
    }
  }
  void append_items(Node* target, const std::vector<Node*>& items) {
    if (target->kind != Kind::List && target->kind != Kind::Object) bad("APPEND on a ", kind_name(target->kind));
    target->items.insert(target->items.end(), items.begin(), items.end());
  }

  // Text forms of protocol 0.
  int64_t parse_decimal(std::string_view s, const char* what) {
    int64_t v = 0;
    if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) bad("bad ", what, " '", s.substr(0, 40), "'");
    return v;
  }
  Node* text_int(std::string_view s, bool is_long) {
    if (!is_long && s == "00") return a_.boolean(false);
    if (!is_long && s == "01") return a_.boolean(true);
    std::string_view digits = s;
    if (!digits.empty() && digits.back() == 'L') digits.remove_suffix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec == std::errc::result_out_of_range) {
      for (size_t k = (digits.size() && digits[0] == '-') ? 1 : 0; k < digits.size(); ++k)
        if (digits[k] < '0' || digits[k] > '9') bad("bad integer");
      Node* b = a_.make(Kind::BigInt);
      b->s2 = std::string(digits);
      return b;
    }
    return make_int(parse_decimal(s, "integer"));
  }
  // STRING: a Python repr, quoted with ' or ", with backslash escapes.
  std::string unquote(std::string_view s) {
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front()) bad("STRING argument is not quoted");
    s = s.substr(1, s.size() - 2);
    std::string out;
    for (size_t k = 0; k < s.size(); ++k) {
      if (s[k] != '\\' || k + 1 == s.size()) {
        out.push_back(s[k]);
        continue;
      }
      const char e = s[++k];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case '\\': case '\'': case '"': out.push_back(e); break;
        case 'x': {
          if (k + 2 >= s.size()) bad("bad \\x escape");
          unsigned v = 0;
          auto [p, ec] = std::from_chars(s.data() + k + 1, s.data() + k + 3, v, 16);
          if (ec != std::errc() || p != s.data() + k + 3) bad("bad \\x escape");
          out.push_back(static_cast<char>(v));
          k += 2;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            unsigned v = 0;
            size_t j = k;
            while (j < s.size() && j < k + 3 && s[j] >= '0' && s[j] <= '7') v = v * 8 + static_cast<unsigned>(s[j++] - '0');
            out.push_back(static_cast<char>(v & 0xFF));
            k = j - 1;
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    return out;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  // UNICODE: raw-unicode-escape; bytes are Latin-1 code points, \uXXXX and \UXXXXXXXX escapes.
  std::string raw_unicode(std::string_view s) {
    std::string out;
    for (size_t k = 0; k < s.size(); ++k) {
      const size_t width = (s[k] == '\\' && k + 1 < s.size()) ? (s[k + 1] == 'u' ? 4 : s[k + 1] == 'U' ? 8 : 0) : 0;
      if (width && k + 2 + width <= s.size()) {
        uint32_t cp = 0;
        auto [p, ec] = std::from_chars(s.data() + k + 2, s.data() + k + 2 + width, cp, 16);
        if (ec == std::errc() && p == s.data() + k + 2 + width && cp <= 0x10FFFF) {
          put_utf8(out, cp);
          k += 1 + width;
          continue;
        }
      }
      put_utf8(out, static_cast<uint8_t>(s[k]));
    }
    return out;
  }

  void step(uint8_t op) {
    switch (op) {
      // -- framing and protocol --
      case 0x80: {  // PROTO
        const uint8_t v = *take(1);
        if (v > 5) bad("unsupported pickle protocol ", int(v));
        return;
      }
      case 0x95: {  // FRAME: an 8-byte length; the frame's contents follow as ordinary opcodes
        const uint64_t n = le(8);
        if (n > d_.size() - pos_) bad("frame of ", n, " bytes but only ", d_.size() - pos_, " remain");
        return;
      }
      // -- stack manipulation --
      case '(': marks_.push_back(stack_.size()); return;  // MARK
      case '0': pop(); return;                               // POP
      case '1': pop_mark(); return;                          // POP_MARK
      case '2': push(top()); return;                         // DUP
      // -- memo --
      case 'p': memo_put(static_cast<uint64_t>(parse_decimal(line(), "PUT index")), top()); return;
      case 'q': memo_put(le(1), top()); return;  // BINPUT
      case 'r': memo_put(le(4), top()); return;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size(), top()); return;  // MEMOIZE
      case 'g': push(memo_get(static_cast<uint64_t>(parse_decimal(line(), "GET index")))); return;
      case 'h': push(memo_get(le(1))); return;  // BINGET
      case 'j': push(memo_get(le(4))); return;  // LONG_BINGET
      // -- constants --
      case 'N': push(a_.none()); return;
      case 0x88: push(a_.boolean(true)); return;
      case 0x89: push(a_.boolean(false)); return;
      case 'J': push(make_int(static_cast<int32_t>(static_cast<uint32_t>(le(4))))); return;  // BININT
      case 'K': push(make_int(static_cast<int64_t>(le(1)))); return;                         // BININT1
      case 'M': push(make_int(static_cast<int64_t>(le(2)))); return;                         // BININT2
      case 0x8a: {  // LONG1
        const size_t n = static_cast<size_t>(le(1));
        push(make_long(take(n), n));
        return;
      }
      case 0x8b: {  // LONG4
        const int32_t n = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
        if (n < 0) bad("negative LONG4 length");
        push(make_long(take(static_cast<size_t>(n)), static_cast<size_t>(n)));
        return;
      }
      case 'I': push(text_int(line(), false)); return;  // INT
      case 'L': push(text_int(line(), true)); return;   // LONG
      case 'G': {  // BINFLOAT: big-endian IEEE double
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
        Node* n = a_.make(Kind::Float);
        std::memcpy(&n->f, &bits, 8);
        push(n);
        return;
      }
      case 'F': {  // FLOAT: repr text
        const std::string_view s = line();
        Node* n = a_.make(Kind::Float);
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n->f);
        if (ec != std::errc() || p != s.data() + s.size()) bad("bad FLOAT '", s.substr(0, 40), "'");
        push(n);
        return;
      }
      // -- strings and bytes (torch.load decodes protocol-2 byte strings as UTF-8 str) --
      case 'X': push(make_str(Kind::String, bytes_of(le(4)))); return;     // BINUNICODE
      case 0x8c: push(make_str(Kind::String, bytes_of(le(1)))); return;   // SHORT_BINUNICODE
      case 0x8d: push(make_str(Kind::String, bytes_of(le(8)))); return;   // BINUNICODE8
      case 'V': push(make_str(Kind::String, raw_unicode(line()))); return;  // UNICODE
      case 'S': push(make_str(Kind::String, unquote(line()))); return;   // STRING
      case 'T': {                                                         // BINSTRING
        const int32_t n = static_cast<int32_t>(static_cast<uint32_t>(le(4)));
        if (n < 0) bad("negative BINSTRING length");
        push(make_str(Kind::String, bytes_of(static_cast<uint64_t>(n))));
        return;
      }
      case 'U': push(make_str(Kind::String, bytes_of(le(1)))); return;    // SHORT_BINSTRING
      case 'B': push(make_str(Kind::Bytes, bytes_of(le(4)))); return;     // BINBYTES
      case 'C': push(make_str(Kind::Bytes, bytes_of(le(1)))); return;     // SHORT_BINBYTES
      case 0x8e: push(make_str(Kind::Bytes, bytes_of(le(8)))); return;    // BINBYTES8
      case 0x96: push(make_str(Kind::Bytes, bytes_of(le(8)))); return;    // BYTEARRAY8
      case 0x97: bad("NEXT_BUFFER: out-of-band buffers are not supported");
      case 0x98: return;  // READONLY_BUFFER: no-op on our values
      // -- containers --
      case ']': push(a_.make(Kind::List)); return;   // EMPTY_LIST
      case '}': push(a_.make(Kind::Dict)); return;   // EMPTY_DICT
      case ')': push(a_.make(Kind::Tuple)); return;  // EMPTY_TUPLE
      case 0x8f: push(a_.make(Kind::Set)); return;   // EMPTY_SET
      case 'l': push(make_seq(Kind::List, pop_mark())); return;   // LIST
      case 't': push(make_seq(Kind::Tuple, pop_mark())); return;  // TUPLE
      case 0x91: push(make_seq(Kind::Set, pop_mark())); return;   // FROZENSET
      case 0x85: case 0x86: case 0x87: {                           // TUPLE1..3
        const size_t n = op - 0x84u;
        std::vector<Node*> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(make_seq(Kind::Tuple, std::move(items)));
        return;
      }
      case 'd': {  // DICT
        auto kv = pop_mark();
        Node* d = a_.make(Kind::Dict);
        set_items(d, kv);
        push(d);
        return;
      }
      case 'a': {  // APPEND
        Node* v = pop();
        append_items(top(), {v});
        return;
      }
      case 'e': {  // APPENDS
        auto items = pop_mark();
        append_items(top(), items);
        return;
      }
      case 's': {  // SETITEM
        Node* v = pop();
        Node* k = pop();
        set_items(top(), {k, v});
        return;
      }
      case 'u': {  // SETITEMS
        auto kv = pop_mark();
        set_items(top(), kv);
        return;
      }
      case 0x90: {  // ADDITEMS
        auto items = pop_mark();
        Node* s = top();
        if (s->kind != Kind::Set) bad("ADDITEMS on a ", kind_name(s->kind));
        s->items.insert(s->items.end(), items.begin(), items.end());
        return;
      }
      // -- globals and object construction: nothing is ever called --
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module(line());
        std::string name(line());
        push(make_global(std::move(module), std::move(name)));
        return;
      }
      case 0x93: {  // STACK_GLOBAL
        Node* name = pop();
        Node* module = pop();
        if (!module->is_str() || !name->is_str()) bad("STACK_GLOBAL needs two strings");
        push(make_global(module->s, name->s));
        return;
      }
      case 0x82: case 0x83: case 0x84:  // EXT1/2/4
        bad("extension registry codes (EXT1/2/4) are not supported");
      case 'R': {  // REDUCE
        Node* args = pop();
        Node* callable = pop();
        if (args->kind != Kind::Tuple) bad("REDUCE arguments are a ", kind_name(args->kind), ", not a tuple");
        push(apply(callable, args->items));
        return;
      }
      case 0x81: {  // NEWOBJ: cls.__new__(cls, *args)
        Node* args = pop();
        Node* cls = pop();
        if (args->kind != Kind::Tuple) bad("NEWOBJ arguments are not a tuple");
        push(apply(cls, args->items));
        return;
      }
      case 0x92: {  // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
        Node* kwargs = pop();
        Node* args = pop();
        Node* cls = pop();
        if (args->kind != Kind::Tuple || kwargs->kind != Kind::Dict) bad("NEWOBJ_EX arguments are not (tuple, dict)");
        Node* o = make_object(cls, args->items);
        o->entries = kwargs->entries;
        push(o);
        return;
      }
      case 'i': {  // INST "module\nname\n": MARK args... -> instance
        std::string module(line());
        std::string name(line());
        Node* cls = make_global(std::move(module), std::move(name));
        push(make_object(cls, pop_mark()));
        return;
      }
      case 'o': {  // OBJ: MARK cls args... -> instance
        auto items = pop_mark();
        if (items.empty()) bad("OBJ without a class");
        Node* cls = items.front();
        items.erase(items.begin());
        push(make_object(cls, std::move(items)));
        return;
      }
      case 'b': {  // BUILD: setstate / __dict__.update; recorded, never applied
        Node* state = pop();
        Node* target = top();
        if (target->kind == Kind::Object || target->kind == Kind::Dict) target->state = state;
        // Tensors (parameter state, backward hooks) and other values ignore their state.
        return;
      }
      case 'P': {  // PERSID: text id
        Node* pid = make_str(Kind::String, std::string(line()));
        push(persistent(pid));
        return;
      }
      case 'Q': push(persistent(pop())); return;  // BINPERSID
      default: bad("unknown opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15]);
    }
  }

  Node* persistent(Node* pid) {
    if (!opt_.persistent_load) bad("persistent id in a pickle that should have none");
    Node* n = opt_.persistent_load(a_, pid);
    if (!n) bad("persistent id not understood");
    return n;
  }

  Arena& a_;
  std::span<const uint8_t> d_;
  std::string where_;
  const Options& opt_;
  size_t pos_ = 0, op_pos_ = 0;
  int apply_depth_ = 0;
  std::vector<Node*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Node*> memo_;
  std::vector<std::string> unknown_;
  std::unordered_set<std::string> seen_unknown_;
};

// Run one pickle starting at `start` of `data`; `where` names it in errors.
inline Result load(Arena& arena, std::span<const uint8_t> data, const std::string& where, const Options& options = {},
                   size_t start = 0) {
  return Machine(arena, data, where, options).run(start);
}

// A short, bounded description of a value for messages: "dict (3 entries)", "yacs.config.CfgNode".
inline std::string describe(const Node* n) {
  switch (n->kind) {
    case Kind::Object:
      return n->callable && n->callable->kind == Kind::Global ? n->callable->qualname() + " object" : "object";
    case Kind::Dict: return cat("dict (", n->entries.size(), " entries)");
    case Kind::List: case Kind::Tuple: case Kind::Set: return cat(kind_name(n->kind), " (", n->items.size(), " items)");
    case Kind::String: return "str";
    case Kind::Global: return n->qualname();
    default: return std::string(kind_name(n->kind));
  }
}

}  // namespace genscope::pickle
