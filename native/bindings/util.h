// Small helpers shared by the binding files.
#pragma once
#include <napi.h>
#include <net/if.h>

#include <cstring>
#include <string>

namespace maelstrom::bindings {

// The interface's index in the caller's network namespace, or a JavaScript error naming it.
inline int ifindex_of(Napi::Env env, const std::string& name) {
  unsigned ifindex = if_nametoindex(name.c_str());
  if (ifindex == 0) throw Napi::Error::New(env, "no interface named " + name + " in this network namespace");
  return int(ifindex);
}

// Throws "what: strerror" for a negative errno.
inline void check(Napi::Env env, int err, const std::string& what) {
  if (err < 0) throw Napi::Error::New(env, what + ": " + strerror(-err));
}

}  // namespace maelstrom::bindings
