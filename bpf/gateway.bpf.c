// SPDX-License-Identifier: GPL-2.0
/* The gateway's XDP program, on its LAN and its WAN interface (libxdp dispatcher, so other XDP
 * programs can share the NICs).
 *
 * LAN: a plain IPv4 packet for a remote-site prefix is routed like a router would
 * (bpf_fib_lookup, MAC rewrite, TTL decrement) and redirected into the AF_XDP socket of its
 * queue, where the engine sends it on the WAN and feeds it to the encoder.
 * WAN: repairs from the peer gateway, and data from the remote site (routed the same way), go to
 * the engine's socket.
 * Everything else passes to the kernel. With no socket bound on the queue, steered traffic also
 * passes, untouched (fail-open): the kernel forwards it as if the gateway were not there. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <xdp/xdp_helpers.h>

#include "gateway.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Where the gateway sits (one entry, written by the engine before attaching). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gw_config);
} gw_config SEC(".maps");

/* The remote site's IPv4 prefixes. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GW_MAX_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gw_prefix);
	__type(value, __u8);
} gw_remote SEC(".maps");

/* The engine's AF_XDP sockets, by RX queue: on the LAN at the queue's number, on the WAN at
 * GW_MAX_QUEUES + its number. The engine opens this object once per interface, so each
 * interface's program has maps of its own and fills only its range (native/engine/setup.cc). */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 2 * GW_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} gw_xsks SEC(".maps");

/* Counters by enum gw_stat, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GW_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gw_stats SEC(".maps");

struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(gateway);

static __always_inline int count(__u32 stat, int action)
{
	__u64 *n = bpf_map_lookup_elem(&gw_stats, &stat);

	if (n)
		*n += 1;
	return action;
}

static __always_inline int in_remote(__u32 addr)
{
	struct gw_prefix key = { .prefixlen = 32, .addr = addr };

	return bpf_map_lookup_elem(&gw_remote, &key) != NULL;
}

/* Route like a router: next hop's MAC from the FIB, TTL down by one (checksum updated in
 * place). Returns 0 when the packet may go to the engine, else the stat to count and pass. */
static __always_inline int route(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *iph,
				 __u32 want_ifindex, __u32 no_route_stat)
{
	struct bpf_fib_lookup fib = {};
	__u32 check;

	if (iph->ttl <= 1)
		return GW_TTL_EXPIRED;
	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = iph->protocol;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS ||
	    fib.ifindex != want_ifindex)
		return no_route_stat;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	check = iph->check;
	check += bpf_htons(0x0100);
	iph->check = (__u16)(check + (check >= 0xFFFF));
	iph->ttl--;
	return 0;
}

SEC("xdp")
int gateway(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = data + sizeof(*eth);
	__u32 zero = 0, queue = ctx->rx_queue_index;
	struct gw_config *cfg = bpf_map_lookup_elem(&gw_config, &zero);
	__u32 ihl;
	int lan, stat;

	if (!cfg || queue >= GW_MAX_QUEUES)
		return XDP_PASS;
	lan = ctx->ingress_ifindex == cfg->lan_ifindex;
	if (!lan && ctx->ingress_ifindex != cfg->wan_ifindex)
		return XDP_PASS;
	if ((void *)(eth + 1) > end)
		return count(GW_BAD_RUNT, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(GW_NON_IPV4, XDP_PASS);
	if ((void *)(iph + 1) > end)
		return count(GW_BAD_RUNT, XDP_PASS);
	ihl = iph->ihl;
	if (iph->version != 4 || ihl < 5 || (void *)iph + ihl * 4 > end)
		return count(GW_BAD_IHL, XDP_PASS);
	if (ihl != 5)
		return count(GW_IP_OPTIONS, XDP_PASS);
	if (iph->frag_off & bpf_htons(0x3fff))
		return count(GW_FRAGMENT, XDP_PASS);

	if (lan) {
		if (!in_remote(iph->daddr))
			return count(GW_LAN_LOCAL, XDP_PASS);
		/* Checked before rewriting: a packet passed to the kernel must be untouched. */
		if (!bpf_map_lookup_elem(&gw_xsks, &queue))
			return count(GW_LAN_NO_SOCKET, XDP_PASS);
		stat = route(ctx, eth, iph, cfg->wan_ifindex, GW_LAN_NO_ROUTE);
		if (stat)
			return count(stat, XDP_PASS);
		return count(GW_LAN_STEERED, bpf_redirect_map(&gw_xsks, queue, XDP_PASS));
	}

	queue += GW_MAX_QUEUES; /* the WAN interface's sockets */
	if (iph->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(iph + 1);

		if ((void *)(udp + 1) > end)
			return count(GW_BAD_RUNT, XDP_PASS);
		if (udp->dest == cfg->repair_port) {
			if (iph->saddr != cfg->peer_addr)
				return count(GW_WAN_FORGED_REPAIR, XDP_DROP);
			if (!bpf_map_lookup_elem(&gw_xsks, &queue))
				return count(GW_WAN_NO_SOCKET, XDP_DROP);
			return count(GW_WAN_REPAIR, bpf_redirect_map(&gw_xsks, queue, XDP_DROP));
		}
	}
	if (!in_remote(iph->saddr))
		return count(GW_WAN_OTHER, XDP_PASS);
	if (!bpf_map_lookup_elem(&gw_xsks, &queue))
		return count(GW_WAN_NO_SOCKET, XDP_PASS);
	stat = route(ctx, eth, iph, cfg->lan_ifindex, GW_WAN_OTHER);
	if (stat)
		return count(stat, XDP_PASS);
	return count(GW_WAN_DATA, bpf_redirect_map(&gw_xsks, queue, XDP_PASS));
}

char LICENSE[] SEC("license") = "GPL";
