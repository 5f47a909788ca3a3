// The authentication envelope around every datagram a gateway sends: repairs and receiver
// reports to the peer gateway, feedback to the storage hosts on its LAN (docs/protocol.md,
// "Authentication envelope"). All fields big-endian.
//
//   0  u16 magic 0x4D41 ("MA")    2  u8 version (2)    3  u8 kind (1 repair, 2 report, 3 feedback)
//   4  u32 key id                 8  u64 session (random, per sender start)
//  16  u64 counter (per sender, +1 per datagram, starts at its start time in ms << 22)
//  24  u32 time: the sender's clock when it sealed, seconds since 1970
//  28  the inner datagram
//  end - 16: tag, AES-256-GCM with an empty plaintext (GMAC) over bytes 0 .. end - 16, under the
//      session key HMAC-SHA256(key, "maelstrom v2 session" || session), nonce 0^32 || counter.
//
// Keys: a pair's 32-byte master key gives two purpose keys, HMAC-SHA256(master, "maelstrom v2
// gateway") for what crosses the WAN and HMAC-SHA256(master, "maelstrom v2 feedback") for
// feedback, so a storage host holding the feedback key cannot forge repairs. A key's id is the
// first four bytes of HMAC-SHA256(key, "maelstrom v2 key id").
//
// A receiver checks, in this order and before it uses anything inside: the header, the key id
// (one it holds), the tag, then freshness: the time not below the floor (its own start time
// less the clock skew allowed, so datagrams recorded before it started cannot be replayed into
// its empty window) and the counter not seen before in a sliding window of kWindow counters
// (RFC 6479), wide enough for the reordering of several WAN queues. The counter starts at the
// sender's start time, so a restarted sender counts on above everything it sent before.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "auth/gmac.h"

namespace maelstrom::auth {

constexpr uint16_t kMagic = 0x4D41;
constexpr uint8_t kVersion = 2;
constexpr size_t kHeaderBytes = 28;
constexpr size_t kOverhead = kHeaderBytes + kTagBytes;
constexpr unsigned kCounterTimeShift = 22;  // counter = ms << 22 at start: 4M datagrams per ms
constexpr uint64_t kWindow = 8192;          // counters a receiver remembers behind the newest
constexpr uint64_t kClockSkewS = 60;        // how far a sender's clock may lag the receiver's

enum class Kind : uint8_t { Repair = 1, Report = 2, Feedback = 3 };
enum class Purpose : uint8_t { Gateway, Feedback };

// Why a datagram was refused (or Ok). Counted by receivers, named in stats.
enum class Verdict : uint8_t {
  Ok = 0,
  Truncated,   // shorter than the header and tag
  NotSealed,   // no envelope (magic): a peer running without authentication
  BadVersion,
  BadKind,
  UnknownKey,  // a key id this receiver does not hold
  BadTag,      // forged, corrupted, or sealed under another key with the same id
  Stale,       // sealed before this receiver started (less the clock skew allowed)
  Replayed,    // counter seen before, or too far behind the newest
  Count_
};
const char* verdict_name(Verdict v);

struct Key {
  uint32_t id = 0;
  uint8_t bytes[kKeyBytes] = {};
};

// The purpose key of a master key.
Key derive(const uint8_t master[kKeyBytes], Purpose purpose);
// A purpose key as it is (a storage host's feedback key file), with its id.
Key purpose_key(const uint8_t bytes[kKeyBytes]);

uint64_t realtime_ms();
uint64_t first_counter(uint64_t now_ms);

// Seals datagrams under one key at a time; its session and counter go on across key changes.
class Sender {
 public:
  Sender();  // a random session, the counter from the clock
  // A given session and counter; time_s fixes the time it seals with (0: the clock's).
  Sender(uint64_t session, uint64_t counter, uint32_t time_s = 0);
  void set_key(const Key& key);
  bool keyed() const { return keyed_; }
  uint32_t key_id() const { return key_.id; }
  // `d` holds kHeaderBytes of room, the inner datagram (inner_len bytes) and kTagBytes of room
  // after it: writes the header and the tag. Returns the envelope's length.
  size_t seal(Kind kind, uint8_t* d, size_t inner_len);

 private:
  Key key_;
  bool keyed_ = false;
  uint64_t session_, counter_;
  uint32_t time_s_ = 0;
  Gmac gmac_;
};

// Sliding window over a sender's counters (RFC 6479: a ring of 64-bit words).
class ReplayWindow {
 public:
  bool fresh(uint64_t counter) const;  // newer than the newest, or within the window and unseen
  void mark(uint64_t counter);         // after the tag is verified
  uint64_t newest() const { return newest_; }

 private:
  static constexpr size_t kWords = kWindow / 64 + 1;  // + 1: the newest word and the oldest never share a slot
  uint64_t newest_ = 0;
  bool any_ = false;
  uint64_t bits_[kWords] = {};
};

struct Opened {
  Kind kind;
  uint32_t key_id;
  uint64_t counter;
  uint32_t time_s;
  const uint8_t* inner;
  size_t len;
};

// Opens the datagrams of one sender (the peer gateway, or one gateway's feedback).
class Receiver {
 public:
  // Datagrams sealed before floor_s (seconds since 1970: its start less kClockSkewS) are stale.
  explicit Receiver(uint64_t floor_s);
  void set_keys(const std::vector<Key>& keys);
  const std::vector<Key>& keys() const { return keys_; }
  Verdict open(const uint8_t* d, size_t len, Opened* out);
  uint64_t count(Verdict v) const { return counts_[size_t(v)]; }
  const uint64_t* counts() const { return counts_; }

 private:
  struct Session {
    uint32_t key_id;
    uint64_t session;
    std::unique_ptr<Gmac> gmac;
  };
  Verdict check(const uint8_t* d, size_t len, Opened* out);
  Gmac* session_gmac(const Key& key, uint64_t session, bool* fresh_entry);

  uint64_t floor_s_;
  std::vector<Key> keys_;
  std::vector<Session> sessions_;  // newest first, a few at most
  ReplayWindow window_;
  uint64_t counts_[size_t(Verdict::Count_)] = {};
};

}  // namespace maelstrom::auth
