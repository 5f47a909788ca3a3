// Bindings of the authentication envelope: key derivation for the key files, and AuthChannel,
// one sender and one receiver, for the storage side's feedback listener and for tests.
#pragma once
#include <napi.h>

#include "auth/envelope.h"

namespace maelstrom::bindings {
Napi::Object auth_counts_object(Napi::Env env, const uint64_t* counts);
std::string key_id_hex(uint32_t id);
void init_auth(Napi::Env env, Napi::Object exports);
}  // namespace maelstrom::bindings
