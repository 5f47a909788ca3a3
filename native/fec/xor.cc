#include "fec/xor.h"

#include <cstring>
#include <immintrin.h>

namespace maelstrom::fec {
namespace {

void xor_portable(uint8_t* dst, const uint8_t* src, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t a, b;
    std::memcpy(&a, dst + i, 8);
    std::memcpy(&b, src + i, 8);
    a ^= b;
    std::memcpy(dst + i, &a, 8);
  }
  for (; i < n; i++) dst[i] ^= src[i];
}

__attribute__((target("avx2"))) void xor_avx2(uint8_t* dst, const uint8_t* src, size_t n) {
  size_t i = 0;
  for (; i + 128 <= n; i += 128) {
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    auto* s = reinterpret_cast<const __m256i*>(src + i);
    __m256i a0 = _mm256_xor_si256(_mm256_loadu_si256(d + 0), _mm256_loadu_si256(s + 0));
    __m256i a1 = _mm256_xor_si256(_mm256_loadu_si256(d + 1), _mm256_loadu_si256(s + 1));
    __m256i a2 = _mm256_xor_si256(_mm256_loadu_si256(d + 2), _mm256_loadu_si256(s + 2));
    __m256i a3 = _mm256_xor_si256(_mm256_loadu_si256(d + 3), _mm256_loadu_si256(s + 3));
    _mm256_storeu_si256(d + 0, a0);
    _mm256_storeu_si256(d + 1, a1);
    _mm256_storeu_si256(d + 2, a2);
    _mm256_storeu_si256(d + 3, a3);
  }
  for (; i + 32 <= n; i += 32) {
    auto* d = reinterpret_cast<__m256i*>(dst + i);
    auto* s = reinterpret_cast<const __m256i*>(src + i);
    _mm256_storeu_si256(d, _mm256_xor_si256(_mm256_loadu_si256(d), _mm256_loadu_si256(s)));
  }
  xor_portable(dst + i, src + i, n - i);
}

void xor_many_portable(uint8_t* const* dsts, unsigned ndst, const uint8_t* src, size_t n) {
  for (unsigned k = 0; k < ndst; k++) xor_portable(dsts[k], src, n);
}

__attribute__((target("avx2"))) void xor_many_avx2(uint8_t* const* dsts, unsigned ndst,
                                                   const uint8_t* src, size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m256i s0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i s1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
    for (unsigned k = 0; k < ndst; k++) {
      auto* d = reinterpret_cast<__m256i*>(dsts[k] + i);
      _mm256_storeu_si256(d, _mm256_xor_si256(_mm256_loadu_si256(d), s0));
      _mm256_storeu_si256(d + 1, _mm256_xor_si256(_mm256_loadu_si256(d + 1), s1));
    }
  }
  for (unsigned k = 0; k < ndst; k++) xor_avx2(dsts[k] + i, src + i, n - i);
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

}  // namespace

XorFn xor_into_impl = cpu_has_avx2() ? xor_avx2 : xor_portable;
XorManyFn xor_into_many_impl = cpu_has_avx2() ? xor_many_avx2 : xor_many_portable;

XorImpl xor_active() { return xor_into_impl == xor_avx2 ? XorImpl::Avx2 : XorImpl::Portable; }

bool xor_available(XorImpl impl) { return impl == XorImpl::Portable || cpu_has_avx2(); }

XorFn xor_function(XorImpl impl) {
  if (impl == XorImpl::Avx2 && cpu_has_avx2()) return xor_avx2;
  return xor_portable;
}

XorManyFn xor_many_function(XorImpl impl) {
  if (impl == XorImpl::Avx2 && cpu_has_avx2()) return xor_many_avx2;
  return xor_many_portable;
}

const char* xor_name(XorImpl impl) { return impl == XorImpl::Avx2 ? "avx2" : "portable"; }

}  // namespace maelstrom::fec
