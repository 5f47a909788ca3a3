// CLOCK_MONOTONIC in nanoseconds: the one time base of the codec's flush timeout, the engine,
// the delay line and the benchmarks.
#pragma once
#include <time.h>

#include <cstdint>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

namespace maelstrom {

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

// A cheap tick for timing stages of the packet path (the TSC where there is one, else the
// monotonic clock): a few ns to read, converted to ns against monotonic_ns() over a whole run.
inline uint64_t cycles() {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return monotonic_ns();
#endif
}

}  // namespace maelstrom
