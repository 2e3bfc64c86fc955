// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Drops: skb:kfree_skb with its reason, location and, where it is evidence, the kernel stack. */
#include "common.bpf.h"

/*
 * The stack is the costliest part of a drop record (an unwind of the kernel
 * stack), and evidence only where the reason does not say enough: a
 * netfilter drop (nf_hook_slow's caller names the hook), a drop with no
 * specific reason, and every drop on a kernel without reasons.
 */
static __always_inline bool stack_is_evidence(__u32 reason)
{
	if (nw_stack_always)
		return true;
	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return true;
	return reason <= bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED) ||
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP);
}

static __always_inline int on_drop(void *ctx, struct sk_buff *skb, void *location, __u32 reason)
{
	struct nw_pkt p = {};
	struct nw_drop *r;
	long n;

	read_pkt_key(skb, &p, false);
	if (!drop_filter_pass(&p) && !followed_sock_pass(skb, &p)) {
		count_filtered(NW_PROBE_KFREE_SKB);
		return 0;
	}
	read_pkt_meta(skb, &p);
	r = reserve(NW_PROBE_KFREE_SKB, sizeof(*r), NW_REC_DROP);
	if (!r)
		return 0;
	r->pkt = p;
	r->location = (__u64)location;
	r->reason = reason;
	r->stack_len = 0;
	if (stack_is_evidence(reason)) {
		n = bpf_get_stack(ctx, r->stack, sizeof(r->stack), 0);
		r->stack_len = n > 0 ? n / sizeof(__u64) : 0;
	}
	submit(r);
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
