// The facts C and C++ own that TypeScript needs (counter names, wire sizes, ports, limits),
// exported as `constants` so the TypeScript side derives them (src/native/constants.ts is
// generated from it by scripts/gen-constants.mjs), and gw_config packed by the struct itself.
#pragma once
#include <napi.h>

namespace maelstrom::bindings {
extern const char* const kXdpStatNames[];
void init_constants(Napi::Env env, Napi::Object exports);
}  // namespace maelstrom::bindings
