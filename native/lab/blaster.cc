#include "lab/blaster.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "fec/packet_id.h"

namespace maelstrom::lab {
namespace {

constexpr unsigned kBatch = 64;

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// One UDP frame of c.ip_len IP bytes from c's addresses; its payload is the caller's.
void fill_frame(uint8_t* f, const BlastConfig& c) {
  std::memcpy(f, c.dst_mac, 6);
  std::memcpy(f + 6, c.src_mac, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  ip[2] = uint8_t(c.ip_len >> 8);
  ip[3] = uint8_t(c.ip_len);
  ip[6] = 0x40;
  ip[8] = 64;
  ip[9] = 17;
  std::memcpy(ip + 12, &c.src_ip, 4);
  std::memcpy(ip + 16, &c.dst_ip, 4);
  uint16_t csum = fec::ipv4_checksum(ip, 20);
  ip[10] = uint8_t(csum >> 8);
  ip[11] = uint8_t(csum);
  uint8_t* udp = ip + 20;
  udp[0] = 0x9c;
  udp[1] = 0x40;
  udp[2] = uint8_t(c.dst_port >> 8);
  udp[3] = uint8_t(c.dst_port);
  uint16_t ulen = uint16_t(c.ip_len - 20);
  udp[4] = uint8_t(ulen >> 8);
  udp[5] = uint8_t(ulen);  // UDP checksum 0: none, so the payload's count needs no fix-up
}

}  // namespace

BlastResult blast(const BlastConfig& c, int* err) {
  BlastResult r;
  *err = 0;
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) {
    *err = -errno;
    return r;
  }
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = int(if_nametoindex(c.ifname.c_str()));
  addr.sll_halen = 6;
  std::memcpy(addr.sll_addr, c.dst_mac, 6);

  const size_t frame = 14 + c.ip_len;
  std::vector<uint8_t> frames(frame * kBatch);
  for (unsigned i = 0; i < kBatch; i++) fill_frame(frames.data() + i * frame, c);
  mmsghdr msgs[kBatch];
  iovec iov[kBatch];
  for (unsigned i = 0; i < kBatch; i++) {
    iov[i] = iovec{frames.data() + i * frame, frame};
    msgs[i] = mmsghdr{};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addr;
    msgs[i].msg_hdr.msg_namelen = sizeof addr;
  }
  double start = now_s(), end = start + c.seconds;
  uint64_t counter = 0;
  while (now_s() < end) {
    // A distinct payload per packet (packets are identified by content downstream).
    for (unsigned i = 0; i < kBatch && c.ip_len >= 32; i++, counter++)
      std::memcpy(frames.data() + i * frame + 14 + 28, &counter, 4);
    int n = sendmmsg(fd, msgs, kBatch, 0);
    if (n < 0) {
      r.errors++;
      continue;
    }
    r.sent += uint64_t(n);
  }
  r.seconds = now_s() - start;
  close(fd);
  return r;
}

BlastResult xdp_blast(const BlastConfig& c, int* err, std::string* what) {
  BlastResult r;
  *err = 0;
  const int ifindex = int(if_nametoindex(c.ifname.c_str()));
  if (!ifindex) {
    *err = -ENODEV;
    *what = "no interface " + c.ifname;
    return r;
  }
  bpf_object* obj = bpf_object__open_file(c.xdp_object.c_str(), nullptr);
  if (!obj) {
    *err = -errno;
    *what = "cannot open " + c.xdp_object;
    return r;
  }
  bpf_program* gen = bpf_object__find_program_by_name(obj, "lab_gen");
  for (const char* peer : {"lab_pass", "lab_drop"})
    if (bpf_program* p = bpf_object__find_program_by_name(obj, peer)) bpf_program__set_autoload(p, false);
  if (!gen) {
    *err = -ENOENT;
    *what = c.xdp_object + " has no program lab_gen";
  } else if (int e = bpf_object__load(obj)) {
    *err = e;
    *what = "cannot load " + c.xdp_object;
  }
  if (*err) {
    bpf_object__close(obj);
    return r;
  }
  const int fd = bpf_program__fd(gen);
  std::vector<uint8_t> frame(14 + c.ip_len);
  fill_frame(frame.data(), c);
  constexpr size_t kHeaders = 14 + 20 + 8;  // gen_header in lab_gen.bpf.c
  const int header_fd = bpf_object__find_map_fd_by_name(obj, "gen_header");
  uint32_t key = 0;
  if (frame.size() < kHeaders || header_fd < 0 || bpf_map_update_elem(header_fd, &key, frame.data(), BPF_ANY)) {
    *err = frame.size() < kHeaders ? -EINVAL : header_fd < 0 ? -ENOENT : -errno;
    *what = frame.size() < kHeaders ? "a frame needs at least 28 IP bytes" : "cannot set lab_gen's headers";
    bpf_object__close(obj);
    return r;
  }
  // Frames per run: each run swaps the kernel's XDP dispatcher in and out, which patches kernel
  // text on every CPU (an IPI each): with 4096 frames a run, that was 30% of the time. So runs
  // grow until one lasts about 50 ms, and the deadline is still kept to about that.
  constexpr uint32_t kFirstRepeat = 4096, kMaxRepeat = 1u << 24;
  std::atomic<uint64_t> sent{0};
  std::atomic<int> failed{0};
  const double start = now_s(), end = start + c.seconds;
  auto work = [&](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set)) {
      int expected = 0;
      failed.compare_exchange_strong(expected, -e);
      return;
    }
    xdp_md ctx{};
    ctx.data_end = uint32_t(frame.size());  // the kernel insists: the context spans the frame
    ctx.ingress_ifindex = uint32_t(ifindex);
    uint64_t n = 0;
    uint32_t repeat = kFirstRepeat;
    for (double t = now_s(); t < end && !failed.load(std::memory_order_relaxed);) {
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
                  .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = repeat,
                  .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
      if (bpf_prog_test_run_opts(fd, &o)) {
        int expected = 0;
        failed.compare_exchange_strong(expected, -errno);
        break;
      }
      n += repeat;
      const double after = now_s(), took = after - t;
      t = after;
      // Aim at 50 ms a run, and not past the deadline.
      double next = took > 0 ? double(repeat) * std::min(0.05, std::max(0.0, end - t)) / took : double(repeat) * 2;
      repeat = uint32_t(std::clamp(next, 64.0, double(kMaxRepeat)));
    }
    sent += n;
  };
  // Threads of their own, so the caller's (Node's main thread) affinity is left as it was.
  std::vector<std::thread> pool;
  for (int cpu : c.cpus) pool.emplace_back(work, cpu);
  for (std::thread& t : pool) t.join();
  r.seconds = now_s() - start;
  r.sent = sent.load();
  if (int e = failed.load()) {
    *err = e;
    *what = "cannot run lab_gen on " + c.ifname + " (or pin a thread to one of its CPUs)";
  }
  bpf_object__close(obj);
  return r;
}

}  // namespace maelstrom::lab
