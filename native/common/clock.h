// CLOCK_MONOTONIC in nanoseconds: the one time base of the codec's flush timeout, the engine,
// the delay line and the benchmarks.
#pragma once
#include <time.h>

#include <cstdint>

namespace maelstrom {

inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

}  // namespace maelstrom
