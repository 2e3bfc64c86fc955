// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Drops: skb:kfree_skb with its reason, location and the kernel stack. */
#include "common.bpf.h"

static __always_inline int on_drop(void *ctx, struct sk_buff *skb, void *location, __u32 reason)
{
	struct nw_pkt p = {};
	struct nw_drop *r;
	long n;

	read_pkt(skb, &p, false);
	if (!drop_filter_pass(&p) && !followed_sock_pass(skb, &p)) {
		count_filtered(NW_PROBE_KFREE_SKB);
		return 0;
	}
	r = reserve(NW_PROBE_KFREE_SKB, sizeof(*r), NW_REC_DROP);
	if (!r)
		return 0;
	r->pkt = p;
	r->location = (__u64)location;
	r->reason = reason;
	/* The caller chain names the netfilter hook (nf_hook_slow's caller). */
	n = bpf_get_stack(ctx, r->stack, sizeof(r->stack), 0);
	r->stack_len = n > 0 ? n / sizeof(__u64) : 0;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb__tp_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_drop(ctx, skb, location, reason);
}

SEC("raw_tp/kfree_skb")
int BPF_PROG(kfree_skb__raw_tp, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return on_drop(ctx, skb, location, reason);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
