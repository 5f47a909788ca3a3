#include "lab/blaster.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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
  for (unsigned i = 0; i < kBatch; i++) {
    uint8_t* f = frames.data() + i * frame;
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
    udp[5] = uint8_t(ulen);  // UDP checksum 0: none, so the counter below needs no fix-up
  }
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

}  // namespace maelstrom::lab
