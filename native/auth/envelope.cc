#include "auth/envelope.h"

#include <sodium.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "common/bytes.h"

namespace maelstrom::auth {
namespace {

constexpr size_t kMaxSessions = 4;

// HMAC-SHA256(key, label || suffix) into out (32 bytes).
void hmac(const uint8_t key[kKeyBytes], const char* label, const uint8_t* suffix, size_t suffix_len, uint8_t out[32]) {
  if (!crypto_ready()) throw std::runtime_error("libsodium failed to initialise");
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, kKeyBytes);
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(label), std::strlen(label));
  if (suffix_len) crypto_auth_hmacsha256_update(&st, suffix, suffix_len);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

void session_key(const Key& key, uint64_t session, uint8_t out[kKeyBytes]) {
  uint8_t s[8];
  put64(s, session);
  hmac(key.bytes, "maelstrom v2 session", s, sizeof s, out);
}

}  // namespace

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Ok: return "ok";
    case Verdict::Truncated: return "truncated";
    case Verdict::NotSealed: return "notSealed";
    case Verdict::BadVersion: return "badVersion";
    case Verdict::BadKind: return "badKind";
    case Verdict::UnknownKey: return "unknownKey";
    case Verdict::BadTag: return "badTag";
    case Verdict::Stale: return "stale";
    case Verdict::Replayed: return "replayed";
    case Verdict::Count_: break;
  }
  return "?";
}

Key purpose_key(const uint8_t bytes[kKeyBytes]) {
  Key k;
  std::memcpy(k.bytes, bytes, kKeyBytes);
  uint8_t h[32];
  hmac(k.bytes, "maelstrom v2 key id", nullptr, 0, h);
  k.id = get32(h);
  return k;
}

Key derive(const uint8_t master[kKeyBytes], Purpose purpose) {
  uint8_t h[32];
  hmac(master, purpose == Purpose::Gateway ? "maelstrom v2 gateway" : "maelstrom v2 feedback", nullptr, 0, h);
  Key k = purpose_key(h);
  sodium_memzero(h, sizeof h);
  return k;
}

uint64_t realtime_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1'000'000;
}

uint64_t first_counter(uint64_t now_ms) { return now_ms << kCounterTimeShift; }

Sender::Sender() : counter_(first_counter(realtime_ms())) { random_bytes(&session_, sizeof session_); }
Sender::Sender(uint64_t session, uint64_t counter, uint32_t time_s) : session_(session), counter_(counter), time_s_(time_s) {}

void Sender::set_key(const Key& key) {
  key_ = key;
  uint8_t k[kKeyBytes];
  session_key(key, session_, k);
  gmac_.init(k);
  sodium_memzero(k, sizeof k);
  keyed_ = true;
}

size_t Sender::seal(Kind kind, uint8_t* d, size_t inner_len) {
  uint64_t counter = counter_++;
  put16(d, kMagic);
  d[2] = kVersion;
  d[3] = uint8_t(kind);
  put32(d + 4, key_.id);
  put64(d + 8, session_);
  put64(d + 16, counter);
  put32(d + 24, time_s_ ? time_s_ : uint32_t(realtime_ms() / 1000));
  size_t signed_len = kHeaderBytes + inner_len;
  gmac_.tag(counter, d, signed_len, d + signed_len);
  return signed_len + kTagBytes;
}

bool ReplayWindow::fresh(uint64_t counter) const {
  if (!any_ || counter > newest_) return true;
  if (newest_ - counter >= kWindow) return false;
  return !(bits_[(counter / 64) % kWords] >> (counter % 64) & 1);
}

void ReplayWindow::mark(uint64_t counter) {
  if (!any_ || counter > newest_) {
    // Clear the words the window slides over (all of them after a jump of a window or more).
    uint64_t from = any_ ? newest_ / 64 + 1 : counter / 64;
    uint64_t to = counter / 64;
    if (!any_ || to - from + 1 >= kWords) {
      std::memset(bits_, 0, sizeof bits_);
    } else {
      for (uint64_t w = from; w <= to; w++) bits_[w % kWords] = 0;
    }
    newest_ = counter;
    any_ = true;
  }
  bits_[(counter / 64) % kWords] |= uint64_t(1) << (counter % 64);
}

Receiver::Receiver(uint64_t floor_s) : floor_s_(floor_s) {}

void Receiver::set_keys(const std::vector<Key>& keys) {
  keys_ = keys;
  // Sessions of keys no longer held go with them.
  sessions_.erase(std::remove_if(sessions_.begin(), sessions_.end(),
                                 [&](const Session& s) {
                                   return std::none_of(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == s.key_id; });
                                 }),
                  sessions_.end());
}

Gmac* Receiver::session_gmac(const Key& key, uint64_t session, bool* fresh_entry) {
  for (Session& s : sessions_) {
    if (s.key_id == key.id && s.session == session) {
      *fresh_entry = false;
      return s.gmac.get();
    }
  }
  uint8_t k[kKeyBytes];
  session_key(key, session, k);
  auto gmac = std::make_unique<Gmac>();
  gmac->init(k);
  sodium_memzero(k, sizeof k);
  // Kept only once a datagram of it verifies, so forged sessions cannot push genuine ones out.
  sessions_.insert(sessions_.begin(), Session{key.id, session, std::move(gmac)});
  *fresh_entry = true;
  return sessions_.front().gmac.get();
}

Verdict Receiver::check(const uint8_t* d, size_t len, Opened* out) {
  if (len < 2) return Verdict::Truncated;
  if (get16(d) != kMagic) return Verdict::NotSealed;
  if (len < kOverhead) return Verdict::Truncated;
  if (d[2] != kVersion) return Verdict::BadVersion;
  if (d[3] < uint8_t(Kind::Repair) || d[3] > uint8_t(Kind::Feedback)) return Verdict::BadKind;
  uint32_t id = get32(d + 4);
  auto key = std::find_if(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == id; });
  if (key == keys_.end()) return Verdict::UnknownKey;
  uint64_t session = get64(d + 8), counter = get64(d + 16);
  size_t signed_len = len - kTagBytes;
  bool fresh_entry;
  Gmac* gmac = session_gmac(*key, session, &fresh_entry);
  if (!gmac->verify(counter, d, signed_len, d + signed_len)) {
    if (fresh_entry) sessions_.erase(sessions_.begin());
    return Verdict::BadTag;
  }
  if (fresh_entry && sessions_.size() > kMaxSessions) sessions_.pop_back();
  uint32_t time_s = get32(d + 24);
  if (time_s < floor_s_) return Verdict::Stale;
  if (!window_.fresh(counter)) return Verdict::Replayed;
  window_.mark(counter);
  *out = Opened{Kind(d[3]), id, counter, time_s, d + kHeaderBytes, len - kOverhead};
  return Verdict::Ok;
}

Verdict Receiver::open(const uint8_t* d, size_t len, Opened* out) {
  Verdict v = check(d, len, out);
  counts_[size_t(v)]++;
  return v;
}

}  // namespace maelstrom::auth
