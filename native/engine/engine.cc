#include "engine/engine.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <linux/errqueue.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

extern "C" {
#include <xdp/libxdp.h>
}

#include "common/bytes.h"
#include "common/clock.h"
#include "fec/packet_id.h"
#include "gateway.h"

namespace maelstrom::engine {
namespace {

constexpr size_t kEth = 14, kIp = 20, kUdp = 8;
constexpr size_t kRepairHeaders = kEth + kIp + kUdp;
constexpr uint32_t kBatch = 64;
// Receiver reports (docs/protocol.md): UDP to the peer's repair port, every 100 ms.
constexpr uint16_t kReportMagic = 0x4D52;  // "MR"
constexpr uint8_t kReportVersion = 2;
constexpr size_t kReportSize = 68;
constexpr uint64_t kReportInterval = 100'000'000;
// After a key rotation, the old key is accepted this long after the peer's first datagram
// under the new one: what it sent before the switch is still on its way.
constexpr uint64_t kRetireAfter = 2'000'000'000;

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += get16(p + i);
  if (n & 1) sum += uint32_t(p[n - 1]) << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// UDP checksum over the IPv4 pseudo-header; ip points at a 20-byte header.
uint16_t udp_checksum(const uint8_t* ip, const uint8_t* udp, size_t udp_len) {
  uint32_t sum = sum16(ip + 12, 8);
  sum += 17 + uint32_t(udp_len);
  uint16_t c = fold(sum16(udp, udp_len, sum));
  return c ? c : 0xffff;
}

std::string err_text(int err) { return strerror(err < 0 ? -err : err); }

// libbpf and libxdp report progress at INFO level (unknown ELF sections and the like); only their
// warnings reach stderr.
int warnings_only(enum libbpf_print_level level, const char* fmt, va_list args) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}
int xdp_warnings_only(enum libxdp_print_level level, const char* fmt, va_list args) {
  return level == LIBXDP_WARN ? vfprintf(stderr, fmt, args) : 0;
}

}  // namespace

EngineCounters& EngineCounters::operator+=(const EngineCounters& o) {
  static_assert(sizeof(EngineCounters) % sizeof(uint64_t) == 0, "EngineCounters holds only uint64_t");
  auto* to = reinterpret_cast<uint64_t*>(this);
  const auto* from = reinterpret_cast<const uint64_t*>(&o);
  for (size_t i = 0; i < sizeof(EngineCounters) / sizeof(uint64_t); i++) to[i] += from[i];
  return *this;
}

// Repairs are built straight into the worker's WAN UMEM frames behind Ethernet, IPv4 and UDP
// headers. Used with the codec lock held.
class Engine::RepairOut : public fec::RepairSink {
 public:
  RepairOut(Engine& e, Worker& w) : e_(e), w_(w), wan_(*w.wan_rx[0]) {}
  uint8_t* reserve(size_t len) override {
    if (kRepairHeaders + e_.seal_before() + len + e_.seal_after() > wan_.frame_size()) return nullptr;
    frame_ = wan_.tx_buffer(&addr_);
    if (!frame_) w_.counters.tx_dropped++;
    return frame_ ? frame_ + kRepairHeaders + e_.seal_before() : nullptr;
  }
  void dropped(const fec::RepairInfo& info) override { e_.tracker_->repair_lost(info); }
  void commit(size_t len, const fec::RepairInfo& info) override {
    size_t payload = e_.seal(e_.wan_sender_, auth::Kind::Repair, frame_ + kRepairHeaders, len);
    e_.udp_headers(frame_, payload);
    uint32_t frame_len = uint32_t(kRepairHeaders + payload);
    w_.wan_tags[addr_ / wan_.frame_size()] = FrameTag{2, info.layer, info.count, info.interleave, info.base_seq};
    if (wan_.transmit(addr_, frame_len)) {
      w_.counters.repairs_sent++;
      w_.counters.repair_bytes_sent += frame_len;
    } else {
      w_.counters.tx_dropped++;
      e_.tracker_->repair_lost(info);
    }
  }

 private:
  Engine& e_;
  Worker& w_;
  xsk::Port& wan_;
  uint8_t* frame_ = nullptr;
  uint64_t addr_ = 0;
};

// Rebuilt packets go to the kernel, which routes them to their host like any other.
class Engine::RecoveredOut : public fec::RecoverySink {
 public:
  RecoveredOut(Engine& e, Worker& w) : e_(e), w_(w) {}
  void recovered(const uint8_t* pkt, size_t len) override {
    if (len < kIp || (pkt[0] >> 4) != 4) {
      w_.counters.recovered_send_errors++;
      return;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    std::memcpy(&to.sin_addr, pkt + 16, 4);
    if (sendto(e_.raw_fd_, pkt, len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
      w_.counters.recovered_send_errors++;
    else
      w_.counters.recovered_forwarded++;
  }

 private:
  Engine& e_;
  Worker& w_;
};

// WAN frames back from a worker's completion ring: a data frame or a repair is now on the wire.
// Noted here, told to the tracker at the worker's next codec section (apply_done): the ring is
// also reaped inside transmits made with the codec lock held.
class Engine::Completions : public xsk::CompletionHook {
 public:
  explicit Completions(Worker& w) : w_(w) {}
  void completed(const uint64_t* addrs, uint32_t n) override {
    uint64_t now = monotonic_ns();
    uint32_t frame_size = w_.wan_rx[0]->frame_size();
    for (uint32_t i = 0; i < n; i++) {
      FrameTag& t = w_.wan_tags[addrs[i] / frame_size];
      if (t.kind) w_.done.push_back(Done{t, now});
      t.kind = 0;
    }
  }

 private:
  Worker& w_;
};

// Events collect under the codec lock and move to the shared queue in batches.
class Engine::Events : public netsync::EventSink {
 public:
  static constexpr size_t kMax = 1 << 20;
  void event(const netsync::Event& e) override {
    local_.push_back(e);
    if (local_.size() >= 4096) publish();
  }
  void publish() {
    if (local_.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    size_t room = kMax - std::min(kMax, shared_.size());
    size_t n = std::min(room, local_.size());
    shared_.insert(shared_.end(), local_.begin(), local_.begin() + long(n));
    dropped_ += local_.size() - n;
    local_.clear();
  }
  std::vector<netsync::Event> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<netsync::Event> out;
    out.swap(shared_);
    return out;
  }
  uint64_t dropped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return dropped_;
  }

 private:
  std::vector<netsync::Event> local_;
  std::mutex mutex_;
  std::vector<netsync::Event> shared_;
  uint64_t dropped_ = 0;
};

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

Engine::Engine() = default;
Engine::~Engine() { stop(); }

int Engine::attach(Side& side, const std::string& ifname, const std::vector<uint32_t>& queues, uint32_t key_offset,
                   std::string* error) {
  side.ifindex = int(if_nametoindex(ifname.c_str()));
  if (!side.ifindex) {
    *error = "no interface named " + ifname;
    return -ENODEV;
  }
  side.prog = xdp_program__open_file(config_.bpf_object.c_str(), "xdp", nullptr);
  if (long err = libxdp_get_error(side.prog); err) {
    side.prog = nullptr;
    *error = "cannot open " + config_.bpf_object + ": " + err_text(int(err));
    return int(err);
  }
  enum xdp_attach_mode mode = config_.generic ? XDP_MODE_SKB : XDP_MODE_NATIVE;
  if (int err = xdp_program__attach(side.prog, side.ifindex, mode, 0); err) {
    *error = "cannot attach XDP to " + ifname + ": " + err_text(err);
    failed_step_ = "xdp";
    xdp_program__close(side.prog);
    side.prog = nullptr;
    return err;
  }
  bpf_object* obj = xdp_program__bpf_obj(side.prog);
  int config_fd = bpf_object__find_map_fd_by_name(obj, "gw_config");
  int remote_fd = bpf_object__find_map_fd_by_name(obj, "gw_remote");
  side.xsks_fd = bpf_object__find_map_fd_by_name(obj, "gw_xsks");
  side.stats_fd = bpf_object__find_map_fd_by_name(obj, "gw_stats");
  if (config_fd < 0 || remote_fd < 0 || side.xsks_fd < 0 || side.stats_fd < 0) {
    *error = config_.bpf_object + " lacks the gateway's maps";
    return -ENOENT;
  }
  gw_config gc{};
  gc.lan_ifindex = uint32_t(if_nametoindex(config_.lan_if.c_str()));
  gc.wan_ifindex = uint32_t(if_nametoindex(config_.wan_if.c_str()));
  gc.peer_addr = config_.peer_addr;
  gc.repair_port = htons(config_.repair_port);
  uint32_t zero = 0;
  if (bpf_map_update_elem(config_fd, &zero, &gc, BPF_ANY)) {
    *error = "cannot configure the XDP program: " + err_text(errno);
    return -errno;
  }
  for (const Prefix& p : config_.remote) {
    gw_prefix key{p.len, p.addr};
    uint8_t one = 1;
    if (bpf_map_update_elem(remote_fd, &key, &one, BPF_ANY)) {
      *error = "cannot add a remote prefix: " + err_text(errno);
      return -errno;
    }
  }
  for (uint32_t q : queues) {
    auto port = std::make_unique<xsk::Port>();
    xsk::PortConfig pc;
    pc.ifname = ifname;
    pc.queue = q;
    pc.force_copy = config_.force_copy;
    pc.frame_size = config_.frame_size;
    if (int err = port->open(pc); err) {
      *error = "cannot open an AF_XDP socket on " + ifname + " queue " + std::to_string(q) + ": " + err_text(err);
      return err;
    }
    if (config_.require_zero_copy && !port->zero_copy()) {
      *error = ifname + " queue " + std::to_string(q) + " offers AF_XDP only in copy mode";
      failed_step_ = "zero-copy";
      return -EOPNOTSUPP;
    }
    zero_copy_ = zero_copy_ || port->zero_copy();
    uint32_t key = q + key_offset;
    int fd = port->fd();
    if (bpf_map_update_elem(side.xsks_fd, &key, &fd, BPF_ANY)) {
      *error = "cannot register the AF_XDP socket: " + err_text(errno);
      return -errno;
    }
    side.ports.push_back(std::move(port));
  }
  return 0;
}

int Engine::start(const EngineConfig& config, std::string* error) {
  config_ = config;
  failed_step_.clear();
  libbpf_set_print(warnings_only);
  libxdp_set_print(xdp_warnings_only);
  // libxdp's dispatcher check still charges locked memory on some kernels.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &unlimited);
  if (config.master_key && !auth::crypto_ready()) {
    *error = "libsodium failed to initialise: cannot authenticate";
    return -EIO;
  }
  master_ = config.master_key.has_value();
  if (master_) {
    const uint8_t* m = config.master_key->data();
    current_ = KeyPair{auth::derive(m, auth::Purpose::Gateway), auth::derive(m, auth::Purpose::Feedback)};
    other_.reset();
    pending_ = false;
    wan_sender_.set_key(current_.gateway);
    feedback_sender_.set_key(current_.feedback);
    wan_receiver_ = std::make_unique<auth::Receiver>(auth::realtime_ms() / 1000 - auth::kClockSkewS);
    set_receiver_keys();
  }
  encoder_ = std::make_unique<fec::Encoder>(config.encoder);
  decoder_ = std::make_unique<fec::Decoder>(config.decoder);
  netsync::TrackerConfig tc = config.tracker;
  tc.layers = unsigned(config.encoder.interleaves.size());
  // The ring must outlast the slowest bin: the widest layer fills after r x interleave packets.
  uint32_t widest = 1;
  for (unsigned i : config.encoder.interleaves) widest = std::max(widest, i);
  // At least 2^17 records, so that a retune to a code as wide as (16, 1..1000) fits as well.
  tc.ring = std::max<uint32_t>({tc.ring, 8 * widest * config.encoder.r, 1u << 17});
  tracker_ = std::make_unique<netsync::Tracker>(tc);
  epoch_.store(config.encoder.epoch);
  events_ = std::make_unique<Events>();
  tracker_->set_sink(events_.get());
  cpu_set_t allowed;
  if (!config.cpus.empty() && sched_getaffinity(0, sizeof allowed, &allowed)) CPU_ZERO(&allowed);
  for (int cpu : config.cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) {
      *error = "CPU " + std::to_string(cpu) + " is not one this process may run on";
      return -EINVAL;
    }
  }
  if (config.lan_addr) {
    feedback_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = config.lan_addr;
    int on = 1;  // ICMP errors (port unreachable: no listener on that host) come back to us
    if (feedback_fd_ < 0 || bind(feedback_fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) < 0 ||
        setsockopt(feedback_fd_, IPPROTO_IP, IP_RECVERR, &on, sizeof on) < 0) {
      *error = "cannot open the feedback socket on the LAN address: " + err_text(errno);
      int err = -errno;
      stop();
      return err;
    }
  }
  raw_fd_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (raw_fd_ < 0) {
    *error = "cannot open a raw socket for rebuilt packets: " + err_text(errno);
    int err = -errno;
    stop();
    return err;
  }
  int err = attach(lan_, config.lan_if, config.lan_queues, 0, error);
  if (!err) err = attach(wan_, config.wan_if, config.wan_queues, GW_MAX_QUEUES, error);
  if (err) {
    stop();
    return err;
  }
  // One worker per queue pair; sockets beyond the smaller side's count go round the workers.
  size_t n = std::min(lan_.ports.size(), wan_.ports.size());
  snapshot_.workers.assign(n, WorkerSnapshot{});
  for (size_t i = 0; i < n; i++) {
    auto w = std::make_unique<Worker>();
    WorkerSnapshot& shown = snapshot_.workers[i];
    w->index = unsigned(i);
    w->cpu = shown.cpu = config.cpus.empty() ? -1 : config.cpus[i % config.cpus.size()];
    for (size_t k = i; k < lan_.ports.size(); k += n) {
      w->lan_rx.push_back(lan_.ports[k].get());
      shown.lan_queues.push_back(config.lan_queues[k]);
    }
    for (size_t k = i; k < wan_.ports.size(); k += n) {
      w->wan_rx.push_back(wan_.ports[k].get());
      shown.wan_queues.push_back(config.wan_queues[k]);
    }
    w->wan_tags.assign(xsk::PortConfig{}.frames, FrameTag{});
    w->completions = std::make_unique<Completions>(*w);
    w->wan_rx[0]->set_completion_hook(w->completions.get());
    workers_.push_back(std::move(w));
  }
  running_.store(true);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    w->thread = std::thread([this, worker] { run(*worker); });
    if (w->cpu >= 0) {
      // Pinned, the frames a worker sends through veth or a raw socket are queued on one CPU's
      // backlog: a thread that migrates leaves frames on the old CPU that later ones overtake.
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(w->cpu, &one);
      pthread_setaffinity_np(w->thread.native_handle(), sizeof one, &one);
    }
  }
  return 0;
}

void Engine::stop() {
  running_.store(false);
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  workers_.clear();
  for (Side* s : {&lan_, &wan_}) {
    s->ports.clear();  // sockets first: the map entries go with them
    if (s->prog) {
      xdp_program__detach(s->prog, s->ifindex, config_.generic ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
      xdp_program__close(s->prog);
      s->prog = nullptr;
    }
  }
  if (raw_fd_ >= 0) close(raw_fd_);
  raw_fd_ = -1;
  if (feedback_fd_ >= 0) close(feedback_fd_);
  feedback_fd_ = -1;
}

bool Engine::forward(Worker& w, xsk::Port& to, const uint8_t* frame, uint32_t len) {
  uint64_t addr;
  uint8_t* buf = len <= to.frame_size() ? to.tx_buffer(&addr) : nullptr;
  if (!buf || (std::memcpy(buf, frame, len), !to.transmit(addr, len))) {
    w.counters.tx_dropped++;
    return false;
  }
  return true;
}

void Engine::clamp_mss(Worker& w, uint8_t* ip, uint32_t len) {
  if (len < kIp + 20 || ip[9] != 6) return;
  uint8_t* tcp = ip + kIp;
  if (!(tcp[13] & 0x02)) return;  // SYN
  size_t hdr = size_t(tcp[12] >> 4) * 4;
  if (hdr < 20 || kIp + hdr > len) return;
  for (size_t i = 20; i < hdr;) {
    uint8_t kind = tcp[i];
    if (kind == 0) break;
    if (kind == 1) {
      i++;
      continue;
    }
    if (i + 1 >= hdr || tcp[i + 1] < 2 || i + tcp[i + 1] > hdr) break;
    if (kind == 2 && tcp[i + 1] == 4) {
      uint16_t mss = get16(tcp + i + 2);
      if (mss > config_.mss_clamp) {
        // RFC 1624: HC' = ~(~HC + ~m + m')
        uint32_t sum = uint16_t(~get16(tcp + 16)) + uint16_t(~mss) + config_.mss_clamp;
        put16(tcp + i + 2, config_.mss_clamp);
        while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
        put16(tcp + 16, uint16_t(~sum));
        w.counters.mss_clamped++;
      }
      return;
    }
    i += tcp[i + 1];
  }
}

namespace {
constexpr uint64_t kNoFrame = ~uint64_t(0);
}

// LAN -> WAN. The frames are copied into WAN TX frames first, outside the lock, then each takes
// its sequence number, its tracker record (before it is queued: its completion may come back at
// once), its place on the TX ring and its turn in the encoder, in that order, under the lock.
void Engine::lan_batch(Worker& w, xsk::Port& lan, const xsk::RxFrame* batch, uint32_t n, uint64_t now) {
  xsk::Port& wan = *w.wan_rx[0];
  w.staged.assign(n, kNoFrame);
  for (uint32_t i = 0; i < n; i++) {
    const xsk::RxFrame& f = batch[i];
    if (f.len <= kEth + kIp) continue;
    if (config_.mss_clamp) clamp_mss(w, f.data + kEth, f.len - kEth);
    uint64_t addr;
    uint8_t* buf = f.len <= wan.frame_size() ? wan.tx_buffer(&addr) : nullptr;
    if (buf) {
      std::memcpy(buf, f.data, f.len);
      w.staged[i] = addr;
    }
  }
  {
    std::lock_guard<std::mutex> lock(codec_mutex_);
    RepairOut out(*this, w);
    for (uint32_t i = 0; i < n; i++) {
      const xsk::RxFrame& f = batch[i];
      if (f.len <= kEth + kIp) continue;
      const uint8_t* ip = f.data + kEth;
      uint32_t ip_len = f.len - kEth;
      uint32_t seq = encoder_->next_seq();
      tracker_->sent(ip, ip_len, seq, now);
      if (w.staged[i] == kNoFrame) {
        w.counters.tx_dropped++;
        tracker_->uncovered(seq);
        continue;
      }
      w.wan_tags[w.staged[i] / wan.frame_size()] = FrameTag{1, 0, 0, 0, seq};
      if (!wan.transmit(w.staged[i], f.len)) {
        w.counters.tx_dropped++;
        tracker_->uncovered(seq);
        continue;
      }
      w.counters.lan_to_wan_packets++;
      w.counters.lan_to_wan_bytes += f.len;
      if (encoder_->add(ip, ip_len, now, out) < 0) {
        w.counters.unprotected++;
        tracker_->uncovered(seq);
      }
    }
    apply_done(w);
  }
  for (uint32_t i = 0; i < n; i++) lan.recycle(batch[i].addr);
}

// WAN -> LAN. Repairs, reports and the decoder's view of each data frame under the lock; the
// data frames it did not already rebuild are copied to the LAN after it.
void Engine::wan_batch(Worker& w, xsk::Port& wan, const xsk::RxFrame* batch, uint32_t n, uint64_t now) {
  w.verdicts.assign(n, 0);
  {
    std::lock_guard<std::mutex> lock(codec_mutex_);
    RecoveredOut out(*this, w);
    for (uint32_t i = 0; i < n; i++) {
      const xsk::RxFrame& f = batch[i];
      const uint8_t* ip = f.data + kEth;
      if (f.len >= kRepairHeaders && ip[9] == 17 && get16(ip + kIp + 2) == config_.repair_port) {
        const uint8_t* udp = ip + kIp;
        size_t udp_len = get16(udp + 4);
        if (udp_len < kUdp || kRepairHeaders - kUdp + udp_len > f.len ||
            (get16(udp + 6) != 0 && fold(sum16(udp, udp_len, sum16(ip + 12, 8) + 17 + uint32_t(udp_len))) != 0)) {
          w.counters.bad_repair_frames++;
        } else {
          on_peer_datagram(w, udp + kUdp, udp_len - kUdp, out, now);
        }
      } else if (f.len > kEth + kIp) {
        tracker_->received(ip, f.len - kEth, now);
        if (decoder_->on_data(ip, f.len - kEth, out, now) == fec::DataResult::Duplicate)
          w.counters.duplicates_dropped++;
        else
          w.verdicts[i] = 1;
      }
    }
  }
  xsk::Port& lan = *w.lan_rx[0];
  for (uint32_t i = 0; i < n; i++) {
    const xsk::RxFrame& f = batch[i];
    if (w.verdicts[i] && forward(w, lan, f.data, f.len)) {
      w.counters.wan_to_lan_packets++;
      w.counters.wan_to_lan_bytes += f.len;
    }
    wan.recycle(f.addr);
  }
}

// Nothing in a datagram is used before it is opened: with a key, its envelope must verify
// and be fresh (auth::Receiver), and its kind says what is inside; without one, a sealed
// datagram cannot be checked and is dropped, and the rest goes by its magic.
void Engine::on_peer_datagram(Worker& w, const uint8_t* p, size_t len, fec::RecoverySink& out, uint64_t now) {
  bool report;
  if (master_) {
    auth::Opened o;
    if (wan_receiver_->open(p, len, &o) != auth::Verdict::Ok) return;
    after_verified(o.key_id, now);
    report = o.kind == auth::Kind::Report;
    if (o.kind == auth::Kind::Feedback) return;  // not for a gateway: counted as received, ignored
    p = o.inner;
    len = o.len;
  } else {
    if (len >= 2 && get16(p) == auth::kMagic) {
      w.counters.auth_unverifiable++;
      return;
    }
    report = len >= 2 && get16(p) == kReportMagic;
  }
  if (report) {
    on_report(w, p, len, now);
  } else {
    w.counters.repairs_received++;
    decoder_->on_repair(p, len, out, now);
  }
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
  a.peer_send_key = peer_send_key_;
  a.peer_accepts[0] = peer_accepts_[0];
  a.peer_accepts[1] = peer_accepts_[1];
  a.rotations = rotations_;
  std::memcpy(a.received, wan_receiver_->counts(), sizeof a.received);
  return a;
}

void Engine::apply_done(Worker& w) {
  for (const Done& d : w.done) {
    const FrameTag& t = d.tag;
    if (t.kind == 1)
      tracker_->data_completed(t.seq, d.ns);
    else
      tracker_->repair_completed(fec::RepairInfo{t.layer, t.count, t.interleave, t.seq, false}, d.ns);
  }
  w.done.clear();
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
  encoder_ = std::make_unique<fec::Encoder>(code);
  tracker_->set_layers(unsigned(code.interleaves.size()));
  w.counters.epoch_changes++;
  epoch_.store(code.epoch);
}

// What our decoder sees of the peer's WAN direction, for its --auto redundancy.
void Engine::send_report(Worker& w) {
  const fec::DecoderStats& d = decoder_->stats();
  // Without a key, only once the peer is heard from; with one, always: the report also tells
  // the peer which keys this gateway accepts, which a key rotation waits for.
  if (!d.repairs && !master_) return;
  xsk::Port& wan = *w.wan_rx[0];
  uint64_t addr;
  uint8_t* frame = wan.tx_buffer(&addr);
  if (!frame) return;
  uint8_t* p = frame + kRepairHeaders + seal_before();
  std::memset(p, 0, kReportSize);
  put16(p, kReportMagic);
  p[2] = kReportVersion;
  put32(p + 4, decoder_->epoch());
  put32(p + 8, decoder_->window_capacity());
  put64(p + 16, d.loss_sampled);
  put64(p + 24, d.loss_missing);
  put64(p + 32, d.loss_bursts);
  put64(p + 40, d.recovered);
  put64(p + 48, d.unrecoverable);
  if (master_) {
    put32(p + 56, current_.gateway.id);
    put32(p + 60, current_.gateway.id);
    put32(p + 64, other_ ? other_->gateway.id : 0);
  }
  size_t payload = seal(wan_sender_, auth::Kind::Report, frame + kRepairHeaders, kReportSize);
  udp_headers(frame, payload);
  w.wan_tags[addr / wan.frame_size()] = FrameTag{};
  if (!wan.transmit(addr, uint32_t(kRepairHeaders + payload))) {
    w.counters.tx_dropped++;
    return;
  }
  w.counters.reports_sent++;
}

void Engine::on_report(Worker& w, const uint8_t* p, size_t len, uint64_t now) {
  if (len != kReportSize || p[2] != kReportVersion || p[3] != 0) {
    w.counters.bad_reports++;
    return;
  }
  w.counters.reports_received++;
  peer_.reports++;
  peer_.epoch = get32(p + 4);
  peer_.window = get32(p + 8);
  peer_.sampled = get64(p + 16);
  peer_.missing = get64(p + 24);
  peer_.bursts = get64(p + 32);
  peer_.recovered = get64(p + 40);
  peer_.unrecoverable = get64(p + 48);
  peer_.received_ns = now;
  if (!master_) return;
  peer_send_key_ = get32(p + 56);
  peer_accepts_[0] = get32(p + 60);
  peer_accepts_[1] = get32(p + 64);
  // A rotation: the peer accepts the new key too, so it is safe to seal with it now.
  if (pending_ && (peer_accepts_[0] == other_->gateway.id || peer_accepts_[1] == other_->gateway.id)) {
    std::swap(current_, *other_);
    pending_ = false;
    retire_at_ns_ = 0;
    wan_sender_.set_key(current_.gateway);
    feedback_sender_.set_key(current_.feedback);
    rotations_++;
  }
}

// The shared state's figures, with the codec lock held (taken before the snapshot's).
void Engine::publish_codec() {
  events_->publish();
  std::lock_guard<std::mutex> lock(snapshot_mutex_);
  snapshot_.encoder = encoder_->stats();
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
  constexpr size_t kHeader = 12, kEntry = 40, kMaxEntries = 32;
  for (size_t i = 0; i < feedback_.size();) {
    uint32_t host = feedback_[i].flow.saddr;
    size_t n = 0;
    while (i + n < feedback_.size() && n < kMaxEntries && feedback_[i + n].flow.saddr == host) n++;
    if (auto q = quiet_hosts_.find(host); q != quiet_hosts_.end()) {
      if (now < q->second) {
        w.counters.feedback_suppressed += n;
        i += n;
        continue;
      }
      quiet_hosts_.erase(q);
    }
    datagram_.assign(seal_before() + kHeader + n * kEntry + seal_after(), 0);
    uint8_t* d = datagram_.data() + seal_before();
    put16(d, 0x4D46);
    d[2] = 2;
    put16(d + 4, uint16_t(n));
    put32(d + 8, feedback_seq_++);
    for (size_t k = 0; k < n; k++) {
      const netsync::FeedbackEntry& fe = feedback_[i + k];
      uint8_t* e = d + kHeader + k * kEntry;
      std::memcpy(e, &fe.flow.saddr, 4);
      std::memcpy(e + 4, &fe.flow.daddr, 4);
      std::memcpy(e + 8, &fe.flow.sport, 2);
      std::memcpy(e + 10, &fe.flow.dport, 2);
      put32(e + 12, fe.isn_guessed ? 1 : 0);
      put64(e + 16, fe.safe);
      put64(e + 24, fe.sent);
      e[32] = fe.repairs_newest;
      e[33] = fe.repairs_per_packet;
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = host;
    to.sin_port = htons(config_.feedback_port);
    size_t len = seal(feedback_sender_, auth::Kind::Feedback, datagram_.data(), kHeader + n * kEntry);
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

// With the codec lock held, once per turn of a worker: completions to the tracker, bins whose
// flush timeout passed, feedback that is due; worker 0 also applies retunes, sends receiver
// reports and publishes the shared figures. Returns when the code next has something to do.
uint64_t Engine::housekeeping(Worker& w, uint64_t now) {
  apply_done(w);
  if (w.index == 0) {
    if (bool t = trace_requested_.load(std::memory_order_relaxed); t != trace_) tracker_->set_trace(trace_ = t);
    if (retune_pending_.load(std::memory_order_acquire)) apply_retune(w);
    if (master_) retire_keys(now);
    if (now >= next_report_ns_) {
      send_report(w);
      next_report_ns_ = now + kReportInterval;
    }
  }
  RepairOut out(*this, w);
  encoder_->poll(now, out);
  RecoveredOut rebuilt(*this, w);
  decoder_->poll(now, rebuilt);
  send_feedback(w, now);
  return std::min({encoder_->next_deadline(), tracker_->next_deadline(), decoder_->next_deadline()});
}

void Engine::run(Worker& w) {
  // Deadlines here are tens of microseconds apart (flush timeouts, feedback pacing, completions
  // to collect): the default 50 us timer slack would be most of them.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  std::vector<pollfd> fds;
  for (auto* ports : {&w.lan_rx, &w.wan_rx})
    for (xsk::Port* p : *ports) fds.push_back(pollfd{p->fd(), POLLIN, 0});
  xsk::RxFrame batch[kBatch];
  uint64_t last_publish = 0;
  for (;;) {
    bool stopping = !running_.load(std::memory_order_relaxed);
    uint64_t now = monotonic_ns();
    uint32_t work = 0;
    for (xsk::Port* p : w.lan_rx) {
      uint32_t n = p->receive(batch, kBatch);
      if (n) lan_batch(w, *p, batch, n, now);
      work += n;
    }
    for (xsk::Port* p : w.wan_rx) {
      uint32_t n = p->receive(batch, kBatch);
      if (n) wan_batch(w, *p, batch, n, now);
      work += n;
    }
    for (auto* ports : {&w.lan_rx, &w.wan_rx}) {
      for (xsk::Port* p : *ports) {
        p->complete();
        p->refill();
      }
    }
    uint64_t deadline;
    bool publish = stopping || now - last_publish > 10'000'000;
    {
      std::lock_guard<std::mutex> lock(codec_mutex_);
      deadline = housekeeping(w, monotonic_ns());
      if (publish && w.index == 0) publish_codec();
    }
    w.lan_rx[0]->flush_tx();
    w.wan_rx[0]->flush_tx();
    if (publish) {
      std::lock_guard<std::mutex> lock(snapshot_mutex_);
      snapshot_.workers[w.index].counters = w.counters;
      last_publish = now;
    }
    if (stopping) break;
    if (!work) {
      // Sleep until a frame arrives, the next flush or feedback deadline, or 1 ms (to notice
      // stop()); completions do not wake poll(), so look again soon while frames are in flight.
      uint64_t cap = w.wan_rx[0]->tx_outstanding() ? 50'000 : 1'000'000;
      uint64_t wait_ns = deadline > now ? std::min<uint64_t>(deadline - now, cap) : 0;
      timespec ts{0, long(wait_ns)};
      ppoll(fds.data(), fds.size(), &ts, nullptr);
    }
  }
}

}  // namespace maelstrom::engine
