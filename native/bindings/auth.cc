#include "bindings/auth.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace maelstrom::bindings {
namespace {

auth::Key key_arg(Napi::Env env, const Napi::Value& v) {
  Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
  if (b.Length() != auth::kKeyBytes) throw Napi::TypeError::New(env, "a key is 32 bytes");
  return auth::purpose_key(b.Data());
}

uint64_t bigint(const Napi::Value& v) {
  bool lossless;
  return v.As<Napi::BigInt>().Uint64Value(&lossless);
}

// authKey(bytes, purpose): the purpose key of a master key ('gateway' | 'feedback'), or of a
// purpose key as it is ('as-is'), and its id.
Napi::Value AuthKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
  std::string purpose = info[1].As<Napi::String>();
  if (b.Length() != auth::kKeyBytes) throw Napi::TypeError::New(env, "a key is 32 bytes");
  auth::Key k = purpose == "as-is" ? auth::purpose_key(b.Data())
                : auth::derive(b.Data(), purpose == "gateway" ? auth::Purpose::Gateway : auth::Purpose::Feedback);
  Napi::Object o = Napi::Object::New(env);
  o["id"] = key_id_hex(k.id);
  o["key"] = Napi::Buffer<uint8_t>::Copy(env, k.bytes, auth::kKeyBytes);
  return o;
}

// new AuthChannel({ sendKey?, keys?, session?, counter?, timeS?, floorS? }): a sender with the
// given session, counter and sealing time (tests), a receiver refusing what was sealed before floorS.
//   seal(kind, inner) -> Buffer           the envelope around inner (kind 1 repair, 2 report, 3 feedback)
//   open(datagram) -> { verdict, kind?, keyId?, counter?, inner? }
//   setKeys(keys), counts()
class AuthChannelWrap : public Napi::ObjectWrap<AuthChannelWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "AuthChannel",
                       {InstanceMethod<&AuthChannelWrap::Seal>("seal"), InstanceMethod<&AuthChannelWrap::Open>("open"),
                        InstanceMethod<&AuthChannelWrap::SetKeys>("setKeys"),
                        InstanceMethod<&AuthChannelWrap::Counts>("counts")});
  }

  explicit AuthChannelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AuthChannelWrap>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    if (o.Has("session") && o.Has("counter"))
      sender_.emplace(bigint(o.Get("session")), bigint(o.Get("counter")),
                      o.Get("timeS").IsNumber() ? o.Get("timeS").As<Napi::Number>().Uint32Value() : 0);
    else
      sender_.emplace();
    if (o.Get("sendKey").IsBuffer()) sender_->set_key(key_arg(env, o.Get("sendKey")));
    uint64_t floor_s = o.Get("floorS").IsNumber() ? uint64_t(o.Get("floorS").As<Napi::Number>().DoubleValue())
                                                  : auth::realtime_ms() / 1000 - auth::kClockSkewS;
    receiver_ = std::make_unique<auth::Receiver>(floor_s);
    if (o.Get("keys").IsArray()) SetKeysFrom(env, o.Get("keys").As<Napi::Array>());
  }

 private:
  void SetKeysFrom(Napi::Env env, Napi::Array a) {
    std::vector<auth::Key> keys;
    for (uint32_t i = 0; i < a.Length(); i++) keys.push_back(key_arg(env, a.Get(i)));
    receiver_->set_keys(keys);
  }

  Napi::Value Seal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!sender_->keyed()) throw Napi::Error::New(env, "this AuthChannel has no sendKey");
    uint32_t kind = info[0].As<Napi::Number>().Uint32Value();
    Napi::Buffer<uint8_t> inner = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> d(auth::kOverhead + inner.Length());
    std::memcpy(d.data() + auth::kHeaderBytes, inner.Data(), inner.Length());
    size_t n = sender_->seal(auth::Kind(kind), d.data(), inner.Length());
    return Napi::Buffer<uint8_t>::Copy(env, d.data(), n);
  }

  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Buffer<uint8_t> d = info[0].As<Napi::Buffer<uint8_t>>();
    auth::Opened opened;
    auth::Verdict v = receiver_->open(d.Data(), d.Length(), &opened);
    Napi::Object o = Napi::Object::New(env);
    o["verdict"] = auth::verdict_name(v);
    if (v == auth::Verdict::Ok) {
      o["kind"] = double(opened.kind);
      o["keyId"] = key_id_hex(opened.key_id);
      o["counter"] = Napi::BigInt::New(env, opened.counter);
      o["timeS"] = double(opened.time_s);
      o["inner"] = Napi::Buffer<uint8_t>::Copy(env, opened.inner, opened.len);
    }
    return o;
  }

  Napi::Value SetKeys(const Napi::CallbackInfo& info) {
    SetKeysFrom(info.Env(), info[0].As<Napi::Array>());
    return info.Env().Undefined();
  }

  Napi::Value Counts(const Napi::CallbackInfo& info) { return auth_counts_object(info.Env(), receiver_->counts()); }

  std::optional<auth::Sender> sender_;
  std::unique_ptr<auth::Receiver> receiver_;
};

}  // namespace

std::string key_id_hex(uint32_t id) {
  char s[9];
  std::snprintf(s, sizeof s, "%08x", id);
  return s;
}

Napi::Object auth_counts_object(Napi::Env env, const uint64_t* counts) {
  Napi::Object o = Napi::Object::New(env);
  for (size_t v = 0; v < size_t(auth::Verdict::Count_); v++) o[auth::verdict_name(auth::Verdict(v))] = double(counts[v]);
  return o;
}

void init_auth(Napi::Env env, Napi::Object exports) {
  exports["authKey"] = Napi::Function::New(env, AuthKey, "authKey");
  exports["AuthChannel"] = AuthChannelWrap::Init(env);
}

}  // namespace maelstrom::bindings
