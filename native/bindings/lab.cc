#include "bindings/lab.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>

#include <cstring>

#include "bindings/live.h"
#include "bindings/util.h"
#include "lab/blaster.h"
#include "lab/delay_line.h"
#include "lab/wan_loss.h"

namespace maelstrom::bindings {
namespace {

Napi::Object direction(Napi::Env env, const lab::DirectionStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o["packets"] = double(s.packets);
  o["bytes"] = double(s.bytes);
  o["queueDrops"] = double(s.queue_drops);
  o["sendErrors"] = double(s.send_errors);
  o["lateMeanNs"] = s.packets ? double(s.late_sum_ns) / double(s.packets) : 0.0;
  o["lateMaxNs"] = double(s.late_max_ns);
  o["lateOver100us"] = double(s.late_over_100us);
  o["socketDrops"] = double(s.socket_drops);
  o["tailDrops"] = double(s.tail_drops);
  o["queueMaxBytes"] = double(s.queue_max_bytes);
  Napi::Array hist = Napi::Array::New(env, lab::kLateBuckets);
  for (int i = 0; i < lab::kLateBuckets; i++) hist[uint32_t(i)] = double(s.late_hist[i]);
  o["lateHist"] = hist;
  return o;
}

class DelayLineWrap : public Napi::ObjectWrap<DelayLineWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "DelayLine",
                       {InstanceMethod<&DelayLineWrap::SetDelay>("setDelay"),
                        InstanceMethod<&DelayLineWrap::SetRate>("setRate"),
                        InstanceMethod<&DelayLineWrap::Stats>("stats"),
                        InstanceMethod<&DelayLineWrap::Stop>("stop")});
  }

  // new DelayLine({ a, b, delayNs, maxQueueBytes?, rateBps?, queueBytes?, realtimePriority? })
  explicit DelayLineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DelayLineWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    lab::DelayLineConfig c;
    c.ifindex_a = ifindex_of(env, o.Get("a").As<Napi::String>());
    c.ifindex_b = ifindex_of(env, o.Get("b").As<Napi::String>());
    c.delay_ns = uint64_t(o.Get("delayNs").As<Napi::Number>().DoubleValue());
    if (o.Get("maxQueueBytes").IsNumber()) c.max_queue_bytes = size_t(o.Get("maxQueueBytes").As<Napi::Number>().DoubleValue());
    if (o.Get("rateBps").IsNumber()) c.rate_bps = uint64_t(o.Get("rateBps").As<Napi::Number>().DoubleValue());
    if (o.Get("queueBytes").IsNumber()) c.queue_bytes = size_t(o.Get("queueBytes").As<Napi::Number>().DoubleValue());
    if (o.Get("realtimePriority").IsNumber()) c.realtime_priority = o.Get("realtimePriority").As<Napi::Number>().Int32Value();
    check(env, line_.start(c), "cannot open the delay line's packet sockets");
    live_->add(this, [this] { line_.stop(); });
  }
  ~DelayLineWrap() override { Close(); }

 private:
  void Close() {
    line_.stop();
    live_->remove(this);
  }
  Napi::Value SetDelay(const Napi::CallbackInfo& info) {
    line_.set_delay_ns(uint64_t(info[0].As<Napi::Number>().DoubleValue()));
    return info.Env().Undefined();
  }
  // setRate(bps, queueBytes): 0 bps, no limit.
  Napi::Value SetRate(const Napi::CallbackInfo& info) {
    line_.set_rate(uint64_t(info[0].As<Napi::Number>().DoubleValue()), size_t(info[1].As<Napi::Number>().DoubleValue()));
    return info.Env().Undefined();
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    lab::DirectionStats ab, ba;
    line_.stats(&ab, &ba);
    Napi::Object o = Napi::Object::New(info.Env());
    o["aToB"] = direction(info.Env(), ab);
    o["bToA"] = direction(info.Env(), ba);
    o["delayNs"] = double(line_.delay_ns());
    o["rateBps"] = double(line_.rate_bps());
    o["queueBytes"] = double(line_.queue_bytes());
    o["realtime"] = line_.policy() == SCHED_FIFO;
    o["realtimeError"] = line_.realtime_error();
    Napi::Array floors = Napi::Array::New(info.Env(), lab::kLateBuckets);
    for (int i = 0; i < lab::kLateBuckets; i++) floors[uint32_t(i)] = double(lab::late_bucket_floor_ns(i));
    o["lateBucketFloorsNs"] = floors;
    return o;
  }
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }
  std::shared_ptr<Live> live_ = live(Env());
  lab::DelayLine line_;
};

class WanLossWrap : public Napi::ObjectWrap<WanLossWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "WanLoss",
                       {InstanceMethod<&WanLossWrap::Attach>("attach"),
                        InstanceMethod<&WanLossWrap::Set>("set"),
                        InstanceMethod<&WanLossWrap::Counters>("counters"),
                        InstanceMethod<&WanLossWrap::Close>("close")});
  }

  // new WanLoss(objectPath)
  explicit WanLossWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<WanLossWrap>(info) {
    std::string path = info[0].As<Napi::String>();
    check(info.Env(), loss_.open(path), "cannot load " + path);
    live_->add(this, [this] { loss_.close(); });
  }
  ~WanLossWrap() override {
    loss_.close();
    live_->remove(this);
  }

 private:
  // attach(ifname, generic)
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    std::string name = info[0].As<Napi::String>();
    int ifindex = ifindex_of(info.Env(), name);
    check(info.Env(), loss_.attach(ifindex, info[1].ToBoolean()), "cannot attach XDP to " + name);
    return info.Env().Undefined();
  }
  // set({ killed, loss, burstLength })
  Napi::Value Set(const Napi::CallbackInfo& info) {
    Napi::Object o = info[0].As<Napi::Object>();
    lab::WanLossSettings s;
    s.killed = o.Get("killed").ToBoolean();
    s.loss = o.Get("loss").As<Napi::Number>().DoubleValue();
    s.burst_length = o.Get("burstLength").As<Napi::Number>().DoubleValue();
    if (o.Get("dropNext").IsNumber()) s.drop_next = o.Get("dropNext").As<Napi::Number>().Uint32Value();
    if (o.Get("sparePort").IsNumber()) s.spare_port = uint16_t(o.Get("sparePort").As<Napi::Number>().Uint32Value());
    check(info.Env(), loss_.set(s), "cannot update the loss settings");
    return info.Env().Undefined();
  }
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    uint64_t passed = 0, dropped = 0;
    check(info.Env(), loss_.counters(&passed, &dropped), "cannot read the loss counters");
    Napi::Object o = Napi::Object::New(info.Env());
    o["passed"] = double(passed);
    o["dropped"] = double(dropped);
    return o;
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    loss_.close();
    live_->remove(this);
    return info.Env().Undefined();
  }
  std::shared_ptr<Live> live_ = live(Env());
  lab::WanLoss loss_;
};

// blast({ ifname, dstMac, srcMac, srcIp, dstIp, dstPort, ipLength, seconds, xdpObject?, cpus? }):
// blocks; for a process of its own in a lab host namespace. With xdpObject (out/bpf/lab_gen.bpf.o)
// the frames go out by XDP_TX from a thread on each of `cpus` (lab::xdp_blast), else by one packet socket.
Napi::Value Blast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  lab::BlastConfig c;
  c.ifname = o.Get("ifname").As<Napi::String>();
  std::memcpy(c.dst_mac, o.Get("dstMac").As<Napi::Buffer<uint8_t>>().Data(), 6);
  std::memcpy(c.src_mac, o.Get("srcMac").As<Napi::Buffer<uint8_t>>().Data(), 6);
  for (auto [key, out] : {std::pair{"srcIp", &c.src_ip}, std::pair{"dstIp", &c.dst_ip}}) {
    std::string s = o.Get(key).As<Napi::String>();
    if (inet_pton(AF_INET, s.c_str(), out) != 1) throw Napi::TypeError::New(env, "not an IPv4 address: " + s);
  }
  c.dst_port = uint16_t(o.Get("dstPort").As<Napi::Number>().Uint32Value());
  c.ip_len = o.Get("ipLength").As<Napi::Number>().Uint32Value();
  c.seconds = o.Get("seconds").As<Napi::Number>().DoubleValue();
  int err = 0;
  lab::BlastResult r;
  if (o.Get("xdpObject").IsString()) {
    c.xdp_object = o.Get("xdpObject").As<Napi::String>();
    if (o.Get("cpus").IsArray()) {
      Napi::Array cpus = o.Get("cpus").As<Napi::Array>();
      c.cpus.clear();
      for (uint32_t i = 0; i < cpus.Length(); i++) c.cpus.push_back(cpus.Get(i).As<Napi::Number>().Int32Value());
      if (c.cpus.empty()) throw Napi::TypeError::New(env, "cpus: at least one CPU");
    }
    std::string what;
    r = lab::xdp_blast(c, &err, &what);
    check(env, err, what);
  } else {
    r = lab::blast(c, &err);
    check(env, err, "cannot open a packet socket on " + c.ifname);
  }
  Napi::Object out = Napi::Object::New(env);
  out["sent"] = double(r.sent);
  out["errors"] = double(r.errors);
  out["seconds"] = r.seconds;
  return out;
}

}  // namespace

void init_lab(Napi::Env env, Napi::Object exports) {
  exports["DelayLine"] = DelayLineWrap::Init(env);
  exports["WanLoss"] = WanLossWrap::Init(env);
  exports["blast"] = Napi::Function::New<Blast>(env);
}

}  // namespace maelstrom::bindings
