/* Shared between bpf/gateway.bpf.c and the engine (native/engine/): the gateway program's
 * configuration, map keys and counters. TypeScript reads them from the addon (its `constants`,
 * generated into src/native/constants.ts; gw_config through addon.packGatewayConfig). */
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

/* The program's counters, one per outcome. GW_STATS(X) calls X(enum name, camelCase name) for
 * each, so the enum here and the names the addon exports (stats.xdp, constants.xdpStats) come
 * from one list. */
#define GW_STATS(X)                                                                                   \
	X(GW_LAN_STEERED, lanSteered)            /* remote-bound, routed and handed to the engine */          \
	X(GW_LAN_LOCAL, lanLocal)                /* not for the remote site: passed to the kernel */          \
	X(GW_LAN_NO_SOCKET, lanNoSocket)         /* remote-bound, no engine socket on the queue: passed */   \
	X(GW_LAN_NO_ROUTE, lanNoRoute)           /* FIB lookup gave no neighbour on the WAN: passed */        \
	X(GW_WAN_DATA, wanData)                  /* from the remote site, routed and handed to the engine */ \
	X(GW_WAN_REPAIR, wanRepair)              /* repair from the peer gateway, handed to the engine */    \
	X(GW_WAN_OTHER, wanOther)                /* anything else on the WAN: passed */                       \
	X(GW_WAN_NO_SOCKET, wanNoSocket)         /* data passed (fail-open), repairs dropped: no socket */   \
	X(GW_WAN_FORGED_REPAIR, wanForgedRepair) /* to the repair port but not from the peer: dropped */      \
	X(GW_BAD_RUNT, badRunt)                  /* too short for its headers: passed */                      \
	X(GW_BAD_IHL, badIhl)                    /* IHL below 5 or past the frame: passed */                  \
	X(GW_IP_OPTIONS, ipOptions)              /* IPv4 options: passed, not protected */                    \
	X(GW_FRAGMENT, fragment)                 /* IPv4 fragment: passed, not protected */                   \
	X(GW_TTL_EXPIRED, ttlExpired)            /* TTL would reach 0: passed so the kernel answers */        \
	X(GW_NON_IPV4, nonIpv4)                  /* ARP, IPv6 and the rest: passed */

#define GW_STAT_ENUM(e, name) e,
enum gw_stat {
	GW_STATS(GW_STAT_ENUM)
	GW_STAT_MAX,
};
#undef GW_STAT_ENUM

#endif
