// Bindings of the FUSE session (native/fuse/): class FuseMount, whose requests reach
// JavaScript in batches through one thread-safe function and are answered by id.
#pragma once
#include <napi.h>

namespace maelstrom::bindings {
void init_fuse(Napi::Env env, Napi::Object exports);
}
