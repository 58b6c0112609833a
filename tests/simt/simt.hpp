// tests/simt/simt.hpp — run genscope's CUDA kernel sources on the CPU, for tests. Not public API.
//
// Include this header first in a g++ translation unit, then the kernels/*.cuh headers. Each
// CUDA thread becomes a stackful fiber; the fibers of a block run cooperatively on one OS
// thread and switch only at __syncthreads() and at warp collectives (__shfl_*_sync,
// __ballot_sync, __any/__all_sync, __syncwarp), which are real rendezvous points with CUDA/PTX
// semantics. Blocks are pulled from an atomic counter by a pool of worker threads. A launch is
// synchronous and throws simt::KernelError (a genscope::DeviceError) naming the kernel, the
// block, the thread and file:line for: a deadlock, a divergent barrier (threads waiting at
// different __syncthreads() sites), a barrier reached after other threads exited, a warp mask
// that names absent or exited lanes, and any C++ exception thrown inside the kernel.
//
// The design, its cost and its limits are in ../shared/design/simt-emulation.md: fibers switch
// with a hand-written x86-64 context switch (callee-saved registers only; POSIX ucontext
// elsewhere), stacks are mmap'd with a guard page below each. `__shared__` is `thread_local`:
// one copy per worker OS thread, which runs one block at a time.
//
// Resume order: the order in which a block's ready fibers are resumed after each barrier is
// forward, reverse, or shuffled with a seed (simt::Order); a kernel whose result depends on it
// has a race. Under ThreadSanitizer every fiber is a TSan fiber and a switch carries no
// happens-before edge, only barriers, warp collectives and block/launch boundaries do, so a
// missing __syncthreads() is reported as a data race under any order.
//
// Knobs (environment, read once; tests may override with simt::ScopedOptions):
//   SIMT_WORKERS=N    worker threads (default: hardware threads)
//   SIMT_ORDER=forward|reverse|random, SIMT_SEED=N
//   SIMT_STACK_KB=N   stack per CUDA thread (default 64)
#pragma once

#if defined(__CUDACC__)
#error "tests/simt/simt.hpp is for g++/clang++ builds; nvcc compiles the kernels natively"
#endif

// Standard headers first: the qualifier macros below must not leak into them.
#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <math.h>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>

#include "genscope/core/error.hpp"

#if !defined(__x86_64__) || defined(SIMT_USE_UCONTEXT)
#define SIMT_UCONTEXT 1
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#if defined(SIMT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define SIMT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SIMT_TSAN 1
#endif
#endif
#if defined(SIMT_TSAN)
#include <sanitizer/tsan_interface.h>
extern "C" void AnnotateIgnoreReadsBegin(const char*, int);
extern "C" void AnnotateIgnoreReadsEnd(const char*, int);
extern "C" void AnnotateIgnoreWritesBegin(const char*, int);
extern "C" void AnnotateIgnoreWritesEnd(const char*, int);
#endif

#define SIMT_CPU_EMULATION 1

// ---- CUDA qualifiers --------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __shared__ thread_local  // one copy per worker OS thread = per running block
#define __constant__
#define __restrict__ __restrict
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)

// ---- the CUDA vector and runtime types the kernels use ------------------------------------------
// With the toolkit on the include path (a GENSCOPE_CUDA build, where core/tensor.hpp includes
// cuda_runtime_api.h) its host-side view supplies dim3, float4, cudaStream_t; the qualifier macros
// above are defined first so the toolkit keeps them. Without it, minimal stand-ins.
#if defined(GENSCOPE_WITH_CUDA) && __has_include(<cuda_runtime.h>)
#define SIMT_HAVE_CUDA_HEADERS 1
#include <cuda_runtime.h>
#else
#define __align__(n) alignas(n)
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
using cudaStream_t = struct CUstream_st*;
enum cudaError_t { cudaSuccess = 0 };
#endif

// ---- built-in variables: per OS thread, threadIdx rewritten at every fiber switch -------------
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
inline constexpr int warpSize = 32;

namespace simt {

// Every failure of an emulated kernel; a DeviceError, as a failed launch on a GPU would be.
class KernelError : public genscope::DeviceError {
 public:
  using genscope::DeviceError::DeviceError;
};

#if defined(SIMT_TSAN)
inline constexpr bool kUnderTsan = true;  // tests that race on purpose skip themselves
#else
inline constexpr bool kUnderTsan = false;
#endif

enum class Order { Forward, Reverse, Random };
inline constexpr Order kAllOrders[] = {Order::Forward, Order::Reverse, Order::Random};
inline const char* order_name(Order o) { return o == Order::Forward ? "forward" : o == Order::Reverse ? "reverse" : "random"; }

// A call site, captured by default arguments (std::source_location is not in every libstdc++
// that clang uses).
struct Loc {
  const char* file = "?";
  unsigned line = 0;
  static constexpr Loc here(const char* f = __builtin_FILE(), unsigned l = __builtin_LINE()) { return {f, l}; }
};
inline std::string str(const Loc& l) { return std::string(l.file) + ":" + std::to_string(l.line); }

struct Options {
  unsigned workers = 1;
  size_t stack_bytes = 64 * 1024;
  Order order = Order::Forward;
  uint64_t seed = 1;
};

inline Options& options() {
  static Options o = [] {
    Options k;
    k.workers = std::max(1u, std::thread::hardware_concurrency());
    if (const char* e = std::getenv("SIMT_WORKERS")) k.workers = static_cast<unsigned>(std::max(1, std::atoi(e)));
    if (const char* e = std::getenv("SIMT_STACK_KB")) k.stack_bytes = static_cast<size_t>(std::max(16, std::atoi(e))) * 1024;
    if (const char* e = std::getenv("SIMT_SEED")) k.seed = std::strtoull(e, nullptr, 10);
    if (const char* e = std::getenv("SIMT_ORDER")) {
      const std::string s(e);
      k.order = s == "reverse" ? Order::Reverse : s == "random" ? Order::Random : Order::Forward;
    }
    return k;
  }();
  return o;
}

// Overrides the options for one scope (between launches only): ScopedOptions o(Order::Random, 7).
class ScopedOptions {
 public:
  explicit ScopedOptions(Order order, uint64_t seed = 1) : saved_(options()) {
    options().order = order;
    options().seed = seed;
  }
  ScopedOptions(const ScopedOptions&) = delete;
  ScopedOptions& operator=(const ScopedOptions&) = delete;
  ~ScopedOptions() { options() = saved_; }

 private:
  Options saved_;
};

namespace detail {

// ---- ThreadSanitizer: happens-before only where CUDA has it -------------------------------------
#if defined(SIMT_TSAN)
struct TsanIgnore {  // the emulator's own bookkeeping is not the kernel's business
  TsanIgnore() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~TsanIgnore() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
};
#define SIMT_BOOKKEEPING ::simt::detail::TsanIgnore simt_bookkeeping_
inline void hb_release(const void* p) { __tsan_release(const_cast<void*>(p)); }
inline void hb_acquire(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
#else
#define SIMT_BOOKKEEPING
inline void hb_release(const void*) {}
inline void hb_acquire(const void*) {}
#endif

// ---- context switch ---------------------------------------------------------------------------
// x86-64 System V: save the callee-saved registers on the old stack, swap stack pointers, pop
// them from the new one, and jump (not ret: a ret into another stack always mispredicts).
#if !defined(SIMT_UCONTEXT)
extern "C" void genscope_simt_switch(void** save_sp, void* load_sp);
extern "C" void genscope_simt_start();
asm(R"(
    .pushsection .text.genscope_simt_switch,"axG",@progbits,genscope_simt_switch,comdat
    .weak genscope_simt_switch
    .type genscope_simt_switch,@function
    .p2align 4
genscope_simt_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popq %rcx
    jmpq *%rcx
    .size genscope_simt_switch, .-genscope_simt_switch
    .popsection
    .pushsection .text.genscope_simt_start,"axG",@progbits,genscope_simt_start,comdat
    .weak genscope_simt_start
    .type genscope_simt_start,@function
    .p2align 4
genscope_simt_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size genscope_simt_start, .-genscope_simt_start
    .popsection
)");

struct Context {
  void* sp = nullptr;
};
// A fresh context whose first switch-in calls fn(arg) on the stack [lo, lo + size).
inline void make_context(Context& c, char* lo, size_t size, void (*fn)(void*), void* arg) {
  const auto top = reinterpret_cast<uintptr_t>(lo + size) & ~uintptr_t{15};
  void** sp = reinterpret_cast<void**>(top - 72);  // 7 slots, and rsp % 16 == 8 at fn's entry
  sp[0] = nullptr;                                 // r15
  sp[1] = nullptr;                                 // r14
  sp[2] = reinterpret_cast<void*>(fn);             // r13: called by genscope_simt_start
  sp[3] = arg;                                     // r12: its argument
  sp[4] = nullptr;                                 // rbx
  sp[5] = nullptr;                                 // rbp
  sp[6] = reinterpret_cast<void*>(&genscope_simt_start);
  c.sp = sp;
}
inline void switch_context(Context& from, Context& to) { genscope_simt_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
inline void ucontext_entry(unsigned fhi, unsigned flo, unsigned ahi, unsigned alo) {
  auto fn = reinterpret_cast<void (*)(void*)>((uintptr_t{fhi} << 32) | flo);
  fn(reinterpret_cast<void*>((uintptr_t{ahi} << 32) | alo));
  std::abort();
}
inline void make_context(Context& c, char* lo, size_t size, void (*fn)(void*), void* arg) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  const auto f = reinterpret_cast<uintptr_t>(fn), a = reinterpret_cast<uintptr_t>(arg);
  makecontext(&c.uc, reinterpret_cast<void (*)()>(&ucontext_entry), 4, unsigned(f >> 32), unsigned(f), unsigned(a >> 32),
              unsigned(a));
}
inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

inline std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// ---- block state ------------------------------------------------------------------------------
enum class State : uint8_t { Ready, AtBarrier, AtWarpOp, Done };
enum class WarpOp : uint8_t { Shuffle, Vote, Syncwarp };

// One warp collective in flight: the lanes named by `mask` meet, each deposits a value, and each
// reads the others' once all have arrived.
struct Collective {
  uint32_t mask = 0, arrived = 0;
  WarpOp op{};
  bool complete = false;
  int readers = 0;
  uint64_t values[32];
};

struct Fiber {
  Context context;
  char* stack = nullptr;
  uint3 tid{};
  unsigned lane = 0, warp = 0;
  State state = State::Done;
  Loc where{};
  bool unwound = true;  // false while its frames are live (true again after a normal exit)
#if defined(SIMT_ASAN)
  void* fake_stack = nullptr;
#endif
#if defined(SIMT_TSAN)
  void* tsan = nullptr;
#endif
};

struct Warp {
  uint32_t present = 0, exited = 0;
  std::vector<Collective*> open;
  std::vector<std::unique_ptr<Collective>> storage;
  std::vector<Collective*> spare;
  Collective* take() {
    if (spare.empty()) {
      storage.push_back(std::make_unique<Collective>());
      return storage.back().get();
    }
    Collective* c = spare.back();
    spare.pop_back();
    return c;
  }
};

// A launch, type-erased: the kernel and a copy of its arguments.
struct Launch {
  void (*invoke)(const void*) = nullptr;
  const void* closure = nullptr;
  std::string name;
  dim3 grid, block;
  size_t dynamic_smem = 0;
  char finished = 0;  // TSan: every thread's exit happens before the launch returns
};

// `extern __shared__ T name[]` symbols (SIMT_EXTERN_SHARED), poisoned at every block start.
struct ExternShared {
  std::pair<void*, size_t> (*storage)();  // this worker thread's copy of the symbol
};
inline std::vector<ExternShared>& extern_shared_symbols() {
  static std::vector<ExternShared> v;
  return v;
}

inline std::atomic<uint64_t>& switch_count() {
  static std::atomic<uint64_t> n{0};
  return n;
}

// Runs blocks, one at a time, on the OS thread that owns it.
struct Worker {
  Context scheduler;
  std::vector<Fiber> fibers;
  char* stacks = nullptr;
  size_t stacks_bytes = 0, stride = 0;
  Fiber* current = nullptr;
  const Launch* launch = nullptr;

  unsigned threads = 0, live = 0, exited = 0, arrived = 0;
  Loc barrier_site{};
  int barrier_count = 0, barrier_result = 0;
  unsigned barrier_generation = 0;
  std::vector<Warp> warps;
  std::vector<unsigned> order;
  std::mt19937_64 rng;
  std::vector<std::max_align_t> dynamic_smem;
  bool failed = false;
  std::string error;
  uint64_t switches = 0, blocks = 0;
  char barrier_hb[2] = {}, block_hb[2] = {};  // TSan synchronisation objects
#if defined(SIMT_TSAN)
  void* tsan_scheduler = nullptr;
#endif
#if defined(SIMT_ASAN)
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_size = 0;
  void* scheduler_fake_stack = nullptr;
#endif

  Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() { free_stacks(); }

  static size_t page() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
  }
  size_t stack_size() const { return stride - page(); }

  void free_stacks() {
#if defined(SIMT_TSAN)
    for (auto& f : fibers)
      if (f.tsan && f.unwound) __tsan_destroy_fiber(f.tsan);
#endif
    fibers.clear();
    if (stacks) munmap(stacks, stacks_bytes);
    stacks = nullptr;
  }

  void ensure_stacks(unsigned n) {
    const size_t stack = (options().stack_bytes + page() - 1) / page() * page();
    if (fibers.size() >= n && stride == stack + page()) return;
    free_stacks();
    stride = stack + page();
    stacks_bytes = stride * n;
    void* p = mmap(nullptr, stacks_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    stacks = static_cast<char*>(p);
    fibers.assign(n, Fiber{});
    for (unsigned i = 0; i < n; ++i) {
      char* base = stacks + i * stride;
      mprotect(base, page(), PROT_NONE);  // guard page: a stack overflow faults instead of corrupting
      fibers[i].stack = base + page();
#if defined(SIMT_TSAN)
      fibers[i].tsan = __tsan_create_fiber(0);
#endif
    }
  }

  // ---- switching ----
  void resume(Fiber& f) {
    current = &f;
    threadIdx = f.tid;
    ++switches;
#if defined(SIMT_ASAN)
    __sanitizer_start_switch_fiber(&scheduler_fake_stack, f.stack, stack_size());
#endif
#if defined(SIMT_TSAN)
    __tsan_switch_to_fiber(f.tsan, __tsan_switch_to_fiber_no_sync);
#endif
    switch_context(scheduler, f.context);
#if defined(SIMT_ASAN)
    __sanitizer_finish_switch_fiber(scheduler_fake_stack, nullptr, nullptr);
#endif
  }
  void suspend(bool for_good = false) {
    Fiber& f = *current;
#if defined(SIMT_ASAN)
    __sanitizer_start_switch_fiber(for_good ? nullptr : &f.fake_stack, scheduler_stack, scheduler_stack_size);
#else
    (void)for_good;
#endif
#if defined(SIMT_TSAN)
    __tsan_switch_to_fiber(tsan_scheduler, __tsan_switch_to_fiber_no_sync);
#endif
    switch_context(f.context, scheduler);
#if defined(SIMT_ASAN)
    __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
  }

  std::string who(const Fiber& f) const {
    char b[200];
    std::snprintf(b, sizeof b, "%s: block (%u,%u,%u) thread (%u,%u,%u)", launch->name.c_str(), blockIdx.x, blockIdx.y,
                  blockIdx.z, f.tid.x, f.tid.y, f.tid.z);
    return b;
  }

  // Ends the block from inside a fiber. The message is built by a callable, into the worker, so
  // no temporary is left alive in the abandoned fiber's frames.
  template <class Message>
  [[noreturn]] void fail(Message&& message) {
    {
      SIMT_BOOKKEEPING;
      if (!failed) {
        failed = true;
        error = message();
      }
    }
    current->state = State::Done;
    suspend(true);
    __builtin_unreachable();
  }

  static void fiber_main(void* arg);

  // ---- one block ----
  void run_block(const Launch& l, uint3 block_id) {
    SIMT_BOOKKEEPING;
#if defined(SIMT_TSAN)
    tsan_scheduler = __tsan_get_current_fiber();
#endif
    ++blocks;
    barrier_generation = 0;
    launch = &l;
    blockIdx = block_id;
    blockDim = l.block;
    gridDim = l.grid;
    threads = l.block.x * l.block.y * l.block.z;
    ensure_stacks(threads);
    live = threads;
    exited = arrived = 0;
    barrier_count = barrier_result = 0;
    const unsigned nwarps = (threads + 31) / 32;
    if (warps.size() < nwarps) warps.resize(nwarps);
    for (unsigned w = 0; w < nwarps; ++w) {
      const unsigned n = std::min(32u, threads - w * 32);
      warps[w].present = n == 32 ? 0xffffffffu : (1u << n) - 1u;
      warps[w].exited = 0;
      for (Collective* c : warps[w].open) warps[w].spare.push_back(c);
      warps[w].open.clear();
    }
    // Shared memory starts as garbage on a GPU: poison the dynamic part with 0xFF bytes (NaN
    // as floats, -1 as integers) so a kernel that reads before writing fails its test.
    if (l.dynamic_smem) {
      const size_t words = (l.dynamic_smem + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
      if (dynamic_smem.size() < words) dynamic_smem.resize(words);
      std::memset(dynamic_smem.data(), 0xFF, l.dynamic_smem);
      for (const ExternShared& s : extern_shared_symbols()) {
        const auto [data, bytes] = s.storage();
        std::memset(data, 0xFF, std::min(bytes, l.dynamic_smem));
      }
    }
    for (unsigned i = 0; i < threads; ++i) {
      Fiber& f = fibers[i];
      f.tid = uint3{i % l.block.x, (i / l.block.x) % l.block.y, i / (l.block.x * l.block.y)};
      f.lane = i % 32;
      f.warp = i / 32;
      f.state = State::Ready;
#if defined(SIMT_ASAN)
      // The frames a fiber leaves on its stack are never popped (fiber_main switches away for
      // good), so their redzones stay poisoned; unoptimised builds give every frame redzones.
      ASAN_UNPOISON_MEMORY_REGION(f.stack, stack_size());
#endif
      if (!f.unwound) {  // left mid-kernel by a failed launch: its frames never unwound
#if defined(SIMT_TSAN)
        f.tsan = __tsan_create_fiber(0);  // the old one still holds ignores; leak it
#endif
      }
      f.unwound = false;
      make_context(f.context, f.stack, stack_size(), &Worker::fiber_main, &f);
    }
    order.resize(threads);
    for (unsigned i = 0; i < threads; ++i) order[i] = i;
    if (options().order == Order::Reverse) std::reverse(order.begin(), order.end());
    rng.seed(options().seed * 0x9E3779B97F4A7C15ull ^ (uint64_t{block_id.x} << 40) ^ (uint64_t{block_id.y} << 20) ^ block_id.z);

    while (live > 0 && !failed) {
      // Random order: a fresh permutation for every round, so each barrier phase sees a new one.
      if (options().order == Order::Random) std::shuffle(order.begin(), order.end(), rng);
      bool progressed = false;
      for (unsigned k = 0; k < threads && !failed; ++k) {
        Fiber& f = fibers[order[k]];
        if (f.state != State::Ready) continue;
        progressed = true;
        resume(f);
      }
      if (!progressed && live > 0 && !failed) {
        failed = true;
        error = describe_deadlock();
      }
    }
#if defined(SIMT_TSAN)
    if (failed)  // publish what abandoned threads did, so the next launch is not blamed for it
      for (unsigned i = 0; i < threads; ++i) {
        if (fibers[i].unwound) continue;
        __tsan_switch_to_fiber(fibers[i].tsan, __tsan_switch_to_fiber_no_sync);
        __tsan_release(&block_hb[blocks & 1]);
        __tsan_release(const_cast<char*>(&l.finished));
        __tsan_switch_to_fiber(tsan_scheduler, __tsan_switch_to_fiber_no_sync);
      }
#endif
  }

  std::string describe_deadlock() {
    unsigned at_barrier = 0, at_warp = 0;
    std::string barrier_at, warp_at;
    for (unsigned i = 0; i < threads; ++i) {
      const Fiber& f = fibers[i];
      if (f.state == State::AtBarrier && !at_barrier++) barrier_at = str(f.where);
      if (f.state == State::AtWarpOp && !at_warp++) warp_at = str(f.where) + " (" + who(f) + ")";
    }
    return launch->name + ": deadlock in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) + "," +
           std::to_string(blockIdx.z) + "): " + std::to_string(at_barrier) + " thread(s) wait at __syncthreads() [" +
           barrier_at + "], " + std::to_string(at_warp) + " wait in a warp collective [" + warp_at + "], " +
           std::to_string(exited) + " exited";
  }

  // ---- __syncthreads ----
  // CUDA requires every thread of the block to reach the same barrier; a barrier is released
  // when all live threads arrived. Different sites, or threads that exited first, are reported.
  int barrier(int predicate, const Loc& where) {
    SIMT_BOOKKEEPING;
    Fiber& f = *current;
    const char* hb = &barrier_hb[barrier_generation & 1];
    hb_release(hb);
    if (exited > 0)
      fail([&] {
        return who(f) + " reached __syncthreads() at " + str(where) + " after " + std::to_string(exited) +
               " thread(s) of the block exited (undefined behaviour in CUDA)";
      });
    if (arrived == 0) {
      barrier_site = where;
    } else if (where.line != barrier_site.line || std::strcmp(where.file, barrier_site.file) != 0) {
      fail([&] {
        return who(f) + " waits at __syncthreads() " + str(where) + " while other threads wait at " + str(barrier_site) +
               " (divergent barrier)";
      });
    }
    barrier_count += predicate != 0;
    if (++arrived == live) {
      release_barrier();
    } else {
      f.state = State::AtBarrier;
      f.where = where;
      suspend();
    }
    hb_acquire(hb);
    return barrier_result;
  }
  void release_barrier() {
    ++barrier_generation;
    barrier_result = barrier_count;
    barrier_count = 0;
    arrived = 0;
    for (unsigned i = 0; i < threads; ++i)
      if (fibers[i].state == State::AtBarrier) fibers[i].state = State::Ready;
  }

  // Called as a fiber's kernel returns; a barrier or collective now waiting on it never completes.
  void thread_exit(Fiber& f) {
    SIMT_BOOKKEEPING;
    f.state = State::Done;
    --live;
    ++exited;
    Warp& w = warps[f.warp];
    w.exited |= 1u << f.lane;
    for (Collective* c : w.open)
      if (!c->complete && (c->mask >> f.lane & 1u) && !(c->arrived >> f.lane & 1u)) {
        failed = true;
        error = who(f) + " exited while named in the mask " + hex(c->mask) + " of a pending warp collective";
        return;
      }
    if (arrived > 0 && arrived == live) {
      failed = true;
      error = who(f) + " exited while other threads wait at __syncthreads() " + str(barrier_site) +
              " (undefined behaviour in CUDA)";
    }
  }

  // ---- warp collectives ----
  // The calling lane joins the open collective with the same mask (or opens one), deposits its
  // value and waits until every lane of the mask has arrived.
  Collective* warp_arrive(uint32_t mask, WarpOp op, uint64_t value, const Loc& where) {
    SIMT_BOOKKEEPING;
    Fiber& f = *current;
    Warp& w = warps[f.warp];
    const uint32_t bit = 1u << f.lane;
    if (!(mask & bit))
      fail([&] { return who(f) + ": lane " + std::to_string(f.lane) + " is not in its own mask " + hex(mask) + " at " + str(where); });
    if (mask & ~w.present)
      fail([&] {
        return who(f) + ": mask " + hex(mask) + " names lanes that do not exist (the block has " + std::to_string(threads) +
               " threads) at " + str(where);
      });
    if (mask & w.exited)
      fail([&] { return who(f) + ": mask " + hex(mask) + " names lanes that already exited at " + str(where); });
    Collective* c = nullptr;
    for (Collective* open : w.open)
      if (!open->complete && open->mask == mask && !(open->arrived & bit)) {
        c = open;
        break;
      }
    if (!c) {
      c = w.take();
      c->mask = mask;
      c->arrived = 0;
      c->op = op;
      c->complete = false;
      c->readers = 0;
      w.open.push_back(c);
    } else if (c->op != op) {
      fail([&] { return who(f) + ": lanes of mask " + hex(mask) + " execute different warp intrinsics, one at " + str(where); });
    }
    c->values[f.lane] = value;
    c->arrived |= bit;
    hb_release(c);
    if (c->arrived == mask) {
      c->complete = true;
      c->readers = std::popcount(mask);
      for (unsigned l = 0; l < 32; ++l)
        if ((mask >> l & 1u) && l != f.lane) fibers[f.warp * 32 + l].state = State::Ready;
    } else {
      f.state = State::AtWarpOp;
      f.where = where;
      suspend();
    }
    hb_acquire(c);
    return c;
  }
  void warp_release(Collective* c) {
    SIMT_BOOKKEEPING;
    if (--c->readers == 0) {
      Warp& w = warps[current->warp];
      w.open.erase(std::find(w.open.begin(), w.open.end(), c));
      w.spare.push_back(c);
    }
  }
};

inline thread_local Worker* this_worker = nullptr;

inline Worker& worker() {
  if (!this_worker) {
#if defined(SIMT_TSAN)
    this_worker = new Worker();  // never freed under TSan: its fibers' last reads would race the free
#else
    static thread_local std::unique_ptr<Worker> owner;  // stacks unmapped when the OS thread exits
    owner = std::make_unique<Worker>();
    this_worker = owner.get();
#endif
  }
  return *this_worker;
}

// The worker running the calling CUDA thread; an intrinsic called outside a kernel is a bug in
// the test itself, so it aborts with the intrinsic's name.
inline Worker& in_kernel(const char* intrinsic) {
  Worker* w = this_worker;
  if (!w || !w->current) {
    std::fprintf(stderr, "simt: %s called outside a kernel launched with simt::launch\n", intrinsic);
    std::abort();
  }
  return *w;
}

inline void Worker::fiber_main(void* arg) {
  Worker& w = *this_worker;
  Fiber& f = *static_cast<Fiber*>(arg);
#if defined(SIMT_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &w.scheduler_stack, &w.scheduler_stack_size);
#endif
  // happens-before: the launch -> every thread; the previous block on this worker -> this block
  hb_acquire(w.launch);
  hb_acquire(&w.block_hb[(w.blocks + 1) & 1]);
  try {
    w.launch->invoke(w.launch->closure);
  } catch (const std::exception& e) {
    SIMT_BOOKKEEPING;
    if (!w.failed) {
      w.failed = true;
      w.error = w.who(f) + ": exception: " + e.what();
    }
  } catch (...) {
    SIMT_BOOKKEEPING;
    if (!w.failed) {
      w.failed = true;
      w.error = w.who(f) + ": unknown exception";
    }
  }
  hb_release(&w.block_hb[w.blocks & 1]);
  hb_release(&w.launch->finished);
  {
    SIMT_BOOKKEEPING;
    if (!w.failed) w.thread_exit(f);
    f.state = State::Done;
    f.unwound = true;
  }
  w.suspend(true);
  std::abort();  // never resumed
}

// ---- worker pool: the calling thread plus persistent helpers -------------------------------------
class Pool {
 public:
  static Pool& get() {
    static Pool p;
    return p;
  }
  // Runs job(i) for i in [0, n) on n threads (0 is the caller) and waits for all of them.
  void run(unsigned n, const std::function<void(unsigned)>& job) {
    std::lock_guard one_launch(launch_mutex_);
    while (threads_.size() + 1 < n) {
      const unsigned index = static_cast<unsigned>(threads_.size()) + 1;
      threads_.emplace_back([this, index] { loop(index); });
    }
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
      active_ = n;
      pending_ = n - 1;
      ++generation_;
    }
    wake_.notify_all();
    job(0);
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      ++generation_;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void loop(unsigned index) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(unsigned)>* job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
        if (stopping_) return;
        seen = generation_;
        if (index >= active_) continue;
        job = job_;
      }
      (*job)(index);
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_.notify_all();
    }
  }
  std::mutex launch_mutex_, mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(unsigned)>* job_ = nullptr;
  unsigned active_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
  bool stopping_ = false;
};

inline void run_grid(const Launch& l) {
  const uint64_t nblocks = uint64_t{l.grid.x} * l.grid.y * l.grid.z;
  const unsigned nworkers = static_cast<unsigned>(std::min<uint64_t>(options().workers, nblocks));
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex error_mutex;
  std::string error;
  const std::function<void(unsigned)> job = [&](unsigned) {
    SIMT_BOOKKEEPING;
    Worker& w = worker();
    w.failed = false;
    w.error.clear();
    w.switches = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t b = next.fetch_add(1, std::memory_order_relaxed);
      if (b >= nblocks) break;
      w.run_block(l, uint3{static_cast<unsigned>(b % l.grid.x), static_cast<unsigned>(b / l.grid.x % l.grid.y),
                           static_cast<unsigned>(b / (uint64_t{l.grid.x} * l.grid.y))});
      if (w.failed) {
        stop = true;
        std::lock_guard lock(error_mutex);
        if (error.empty()) error = w.error;
        break;
      }
    }
    w.current = nullptr;
    switch_count().fetch_add(w.switches, std::memory_order_relaxed);
  };
  hb_release(&l);
  if (nworkers <= 1)
    job(0);
  else
    Pool::get().run(nworkers, job);
  hb_acquire(&l.finished);
  if (!error.empty()) throw KernelError(error);
}

template <class Kernel, class Args>
struct Closure {
  Kernel kernel;
  Args args;
};

}  // namespace detail

// The CPU equivalent of kernel<<<grid, block, dynamic_smem>>>(args...): runs the whole grid and
// returns when it is done; a failure anywhere throws KernelError. `name` labels the messages.
template <class... Params, class... Args>
void launch_named(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t dynamic_smem,
                  Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "simt::launch: wrong number of kernel arguments");
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535)
    throw KernelError(genscope::cat(name, ": invalid launch configuration grid (", grid.x, ",", grid.y, ",", grid.z,
                                    ") block (", block.x, ",", block.y, ",", block.z, ")"));
  if (dynamic_smem > 227 * 1024) throw KernelError(genscope::cat(name, ": ", dynamic_smem, " bytes of dynamic shared memory (at most 227 KiB)"));
  using Tuple = std::tuple<std::decay_t<Params>...>;
  using C = detail::Closure<void (*)(Params...), Tuple>;
  // Built and destroyed outside TSan's view: the threads of a failed launch never publish
  // their reads of it, and the next launch reuses this stack slot.
  alignas(C) unsigned char bytes[sizeof(C)];
  C* closure;
  {
    SIMT_BOOKKEEPING;
    closure = new (bytes) C{kernel, Tuple(std::forward<Args>(args)...)};
  }
  struct Destroy {
    C* c;
    ~Destroy() {
      SIMT_BOOKKEEPING;
      c->~C();
    }
  } destroy{closure};
  detail::Launch l;
  {
    SIMT_BOOKKEEPING;
    l.closure = closure;
    // Each CUDA thread gets its own copy of the parameters, as on the GPU.
    l.invoke = [](const void* c) {
      const auto* cl = static_cast<const C*>(c);
      Tuple copy = cl->args;
      std::apply(cl->kernel, copy);
    };
    l.name = name;
    l.grid = grid;
    l.block = block;
    l.dynamic_smem = dynamic_smem;
  }
  detail::run_grid(l);
}

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t dynamic_smem, Args&&... args) {
  launch_named("kernel", kernel, grid, block, dynamic_smem, std::forward<Args>(args)...);
}

// This block's dynamic shared memory (what `extern __shared__` names on the GPU).
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(detail::in_kernel("dynamic shared memory").dynamic_smem.data());
}

// Fiber switches so far, over all launches (the emulator's unit of cost).
inline uint64_t switches() { return detail::switch_count().load(); }

}  // namespace simt

// `extern __shared__ T name[];` in kernel source needs storage on the CPU: put
// SIMT_EXTERN_SHARED(T, name) at namespace scope, in the kernel's namespace, before the kernel
// headers. Capacity SIMT_EXTERN_SHARED_BYTES (default 64 KiB). g++ 12 also needs
// -fno-extern-tls-init for such symbols inside templates.
#ifndef SIMT_EXTERN_SHARED_BYTES
#define SIMT_EXTERN_SHARED_BYTES (64 * 1024)
#endif
#define SIMT_EXTERN_SHARED(T, name)                                                                   \
  alignas(16) thread_local T name[SIMT_EXTERN_SHARED_BYTES / sizeof(T)];                              \
  [[maybe_unused]] inline const bool simt_extern_shared_##name = [] {                                 \
    ::simt::detail::extern_shared_symbols().push_back({+[]() -> std::pair<void*, size_t> {           \
      return {static_cast<void*>(name), sizeof(name)};                                                \
    }});                                                                                              \
    return true;                                                                                      \
  }();

// ---- intrinsics -------------------------------------------------------------------------------
inline void __syncthreads(::simt::Loc where = ::simt::Loc::here()) { simt::detail::in_kernel("__syncthreads").barrier(1, where); }
inline int __syncthreads_count(int predicate, ::simt::Loc where = ::simt::Loc::here()) {
  return simt::detail::in_kernel("__syncthreads_count").barrier(predicate, where);
}
inline int __syncthreads_and(int predicate, ::simt::Loc where = ::simt::Loc::here()) {
  auto& w = simt::detail::in_kernel("__syncthreads_and");
  const int live = static_cast<int>(w.live);
  return w.barrier(predicate, where) == live;
}
inline int __syncthreads_or(int predicate, ::simt::Loc where = ::simt::Loc::here()) {
  return simt::detail::in_kernel("__syncthreads_or").barrier(predicate, where) != 0;
}

inline void __syncwarp(unsigned mask = 0xffffffffu, ::simt::Loc where = ::simt::Loc::here()) {
  auto& w = simt::detail::in_kernel("__syncwarp");
  w.warp_release(w.warp_arrive(mask, simt::detail::WarpOp::Syncwarp, 0, where));
}

namespace simt::detail {
enum class ShuffleMode { Index, Up, Down, Xor };

// PTX shfl.sync (ISA §9.7.8.6) with the c operand CUDA's headers build from `width`: the warp is
// split into segments of `width` lanes; a source lane outside the segment (or past its bounds
// for up/down) yields the caller's own value. A source lane outside `mask` is undefined in
// CUDA: it reads poison here (all bits set: NaN, or -1).
template <class T>
T shuffle(unsigned mask, T value, int b, int width, ShuffleMode mode, const Loc& where) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "__shfl_*_sync: a type of at most 8 bytes");
  Worker& w = in_kernel("__shfl_*_sync");
  if (width <= 0 || width > 32 || (width & (width - 1)))
    w.fail([&] { return w.who(*w.current) + ": __shfl_*_sync width " + std::to_string(width) + " is not a power of two <= 32 at " + str(where); });
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  const int lane = static_cast<int>(w.current->lane);
  Collective* c = w.warp_arrive(mask, WarpOp::Shuffle, bits, where);
  const int segment_mask = (32 - width) & 31;
  const int clamp = mode == ShuffleMode::Up ? 0 : 31;
  const int max_lane = (lane & segment_mask) | (clamp & ~segment_mask);
  const int min_lane = lane & segment_mask;
  int src = lane;
  bool valid = false;
  switch (mode) {
    case ShuffleMode::Up: src = lane - b; valid = src >= max_lane; break;
    case ShuffleMode::Down: src = lane + b; valid = src <= max_lane; break;
    case ShuffleMode::Xor: src = lane ^ (b & 31); valid = src <= max_lane; break;
    case ShuffleMode::Index: src = min_lane | (b & 31 & ~segment_mask); valid = src <= max_lane; break;
  }
  if (!valid) src = lane;
  uint64_t result;
  {
    SIMT_BOOKKEEPING;
    result = (c->mask >> src & 1u) ? c->values[src] : ~uint64_t{0};
  }
  w.warp_release(c);
  T out;
  std::memcpy(&out, &result, sizeof(T));
  return out;
}

inline uint32_t vote(unsigned mask, bool predicate, const Loc& where, uint32_t* members) {
  Worker& w = in_kernel("__ballot_sync/__any_sync/__all_sync");
  Collective* c = w.warp_arrive(mask, WarpOp::Vote, predicate ? 1 : 0, where);
  SIMT_BOOKKEEPING;
  uint32_t ballot = 0;
  for (int l = 0; l < 32; ++l)
    if ((c->mask >> l & 1u) && c->values[l]) ballot |= 1u << l;
  *members = c->mask;
  w.warp_release(c);
  return ballot;
}
}  // namespace simt::detail

template <class T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = warpSize, ::simt::Loc where = ::simt::Loc::here()) {
  return simt::detail::shuffle(mask, value, src_lane, width, simt::detail::ShuffleMode::Index, where);
}
template <class T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = warpSize, ::simt::Loc where = ::simt::Loc::here()) {
  return simt::detail::shuffle(mask, value, static_cast<int>(delta), width, simt::detail::ShuffleMode::Up, where);
}
template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize, ::simt::Loc where = ::simt::Loc::here()) {
  return simt::detail::shuffle(mask, value, static_cast<int>(delta), width, simt::detail::ShuffleMode::Down, where);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize, ::simt::Loc where = ::simt::Loc::here()) {
  return simt::detail::shuffle(mask, value, lane_mask, width, simt::detail::ShuffleMode::Xor, where);
}
inline unsigned __ballot_sync(unsigned mask, int predicate, ::simt::Loc where = ::simt::Loc::here()) {
  uint32_t members;
  return simt::detail::vote(mask, predicate != 0, where, &members);
}
inline int __any_sync(unsigned mask, int predicate, ::simt::Loc where = ::simt::Loc::here()) {
  uint32_t members;
  return simt::detail::vote(mask, predicate != 0, where, &members) != 0;
}
inline int __all_sync(unsigned mask, int predicate, ::simt::Loc where = ::simt::Loc::here()) {
  uint32_t members;
  const uint32_t ballot = simt::detail::vote(mask, predicate != 0, where, &members);
  return ballot == members;
}
// The emulator cannot know which lanes a GPU would have converged: it reports every live lane.
inline unsigned __activemask() {
  auto& w = simt::detail::in_kernel("__activemask");
  const auto& warp = w.warps[w.current->warp];
  return warp.present & ~warp.exited;
}

// Memory fences: one address space, so the C++ fences are enough.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }

// Atomics: relaxed, as CUDA's atomicXxx are; blocks run on several OS threads.
template <class T>
concept SimtAtomic = std::is_arithmetic_v<T>;
template <SimtAtomic T>
T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed); }
template <SimtAtomic T>
T atomicSub(T* p, T v) { return std::atomic_ref<T>(*p).fetch_sub(v, std::memory_order_relaxed); }
template <SimtAtomic T>
T atomicExch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v, std::memory_order_relaxed); }
template <SimtAtomic T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired, std::memory_order_relaxed);
  return expected;  // the old value, whether or not it matched
}
namespace simt::detail {
template <class T, class F>
T atomic_update(T* p, F f) {
  std::atomic_ref<T> a(*p);
  T old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, f(old), std::memory_order_relaxed)) {
  }
  return old;
}
}  // namespace simt::detail
template <SimtAtomic T>
T atomicMax(T* p, T v) { return simt::detail::atomic_update(p, [v](T o) { return o < v ? v : o; }); }
template <SimtAtomic T>
T atomicMin(T* p, T v) { return simt::detail::atomic_update(p, [v](T o) { return v < o ? v : o; }); }
template <std::integral T>
T atomicAnd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_and(v, std::memory_order_relaxed); }
template <std::integral T>
T atomicOr(T* p, T v) { return std::atomic_ref<T>(*p).fetch_or(v, std::memory_order_relaxed); }
template <std::integral T>
T atomicXor(T* p, T v) { return std::atomic_ref<T>(*p).fetch_xor(v, std::memory_order_relaxed); }
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  return simt::detail::atomic_update(p, [limit](unsigned o) { return o >= limit ? 0u : o + 1u; });
}

// Math intrinsics: the host libm. The fast variants are more accurate here than on a GPU
// (__expf has 2 ulp + 2^-21.4 on sm_80), which is why kernel tests compare with tolerances.
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : (x == x ? x : 0.f)); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return x ? std::countr_zero(static_cast<unsigned>(x)) + 1 : 0; }
template <class T>
T __ldg(const T* p) { return *p; }

// CUDA's global min/max overloads (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
