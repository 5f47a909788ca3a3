// SPDX-License-Identifier: GPL-2.0
/* WAN emulator for the lab (this kernel has no netem): drops packets on the WAN namespace's
 * veth, iid with a probability, in Gilbert-Elliott bursts, or all of them (link killed).
 * Knobs change at run time through wan_config; nothing is rebuilt. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "wan_emu.h"

/* The one configuration, written by user space at any time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct wan_emu_config);
} wan_config SEC(".maps");

/* Packets passed and dropped, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WAN_EMU_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} wan_stats SEC(".maps");

/* Gilbert-Elliott state per CPU: nonzero while in the bad (bursty) state. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} wan_burst SEC(".maps");

static __always_inline int count(__u32 stat, int action)
{
	__u64 *n = bpf_map_lookup_elem(&wan_stats, &stat);

	if (n)
		*n += 1;
	return action;
}

/* A burst of exactly n losses: frames to the spared UDP port (repairs) still get through. */
static __always_inline int spared(struct xdp_md *ctx, __u16 port)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	struct udphdr *udp = (void *)(iph + 1);

	if (!port || (void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    iph->ihl != 5 || iph->protocol != IPPROTO_UDP)
		return 0;
	return udp->dest == port;
}

SEC("xdp")
int wan_emu(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct wan_emu_config *cfg = bpf_map_lookup_elem(&wan_config, &zero);
	__u32 *bad = bpf_map_lookup_elem(&wan_burst, &zero);

	if (!cfg || !bad)
		return XDP_PASS;
	if (cfg->killed)
		return count(WAN_EMU_DROPPED, XDP_DROP);
	if (cfg->drop_next && !spared(ctx, cfg->spare_port) &&
	    __sync_fetch_and_sub(&cfg->drop_next, 1) > 0)
		return count(WAN_EMU_DROPPED, XDP_DROP);
	if (cfg->enter_bad) {
		if (*bad)
			*bad = bpf_get_prandom_u32() >= cfg->leave_bad;
		else
			*bad = bpf_get_prandom_u32() < cfg->enter_bad;
		if (*bad)
			return count(WAN_EMU_DROPPED, XDP_DROP);
	}
	if (cfg->drop_good && bpf_get_prandom_u32() < cfg->drop_good)
		return count(WAN_EMU_DROPPED, XDP_DROP);
	return count(WAN_EMU_PASSED, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
