// What the engine does besides forwarding, mostly under the codec lock from a worker's
// housekeeping: epoch changes (retune), keys and their rotation, receiver reports to and from
// the peer, network-sync feedback to the LAN's hosts, and the snapshot JavaScript reads.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/errqueue.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/bytes.h"
#include "common/checksum.h"
#include "common/clock.h"
#include "engine/engine.h"
#include "engine/events.h"
#include "engine/frames.h"
#include "engine/sinks.h"
#include "gateway.h"
#include "netsync/feedback_format.h"

namespace maelstrom::engine {
namespace {

// After a key rotation, the old key is accepted this long after the peer's first datagram
// under the new one: what it sent before the switch is still on its way.
constexpr uint64_t kRetireAfter = 2'000'000'000;

}  // namespace

void Engine::udp_headers(uint8_t* eth, size_t len) {
  std::memcpy(eth, config_.peer_mac, 6);
  std::memcpy(eth + 6, config_.wan_mac, 6);
  put16(eth + 12, 0x0800);
  uint8_t* ip = eth + kEth;
  size_t ip_len = kIp + kUdp + len;
  ip[0] = 0x45;
  ip[1] = 0;
  put16(ip + 2, uint16_t(ip_len));
  put16(ip + 4, ip_id_++);
  put16(ip + 6, 0x4000);  // DF: repairs must fit, never be fragmented
  ip[8] = 64;
  ip[9] = 17;
  put16(ip + 10, 0);
  std::memcpy(ip + 12, &config_.wan_addr, 4);
  std::memcpy(ip + 16, &config_.peer_addr, 4);
  put16(ip + 10, fold(sum16(ip, kIp)));
  uint8_t* udp = ip + kIp;
  put16(udp, config_.repair_port);
  put16(udp + 2, config_.repair_port);
  put16(udp + 4, uint16_t(kUdp + len));
  put16(udp + 6, 0);
  if (!master_) put16(udp + 6, udp_checksum(ip, udp, kUdp + len));
}

size_t Engine::seal(auth::Sender& sender, auth::Kind kind, uint8_t* payload, size_t inner_len) {
  return master_ ? sender.seal(kind, payload, inner_len) : inner_len;
}

uint32_t Engine::retune(const fec::EncoderConfig& code) {
  std::lock_guard<std::mutex> lock(retune_mutex_);
  // A retune not applied yet is replaced under the epoch it was given.
  uint32_t epoch = retune_ ? retune_->epoch : epoch_.load() + 1;
  retune_ = code;
  retune_->epoch = epoch;
  retune_pending_.store(true, std::memory_order_release);
  return epoch;
}

// Every bin of the old code fires now, so each packet sent under it gets all its repairs, with
// the old epoch; the new code numbers on from the next sequence number.
void Engine::apply_retune(Worker& w) {
  fec::EncoderConfig code;
  {
    std::lock_guard<std::mutex> lock(retune_mutex_);
    code = *retune_;
    retune_.reset();
    retune_pending_.store(false, std::memory_order_relaxed);
  }
  RepairOut out(*this, w);
  w.counters.epoch_flushed += encoder_->flush(out);
  code.max_packet = encoder_->config().max_packet;
  code.first_seq = encoder_->next_seq();
  code.budget_ratio = encoder_->config().budget_ratio;
  code.budget_per_s = encoder_->config().budget_per_s;
  auto next = std::make_unique<fec::Encoder>(code);
  next->adopt_budget(*encoder_);
  retired_encoders_ += encoder_->stats();
  encoder_ = std::move(next);
  tracker_->set_layers(unsigned(code.interleaves.size()));
  w.counters.epoch_changes++;
  epoch_.store(code.epoch);
}

void Engine::set_receiver_keys() {
  std::vector<auth::Key> keys{current_.gateway};
  if (other_) keys.push_back(other_->gateway);
  wan_receiver_->set_keys(keys);
}

// The peer seals with our current key: the old one goes once what it sent before is in.
void Engine::after_verified(uint32_t key_id, uint64_t now) {
  if (other_ && !pending_ && !retire_at_ns_ && key_id == current_.gateway.id) retire_at_ns_ = now + kRetireAfter;
}

void Engine::retire_keys(uint64_t now) {
  if (!other_ || pending_ || !retire_at_ns_ || now < retire_at_ns_) return;
  other_.reset();
  retire_at_ns_ = 0;
  set_receiver_keys();
}

uint32_t Engine::rekey(const std::array<uint8_t, auth::kKeyBytes>& master) {
  KeyPair next{auth::derive(master.data(), auth::Purpose::Gateway), auth::derive(master.data(), auth::Purpose::Feedback)};
  std::lock_guard<std::mutex> lock(codec_mutex_);
  if (!master_ || next.gateway.id == current_.gateway.id) return next.gateway.id;
  other_ = next;
  pending_ = true;
  retire_at_ns_ = 0;
  set_receiver_keys();
  return next.gateway.id;
}

AuthState Engine::auth_state() {
  std::lock_guard<std::mutex> lock(codec_mutex_);
  AuthState a;
  a.enabled = master_;
  if (!master_) return a;
  a.send_key = current_.gateway.id;
  if (other_) (pending_ ? a.pending_key : a.retiring_key) = other_->gateway.id;
  a.peer_send_key = peer_.last.send_key;
  a.peer_accepts[0] = peer_.last.accepts[0];
  a.peer_accepts[1] = peer_.last.accepts[1];
  a.rotations = rotations_;
  std::memcpy(a.received, wan_receiver_->counts(), sizeof a.received);
  return a;
}

// What our decoder sees of the peer's WAN direction, for its --auto redundancy, and the keys
// this gateway seals and accepts with, for a rotation.
void Engine::send_report(Worker& w) {
  const fec::DecoderStats& d = decoder_->stats();
  // Without a key, only once the peer is heard from; with one, always: the report also tells
  // the peer which keys this gateway accepts, which a key rotation waits for.
  if (!d.repairs && !master_) return;
  xsk::Port& wan = *w.wan_rx[0];
  uint64_t addr;
  uint8_t* frame = wan.tx_buffer(&addr);
  if (!frame) return;
  ReceiverReport r;
  r.epoch = decoder_->epoch();
  r.window = decoder_->window_capacity();
  r.sampled = d.loss_sampled;
  r.missing = d.loss_missing;
  r.bursts = d.loss_bursts;
  r.recovered = d.recovered;
  r.unrecoverable = d.unrecoverable;
  if (master_) {
    r.send_key = r.accepts[0] = current_.gateway.id;
    r.accepts[1] = other_ ? other_->gateway.id : 0;
  }
  write_report(frame + kRepairHeaders + seal_before(), r);
  size_t payload = seal(wan_sender_, auth::Kind::Report, frame + kRepairHeaders, kReportBytes);
  udp_headers(frame, payload);
  w.wan_tags[addr / wan.frame_size()] = FrameTag{};
  if (!wan.transmit(addr, uint32_t(kRepairHeaders + payload))) {
    w.counters.tx_dropped++;
    return;
  }
  w.counters.reports_sent++;
}

void Engine::on_report(Worker& w, const uint8_t* p, size_t len, uint64_t now) {
  ReceiverReport r;
  if (!read_report(p, len, &r)) {
    w.counters.bad_reports++;
    return;
  }
  w.counters.reports_received++;
  peer_.reports++;
  peer_.last = r;
  peer_.received_ns = now;
  if (!master_) return;
  // A rotation: the peer accepts the new key too, so it is safe to seal with it now.
  if (pending_ && (r.accepts[0] == other_->gateway.id || r.accepts[1] == other_->gateway.id)) {
    std::swap(current_, *other_);
    pending_ = false;
    retire_at_ns_ = 0;
    wan_sender_.set_key(current_.gateway);
    feedback_sender_.set_key(current_.feedback);
    rotations_++;
  }
}

// A host that answers feedback with ICMP port unreachable runs no listener: it is left alone
// for a second at a time rather than sent a datagram every 50 us per flow.
void Engine::read_feedback_errors(Worker& w, uint64_t now) {
  for (;;) {
    sockaddr_in to{};
    uint8_t control[256];
    uint8_t data[64];
    iovec iov{data, sizeof data};
    msghdr msg{};
    msg.msg_name = &to;
    msg.msg_namelen = sizeof to;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (recvmsg(feedback_fd_, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR) continue;
      const auto* ee = reinterpret_cast<const sock_extended_err*>(CMSG_DATA(c));
      if (ee->ee_origin == SO_EE_ORIGIN_ICMP && ee->ee_type == 3 && ee->ee_code == 3) {
        quiet_hosts_[to.sin_addr.s_addr] = now + 1'000'000'000;
        tracker_->set_quiet(to.sin_addr.s_addr, now + 1'000'000'000);  // and no idle flush for it
        w.counters.feedback_unreachable++;
      }
    }
  }
}

// Feedback datagrams (docs/protocol.md) for the entries due, one or more per sending host.
void Engine::send_feedback(Worker& w, uint64_t now) {
  feedback_.clear();
  if (!tracker_->poll(now, &feedback_) || feedback_fd_ < 0) return;
  read_feedback_errors(w, now);
  std::stable_sort(feedback_.begin(), feedback_.end(),
                   [](const netsync::FeedbackEntry& a, const netsync::FeedbackEntry& b) { return a.flow.saddr < b.flow.saddr; });
  for (size_t i = 0; i < feedback_.size();) {
    uint32_t host = feedback_[i].flow.saddr;
    size_t n = 0;
    while (i + n < feedback_.size() && n < netsync::kFeedbackMaxEntries && feedback_[i + n].flow.saddr == host) n++;
    if (auto q = quiet_hosts_.find(host); q != quiet_hosts_.end()) {
      if (now < q->second) {
        w.counters.feedback_suppressed += n;
        i += n;
        continue;
      }
      quiet_hosts_.erase(q);
    }
    size_t inner = netsync::feedback_size(n);
    datagram_.resize(seal_before() + inner + seal_after());
    netsync::write_feedback(datagram_.data() + seal_before(), feedback_seq_++, &feedback_[i], n);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = host;
    to.sin_port = htons(config_.feedback_port);
    size_t len = seal(feedback_sender_, auth::Kind::Feedback, datagram_.data(), inner);
    ssize_t sent = sendto(feedback_fd_, datagram_.data(), len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    if (sent < 0 && errno == ECONNREFUSED) {
      // An earlier datagram's ICMP error, reported on this send: note it, send again.
      read_feedback_errors(w, now);
      sent = sendto(feedback_fd_, datagram_.data(), len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
    if (sent < 0)
      w.counters.feedback_send_errors++;
    else
      w.counters.feedback_datagrams++;
    i += n;
  }
}

// The shared state's figures, with the codec lock held (taken before the snapshot's).
void Engine::publish_codec() {
  events_->publish();
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  snapshot_.encoder = retired_encoders_;
  snapshot_.encoder += encoder_->stats();  // counters, so they go on across epoch changes
  snapshot_.decoder = decoder_->stats();
  snapshot_.decoder_pending = decoder_->pending();
  snapshot_.decoder_window = decoder_->window_fill();
  snapshot_.peer = peer_;
  snapshot_.netsync = tracker_->stats();
  snapshot_.engine.events_dropped = events_->dropped();
}

std::vector<netsync::Event> Engine::drain_events() {
  return events_ ? events_->take() : std::vector<netsync::Event>{};
}

EngineSnapshot Engine::snapshot() {
  EngineSnapshot s;
  {
    std::lock_guard<std::mutex> lock(snapshot_mutex_);
    s = snapshot_;
  }
  for (const WorkerSnapshot& w : s.workers) s.engine += w.counters;
  // The sockets' kernel counters are read here, on the caller's thread: getsockopt is safe
  // beside the workers' ring work.
  for (auto [side, out] : {std::pair{&lan_, &s.lan_sockets}, std::pair{&wan_, &s.wan_sockets}}) {
    for (const auto& p : side->ports) {
      xsk::Port::KernelStats k = p->kernel_stats();
      out->rx_dropped += k.rx_dropped;
      out->rx_ring_full += k.rx_ring_full;
      out->fill_ring_empty += k.fill_ring_empty;
      out->tx_invalid += k.tx_invalid;
    }
  }
  int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> values(cpus > 0 ? size_t(cpus) : 1, 0);
  for (const Side* side : {&lan_, &wan_}) {
    if (side->stats_fd < 0) continue;
    for (uint32_t k = 0; k < GW_STAT_MAX && k < 32; k++) {
      if (bpf_map_lookup_elem(side->stats_fd, &k, values.data())) continue;
      for (uint64_t v : values) s.bpf[k] += v;
    }
  }
  return s;
}

}  // namespace maelstrom::engine
