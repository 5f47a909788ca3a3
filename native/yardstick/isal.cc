// The codec benchmark's yardstick from outside the project: ISA-L's Reed-Solomon encoder
// (ec_encode_data, Cauchy matrix, SIMD tables), RS(k, m) over the same synthetic packets that
// `bench codec` encodes, on one core. Built as an addon of its own (maelstrom_yardstick.node) so
// that ISA-L is linked into the benchmark only, never into the gateway.
//
//   isalEncode({ packetLength, poolPackets, k, m, minSeconds }) -> { GBps, groups, impl }
//
// GBps counts data bytes in, as encode_GBps does: a group of k packets of packetLength bytes
// gives m parity blocks of packetLength bytes.
#include <isa-l/erasure_code.h>
#include <napi.h>
#include <time.h>

#include <algorithm>
#include <vector>

#include "fec/synthetic.h"

namespace {

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

unsigned uint_field(const Napi::Object& o, const char* name, unsigned lo, unsigned hi) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(name) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != double(unsigned(d)))
    throw Napi::RangeError::New(o.Env(), std::string(name) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return unsigned(d);
}

Napi::Value IsalEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "isalEncode takes one options object");
  Napi::Object o = info[0].As<Napi::Object>();
  const unsigned len = uint_field(o, "packetLength", 36, 65535);
  const unsigned k = uint_field(o, "k", 1, 32), m = uint_field(o, "m", 1, 32);
  unsigned n = uint_field(o, "poolPackets", k, 10'000'000);
  n -= n % k;  // whole groups
  Napi::Value s = o.Get("minSeconds");
  const double min_seconds = s.IsNumber() ? s.As<Napi::Number>().DoubleValue() : 0.5;
  if (!(min_seconds > 0 && min_seconds <= 600)) throw Napi::RangeError::New(env, "minSeconds must be above 0 and at most 600");

  std::vector<uint8_t> pool(size_t(len) * n);
  for (size_t i = 0; i < n; i++) maelstrom::fec::make_packet(i, len, pool.data() + i * len);
  std::vector<uint8_t> matrix((k + m) * k), tables(32 * k * m);
  gf_gen_cauchy1_matrix(matrix.data(), int(k + m), int(k));
  ec_init_tables(int(k), int(m), matrix.data() + k * k, tables.data());
  std::vector<uint8_t> parity(size_t(m) * len);
  std::vector<uint8_t*> out(m), in(k);
  for (unsigned j = 0; j < m; j++) out[j] = parity.data() + size_t(j) * len;

  double start = now_s(), elapsed = 0;
  uint64_t groups = 0;
  do {
    for (size_t g = 0; g < n; g += k) {
      for (unsigned j = 0; j < k; j++) in[j] = pool.data() + (g + j) * len;
      ec_encode_data(int(len), int(k), int(m), tables.data(), in.data(), out.data());
      escape(parity.data());
      groups++;
    }
    elapsed = now_s() - start;
  } while (elapsed < min_seconds);

  Napi::Object r = Napi::Object::New(env);
  r["GBps"] = double(groups) * k * len / elapsed / 1e9;
  r["groups"] = double(groups);
  r["impl"] = "isa-l ec_encode_data";
  return r;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports["isalEncode"] = Napi::Function::New<IsalEncode>(env);
  return exports;
}

}  // namespace

NODE_API_MODULE(maelstrom_yardstick, Init)
