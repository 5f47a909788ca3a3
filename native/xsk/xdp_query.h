// What XDP programs an interface has, read through libxdp (so a libxdp dispatcher and the
// programs it chains are listed one by one). Used by status and by the tests that check
// nothing of ours is left attached.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace maelstrom::xsk {

struct AttachedProgram {
  std::string name;
  uint32_t id;
};

struct XdpAttachment {
  std::string mode;  // "none", "native", "skb", "hw"
  bool dispatcher;   // false: a single legacy program without a libxdp dispatcher
  std::vector<AttachedProgram> programs;
};

// 0 on success, -errno when the interface cannot be queried.
int query_xdp(int ifindex, XdpAttachment* out);

}  // namespace maelstrom::xsk

namespace maelstrom::xsk {

// Detaches every XDP program named `name` from the interface (dispatcher or not). Returns how
// many were detached, or -errno.
int detach_xdp_by_name(int ifindex, const std::string& name);

}  // namespace maelstrom::xsk
