#include "lab/wan_loss.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>

#include "wan_emu.h"

namespace maelstrom::lab {
namespace {

uint32_t fraction(double p) {
  if (!(p > 0)) return 0;
  if (p >= 1) return UINT32_MAX;
  return uint32_t(std::llround(p * 4294967296.0));
}

}  // namespace

int WanLoss::open(const std::string& object_path) {
  obj_ = bpf_object__open_file(object_path.c_str(), nullptr);
  if (!obj_) return -errno;
  if (int err = bpf_object__load(obj_); err) {
    close();
    return err;
  }
  bpf_program* prog = bpf_object__find_program_by_name(obj_, "wan_emu");
  prog_fd_ = prog ? bpf_program__fd(prog) : -ENOENT;
  config_fd_ = bpf_object__find_map_fd_by_name(obj_, "wan_config");
  stats_fd_ = bpf_object__find_map_fd_by_name(obj_, "wan_stats");
  if (prog_fd_ < 0 || config_fd_ < 0 || stats_fd_ < 0) {
    close();
    return -ENOENT;
  }
  return 0;
}

int WanLoss::attach(int ifindex, bool generic) {
  uint32_t flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  if (int err = bpf_xdp_attach(ifindex, prog_fd_, flags | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr); err) return err;
  attached_.emplace_back(ifindex, flags);
  return 0;
}

int WanLoss::set(const WanLossSettings& s) {
  wan_emu_config c{};
  c.killed = s.killed ? 1 : 0;
  c.drop_next = s.drop_next;
  c.spare_port = htons(s.spare_port);
  if (s.burst_length > 1 && s.loss > 0 && s.loss < 1) {
    double leave = 1.0 / s.burst_length;
    c.enter_bad = fraction(s.loss * leave / (1 - s.loss));
    c.leave_bad = fraction(leave);
  } else {
    c.drop_good = fraction(s.loss);
  }
  uint32_t key = 0;
  return bpf_map_update_elem(config_fd_, &key, &c, BPF_ANY) ? -errno : 0;
}

int WanLoss::counters(uint64_t* passed, uint64_t* dropped) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return cpus ? cpus : -EINVAL;
  std::vector<uint64_t> values(static_cast<size_t>(cpus), 0);
  uint64_t* out[2] = {passed, dropped};
  for (uint32_t key = 0; key < WAN_EMU_STAT_MAX; key++) {
    if (bpf_map_lookup_elem(stats_fd_, &key, values.data())) return -errno;
    *out[key] = 0;
    for (uint64_t v : values) *out[key] += v;
  }
  return 0;
}

void WanLoss::close() {
  for (auto [ifindex, flags] : attached_) bpf_xdp_detach(ifindex, flags, nullptr);
  attached_.clear();
  if (obj_) bpf_object__close(obj_);
  obj_ = nullptr;
  prog_fd_ = config_fd_ = stats_fd_ = -1;
}

}  // namespace maelstrom::lab
