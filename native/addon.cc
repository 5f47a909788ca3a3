// N-API bindings, nothing else: argument shapes are validated in TypeScript (src/fec/), so
// this layer copies plain values into the C++ config structs and trusts them; a value of the
// wrong type is a JavaScript TypeError (NODE_ADDON_API_ENABLE_TYPE_CHECK_ON_AS), never undefined
// behaviour. Every time ("nowNs") is CLOCK_MONOTONIC nanoseconds, a BigInt or a number, now
// when absent (bindings/util.h time_arg).
#include <bpf/libbpf.h>
#include <napi.h>
#include <xxhash.h>

#include <cstring>
#include <vector>

#include "fec/bench.h"
#include "fec/decoder.h"
#include "fec/encoder.h"
#include "fec/packet_id.h"
#include "fec/repair_format.h"
#include "fec/simulate.h"
#include "bindings/auth.h"
#include "bindings/constants.h"
#include "bindings/engine.h"
#include "bindings/fuse.h"
#include "bindings/lab.h"
#include "bindings/live.h"
#include "bindings/netsync.h"
#include "bindings/fec_config.h"
#include "bindings/util.h"
#include "common/checksum.h"
#include "fec/xor.h"
#include "xsk/xdp_query.h"

namespace fec = maelstrom::fec;
using maelstrom::bindings::decoder_config;
using maelstrom::bindings::encoder_config;
using maelstrom::bindings::get_number;
using maelstrom::bindings::time_arg;

namespace {

Napi::Object decoder_stats(Napi::Env env, const fec::DecoderStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o["data"] = double(s.data);
  o["dataBytes"] = double(s.data_bytes);
  o["duplicates"] = double(s.duplicates);
  o["invalid"] = double(s.invalid);
  o["repairs"] = double(s.repairs);
  Napi::Object m = Napi::Object::New(env);
  for (size_t e = 1; e < size_t(fec::ParseError::Count_); e++)
    m[fec::parse_error_name(fec::ParseError(e))] = double(s.malformed[e]);
  o["malformed"] = double(s.malformed_total());
  o["malformedBy"] = m;
  o["staleEpoch"] = double(s.stale_epoch);
  o["outOfWindow"] = double(s.out_of_window);
  o["useless"] = double(s.useless);
  o["recovered"] = double(s.recovered);
  o["recoveredBytes"] = double(s.recovered_bytes);
  o["verifyFailed"] = double(s.verify_failed);
  o["pendingEvicted"] = double(s.pending_evicted);
  o["pendingExpired"] = double(s.pending_expired);
  o["lateArrivals"] = double(s.late_arrivals);
  o["unrecoverable"] = double(s.unrecoverable);
  o["resyncs"] = double(s.resyncs);
  o["epochChanges"] = double(s.epoch_changes);
  o["lossSampled"] = double(s.loss_sampled);
  o["lossMissing"] = double(s.loss_missing);
  o["lossBursts"] = double(s.loss_bursts);
  o["held"] = double(s.held);
  o["heldArrived"] = double(s.held_arrived);
  return o;
}

// Collects repairs or recovered packets as Buffers for the JavaScript caller.
class BufferCollector : public fec::RepairSink, public fec::RecoverySink {
 public:
  explicit BufferCollector(Napi::Env env) : env_(env), out_(Napi::Array::New(env)) {}
  uint8_t* reserve(size_t len) override {
    scratch_.resize(len);
    return scratch_.data();
  }
  void commit(size_t len, const fec::RepairInfo&) override { push(scratch_.data(), len); }
  void recovered(const uint8_t* pkt, size_t len) override { push(pkt, len); }
  Napi::Array result() { return out_; }

 private:
  void push(const uint8_t* p, size_t len) { out_[out_.Length()] = Napi::Buffer<uint8_t>::Copy(env_, p, len); }
  Napi::Env env_;
  Napi::Array out_;
  std::vector<uint8_t> scratch_;
};


class EncoderWrap : public Napi::ObjectWrap<EncoderWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Encoder",
                       {InstanceMethod<&EncoderWrap::Encode>("encode"),
                        InstanceMethod<&EncoderWrap::Poll>("poll"),
                        InstanceMethod<&EncoderWrap::Flush>("flush"),
                        InstanceMethod<&EncoderWrap::FlushCovering>("flushCovering"),
                        InstanceMethod<&EncoderWrap::Stats>("stats")});
  }

  explicit EncoderWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<EncoderWrap>(info), encoder_(encoder_config(info[0].As<Napi::Object>())) {}

 private:
  // encode(packets: Buffer[], nowNs?): { seqs: number[], repairs: Buffer[] }
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Array packets = info[0].As<Napi::Array>();
    uint64_t now = time_arg(info, 1);
    BufferCollector out(info.Env());
    Napi::Array seqs = Napi::Array::New(info.Env(), packets.Length());
    for (uint32_t i = 0; i < packets.Length(); i++) {
      Napi::Buffer<uint8_t> b = packets.Get(i).As<Napi::Buffer<uint8_t>>();
      seqs[i] = double(encoder_.add(b.Data(), b.Length(), now, out));
    }
    Napi::Object r = Napi::Object::New(info.Env());
    r["seqs"] = seqs;
    r["repairs"] = out.result();
    return r;
  }

  Napi::Value Poll(const Napi::CallbackInfo& info) {
    BufferCollector out(info.Env());
    encoder_.poll(time_arg(info, 0), out);
    return out.result();
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    BufferCollector out(info.Env());
    encoder_.flush(out);
    return out.result();
  }

  // flushCovering(seqs: number[], nowNs?): the repairs of the bins holding any of them, as far
  // as the budget goes.
  Napi::Value FlushCovering(const Napi::CallbackInfo& info) {
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "flushCovering takes an array of sequence numbers");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<uint32_t> seqs(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) seqs[i] = a.Get(i).As<Napi::Number>().Uint32Value();
    BufferCollector out(info.Env());
    encoder_.flush_covering(seqs.data(), seqs.size(), time_arg(info, 1), out);
    return out.result();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    const fec::EncoderStats& s = encoder_.stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o["packets"] = double(s.packets);
    o["bytes"] = double(s.bytes);
    o["oversize"] = double(s.oversize);
    o["repairs"] = double(s.repairs);
    o["repairBytes"] = double(s.repair_bytes);
    o["repairsFlushed"] = double(s.repairs_flushed);
    o["repairsCovering"] = double(s.repairs_covering);
    o["coveringDeferred"] = double(s.covering_deferred);
    o["nextSeq"] = double(encoder_.next_seq());
    uint64_t deadline = encoder_.next_deadline();
    o["nextDeadlineNs"] = deadline == UINT64_MAX ? info.Env().Null() : Napi::Number::New(info.Env(), double(deadline));
    return o;
  }

  fec::Encoder encoder_;
};

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Decoder",
                       {InstanceMethod<&DecoderWrap::ReceiveData>("receiveData"),
                        InstanceMethod<&DecoderWrap::ReceiveRepairs>("receiveRepairs"),
                        InstanceMethod<&DecoderWrap::Poll>("poll"),
                        InstanceMethod<&DecoderWrap::Stats>("stats")});
  }

  explicit DecoderWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<DecoderWrap>(info), decoder_(decoder_config(info[0].As<Napi::Object>())) {}

 private:
  // receiveData(packets, nowNs?)
  Napi::Value ReceiveData(const Napi::CallbackInfo& info) {
    Napi::Array packets = info[0].As<Napi::Array>();
    uint64_t now = time_arg(info, 1);
    BufferCollector out(info.Env());
    for (uint32_t i = 0; i < packets.Length(); i++) {
      Napi::Buffer<uint8_t> b = packets.Get(i).As<Napi::Buffer<uint8_t>>();
      decoder_.on_data(b.Data(), b.Length(), out, now);
    }
    return out.result();
  }

  // receiveRepairs(repairs, nowNs?)
  Napi::Value ReceiveRepairs(const Napi::CallbackInfo& info) {
    Napi::Array repairs = info[0].As<Napi::Array>();
    uint64_t now = time_arg(info, 1);
    BufferCollector out(info.Env());
    for (uint32_t i = 0; i < repairs.Length(); i++) {
      Napi::Buffer<uint8_t> b = repairs.Get(i).As<Napi::Buffer<uint8_t>>();
      decoder_.on_repair(b.Data(), b.Length(), out, now);
    }
    return out.result();
  }

  // poll(nowNs): what repairs held for the grace rebuild at nowNs.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    BufferCollector out(info.Env());
    decoder_.poll(time_arg(info, 0), out);
    return out.result();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object o = decoder_stats(info.Env(), decoder_.stats());
    o["pending"] = double(decoder_.pending());
    o["windowFill"] = double(decoder_.window_fill());
    o["epoch"] = double(decoder_.epoch());
    return o;
  }

  fec::Decoder decoder_;
};

// parseRepair(buf, maxPacketSize): the header and recipe, or { error } naming the check failed.
Napi::Value ParseRepair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  fec::RepairView v;
  fec::ParseError err = fec::parse_repair(b.Data(), b.Length(), info[1].As<Napi::Number>().Uint32Value(), &v);
  Napi::Object o = Napi::Object::New(env);
  if (err != fec::ParseError::None) {
    o["error"] = fec::parse_error_name(err);
    return o;
  }
  const fec::RepairHeader& h = v.header;
  o["epoch"] = double(h.epoch);
  o["baseSeq"] = double(h.base_seq);
  o["layer"] = double(h.layer);
  o["count"] = double(h.count);
  o["interleave"] = double(h.interleave);
  o["bin"] = double(h.bin);
  o["xorLength"] = double(h.xor_len);
  Napi::Array entries = Napi::Array::New(env, h.count);
  for (unsigned k = 0; k < h.count; k++) {
    fec::RecipeEntry e = fec::read_entry(v.entries, k);
    Napi::Object eo = Napi::Object::New(env);
    eo["hash"] = Napi::BigInt::New(env, e.hash);
    eo["length"] = double(e.len);
    eo["ttl"] = double(e.ttl);
    eo["tos"] = double(e.tos);
    entries[k] = eo;
  }
  o["entries"] = entries;
  return o;
}

// sealRepair(buf): recomputes the recipe check of a repair whose header or entries were edited.
Napi::Value SealRepair(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  if (b.Length() < fec::kRepairHeaderSize ||
      b.Length() < fec::kRepairHeaderSize + size_t(b.Data()[13]) * fec::kRecipeEntrySize)
    throw Napi::RangeError::New(info.Env(), "too short for the entries its count announces");
  fec::seal_repair(b.Data(), b.Data()[13]);
  return info.Env().Undefined();
}

Napi::Value PacketIdentity(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  fec::PacketId id = fec::identify(b.Data(), b.Length());
  Napi::Object o = Napi::Object::New(info.Env());
  o["hash"] = Napi::BigInt::New(info.Env(), id.hash);
  o["length"] = double(id.len);
  o["ttl"] = double(id.ttl);
  o["tos"] = double(id.tos);
  return o;
}

// completeChecksum(ipPacket): what the engine does to a LAN packet before anything reads it:
// a partial TCP/UDP checksum completed in place; true when it was.
Napi::Value CompleteChecksum(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  return Napi::Boolean::New(info.Env(), maelstrom::complete_partial_checksum(b.Data(), b.Length()));
}

// xorInto(dst, src, impl): the named implementation, so tests can compare them.
Napi::Value XorInto(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> dst = info[0].As<Napi::Buffer<uint8_t>>();
  Napi::Buffer<uint8_t> src = info[1].As<Napi::Buffer<uint8_t>>();
  fec::XorImpl impl = info[2].As<Napi::String>().Utf8Value() == "avx2" ? fec::XorImpl::Avx2 : fec::XorImpl::Portable;
  fec::xor_function(impl)(dst.Data(), src.Data(), std::min(dst.Length(), src.Length()));
  return info.Env().Undefined();
}

Napi::Value XorImplementations(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o["active"] = fec::xor_name(fec::xor_active());
  Napi::Array available = Napi::Array::New(info.Env());
  for (fec::XorImpl impl : {fec::XorImpl::Portable, fec::XorImpl::Avx2})
    if (fec::xor_available(impl)) available[available.Length()] = fec::xor_name(impl);
  o["available"] = available;
  return o;
}

Napi::Value Simulate(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  fec::SimConfig c;
  c.encoder = encoder_config(o.Get("encoder").As<Napi::Object>());
  c.decoder = decoder_config(o.Get("decoder").As<Napi::Object>());
  c.packets = uint64_t(get_number(o, "packets", double(c.packets)));
  c.min_len = unsigned(get_number(o, "minLength", c.min_len));
  c.max_len = unsigned(get_number(o, "maxLength", c.max_len));
  c.loss = get_number(o, "loss", c.loss);
  c.burst_length = get_number(o, "burstLength", c.burst_length);
  c.lose_repairs = o.Get("loseRepairs").IsBoolean() ? o.Get("loseRepairs").As<Napi::Boolean>().Value() : true;
  c.seed = uint64_t(get_number(o, "seed", double(c.seed)));
  c.packet_interval_ns = uint64_t(get_number(o, "packetIntervalNs", double(c.packet_interval_ns)));
  fec::SimResult r = fec::simulate(c);
  Napi::Object out = Napi::Object::New(info.Env());
  out["data"] = double(r.data);
  out["dataLost"] = double(r.data_lost);
  out["recovered"] = double(r.recovered);
  out["unrecovered"] = double(r.unrecovered);
  out["repairs"] = double(r.repairs);
  out["repairsLost"] = double(r.repairs_lost);
  out["wrongOutput"] = double(r.wrong_output);
  out["repeatedOutput"] = double(r.repeated_output);
  out["decoder"] = decoder_stats(info.Env(), r.decoder);
  return out;
}

Napi::Value BenchCodec(const Napi::CallbackInfo& info) {
  Napi::Object o = info[0].As<Napi::Object>();
  fec::BenchConfig c;
  c.encoder = encoder_config(o.Get("encoder").As<Napi::Object>());
  c.packet_len = unsigned(get_number(o, "packetLength", c.packet_len));
  c.pool_packets = unsigned(get_number(o, "poolPackets", c.pool_packets));
  c.loss = get_number(o, "loss", c.loss);
  c.min_seconds = get_number(o, "minSeconds", c.min_seconds);
  fec::BenchResult r = fec::bench_codec(c);
  Napi::Object out = Napi::Object::New(info.Env());
  out["encodeGBps"] = r.encode_GBps;
  out["encodeSealedGBps"] = r.encode_sealed_GBps;
  out["decodeGBps"] = r.decode_GBps;
  out["memcpyGBps"] = r.memcpy_GBps;
  out["encodePackets"] = double(r.encode_packets);
  out["decodePackets"] = double(r.decode_packets);
  out["decodeLost"] = double(r.decode_lost);
  out["decodeRecovered"] = double(r.decode_recovered);
  out["xorImpl"] = r.xor_impl;
  return out;
}

// xdpAttached(ifname): the XDP programs on an interface in the caller's network namespace.
Napi::Value XdpAttached(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int ifindex = maelstrom::bindings::ifindex_of(env, name);
  maelstrom::xsk::XdpAttachment a;
  maelstrom::bindings::check(env, maelstrom::xsk::query_xdp(ifindex, &a), "cannot query XDP on " + name);
  Napi::Object o = Napi::Object::New(env);
  o["mode"] = a.mode;
  o["dispatcher"] = a.dispatcher;
  Napi::Array programs = Napi::Array::New(env, a.programs.size());
  for (size_t i = 0; i < a.programs.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p["name"] = a.programs[i].name;
    p["id"] = double(a.programs[i].id);
    programs[uint32_t(i)] = p;
  }
  o["programs"] = programs;
  return o;
}

// detachXdp(ifname, programName): how many programs of that name were detached.
Napi::Value DetachXdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int n = maelstrom::xsk::detach_xdp_by_name(maelstrom::bindings::ifindex_of(env, name), info[1].As<Napi::String>().Utf8Value());
  maelstrom::bindings::check(env, n, "cannot detach XDP from " + name);
  return Napi::Number::New(env, n);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  maelstrom::bindings::init_instance_data(env);
  exports["Encoder"] = EncoderWrap::Init(env);
  exports["Decoder"] = DecoderWrap::Init(env);
  exports["parseRepair"] = Napi::Function::New<ParseRepair>(env);
  exports["sealRepair"] = Napi::Function::New<SealRepair>(env);
  exports["packetId"] = Napi::Function::New<PacketIdentity>(env);
  exports["xorInto"] = Napi::Function::New<XorInto>(env);
  exports["completeChecksum"] = Napi::Function::New<CompleteChecksum>(env);
  exports["xorImplementations"] = Napi::Function::New<XorImplementations>(env);
  exports["simulate"] = Napi::Function::New<Simulate>(env);
  exports["benchCodec"] = Napi::Function::New<BenchCodec>(env);
  exports["xdpAttached"] = Napi::Function::New<XdpAttached>(env);
  exports["detachXdp"] = Napi::Function::New<DetachXdp>(env);
  maelstrom::bindings::init_auth(env, exports);
  maelstrom::bindings::init_constants(env, exports);
  maelstrom::bindings::init_lab(env, exports);
  maelstrom::bindings::init_engine(env, exports);
  maelstrom::bindings::init_fuse(env, exports);
  maelstrom::bindings::init_netsync(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(maelstrom, Init)
