// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The packet's path: receive (netif_receive_skb) and transmit (net_dev_queue). */
#include "common.bpf.h"

static __always_inline int on_path(struct sk_buff *skb, __u32 probe, __u8 type, bool rx)
{
	struct nw_pkt p = {};
	struct nw_path *r;
	bool pass;

	read_pkt_key(skb, &p, rx);
	if (!p.tuple.family)
		return 0; /* not IP: ARP, LLDP, ... */
	pass = filter_pass(&p, !rx);
	if (pass)
		read_pkt_meta(skb, &p);
	if (rx) {
		/* FIB lookups on this CPU until the next receive belong to this skb. */
		__u32 zero = 0;
		struct nw_cur_skb *cur = bpf_map_lookup_elem(&cur_skb, &zero);

		if (cur) {
			cur->skb = pass ? p.skb : 0;
			cur->netns = p.netns;
			cur->ifindex = p.ifindex;
			/* the whole source, of either family: an IPv6 source's first
			 * 4 bytes must never tie an IPv4 lookup (or the reverse) */
			cur->family = p.tuple.family;
			cur->saddr = p.tuple.saddr;
		}
	}
	if (!pass) {
		count_filtered(probe);
		return 0;
	}
	r = reserve(probe, sizeof(*r), type);
	if (!r)
		return 0;
	r->pkt = p;
	submit(r);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(netif_receive_skb__tp_btf, struct sk_buff *skb)
{
	return on_path(skb, NW_PROBE_NETIF_RECEIVE, NW_REC_RX, true);
}

SEC("raw_tp/netif_receive_skb")
int BPF_PROG(netif_receive_skb__raw_tp, struct sk_buff *skb)
{
	return on_path(skb, NW_PROBE_NETIF_RECEIVE, NW_REC_RX, true);
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(net_dev_queue__tp_btf, struct sk_buff *skb)
{
	return on_path(skb, NW_PROBE_NET_DEV_QUEUE, NW_REC_TX, false);
}

SEC("raw_tp/net_dev_queue")
int BPF_PROG(net_dev_queue__raw_tp, struct sk_buff *skb)
{
	return on_path(skb, NW_PROBE_NET_DEV_QUEUE, NW_REC_TX, false);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
