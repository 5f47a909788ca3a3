// Bindings of the gateway engine.
#pragma once
#include <napi.h>

namespace maelstrom::bindings {
void init_engine(Napi::Env env, Napi::Object exports);
}
