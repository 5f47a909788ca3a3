#include "xsk/xdp_query.h"

#include <cerrno>

extern "C" {
#include <xdp/libxdp.h>
}

namespace maelstrom::xsk {
namespace {

const char* mode_name(enum xdp_attach_mode mode) {
  switch (mode) {
    case XDP_MODE_NATIVE: return "native";
    case XDP_MODE_SKB: return "skb";
    case XDP_MODE_HW: return "hw";
    default: return "none";
  }
}

}  // namespace

int query_xdp(int ifindex, XdpAttachment* out) {
  out->mode = "none";
  out->dispatcher = false;
  out->programs.clear();
  struct xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  long err = libxdp_get_error(mp);
  if (err == -ENOENT) return 0;  // nothing attached
  if (err) return int(err);
  out->mode = mode_name(xdp_multiprog__attach_mode(mp));
  out->dispatcher = !xdp_multiprog__is_legacy(mp);
  if (out->dispatcher) {
    for (struct xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
      out->programs.push_back({xdp_program__name(p), xdp_program__id(p)});
  } else if (struct xdp_program* p = xdp_multiprog__main_prog(mp)) {
    out->programs.push_back({xdp_program__name(p), xdp_program__id(p)});
  }
  xdp_multiprog__close(mp);
  return 0;
}

}  // namespace maelstrom::xsk

namespace maelstrom::xsk {

int detach_xdp_by_name(int ifindex, const std::string& name) {
  struct xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex);
  long err = libxdp_get_error(mp);
  if (err == -ENOENT) return 0;
  if (err) return int(err);
  enum xdp_attach_mode mode = xdp_multiprog__attach_mode(mp);
  int detached = 0;
  if (xdp_multiprog__is_legacy(mp)) {
    struct xdp_program* p = xdp_multiprog__main_prog(mp);
    if (p && name == xdp_program__name(p)) {
      int e = xdp_multiprog__detach(mp);
      detached = e ? e : 1;
    }
  } else {
    std::vector<struct xdp_program*> ours;
    for (struct xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
      if (name == xdp_program__name(p)) ours.push_back(p);
    for (struct xdp_program* p : ours) {
      int e = xdp_program__detach(p, ifindex, mode, 0);
      if (e) {
        detached = e;
        break;
      }
      detached++;
    }
  }
  xdp_multiprog__close(mp);
  return detached;
}

}  // namespace maelstrom::xsk
