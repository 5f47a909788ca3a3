// Small helpers shared by the binding files.
#pragma once
#include <napi.h>
#include <net/if.h>

#include <cstring>
#include <string>

#include "common/clock.h"

namespace maelstrom::bindings {

// The interface's index in the caller's network namespace, or a JavaScript error naming it.
inline int ifindex_of(Napi::Env env, const std::string& name) {
  unsigned ifindex = if_nametoindex(name.c_str());
  if (ifindex == 0) throw Napi::Error::New(env, "no interface named " + name + " in this network namespace");
  return int(ifindex);
}

// A time in CLOCK_MONOTONIC nanoseconds passed as argument `index` (a number or a BigInt);
// now when it is absent.
inline uint64_t time_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() > index && info[index].IsBigInt()) {
    bool lossless;
    return info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return info.Length() > index && info[index].IsNumber() ? uint64_t(info[index].As<Napi::Number>().DoubleValue())
                                                         : monotonic_ns();
}

// Throws "what: strerror" for a negative errno.
inline void check(Napi::Env env, int err, const std::string& what) {
  if (err < 0) throw Napi::Error::New(env, what + ": " + strerror(-err));
}

}  // namespace maelstrom::bindings
