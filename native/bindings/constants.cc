#include "bindings/constants.h"

#include <arpa/inet.h>

#include <cstring>

#include "auth/envelope.h"
#include "engine/engine.h"
#include "engine/report_format.h"
#include "fec/repair_format.h"
#include "gateway.h"
#include "netsync/feedback_format.h"

namespace maelstrom::bindings {

#define GW_STAT_NAME(e, name) #name,
const char* const kXdpStatNames[] = {GW_STATS(GW_STAT_NAME)};
#undef GW_STAT_NAME
static_assert(sizeof kXdpStatNames / sizeof kXdpStatNames[0] == GW_STAT_MAX, "a name for every gw_stat");

namespace {

template <typename Name>
Napi::Array names(Napi::Env env, size_t from, size_t to, Name name) {
  Napi::Array a = Napi::Array::New(env);
  for (size_t i = from; i < to; i++) a[a.Length()] = name(i);
  return a;
}

// packGatewayConfig({ lanIfindex, wanIfindex, peerAddr, repairPort }): struct gw_config as the
// XDP program reads it (for tests that load the program without the engine).
Napi::Value PackGatewayConfig(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  gw_config c{};
  c.lan_ifindex = o.Get("lanIfindex").As<Napi::Number>().Uint32Value();
  c.wan_ifindex = o.Get("wanIfindex").As<Napi::Number>().Uint32Value();
  std::string peer = o.Get("peerAddr").As<Napi::String>();
  if (inet_pton(AF_INET, peer.c_str(), &c.peer_addr) != 1) throw Napi::TypeError::New(env, "not an IPv4 address: " + peer);
  c.repair_port = htons(uint16_t(o.Get("repairPort").As<Napi::Number>().Uint32Value()));
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(&c), sizeof c);
}

}  // namespace

void init_constants(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
  c["xdpStats"] = names(env, 0, GW_STAT_MAX, [](size_t i) { return kXdpStatNames[i]; });
  c["parseErrors"] = names(env, 1, size_t(fec::ParseError::Count_), [](size_t i) { return fec::parse_error_name(fec::ParseError(i)); });
  c["authVerdicts"] = names(env, 0, size_t(auth::Verdict::Count_), [](size_t i) { return auth::verdict_name(auth::Verdict(i)); });
  c["maxQueues"] = double(GW_MAX_QUEUES);
  c["maxPrefixes"] = double(GW_MAX_PREFIXES);
  engine::EngineConfig defaults;
  c["repairPort"] = double(defaults.repair_port);
  c["feedbackPort"] = double(defaults.feedback_port);
  c["repairVersion"] = double(fec::kRepairVersion);
  c["repairHeaderBytes"] = double(fec::kRepairHeaderSize);
  c["recipeEntryBytes"] = double(fec::kRecipeEntrySize);
  c["maxLayers"] = double(fec::kMaxLayers);
  c["maxCount"] = double(fec::kMaxCount);
  c["reportBytes"] = double(engine::kReportBytes);
  c["feedbackMagic"] = double(netsync::kFeedbackMagic);
  c["feedbackVersion"] = double(netsync::kFeedbackVersion);
  c["feedbackHeaderBytes"] = double(netsync::kFeedbackHeaderBytes);
  c["feedbackEntryBytes"] = double(netsync::kFeedbackEntryBytes);
  c["feedbackIsnGuessed"] = double(netsync::kFeedbackIsnGuessed);
  c["authOverhead"] = double(auth::kOverhead);
  c["authHeaderBytes"] = double(auth::kHeaderBytes);
  c["authTagBytes"] = double(auth::kTagBytes);
  c["authWindow"] = double(auth::kWindow);
  c["authClockSkewS"] = double(auth::kClockSkewS);
  exports["constants"] = c;
  exports["packGatewayConfig"] = Napi::Function::New(env, PackGatewayConfig, "packGatewayConfig");
}

}  // namespace maelstrom::bindings
