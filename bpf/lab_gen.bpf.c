// SPDX-License-Identifier: GPL-2.0
/* The lab's packet generator for `maelstrom bench engine`. lab_gen runs under BPF_PROG_TEST_RUN
 * with BPF_F_TEST_XDP_LIVE_FRAMES (native/lab/blaster.cc): the kernel hands it one frame after
 * another from a page pool, it writes a distinct payload into each (a per-CPU count and the CPU,
 * where the socket blaster writes its count, so every packet has an identity of its own) and
 * returns XDP_TX, which transmits the frame out of the interface named in the run's context
 * without a socket, an skb or a syscall per batch. It writes the headers too (gen_header, set
 * by user space), as the kernel hands back a page as its last packet left it. On veth the frame lands in the peer's XDP
 * ring, which needs an XDP program there: the gateway's, lab_pass for the kernel's forwarding
 * (XDP_PASS: the frame goes on to the stack as if veth had no program), or lab_drop to measure
 * the generator alone. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* The frame's Ethernet, IPv4 and UDP headers, written by user space before the run. */
#define HEADERS (14 + 20 + 8)
struct gen_header {
	__u8 bytes[HEADERS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_header);
} gen_header SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} gen_count SEC(".maps");


SEC("xdp")
int lab_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&gen_count, &key);
	struct gen_header *header = bpf_map_lookup_elem(&gen_header, &key);
	__u32 *payload = data + HEADERS;

	if (!count || !header || data + HEADERS > end)
		return XDP_ABORTED;
	/* The pool's pages come back as the last packet left them: a kernel that forwarded it wrote
	 * the next hop's MAC addresses and a lower TTL into them. */
	__builtin_memcpy(data, header->bytes, HEADERS);
	if ((void *)(payload + 2) <= end) {
		payload[0] = (__u32)*count;
		payload[1] = bpf_get_smp_processor_id();
	}
	*count += 1;
	return XDP_TX;
}

SEC("xdp")
int lab_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* On the peer, for the generator's own ceiling: every frame dropped as it arrives. */
SEC("xdp")
int lab_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
