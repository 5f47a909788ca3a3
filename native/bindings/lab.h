// Bindings of the lab's WAN emulator pieces (delay line, XDP loss).
#pragma once
#include <napi.h>

namespace maelstrom::bindings {
void init_lab(Napi::Env env, Napi::Object exports);
}
