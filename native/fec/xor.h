// XOR of byte ranges, the inner loop of both encoder and decoder.
// The implementation is picked once at start from what the CPU offers (AVX2 or portable).
#pragma once
#include <cstddef>
#include <cstdint>

namespace maelstrom::fec {

enum class XorImpl { Portable = 0, Avx2 = 1 };

using XorFn = void (*)(uint8_t* dst, const uint8_t* src, size_t n);
using XorManyFn = void (*)(uint8_t* const* dsts, unsigned ndst, const uint8_t* src, size_t n);

// The functions chosen for this CPU.
extern XorFn xor_into_impl;
extern XorManyFn xor_into_many_impl;

// dst[i] ^= src[i] for i < n.
inline void xor_into(uint8_t* dst, const uint8_t* src, size_t n) { xor_into_impl(dst, src, n); }

// dsts[k][i] ^= src[i] for every k < ndst: src is read once for all of them (one per layer).
inline void xor_into_many(uint8_t* const* dsts, unsigned ndst, const uint8_t* src, size_t n) {
  xor_into_many_impl(dsts, ndst, src, n);
}

XorImpl xor_active();
bool xor_available(XorImpl impl);
XorFn xor_function(XorImpl impl);
XorManyFn xor_many_function(XorImpl impl);
const char* xor_name(XorImpl impl);

}  // namespace maelstrom::fec
