// The gateway engine: one thread per queue pair (worker), each owning the AF_XDP sockets of its
// queues on both interfaces, with the code shared between them.
//   LAN -> WAN: each steered frame is sent on the WAN unaltered (the XDP program already routed
//   it) and fed to the encoder; fired repairs go to the peer gateway as UDP, beside the data.
//   WAN -> LAN: data frames go to the LAN and into the decoder's window (a frame the decoder
//   already rebuilt is dropped as a duplicate); repairs go to the decoder, whose rebuilt packets
//   are handed to the kernel through a raw socket to be routed to their host.
// Both directions at once, in batches, with no JavaScript on the packet path.
//
// Worker w owns LAN queue socket w and WAN queue socket w, and transmits on them; when the two
// interfaces bind different numbers of queues, the sockets beyond the smaller count go round the
// workers (worker w also receives on sockets w + N, w + 2N, ...). Every socket has one thread.
// The encoder, decoder and network-sync tracker are shared under one lock taken once per batch:
// the encoder's sequence numbers and the decoder's window span all queues, as the far gateway
// sees one stream. The copies between the interfaces' UMEMs run outside it, in parallel.
//
// Where each step lives (docs/architecture.md):
//   setup.cc     start and stop: the XDP program and its maps, the AF_XDP sockets, the threads
//   datapath.cc  the packet path: run, lan_batch, wan_batch, and the housekeeping of each turn
//   sinks.h      where the codec's output goes: repairs to the WAN, rebuilt packets to the kernel,
//                completions to the tracker
//   control.cc   what is not per packet: retunes, keys, receiver reports, feedback, snapshots
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/envelope.h"
#include "common/clock.h"
#include "engine/report_format.h"
#include "fec/decoder.h"
#include "fec/encoder.h"
#include "netsync/tracker.h"
#include "xsk/port.h"

struct xdp_program;

namespace maelstrom::engine {

struct Prefix {
  uint32_t addr;  // network order
  uint8_t len;
};

struct EngineConfig {
  std::string lan_if, wan_if;
  std::string bpf_object;
  uint32_t wan_addr = 0;   // network order: source of repairs
  uint32_t peer_addr = 0;  // network order
  uint8_t wan_mac[6] = {};
  uint8_t peer_mac[6] = {};  // next hop towards the peer on the WAN
  uint16_t repair_port = 7600;
  std::vector<Prefix> remote;
  fec::EncoderConfig encoder;
  fec::DecoderConfig decoder;
  uint16_t mss_clamp = 0;  // 0: off
  std::vector<uint32_t> lan_queues{0};  // RX queues of each interface that get an AF_XDP socket
  std::vector<uint32_t> wan_queues{0};
  uint32_t frame_size = 2048;  // UMEM frame: at least the largest frame on either interface
  bool generic = false;     // XDP in generic (skb) mode
  bool force_copy = false;  // AF_XDP copy mode even where zero-copy is offered
  bool require_zero_copy = false;  // fail where the NIC offers only copy mode
  // Worker w runs only on cpus[w % size] (empty: where the scheduler likes).
  std::vector<int> cpus;
  // Network-sync feedback to LAN senders, from lan_addr (network order; 0: no feedback).
  uint32_t lan_addr = 0;
  uint16_t feedback_port = 7601;
  netsync::TrackerConfig tracker;  // layers are taken from the encoder
  // Once the LAN has been quiet this long, the bins holding packets a network-sync flow waits
  // on fire at once instead of at their flush timeout (0: never; docs/gateway.md), within the
  // encoder's budget (encoder.budget_ratio, encoder.budget_per_s).
  uint64_t flush_idle_ns = 50'000;
  // The pair's master key: repairs, reports and feedback go sealed (docs/protocol.md,
  // "Authentication envelope"). None: --insecure-no-auth, everything goes bare.
  std::optional<std::array<uint8_t, auth::kKeyBytes>> master_key;
};

// The stages of a worker's turn that the sampled profile times (EngineCounters::stage_ns).
enum Stage : unsigned {
  kStageRings,         // RX ring reads, fill and completion rings, frames recycled
  kStageCopy,          // LAN frame to a WAN TX frame (and partial checksums, MSS clamp)
  kStageLock,          // waiting for the codec lock
  kStageTracker,       // network-sync records: sent, completed, uncovered
  kStageHash,          // the packet's identity (fec::identify)
  kStageXor,           // XOR into the bins and the repairs fired: sealed, UDP headers, queued
                       // (the encoder less its hash)
  kStageTx,            // TX ring writes and the kicks (sendto)
  kStageCount_,
};
constexpr unsigned kProfileEvery = 16;  // a power of two

struct EngineCounters {
  uint64_t lan_to_wan_packets = 0, lan_to_wan_bytes = 0;
  uint64_t wan_to_lan_packets = 0, wan_to_lan_bytes = 0;
  uint64_t repairs_sent = 0, repair_bytes_sent = 0;
  uint64_t repairs_received = 0;
  uint64_t recovered_forwarded = 0;
  uint64_t recovered_send_errors = 0;
  uint64_t duplicates_dropped = 0;
  uint64_t mss_clamped = 0;
  uint64_t lan_checksum_completed = 0;  // TCP/UDP checksums left partial by a host's offload
  uint64_t unprotected = 0;     // too long for a repair to fit the WAN MTU: forwarded, not covered
  uint64_t bad_repair_frames = 0;  // truncated headers or a bad UDP checksum
  uint64_t tx_dropped = 0;      // no frame or TX ring space
  uint64_t feedback_datagrams = 0, feedback_send_errors = 0;
  uint64_t feedback_unreachable = 0;  // ICMP port unreachable: the host runs no listener
  uint64_t feedback_suppressed = 0;   // entries not sent to such a host meanwhile
  uint64_t events_dropped = 0;  // the event queue was full (nobody draining it)
  uint64_t epoch_changes = 0;   // runtime retunes applied
  uint64_t epoch_flushed = 0;   // repairs fired early by them (the old code's bins)
  uint64_t reports_sent = 0, reports_received = 0;
  uint64_t bad_reports = 0;     // receiver reports of the wrong length or version
  uint64_t auth_unverifiable = 0;  // sealed datagrams reaching a gateway run without a key
  uint64_t cpu_ns = 0;          // the engine threads' CPU time (user and system), as of their last publish
  // Where the time goes, sampled: one turn of a worker's loop in kProfileEvery is timed stage by
  // stage (enum Stage); stage_packets LAN frames arrived in those turns. So stage_ns[s] /
  // stage_packets is a LAN->WAN packet's cost in stage s, for a few ns a packet.
  uint64_t stage_packets = 0;
  uint64_t stage_ns[kStageCount_] = {};

  EngineCounters& operator+=(const EngineCounters& o);
};

// One engine thread: the queues it receives on, where it runs, and its share of the counters.
struct WorkerSnapshot {
  std::vector<uint32_t> lan_queues, wan_queues;
  int cpu = -1;
  EngineCounters counters;
};

// The receiving peer's view of our WAN direction (docs/protocol.md, "Receiver report"):
// cumulative counts from its decoder, as of its latest report.
struct PeerReport {
  uint64_t reports = 0;
  ReceiverReport last;
  uint64_t received_ns = 0;  // CLOCK_MONOTONIC of its arrival, 0: none yet
};

// Which keys the gateway seals and accepts with, and what the peer's reports say of its own
// (ids of the gateway purpose keys; 0: none). A rotation: `pending` is the new key, accepted and
// waiting for the peer to accept it too before it seals with it; after the switch `retiring`
// is the old one, accepted until 2 s after the peer's first datagram under the new key.
struct AuthState {
  bool enabled = false;
  uint32_t send_key = 0, pending_key = 0, retiring_key = 0;
  uint32_t peer_send_key = 0, peer_accepts[2] = {};  // from the peer's latest report
  uint64_t rotations = 0;  // switches to a new key completed
  uint64_t received[size_t(auth::Verdict::Count_)] = {};  // the peer's datagrams, by verdict
};

struct EngineSnapshot {
  EngineCounters engine;
  fec::EncoderStats encoder;
  fec::DecoderStats decoder;
  netsync::TrackerStats netsync;
  uint64_t decoder_pending = 0;
  uint64_t decoder_window = 0;
  PeerReport peer;
  AuthState auth;
  uint64_t bpf[32] = {};  // enum gw_stat, both interfaces summed
  xsk::Port::KernelStats lan_sockets, wan_sockets;  // summed over queues
  std::vector<WorkerSnapshot> workers;
};

class Engine {
 public:
  Engine();
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // 0, or -errno with what failed in *error. failed_step() then says which step failed when
  // the caller can tell the operator more: "xdp" (attaching the program), "zero-copy" (a NIC
  // that offers only copy mode while zero-copy was required), or "" (anything else).
  int start(const EngineConfig& config, std::string* error);
  const std::string& failed_step() const { return failed_step_; }
  void stop();
  bool running() const { return running_.load(); }
  size_t workers() const { return workers_.size(); }
  bool zero_copy() const { return zero_copy_; }
  std::string xdp_mode() const { return config_.generic ? "skb" : "native"; }
  EngineSnapshot snapshot();
  // Network-sync events since the last call (feedback sent, flows opened and closed, and with
  // trace on every data and repair completion), oldest first.
  std::vector<netsync::Event> drain_events();
  void set_trace(bool on) { trace_requested_.store(on); }
  // A new code at run time (an epoch change): the engine thread fires every bin of the current
  // code, then goes on under `code` with the next epoch, continuing the sequence numbers, so the
  // far decoder keeps decoding across the change. Returns the new epoch. max_packet, epoch and
  // first_seq of `code` are ignored.
  uint32_t retune(const fec::EncoderConfig& code);
  uint32_t epoch() const { return epoch_.load(); }
  uint32_t tracker_ring() const { return tracker_ ? tracker_->ring_size() : 0; }  // fixed at start
  // A new master key at run time (maelstrom rekey): accepted at once, sealed with once the
  // peer's report says it accepts it too. Returns the new key's id (its gateway purpose key's).
  uint32_t rekey(const std::array<uint8_t, auth::kKeyBytes>& master);
  AuthState auth_state();

 private:
  // What a WAN UMEM frame in flight carries, read back when it completes.
  enum class FrameKind : uint8_t { None, Data, Repair };
  struct FrameTag {
    FrameKind kind;
    uint8_t layer, count;
    uint16_t interleave;
    uint32_t seq;
  };

  struct Side {
    xdp_program* prog = nullptr;
    int ifindex = 0;
    int xsks_fd = -1, stats_fd = -1;
    std::vector<std::unique_ptr<xsk::Port>> ports;
  };

  class RepairOut;
  class RecoveredOut;
  class Completions;
  class Events;

  // A completed WAN frame, noted by the completion hook (which may run inside a transmit, with
  // the codec lock held) and given to the tracker at the worker's next codec section.
  struct Done {
    FrameTag tag;
    uint64_t ns;
  };

  struct Worker {
    unsigned index = 0;
    int cpu = -1;
    std::vector<xsk::Port*> lan_rx, wan_rx;  // sockets it receives on; [0] is also its TX socket
    std::vector<FrameTag> wan_tags;  // by frame index of wan_rx[0]
    std::unique_ptr<Completions> completions;
    std::vector<Done> done;
    std::vector<uint8_t> verdicts;  // per frame of a WAN batch: forward it to the LAN or not
    std::vector<uint64_t> staged;   // per frame of a LAN batch: its WAN TX frame, or kNoFrame
    EngineCounters counters;
    // The sampled profile: is this turn timed, the tick its last stage ended at, ticks per
    // stage, and the run's first tick and ns (to convert ticks to ns).
    uint32_t turn = 0;
    bool sampling = false;
    uint64_t mark = 0;
    uint64_t stage_cycles[kStageCount_] = {};
    uint64_t start_cycles = 0, start_ns = 0;
    std::thread thread;
  };

  int attach(Side& side, const std::string& ifname, const std::vector<uint32_t>& queues, uint32_t key_offset,
             std::string* error);
  void run(Worker& w);
  // The sampled profile: the ticks since the last lap go to stage s; skip() leaves them out.
  static void lap(Worker& w, Stage s) {
    if (!w.sampling) return;
    uint64_t c = cycles();
    w.stage_cycles[s] += c - w.mark;
    w.mark = c;
  }
  static void skip(Worker& w) {
    if (w.sampling) w.mark = cycles();
  }
  void lan_batch(Worker& w, xsk::Port& lan, const xsk::RxFrame* batch, uint32_t n, uint64_t now);
  void wan_batch(Worker& w, xsk::Port& wan, const xsk::RxFrame* batch, uint32_t n, uint64_t now);
  void clamp_mss(Worker& w, uint8_t* ip, uint32_t len);
  bool forward(Worker& w, xsk::Port& to, const uint8_t* frame, uint32_t len);
  // The rest run with codec_mutex_ held.
  void apply_done(Worker& w);
  uint64_t housekeeping(Worker& w, uint64_t now);
  uint64_t idle_flush(RepairOut& out, uint64_t now);
  void publish_codec();
  void apply_retune(Worker& w);
  void send_report(Worker& w);
  void on_report(Worker& w, const uint8_t* p, size_t len, uint64_t now);
  // Ethernet, IPv4 and UDP headers to the peer gateway's repair port, before `payload` bytes
  // (no UDP checksum for sealed datagrams: the tag covers more).
  void udp_headers(uint8_t* frame, size_t payload);
  // Room a sealed datagram needs before and after its inner bytes (0 without a key).
  size_t seal_before() const { return master_ ? auth::kHeaderBytes : 0; }
  size_t seal_after() const { return master_ ? auth::kTagBytes : 0; }
  // Seals in place (see auth::Sender::seal) when the gateway has a key; the payload's length.
  size_t seal(auth::Sender& sender, auth::Kind kind, uint8_t* payload, size_t inner_len);
  // A datagram from the peer's repair port, opened: repairs to the decoder, reports to on_report.
  void on_peer_datagram(Worker& w, const uint8_t* p, size_t len, fec::RecoverySink& out, uint64_t now);
  void after_verified(uint32_t key_id, uint64_t now);
  void set_receiver_keys();
  void retire_keys(uint64_t now);
  void send_feedback(Worker& w, uint64_t now);
  void read_feedback_errors(Worker& w, uint64_t now);

  EngineConfig config_;
  Side lan_, wan_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  bool zero_copy_ = false;
  std::string failed_step_;
  int raw_fd_ = -1;
  int feedback_fd_ = -1;
  std::atomic<bool> trace_requested_{false};
  std::mutex retune_mutex_;
  std::optional<fec::EncoderConfig> retune_;  // requested, not yet applied
  std::atomic<bool> retune_pending_{false};
  std::atomic<uint32_t> epoch_{0};

  // The code and what goes with it, shared by the workers.
  std::mutex codec_mutex_;
  std::unique_ptr<fec::Encoder> encoder_;
  fec::EncoderStats retired_encoders_;  // the counters of the codes before this epoch's
  std::unique_ptr<fec::Decoder> decoder_;
  std::unique_ptr<netsync::Tracker> tracker_;
  std::unique_ptr<Events> events_;
  std::vector<netsync::FeedbackEntry> feedback_;
  std::vector<uint8_t> datagram_;
  uint32_t feedback_seq_ = 0;
  std::unordered_map<uint32_t, uint64_t> quiet_hosts_;  // host -> until when no feedback goes there
  // The idle flush: when the last LAN frame was taken, the encoder's next sequence number
  // at the last idle flush (nothing new since: nothing to look at), and when to try again
  // a flush the budget cut short (UINT64_MAX: none is).
  uint64_t last_lan_ns_ = 0;
  uint32_t idle_flushed_seq_ = 0;
  uint64_t idle_retry_ns_ = UINT64_MAX;
  std::vector<uint32_t> waiting_;
  bool trace_ = false;
  uint16_t ip_id_ = 0;
  uint64_t next_report_ns_ = 0;
  PeerReport peer_;

  // Authentication, under the codec lock (AuthState above).
  struct KeyPair {
    auth::Key gateway, feedback;
  };
  bool master_ = false;  // a key was given
  KeyPair current_;
  std::optional<KeyPair> other_;  // the pending new key, or the retiring old one
  bool pending_ = false;
  uint64_t retire_at_ns_ = 0;
  auth::Sender wan_sender_, feedback_sender_;
  std::unique_ptr<auth::Receiver> wan_receiver_;
  uint64_t rotations_ = 0;

  std::mutex snapshot_mutex_;
  EngineSnapshot snapshot_;
};

}  // namespace maelstrom::engine
