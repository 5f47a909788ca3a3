// SPDX-License-Identifier: GPL-2.0
/* Lab TX-queue steering (tc egress on a host's veth): a TCP or UDP flow leaves on TX queue
 * (p mod 64) mod n, where p is the lower of its two ports and n the device's TX queue count,
 * so both directions of a flow keep one queue whatever CPU sends them. XPS by CPU cannot: TCP
 * also transmits from the CPU an ACK arrived on. veth hands a frame to the peer's RX queue of
 * the same number, which is how the lab puts flows on chosen queues of a gateway.
 *
 * The kernel honours a queue written here only as a recorded RX queue (value + 1), which its TX
 * hash reduces modulo the queue count when the device has no XPS map; for counts that divide
 * 64 that is p mod n. A socket keeps the queue chosen for its first packet. Everything else
 * (not IPv4, not TCP/UDP, fragments) is left to the kernel's choice. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int lab_txq(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u16 *ports;
	__u16 src, dst, port;

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP) ||
	    (iph->frag_off & bpf_htons(0x3fff)) || iph->ihl < 5)
		return TC_ACT_OK;
	ports = (void *)iph + iph->ihl * 4;
	if ((void *)(ports + 2) > end)
		return TC_ACT_OK;
	src = bpf_ntohs(ports[0]);
	dst = bpf_ntohs(ports[1]);
	port = src < dst ? src : dst;
	skb->queue_mapping = (port & 63) + 1;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
