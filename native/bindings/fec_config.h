// Reading the codec's configuration objects (already validated in src/fec/config.ts) into the
// C++ structs: shared by the codec bindings and the engine binding.
#pragma once
#include <napi.h>

#include "fec/decoder.h"
#include "fec/encoder.h"

namespace maelstrom::bindings {

inline double get_number(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

inline fec::EncoderConfig encoder_config(const Napi::Object& o) {
  fec::EncoderConfig c;
  c.r = unsigned(get_number(o, "r", c.r));
  if (o.Get("interleaves").IsArray()) {
    Napi::Array a = o.Get("interleaves").As<Napi::Array>();
    c.interleaves.clear();
    for (uint32_t i = 0; i < a.Length(); i++)
      c.interleaves.push_back(a.Get(i).As<Napi::Number>().Uint32Value());
  }
  c.flush_timeout_ns = uint64_t(get_number(o, "flushTimeoutNs", double(c.flush_timeout_ns)));
  c.max_packet = unsigned(get_number(o, "maxPacketSize", c.max_packet));
  c.epoch = uint32_t(get_number(o, "epoch", c.epoch));
  c.first_seq = uint32_t(get_number(o, "firstSeq", c.first_seq));
  c.budget_ratio = get_number(o, "budgetRatio", c.budget_ratio);
  c.budget_per_s = get_number(o, "budgetPerS", c.budget_per_s);
  return c;
}

inline fec::DecoderConfig decoder_config(const Napi::Object& o) {
  fec::DecoderConfig c;
  c.max_packet = unsigned(get_number(o, "maxPacketSize", c.max_packet));
  c.window = unsigned(get_number(o, "window", c.window));
  c.pending = unsigned(get_number(o, "pending", c.pending));
  c.seen = unsigned(get_number(o, "seen", c.seen));
  c.grace_ns = uint64_t(get_number(o, "graceUs", 0) * 1000);
  return c;
}

}  // namespace maelstrom::bindings
