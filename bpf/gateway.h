/* Shared between bpf/gateway.bpf.c and the engine (native/engine/) and mirrored in
 * src/gateway/bpf-shared.ts: the gateway program's configuration, map keys and counters. */
#ifndef MAELSTROM_GATEWAY_H
#define MAELSTROM_GATEWAY_H

#include <linux/types.h>

#ifndef GW_MAX_QUEUES
#define GW_MAX_QUEUES 64
#endif
#ifndef GW_MAX_PREFIXES
#define GW_MAX_PREFIXES 1024
#endif

/* Where the gateway sits: its two interfaces and the peer gateway across the WAN. Addresses
 * and the port in network byte order. */
struct gw_config {
	__u32 lan_ifindex;
	__u32 wan_ifindex;
	__u32 peer_addr;
	__u16 repair_port;
	__u16 pad;
};

/* LPM key of a remote-site IPv4 prefix. */
struct gw_prefix {
	__u32 prefixlen;
	__u32 addr;
};

enum gw_stat {
	GW_LAN_STEERED = 0,   /* remote-bound, routed and handed to the engine */
	GW_LAN_LOCAL,         /* not for the remote site: passed to the kernel */
	GW_LAN_NO_SOCKET,     /* remote-bound but no engine socket on the queue: passed (fail-open) */
	GW_LAN_NO_ROUTE,      /* FIB lookup did not give a neighbour on the WAN: passed */
	GW_WAN_DATA,          /* from the remote site, routed and handed to the engine */
	GW_WAN_REPAIR,        /* repair from the peer gateway, handed to the engine */
	GW_WAN_OTHER,         /* anything else on the WAN: passed */
	GW_WAN_NO_SOCKET,     /* data passed (fail-open), repairs dropped: no engine socket */
	GW_WAN_FORGED_REPAIR, /* to the repair port but not from the peer: dropped */
	GW_BAD_RUNT,          /* too short for its headers: passed */
	GW_BAD_IHL,           /* IHL below 5 or past the frame: passed */
	GW_IP_OPTIONS,        /* IPv4 options: passed, not protected */
	GW_FRAGMENT,          /* IPv4 fragment: passed, not protected */
	GW_TTL_EXPIRED,       /* TTL would reach 0: passed so the kernel answers */
	GW_NON_IPV4,          /* ARP, IPv6 and the rest: passed */
	GW_STAT_MAX,
};

#endif
