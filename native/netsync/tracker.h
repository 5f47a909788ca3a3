// Network-sync bookkeeping of a gateway (docs/protocol.md, "Network-sync"): which bytes of each
// TCP flow leaving through it are network-safe, that is on the WAN together with every repair
// packet covering them, as the AF_XDP completion ring reports.
//
// The engine tells the tracker what it transmits and what completes; the tracker keeps
//   - a bounded flow table keyed by the 4-tuple: the ISN from the SYN (or the first sequence
//     seen, marked as guessed), 64-bit stream offsets across sequence wrap, LRU eviction under
//     pressure, idle eviction, eviction after RST and after FIN once everything is safe;
//   - a ring of records indexed by encoder sequence number: the bytes a data frame carries and
//     how many of its c repairs (one per layer) have completed;
//   - per flow, the records in the order they were sent; the safe offset advances over a record
//     once it is complete, or once a later one (a retransmission) completes the same bytes, or
//     when the remote receiver's ACK passes it (acknowledged bytes are safer still);
//   - which flows need a feedback entry, at most one per flow every `feedback_interval_ns`.
// No I/O and no clock: callers pass the time. Single-threaded (the engine thread).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <vector>

#include "fec/encoder.h"

namespace maelstrom::netsync {

struct FlowKey {
  uint32_t saddr, daddr;  // network order, as in the IP header
  uint16_t sport, dport;  // network order
  bool operator==(const FlowKey& o) const {
    return saddr == o.saddr && daddr == o.daddr && sport == o.sport && dport == o.dport;
  }
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const {
    uint64_t x = (uint64_t(k.saddr) << 32 | k.daddr) ^ (uint64_t(k.sport) << 16 | k.dport) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    return size_t(x ^ (x >> 32));
  }
};

struct TrackerConfig {
  unsigned layers = 3;                      // c: repairs covering each data packet
  uint32_t max_flows = 65536;
  uint32_t ring = 65536;                    // records; rounded up to a power of two
  uint64_t idle_timeout_ns = 900'000'000'000ull;
  uint64_t feedback_interval_ns = 50'000;   // at most one entry per flow this often
};

// One feedback entry (docs/protocol.md): offsets count bytes from the start of the stream.
struct FeedbackEntry {
  FlowKey flow;
  bool isn_guessed;
  uint64_t safe;
  uint64_t sent;
  uint8_t repairs_newest;  // repairs completed for the newest record of the flow
  uint8_t repairs_per_packet;
};

enum class EventKind : uint8_t {
  Feedback = 1,    // a feedback entry was emitted: a = safe, b = sent
  DataDone = 2,    // trace: a data frame completed: seq, a = start, b = end offset
  RepairDone = 3,  // trace: a repair completed: seq = base_seq, layer, count, interleave
  FlowOpen = 4,    // a = ISN (guessed when flags & 1)
  FlowClose = 5,   // reason in `reason`
  SafeByAck = 6,   // the safe offset advanced because the receiver acknowledged: a = safe
};

enum class CloseReason : uint8_t { Fin = 1, Rst = 2, Idle = 3, Pressure = 4, Reopened = 5 };

struct Event {
  uint64_t t_ns;
  uint64_t a, b;
  FlowKey flow;
  uint32_t seq;
  uint16_t interleave;
  EventKind kind;
  uint8_t flags;  // bit 0: ISN guessed
  uint8_t layer, count, repairs, reason;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void event(const Event& e) = 0;
};

struct TrackerStats {
  uint64_t flows = 0;              // in the table now
  uint64_t flows_opened = 0;
  uint64_t flows_isn_guessed = 0;  // opened without seeing the SYN
  uint64_t evicted_fin = 0, evicted_rst = 0, evicted_idle = 0, evicted_pressure = 0;
  uint64_t segments = 0;           // TCP segments with payload recorded
  uint64_t retransmissions = 0;    // segments starting below the highest offset sent
  uint64_t records_completed = 0;
  uint64_t records_abandoned = 0;  // overwritten in the ring before completing
  uint64_t safe_by_ack = 0;        // advances of the safe offset by the receiver's ACK
  uint64_t feedback_entries = 0;
  uint64_t stale_completions = 0;  // completions for records already gone
  uint64_t after_close = 0;        // segments of a flow closed by FIN or RST moments before: ignored
  // Microseconds from sent() to the record's last completion (data and all its repairs), as a
  // histogram with four buckets per power of two (latency_bucket()); the largest seen apart.
  static constexpr unsigned kLatencyBuckets = 96;
  uint64_t safe_latency[kLatencyBuckets] = {};
  uint64_t safe_latency_max_us = 0;
};

// The bucket of a latency in microseconds, and the largest latency a bucket holds.
unsigned latency_bucket(uint64_t us);
uint64_t latency_bucket_top(unsigned bucket);

class Tracker {
 public:
  explicit Tracker(const TrackerConfig& config);
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // The LAN-to-WAN IPv4 packet `ip` is about to be transmitted as encoder sequence `seq`.
  // Non-TCP packets and malformed headers are ignored (they still take their sequence number).
  void sent(const uint8_t* ip, size_t len, uint32_t seq, uint64_t now_ns);
  // The encoder refused the packet (too long): it will never be covered, drop its record.
  void uncovered(uint32_t seq);
  // A WAN-to-LAN IPv4 packet: the ACK of the reverse flow may advance a safe offset.
  void received(const uint8_t* ip, size_t len, uint64_t now_ns);

  void data_completed(uint32_t seq, uint64_t now_ns);
  void repair_completed(const fec::RepairInfo& info, uint64_t now_ns);
  // A repair was never sent (no TX frame or ring space): the packets it covers cannot become
  // network-safe by completion; only a retransmission or the receiver's ACK passes them.
  void repair_lost(const fec::RepairInfo& info);

  // Appends to out the sequence numbers of records that still wait for repairs and that someone
  // may wait on: sent at most `span` frames before the newest, of a flow whose ISN is known, from
  // a host not quiet. The engine fires the bins holding them when the LAN goes idle.
  void waiting(uint32_t newest_seq, uint32_t span, uint64_t now_ns, std::vector<uint32_t>* out);
  // The host answered feedback with ICMP port unreachable: nobody there waits on its flows
  // until `until_ns`.
  void set_quiet(uint32_t saddr, uint64_t until_ns) { quiet_[saddr] = until_ns; }

  // Appends the entries due at now (offsets advanced and the flow's interval passed) and evicts
  // what is idle or finished. Returns how many were appended.
  size_t poll(uint64_t now_ns, std::vector<FeedbackEntry>* out);
  // Earliest time poll() has an entry to give, UINT64_MAX when none is waiting.
  uint64_t next_deadline() const { return next_deadline_; }

  void set_sink(EventSink* sink) { sink_ = sink; }
  void set_trace(bool on) { trace_ = on; }
  const TrackerStats& stats() const { return stats_; }
  unsigned layers() const { return config_.layers; }
  // A new code (an epoch change): records from now on need this many repairs; those already
  // sent keep the number they were sent with.
  void set_layers(unsigned layers) { config_.layers = std::max(1u, layers); }
  uint32_t ring_size() const { return mask_ + 1; }

 private:
  struct Pending {
    uint32_t seq;
    uint64_t start, end;
  };
  struct Flow {
    FlowKey key;
    uint32_t gen = 0;
    bool used = false, isn_guessed = false, fin = false, dirty = false;
    uint32_t isn = 0;
    uint64_t high = 0;  // highest end offset sent
    uint64_t safe = 0;
    uint32_t newest_seq = 0;
    uint8_t newest_repairs = 0;
    uint64_t last_seen_ns = 0, last_feedback_ns = 0;
    uint32_t lru_prev = UINT32_MAX, lru_next = UINT32_MAX;
    std::deque<Pending> pending;
  };
  struct Record {
    uint32_t seq;
    uint32_t flow;  // slot, UINT32_MAX when not a tracked TCP segment
    uint32_t gen;
    uint8_t repairs;
    bool data_done;
    bool done;
    bool dead;  // a repair covering it was lost
    uint64_t start, end;
    uint8_t need = 0;      // repairs it waits for: c of the code it was sent under
    uint64_t sent_ns = 0;
  };
  // What sent() changed, so uncovered() can take it back.
  struct LastSent {
    uint32_t seq = 0, slot = 0;
    uint64_t high = 0;
    uint32_t newest_seq = 0;
    uint8_t newest_repairs = 0;
    bool valid = false;
  };

  uint32_t open_flow(const FlowKey& key, uint64_t now_ns);
  void close_flow(uint32_t slot, CloseReason reason, uint64_t now_ns);
  void touch(uint32_t slot);
  void lru_unlink(uint32_t slot);
  uint64_t unwrap(const Flow& f, uint32_t seq) const;
  void check_done(Record& r, uint64_t now_ns);
  bool advance(uint32_t slot);
  void mark_dirty(uint32_t slot);
  // An event about flow f: its key, safe and sent offsets, and whether its ISN was guessed.
  Event flow_event(EventKind kind, const Flow& f, uint64_t now_ns) const;
  // The ring's record for p, or nullptr once the ring has given its place to another frame.
  const Record* record_of(const Pending& p, uint32_t slot) const;
  void emit(const Event& e) {
    if (sink_) sink_->event(e);
  }

  TrackerConfig config_;
  uint32_t mask_;
  std::vector<Record> ring_;
  std::vector<Flow> flows_;
  std::vector<uint32_t> free_slots_;
  std::unordered_map<FlowKey, uint32_t, FlowKeyHash> index_;
  uint32_t lru_head_ = UINT32_MAX, lru_tail_ = UINT32_MAX;  // head: most recently seen
  std::vector<uint32_t> dirty_;
  std::vector<uint32_t> finished_;  // FIN seen: evicted once everything is safe and reported
  // Flows closed by FIN or RST in the last kClosedMemoryNs (at most kClosedMemory of them): a
  // late retransmission of one does not open it again, without its SYN, to wait out the idle
  // timeout (TIME_WAIT, in short).
  static constexpr uint64_t kClosedMemoryNs = 60'000'000'000ull;
  static constexpr size_t kClosedMemory = 16384;
  std::unordered_map<FlowKey, uint64_t, FlowKeyHash> closed_;
  std::deque<FlowKey> closed_order_;
  // Records that wait for repairs, in the order sent (some may have completed since: waiting()
  // skips them and drops them from the front); at most the ring's size.
  std::deque<uint32_t> unsafe_;
  std::unordered_map<uint32_t, uint64_t> quiet_;  // host -> until when nobody there listens
  LastSent last_;
  uint64_t next_deadline_ = UINT64_MAX;
  EventSink* sink_ = nullptr;
  bool trace_ = false;
  TrackerStats stats_;
};

}  // namespace maelstrom::netsync
