/* Shared between bpf/wan_emu.bpf.c and user space (src/lab/): the WAN emulator's knobs and
 * counters. Probabilities are fractions of 2^32 compared against bpf_get_prandom_u32(). */
#ifndef MAELSTROM_WAN_EMU_H
#define MAELSTROM_WAN_EMU_H

#include <linux/types.h>

struct wan_emu_config {
	__u32 killed;       /* nonzero: drop everything (link cut) */
	__u32 drop_good;    /* iid loss, or loss in the Gilbert-Elliott good state */
	__u32 enter_bad;    /* P(good -> bad) per packet; 0: iid loss only */
	__u32 leave_bad;    /* P(bad -> good) per packet: mean burst = 2^32 / leave_bad */
	__u32 drop_next;    /* drop this many frames, then go back to the settings above */
	__u16 spare_port;   /* ...except UDP to this port (network order; 0: none), e.g. repairs */
	__u16 pad;
};

enum wan_emu_stat {
	WAN_EMU_PASSED = 0,
	WAN_EMU_DROPPED = 1,
	WAN_EMU_STAT_MAX = 2,
};

#endif
