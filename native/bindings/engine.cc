#include "bindings/engine.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <vector>

#include "bindings/auth.h"
#include "bindings/constants.h"
#include "bindings/fec_config.h"
#include "bindings/live.h"
#include "bindings/netsync.h"
#include "common/clock.h"
#include "engine/engine.h"
#include "gateway.h"

namespace maelstrom::bindings {
namespace {

uint32_t ipv4(Napi::Env env, const Napi::Value& v) {
  std::string s = v.As<Napi::String>();
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) throw Napi::TypeError::New(env, "not an IPv4 address: " + s);
  return a.s_addr;
}

// A list of RX queue numbers; queue 0 alone when absent.
std::vector<uint32_t> queues(const Napi::Value& v) {
  if (!v.IsArray()) return {0};
  Napi::Array a = v.As<Napi::Array>();
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::Number>().Uint32Value());
  return out;
}

std::array<uint8_t, auth::kKeyBytes> master_key(const Napi::Value& v) {
  Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
  std::array<uint8_t, auth::kKeyBytes> key{};
  if (b.Length() != key.size()) throw Napi::TypeError::New(v.Env(), "a master key is 32 bytes");
  std::memcpy(key.data(), b.Data(), key.size());
  return key;
}

Napi::Value key_or_null(Napi::Env env, uint32_t id) {
  return id ? Napi::Value(Napi::String::New(env, key_id_hex(id))) : env.Null();
}

void mac(const Napi::Value& v, uint8_t out[6]) {
  Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
  std::memcpy(out, b.Data(), 6);
}


class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod<&EngineWrap::Stats>("stats"), InstanceMethod<&EngineWrap::Info>("info"),
                        InstanceMethod<&EngineWrap::Events>("events"),
                        InstanceMethod<&EngineWrap::SetTrace>("setTrace"),
                        InstanceMethod<&EngineWrap::Retune>("retune"),
                        InstanceMethod<&EngineWrap::Rekey>("rekey"),
                        InstanceMethod<&EngineWrap::Auth>("auth"),
                        InstanceMethod<&EngineWrap::Stop>("stop")});
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    engine::EngineConfig c;
    c.lan_if = o.Get("lanIf").As<Napi::String>();
    c.wan_if = o.Get("wanIf").As<Napi::String>();
    c.bpf_object = o.Get("bpfObject").As<Napi::String>();
    c.wan_addr = ipv4(env, o.Get("wanAddr"));
    c.peer_addr = ipv4(env, o.Get("peerAddr"));
    mac(o.Get("wanMac"), c.wan_mac);
    mac(o.Get("peerMac"), c.peer_mac);
    c.repair_port = uint16_t(get_number(o, "repairPort", 7600));
    Napi::Array remote = o.Get("remote").As<Napi::Array>();
    for (uint32_t i = 0; i < remote.Length(); i++) {
      Napi::Object p = remote.Get(i).As<Napi::Object>();
      c.remote.push_back({ipv4(env, p.Get("addr")), uint8_t(get_number(p, "len", 32))});
    }
    c.encoder = encoder_config(o.Get("encoder").As<Napi::Object>());
    c.decoder = decoder_config(o.Get("decoder").As<Napi::Object>());
    decoder_capacity_ = c.decoder;
    c.mss_clamp = uint16_t(get_number(o, "mssClamp", 0));
    c.lan_queues = queues(o.Get("queues"));
    c.wan_queues = queues(o.Get("wanQueues"));
    c.frame_size = uint32_t(get_number(o, "frameSize", 2048));
    c.generic = o.Get("generic").ToBoolean();
    c.force_copy = o.Get("forceCopy").ToBoolean();
    c.require_zero_copy = o.Get("requireZeroCopy").ToBoolean();
    if (o.Get("cpus").IsArray()) {
      Napi::Array cpus = o.Get("cpus").As<Napi::Array>();
      for (uint32_t i = 0; i < cpus.Length(); i++) c.cpus.push_back(cpus.Get(i).As<Napi::Number>().Int32Value());
    }
    if (o.Get("lanAddr").IsString()) c.lan_addr = ipv4(env, o.Get("lanAddr"));
    c.feedback_port = uint16_t(get_number(o, "feedbackPort", 7601));
    c.flush_idle_ns = uint64_t(get_number(o, "flushIdleNs", double(c.flush_idle_ns)));
    if (o.Get("netsync").IsObject()) c.tracker = tracker_config(o.Get("netsync").As<Napi::Object>());
    if (o.Get("masterKey").IsBuffer()) c.master_key = master_key(o.Get("masterKey"));
    std::string error;
    if (int err = engine_.start(c, &error); err) {
      Napi::Error e = Napi::Error::New(env, error);
      e.Set("errno", Napi::Number::New(env, err));
      e.Set("step", Napi::String::New(env, engine_.failed_step()));
      throw e;
    }
    live_->add(this, [this] { engine_.stop(); });
  }
  ~EngineWrap() override { Close(); }

 private:
  void Close() {
    engine_.stop();
    live_->remove(this);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    engine::EngineSnapshot s = engine_.snapshot();
    const engine::EngineCounters& e = s.engine;
    Napi::Object o = Napi::Object::New(env);
    o["lanToWanPackets"] = double(e.lan_to_wan_packets);
    o["lanToWanBytes"] = double(e.lan_to_wan_bytes);
    o["wanToLanPackets"] = double(e.wan_to_lan_packets);
    o["wanToLanBytes"] = double(e.wan_to_lan_bytes);
    o["repairsSent"] = double(e.repairs_sent);
    o["repairBytesSent"] = double(e.repair_bytes_sent);
    o["repairsReceived"] = double(e.repairs_received);
    o["recovered"] = double(s.decoder.recovered);
    o["recoveredForwarded"] = double(e.recovered_forwarded);
    o["recoveredSendErrors"] = double(e.recovered_send_errors);
    o["unrecoverable"] = double(s.decoder.unrecoverable);
    o["malformed"] = double(s.decoder.malformed_total() + e.bad_repair_frames);
    o["duplicatesDropped"] = double(e.duplicates_dropped);
    o["mssClamped"] = double(e.mss_clamped);
    o["lanChecksumCompleted"] = double(e.lan_checksum_completed);
    o["unprotected"] = double(e.unprotected);
    o["txDropped"] = double(e.tx_dropped);
    o["decoderPending"] = double(s.decoder_pending);
    o["decoderWindow"] = double(s.decoder_window);
    o["decoderWindowCapacity"] = double(decoder_capacity_.window);
    o["decoderPendingCapacity"] = double(decoder_capacity_.pending);
    o["staleEpoch"] = double(s.decoder.stale_epoch);
    o["outOfWindow"] = double(s.decoder.out_of_window);
    o["verifyFailed"] = double(s.decoder.verify_failed);
    o["repairsFlushed"] = double(s.encoder.repairs_flushed);
    o["repairsIdleFlushed"] = double(s.encoder.repairs_covering);
    o["idleFlushDeferred"] = double(s.encoder.covering_deferred);
    o["repairsDropped"] = double(s.encoder.repairs_dropped);
    o["pendingEvicted"] = double(s.decoder.pending_evicted);
    o["pendingExpired"] = double(s.decoder.pending_expired);
    o["lateArrivals"] = double(s.decoder.late_arrivals);
    o["held"] = double(s.decoder.held);
    o["heldArrived"] = double(s.decoder.held_arrived);
    Napi::Object ns = tracker_stats_object(env, s.netsync);
    ns["feedbackDatagrams"] = double(e.feedback_datagrams);
    ns["feedbackSendErrors"] = double(e.feedback_send_errors);
    ns["feedbackUnreachable"] = double(e.feedback_unreachable);
    ns["feedbackSuppressed"] = double(e.feedback_suppressed);
    ns["eventsDropped"] = double(e.events_dropped);
    o["netsync"] = ns;
    for (auto [name, k] : {std::pair{"lanSockets", s.lan_sockets}, std::pair{"wanSockets", s.wan_sockets}}) {
      Napi::Object so = Napi::Object::New(env);
      so["rxDropped"] = double(k.rx_dropped);
      so["rxRingFull"] = double(k.rx_ring_full);
      so["fillRingEmpty"] = double(k.fill_ring_empty);
      so["txInvalid"] = double(k.tx_invalid);
      o[name] = so;
    }
    Napi::Object bpf = Napi::Object::New(env);
    for (size_t k = 0; k < GW_STAT_MAX; k++) bpf[kXdpStatNames[k]] = double(s.bpf[k]);
    o["xdp"] = bpf;
    o["epoch"] = double(engine_.epoch());
    o["epochChanges"] = double(e.epoch_changes);
    o["epochFlushed"] = double(e.epoch_flushed);
    o["peerEpochChanges"] = double(s.decoder.epoch_changes);
    o["reportsSent"] = double(e.reports_sent);
    o["reportsReceived"] = double(e.reports_received);
    o["badReports"] = double(e.bad_reports);
    o["cpuNs"] = double(e.cpu_ns);
    Napi::Object stages = Napi::Object::New(env);
    stages["packets"] = double(e.stage_packets);
    static constexpr const char* kStageNames[engine::kStageCount_] = {"rings", "copy", "lock", "tracker", "hash", "xor", "tx"};
    for (unsigned i = 0; i < engine::kStageCount_; i++) stages[kStageNames[i]] = double(e.stage_ns[i]);
    o["stagesNs"] = stages;
    engine::AuthState a = engine_.auth_state();
    Napi::Object au = auth_counts_object(env, a.received);
    au["unverifiable"] = double(e.auth_unverifiable);
    au["rotations"] = double(a.rotations);
    o["auth"] = au;
    Napi::Object loss = Napi::Object::New(env);  // our decoder's view of the peer's direction
    loss["sampled"] = double(s.decoder.loss_sampled);
    loss["missing"] = double(s.decoder.loss_missing);
    loss["bursts"] = double(s.decoder.loss_bursts);
    o["wanLoss"] = loss;
    Napi::Array workers = Napi::Array::New(env, s.workers.size());
    for (uint32_t i = 0; i < s.workers.size(); i++) {
      const engine::WorkerSnapshot& w = s.workers[i];
      Napi::Object wo = Napi::Object::New(env);
      Napi::Array lq = Napi::Array::New(env, w.lan_queues.size()), wq = Napi::Array::New(env, w.wan_queues.size());
      for (uint32_t k = 0; k < w.lan_queues.size(); k++) lq[k] = double(w.lan_queues[k]);
      for (uint32_t k = 0; k < w.wan_queues.size(); k++) wq[k] = double(w.wan_queues[k]);
      wo["lanQueues"] = lq;
      wo["wanQueues"] = wq;
      wo["cpu"] = w.cpu >= 0 ? Napi::Value(Napi::Number::New(env, w.cpu)) : env.Null();
      wo["lanToWanPackets"] = double(w.counters.lan_to_wan_packets);
      wo["wanToLanPackets"] = double(w.counters.wan_to_lan_packets);
      wo["repairsSent"] = double(w.counters.repairs_sent);
      wo["repairsReceived"] = double(w.counters.repairs_received);
      wo["txDropped"] = double(w.counters.tx_dropped);
      workers[i] = wo;
    }
    o["workers"] = workers;
    if (s.peer.received_ns) {  // the peer's view of ours
      Napi::Object p = Napi::Object::New(env);
      p["reports"] = double(s.peer.reports);
      p["epoch"] = double(s.peer.last.epoch);
      p["window"] = double(s.peer.last.window);
      p["sampled"] = double(s.peer.last.sampled);
      p["missing"] = double(s.peer.last.missing);
      p["bursts"] = double(s.peer.last.bursts);
      p["recovered"] = double(s.peer.last.recovered);
      p["unrecoverable"] = double(s.peer.last.unrecoverable);
      p["ageMs"] = double(monotonic_ns() - s.peer.received_ns) / 1e6;
      o["peer"] = p;
    } else {
      o["peer"] = env.Null();
    }
    return o;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o["running"] = engine_.running();
    o["zeroCopy"] = engine_.zero_copy();
    o["xdpMode"] = engine_.xdp_mode();
    o["epoch"] = double(engine_.epoch());
    o["trackerRing"] = double(engine_.tracker_ring());
    o["workers"] = double(engine_.workers());
    return o;
  }

  // retune(encoderConfig): the new epoch; the engine thread applies it within a millisecond.
  Napi::Value Retune(const Napi::CallbackInfo& info) {
    if (!engine_.running()) throw Napi::Error::New(info.Env(), "the engine is stopped");
    return Napi::Number::New(info.Env(), double(engine_.retune(encoder_config(info[0].As<Napi::Object>()))));
  }

  // rekey(masterKey): the new key's id; sealed with once the peer accepts it.
  Napi::Value Rekey(const Napi::CallbackInfo& info) {
    if (!engine_.running()) throw Napi::Error::New(info.Env(), "the engine is stopped");
    return Napi::String::New(info.Env(), key_id_hex(engine_.rekey(master_key(info[0]))));
  }

  // auth(): the keys sealed and accepted with, and what the peer's reports say of its own;
  // null for a gateway run without a key.
  Napi::Value Auth(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    engine::AuthState a = engine_.auth_state();
    if (!a.enabled) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o["sendKey"] = key_or_null(env, a.send_key);
    o["pendingKey"] = key_or_null(env, a.pending_key);
    o["retiringKey"] = key_or_null(env, a.retiring_key);
    Napi::Array accepted = Napi::Array::New(env);
    for (uint32_t id : {a.send_key, a.pending_key, a.retiring_key})
      if (id) accepted[accepted.Length()] = key_id_hex(id);
    o["acceptedKeys"] = accepted;
    if (a.peer_send_key) {
      Napi::Object peer = Napi::Object::New(env);
      peer["sendKey"] = key_id_hex(a.peer_send_key);
      Napi::Array pa = Napi::Array::New(env);
      for (uint32_t id : a.peer_accepts)
        if (id) pa[pa.Length()] = key_id_hex(id);
      peer["acceptedKeys"] = pa;
      o["peer"] = peer;
    } else {
      o["peer"] = env.Null();
    }
    o["rotations"] = double(a.rotations);
    return o;
  }

  // events(): the network-sync events since the last call.
  Napi::Value Events(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<netsync::Event> events = engine_.drain_events();
    Napi::Array a = Napi::Array::New(env, events.size());
    for (size_t i = 0; i < events.size(); i++) a[uint32_t(i)] = event_object(env, events[i]);
    return a;
  }

  Napi::Value SetTrace(const Napi::CallbackInfo& info) {
    engine_.set_trace(info[0].ToBoolean());
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  std::shared_ptr<Live> live_ = live(Env());
  engine::Engine engine_;
  fec::DecoderConfig decoder_capacity_;  // what decoderWindow and decoderPending fill
};

}  // namespace

void init_engine(Napi::Env env, Napi::Object exports) {
  exports["Engine"] = EngineWrap::Init(env);
}

}  // namespace maelstrom::bindings
