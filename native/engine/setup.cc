// Starting and stopping the engine: the XDP program on both interfaces and its maps, the AF_XDP
// sockets, the feedback and raw sockets, the keys, and the worker threads.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

extern "C" {
#include <xdp/libxdp.h>
}

#include "engine/engine.h"
#include "engine/events.h"
#include "engine/sinks.h"
#include "gateway.h"

namespace maelstrom::engine {
namespace {

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

Engine::Engine() = default;
Engine::~Engine() { stop(); }

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

EngineCounters& EngineCounters::operator+=(const EngineCounters& o) {
  static_assert(sizeof(EngineCounters) % sizeof(uint64_t) == 0, "EngineCounters holds only uint64_t");
  auto* to = reinterpret_cast<uint64_t*>(this);
  const auto* from = reinterpret_cast<const uint64_t*>(&o);
  for (size_t i = 0; i < sizeof(EngineCounters) / sizeof(uint64_t); i++) to[i] += from[i];
  return *this;
}

}  // namespace maelstrom::engine
