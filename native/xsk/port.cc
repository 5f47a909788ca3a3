#include "xsk/port.h"

#include <linux/if_xdp.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace maelstrom::xsk {

int Port::open(const PortConfig& config) {
  config_ = config;
  area_size_ = size_t(config.frames) * config.frame_size;
  area_ = mmap(nullptr, area_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area_ == MAP_FAILED) {
    area_ = nullptr;
    return -errno;
  }
  xsk_umem_config ucfg{};
  ucfg.fill_size = config.frames / 2;
  ucfg.comp_size = config.frames / 2;
  ucfg.frame_size = config.frame_size;
  ucfg.frame_headroom = 0;
  if (int err = xsk_umem__create(&umem_, area_, area_size_, &fill_, &comp_, &ucfg); err) {
    close();
    return err;
  }
  xsk_socket_config scfg{};
  scfg.rx_size = config.frames / 4;
  scfg.tx_size = config.frames / 4;
  scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // the gateway program is ours
  int err = -EOPNOTSUPP;
  if (!config.force_copy) {
    scfg.bind_flags = XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP;
    err = xsk_socket__create(&xsk_, config.ifname.c_str(), config.queue, umem_, &rx_, &tx_, &scfg);
    zero_copy_ = err == 0;
  }
  if (err) {
    scfg.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    err = xsk_socket__create(&xsk_, config.ifname.c_str(), config.queue, umem_, &rx_, &tx_, &scfg);
  }
  if (err) {
    close();
    return err;
  }
  for (uint32_t i = 0; i < config.frames; i++) free_.push_back(uint64_t(i) * config.frame_size);
  refill();
  return 0;
}

void Port::close() {
  if (xsk_) xsk_socket__delete(xsk_);
  xsk_ = nullptr;
  if (umem_) xsk_umem__delete(umem_);
  umem_ = nullptr;
  if (area_) munmap(area_, area_size_);
  area_ = nullptr;
  free_.clear();
}

void Port::refill() {
  uint32_t want = xsk_prod_nb_free(&fill_, uint32_t(free_.size()));
  if (want > free_.size()) want = uint32_t(free_.size());
  // Keep some frames back for transmission.
  uint32_t keep = config_.frames / 8;
  if (free_.size() <= keep) return;
  if (want > free_.size() - keep) want = uint32_t(free_.size() - keep);
  if (!want) return;
  uint32_t idx;
  uint32_t got = xsk_ring_prod__reserve(&fill_, want, &idx);
  for (uint32_t i = 0; i < got; i++) {
    *xsk_ring_prod__fill_addr(&fill_, idx + i) = free_.back();
    free_.pop_back();
  }
  xsk_ring_prod__submit(&fill_, got);
  if (got && xsk_ring_prod__needs_wakeup(&fill_)) recvfrom(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

uint32_t Port::receive(RxFrame* out, uint32_t max) {
  uint32_t idx;
  uint32_t n = xsk_ring_cons__peek(&rx_, max, &idx);
  for (uint32_t i = 0; i < n; i++) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
    uint64_t addr = xsk_umem__extract_addr(d->addr);
    out[i] = RxFrame{addr, static_cast<uint8_t*>(xsk_umem__get_data(area_, xsk_umem__add_offset_to_addr(d->addr))), d->len};
  }
  if (n) xsk_ring_cons__release(&rx_, n);
  return n;
}

uint8_t* Port::tx_buffer(uint64_t* addr) {
  if (free_.empty()) {
    complete();
    if (free_.empty()) return nullptr;
  }
  *addr = free_.back();
  free_.pop_back();
  return static_cast<uint8_t*>(xsk_umem__get_data(area_, *addr));
}

bool Port::transmit(uint64_t addr, uint32_t len) {
  uint32_t idx;
  if (xsk_ring_prod__reserve(&tx_, 1, &idx) != 1) {
    complete();
    flush_tx();
    if (xsk_ring_prod__reserve(&tx_, 1, &idx) != 1) {
      free_.push_back(addr);
      return false;
    }
  }
  xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx);
  d->addr = addr;
  d->len = len;
  xsk_ring_prod__submit(&tx_, 1);
  tx_pending_++;
  tx_outstanding_++;
  return true;
}

void Port::flush_tx() {
  if (!tx_pending_) return;
  if (xsk_ring_prod__needs_wakeup(&tx_)) sendto(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, 0);
  tx_pending_ = 0;
}

Port::KernelStats Port::kernel_stats() const {
  KernelStats k;
  xdp_statistics st{};
  socklen_t len = sizeof st;
  if (xsk_ && getsockopt(fd(), SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
    k.rx_dropped = st.rx_dropped;
    k.rx_ring_full = st.rx_ring_full;
    k.fill_ring_empty = st.rx_fill_ring_empty_descs;
    k.tx_invalid = st.tx_invalid_descs;
  }
  return k;
}

uint32_t Port::complete() {
  uint32_t idx;
  uint32_t n = xsk_ring_cons__peek(&comp_, config_.frames / 2, &idx);
  if (!n) return 0;
  size_t first = free_.size();
  for (uint32_t i = 0; i < n; i++) free_.push_back(*xsk_ring_cons__comp_addr(&comp_, idx + i));
  xsk_ring_cons__release(&comp_, n);
  tx_outstanding_ -= std::min(tx_outstanding_, n);
  if (hook_) hook_->completed(free_.data() + first, n);
  return n;
}

}  // namespace maelstrom::xsk
