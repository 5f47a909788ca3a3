#include "bindings/netsync.h"

#include <arpa/inet.h>

#include <algorithm>

#include <string>
#include <vector>

#include "bindings/fec_config.h"
#include "bindings/util.h"

namespace maelstrom::bindings {
namespace {

std::string ipv4_text(uint32_t addr) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{addr};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

const char* kind_name(netsync::EventKind k) {
  switch (k) {
    case netsync::EventKind::Feedback: return "feedback";
    case netsync::EventKind::DataDone: return "data-done";
    case netsync::EventKind::RepairDone: return "repair-done";
    case netsync::EventKind::FlowOpen: return "flow-open";
    case netsync::EventKind::FlowClose: return "flow-close";
    case netsync::EventKind::SafeByAck: return "safe-by-ack";
  }
  return "unknown";
}

const char* reason_name(uint8_t r) {
  switch (netsync::CloseReason(r)) {
    case netsync::CloseReason::Fin: return "fin";
    case netsync::CloseReason::Rst: return "rst";
    case netsync::CloseReason::Idle: return "idle";
    case netsync::CloseReason::Pressure: return "pressure";
    case netsync::CloseReason::Reopened: return "reopened";
  }
  return "unknown";
}

void set_flow(Napi::Object o, const netsync::FlowKey& k) {
  o["senderAddress"] = ipv4_text(k.saddr);
  o["senderPort"] = double(ntohs(k.sport));
  o["receiverAddress"] = ipv4_text(k.daddr);
  o["receiverPort"] = double(ntohs(k.dport));
}

}  // namespace

Napi::Object event_object(Napi::Env env, const netsync::Event& e) {
  Napi::Object o = Napi::Object::New(env);
  o["type"] = kind_name(e.kind);
  o["tNs"] = Napi::BigInt::New(env, e.t_ns);
  switch (e.kind) {
    case netsync::EventKind::Feedback:
      set_flow(o, e.flow);
      o["isnGuessed"] = bool(e.flags & 1);
      o["safeOffset"] = Napi::BigInt::New(env, e.a);
      o["sentOffset"] = Napi::BigInt::New(env, e.b);
      o["repairsSent"] = double(e.repairs);
      o["repairsPerPacket"] = double(e.count);
      break;
    case netsync::EventKind::DataDone:
      set_flow(o, e.flow);
      o["seq"] = double(e.seq);
      o["start"] = Napi::BigInt::New(env, e.a);
      o["end"] = Napi::BigInt::New(env, e.b);
      break;
    case netsync::EventKind::RepairDone:
      o["layer"] = double(e.layer);
      o["baseSeq"] = double(e.seq);
      o["count"] = double(e.count);
      o["interleave"] = double(e.interleave);
      break;
    case netsync::EventKind::FlowOpen:
      set_flow(o, e.flow);
      o["isn"] = double(e.a);
      o["isnGuessed"] = bool(e.flags & 1);
      break;
    case netsync::EventKind::FlowClose:
      set_flow(o, e.flow);
      o["reason"] = reason_name(e.reason);
      o["safeOffset"] = Napi::BigInt::New(env, e.a);
      o["sentOffset"] = Napi::BigInt::New(env, e.b);
      break;
    case netsync::EventKind::SafeByAck:
      set_flow(o, e.flow);
      o["safeOffset"] = Napi::BigInt::New(env, e.a);
      o["sentOffset"] = Napi::BigInt::New(env, e.b);
      break;
  }
  return o;
}

Napi::Object tracker_stats_object(Napi::Env env, const netsync::TrackerStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o["flows"] = double(s.flows);
  o["flowsOpened"] = double(s.flows_opened);
  o["flowsIsnGuessed"] = double(s.flows_isn_guessed);
  o["evictedFin"] = double(s.evicted_fin);
  o["evictedRst"] = double(s.evicted_rst);
  o["evictedIdle"] = double(s.evicted_idle);
  o["evictedPressure"] = double(s.evicted_pressure);
  o["segments"] = double(s.segments);
  o["retransmissions"] = double(s.retransmissions);
  o["recordsCompleted"] = double(s.records_completed);
  o["recordsAbandoned"] = double(s.records_abandoned);
  o["safeByAck"] = double(s.safe_by_ack);
  o["feedbackEntries"] = double(s.feedback_entries);
  o["staleCompletions"] = double(s.stale_completions);
  o["afterClose"] = double(s.after_close);
  // Quantiles as the top of their histogram bucket (at most 19% above the true value).
  uint64_t count = 0;
  for (uint64_t n : s.safe_latency) count += n;
  auto quantile = [&](double q) -> double {
    if (!count) return 0;
    uint64_t rank = uint64_t(q * double(count - 1)) + 1, seen = 0;
    for (unsigned b = 0; b < netsync::TrackerStats::kLatencyBuckets; b++) {
      seen += s.safe_latency[b];
      if (seen >= rank) return double(std::min(netsync::latency_bucket_top(b), s.safe_latency_max_us));
    }
    return double(s.safe_latency_max_us);
  };
  Napi::Object lat = Napi::Object::New(env);
  lat["count"] = double(count);
  lat["p50"] = quantile(0.5);
  lat["p99"] = quantile(0.99);
  lat["max"] = double(s.safe_latency_max_us);
  o["safeLatencyUs"] = lat;
  return o;
}

netsync::TrackerConfig tracker_config(const Napi::Object& o) {
  netsync::TrackerConfig c;
  c.layers = unsigned(get_number(o, "layers", c.layers));
  c.max_flows = uint32_t(get_number(o, "maxFlows", c.max_flows));
  c.ring = uint32_t(get_number(o, "ring", c.ring));
  c.idle_timeout_ns = uint64_t(get_number(o, "idleTimeoutNs", double(c.idle_timeout_ns)));
  c.feedback_interval_ns = uint64_t(get_number(o, "feedbackIntervalNs", double(c.feedback_interval_ns)));
  return c;
}

namespace {

class SyncTrackerWrap : public Napi::ObjectWrap<SyncTrackerWrap>, public netsync::EventSink {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "SyncTracker",
                       {InstanceMethod<&SyncTrackerWrap::Sent>("sent"),
                        InstanceMethod<&SyncTrackerWrap::Uncovered>("uncovered"),
                        InstanceMethod<&SyncTrackerWrap::Received>("received"),
                        InstanceMethod<&SyncTrackerWrap::DataCompleted>("dataCompleted"),
                        InstanceMethod<&SyncTrackerWrap::RepairCompleted>("repairCompleted"),
                        InstanceMethod<&SyncTrackerWrap::RepairLost>("repairLost"),
                        InstanceMethod<&SyncTrackerWrap::Poll>("poll"),
                        InstanceMethod<&SyncTrackerWrap::Waiting>("waiting"),
                        InstanceMethod<&SyncTrackerWrap::SetQuiet>("setQuiet"),
                        InstanceMethod<&SyncTrackerWrap::NextDeadline>("nextDeadline"),
                        InstanceMethod<&SyncTrackerWrap::SetTrace>("setTrace"),
                        InstanceMethod<&SyncTrackerWrap::SetLayers>("setLayers"),
                        InstanceMethod<&SyncTrackerWrap::Events>("events"),
                        InstanceMethod<&SyncTrackerWrap::Stats>("stats")});
  }

  explicit SyncTrackerWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<SyncTrackerWrap>(info),
        tracker_(tracker_config(info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(info.Env()))) {
    tracker_.set_sink(this);
  }

  void event(const netsync::Event& e) override { events_.push_back(e); }

 private:
  // sent(ipPacket, seq, nowNs)
  Napi::Value Sent(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    tracker_.sent(b.Data(), b.Length(), info[1].As<Napi::Number>().Uint32Value(), time_arg(info, 2));
    return info.Env().Undefined();
  }
  Napi::Value Uncovered(const Napi::CallbackInfo& info) {
    tracker_.uncovered(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }
  Napi::Value Received(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    tracker_.received(b.Data(), b.Length(), time_arg(info, 1));
    return info.Env().Undefined();
  }
  Napi::Value DataCompleted(const Napi::CallbackInfo& info) {
    tracker_.data_completed(info[0].As<Napi::Number>().Uint32Value(), time_arg(info, 1));
    return info.Env().Undefined();
  }
  static fec::RepairInfo repair_info(const Napi::Object& o) {
    return fec::RepairInfo{uint8_t(get_number(o, "layer", 0)), uint8_t(get_number(o, "count", 0)),
                           uint16_t(get_number(o, "interleave", 1)), uint32_t(get_number(o, "baseSeq", 0)), false};
  }
  Napi::Value RepairCompleted(const Napi::CallbackInfo& info) {
    tracker_.repair_completed(repair_info(info[0].As<Napi::Object>()), time_arg(info, 1));
    return info.Env().Undefined();
  }
  Napi::Value RepairLost(const Napi::CallbackInfo& info) {
    tracker_.repair_lost(repair_info(info[0].As<Napi::Object>()));
    return info.Env().Undefined();
  }
  // poll(nowNs): the feedback entries due.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<netsync::FeedbackEntry> out;
    tracker_.poll(time_arg(info, 0), &out);
    Napi::Array a = Napi::Array::New(env, out.size());
    for (size_t i = 0; i < out.size(); i++) {
      netsync::Event e{};
      e.kind = netsync::EventKind::Feedback;
      e.flow = out[i].flow;
      e.flags = out[i].isn_guessed ? 1 : 0;
      e.a = out[i].safe;
      e.b = out[i].sent;
      e.repairs = out[i].repairs_newest;
      e.count = out[i].repairs_per_packet;
      Napi::Object o = event_object(env, e);
      o.Delete("type");
      o.Delete("tNs");
      a[uint32_t(i)] = o;
    }
    return a;
  }
  // waiting(newestSeq, span, nowNs): sequence numbers of records someone may wait on.
  Napi::Value Waiting(const Napi::CallbackInfo& info) {
    std::vector<uint32_t> out;
    tracker_.waiting(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value(), time_arg(info, 2), &out);
    Napi::Array a = Napi::Array::New(info.Env(), out.size());
    for (size_t i = 0; i < out.size(); i++) a[uint32_t(i)] = double(out[i]);
    return a;
  }
  // setQuiet(host, untilNs): the host answered feedback with ICMP port unreachable.
  Napi::Value SetQuiet(const Napi::CallbackInfo& info) {
    in_addr a{};
    if (!info[0].IsString() || inet_pton(AF_INET, info[0].As<Napi::String>().Utf8Value().c_str(), &a) != 1)
      throw Napi::TypeError::New(info.Env(), "setQuiet takes an IPv4 address");
    tracker_.set_quiet(a.s_addr, time_arg(info, 1));
    return info.Env().Undefined();
  }
  Napi::Value NextDeadline(const Napi::CallbackInfo& info) {
    uint64_t d = tracker_.next_deadline();
    return d == UINT64_MAX ? info.Env().Null() : Napi::BigInt::New(info.Env(), d);
  }
  Napi::Value SetTrace(const Napi::CallbackInfo& info) {
    tracker_.set_trace(info[0].ToBoolean());
    return info.Env().Undefined();
  }
  Napi::Value SetLayers(const Napi::CallbackInfo& info) {
    tracker_.set_layers(info[0].As<Napi::Number>().Uint32Value());
    return info.Env().Undefined();
  }
  Napi::Value Events(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env, events_.size());
    for (size_t i = 0; i < events_.size(); i++) a[uint32_t(i)] = event_object(env, events_[i]);
    events_.clear();
    return a;
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) { return tracker_stats_object(info.Env(), tracker_.stats()); }

  netsync::Tracker tracker_;
  std::vector<netsync::Event> events_;
};

}  // namespace

void init_netsync(Napi::Env env, Napi::Object exports) { exports["SyncTracker"] = SyncTrackerWrap::Init(env); }

}  // namespace maelstrom::bindings
