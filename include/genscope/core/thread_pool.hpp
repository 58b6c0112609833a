// genscope/core/thread_pool.hpp — one process-wide pool of worker threads and parallel_for.
//
// The pool has GENSCOPE_NUM_THREADS threads (if set to a positive integer) or one per hardware
// thread; the calling thread works too, so N threads means N-1 workers. parallel_for splits
// [begin, end) into chunks of at least `grain` indices and hands them out through an atomic
// counter, so uneven chunks balance themselves. A parallel_for called from inside another runs
// serially on the calling thread: nesting never deadlocks and never oversubscribes the cores.
// The first exception thrown by a chunk is rethrown to the caller after all chunks stop.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "genscope/core/error.hpp"

namespace genscope {

// Threads from GENSCOPE_NUM_THREADS, else the hardware; an invalid value is an error that says so.
inline int configured_num_threads() {
  if (const char* env = std::getenv("GENSCOPE_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (*end != '\0' || n < 1 || n > 4096)
      fail<UsageError>("GENSCOPE_NUM_THREADS='", env, "': expected a positive integer up to 4096");
    return static_cast<int>(n);
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
    for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      stopping_flag_.store(true);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (end <= begin) return;
    grain = std::max<int64_t>(grain, 1);
    const int64_t n = end - begin;
    // Serial when nested, when there is one thread, or when the range is a single chunk.
    if (in_parallel_region() || num_threads_ == 1 || n <= grain) {
      fn(begin, end);
      return;
    }
    // About 4 chunks per thread for balance, never smaller than grain.
    const int64_t chunk = std::max(grain, (n + 4 * num_threads_ - 1) / (4 * num_threads_));
    Job job{fn, begin, end, chunk};

    std::unique_lock submit(submit_mutex_);  // one parallel region at a time from outside
    {
      std::lock_guard lock(mutex_);
      job_ = &job;
      ++generation_;
      announced_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
    run_chunks(job);
    spin_while([&] { return job.active_workers.load(std::memory_order_acquire) != 0; });
    {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [&] { return job.active_workers == 0; });
      job_ = nullptr;
    }
    if (job.error) std::rethrow_exception(job.error);
  }

  static ThreadPool& global() {
    static ThreadPool pool(configured_num_threads());
    return pool;
  }

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>& fn;
    int64_t begin, end, chunk;
    std::atomic<int64_t> next{0};
    std::atomic<int> active_workers{0};  // changed under mutex_; read without it while spinning
    std::exception_ptr error;
    std::mutex error_mutex;
    Job(const std::function<void(int64_t, int64_t)>& f, int64_t b, int64_t e, int64_t c) : fn(f), begin(b), end(e), chunk(c), next(b) {}
  };

  static bool& in_parallel_region() {
    thread_local bool flag = false;
    return flag;
  }

  // Spin (yielding) while cond() holds, for at most kSpin, before a thread blocks on a condition
  // variable. Parallel regions follow each other within microseconds, and a thread woken from a
  // futex can take milliseconds to run on a virtualised machine: measured on the 2-core CI VM, the
  // SD VAE's workers then missed most regions and a 2-thread pass used 1.08 cores.
  static constexpr auto kSpin = std::chrono::microseconds(200);
  template <class Cond>
  static void spin_while(Cond cond) {
    const auto stop = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0; cond(); ++i) {
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > stop) return;
      std::this_thread::yield();
    }
  }

  static void run_chunks(Job& job) {
    in_parallel_region() = true;
    for (;;) {
      const int64_t lo = job.next.fetch_add(job.chunk);
      if (lo >= job.end) break;
      try {
        job.fn(lo, std::min(job.end, lo + job.chunk));
      } catch (...) {
        std::lock_guard lock(job.error_mutex);
        if (!job.error) job.error = std::current_exception();
        job.next.store(job.end);  // stop handing out chunks
      }
    }
    in_parallel_region() = false;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      Job* job = nullptr;
      spin_while([&] { return announced_.load(std::memory_order_acquire) == seen && !stopping_flag_.load(std::memory_order_relaxed); });
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || (job_ != nullptr && generation_ != seen); });
        if (stopping_) return;
        seen = generation_;
        job = job_;
        ++job->active_workers;
      }
      run_chunks(*job);
      {
        std::lock_guard lock(mutex_);
        --job->active_workers;
      }
      done_.notify_all();
    }
  }

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex submit_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> announced_{0};  // generation_, readable without mutex_ (spin_while)
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // stopping_, likewise
};

// parallel_for over the global pool: fn(lo, hi) is called on disjoint chunks covering [begin, end).
inline void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  ThreadPool::global().parallel_for(begin, end, grain, fn);
}

inline int num_threads() { return ThreadPool::global().num_threads(); }

}  // namespace genscope
