// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Route decisions: fib:fib_table_lookup. The tracepoint has no skb; a lookup
 * is tied to the skb this CPU is receiving when it is that skb's input lookup
 * or its reverse-path check (see on_fib). User space confirms the tie against
 * the whole journey.
 */
#include "common.bpf.h"

static __always_inline int on_fib(__u32 tb_id, const struct flowi4 *flp,
				  const struct fib_nh_common *nhc, int err)
{
	struct nw_fib f = {};
	struct nw_tuple t = {};
	struct net_device *dev = NULL;
	struct nw_cur_skb *cur;
	__u32 zero = 0;
	const struct nw_filter *flt;
	bool tied = false, pass;

	f.table = tb_id;
	f.iif = BPF_CORE_READ(flp, __fl_common.flowic_iif);
	f.oif = BPF_CORE_READ(flp, __fl_common.flowic_oif);
	f.mark = BPF_CORE_READ(flp, __fl_common.flowic_mark);
	f.proto = BPF_CORE_READ(flp, __fl_common.flowic_proto);
	f.tos = flowi4_tos(flp);
	f.saddr = BPF_CORE_READ(flp, saddr);
	f.daddr = BPF_CORE_READ(flp, daddr);
	f.sport = bpf_ntohs(BPF_CORE_READ(flp, uli.ports.sport));
	f.dport = bpf_ntohs(BPF_CORE_READ(flp, uli.ports.dport));
	f.err = err;
	f.pid = current_tgid();
	if (nhc && !err) {
		dev = BPF_CORE_READ(nhc, nhc_dev);
		if (BPF_CORE_READ(nhc, nhc_gw_family) == AF_INET)
			f.gw = BPF_CORE_READ(nhc, nhc_gw.ipv4);
	}
	if (dev) {
		f.nh_ifindex = BPF_CORE_READ(dev, ifindex);
		bpf_core_read_str(f.nh_dev, sizeof(f.nh_dev), &dev->name);
	}

	/*
	 * The entry stays until the next receive on this CPU, so other lookups
	 * meet it too. An input lookup for the skb comes in on its device with
	 * its source; a reverse-path check looks that source up with no oif and
	 * no protocol; the answer to it (a SYN-ACK, a reset, an ICMP error) looks
	 * that source up with its protocol set. A process's own output lookup
	 * meets the entry only by chance; user space checks the tie.
	 */
	cur = bpf_map_lookup_elem(&cur_skb, &zero);
	if (cur && cur->skb) {
		if (cur->saddr == f.saddr && f.iif == cur->ifindex)
			f.flags = NW_FIB_TIED_FORWARD;
		else if (cur->saddr == f.daddr && !f.oif && !f.proto)
			f.flags = NW_FIB_TIED_REVERSE;
		else if (cur->saddr == f.daddr && f.proto)
			f.flags = NW_FIB_TIED_REPLY; /* SYN-ACK, RST, ICMP error back to it */
		if (f.flags) {
			tied = true;
			f.skb = cur->skb;
		}
	}
	if (dev)
		f.netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	else if (tied)
		f.netns = cur->netns;
	else
		f.netns = task_netns();

	flt = bpf_map_lookup_elem(&filter, &zero);
	if (!flt || flt->mode == NW_FILTER_ALL || tied) {
		pass = true;
	} else {
		t.family = AF_INET;
		t.proto = f.proto;
		__builtin_memcpy(t.saddr.b, &f.saddr, 4);
		__builtin_memcpy(t.daddr.b, &f.daddr, 4);
		t.sport = f.sport;
		t.dport = f.dport;
		if (flt->mode == NW_FILTER_STATIC) {
			pass = static_match(flt, &(struct nw_pkt){ .tuple = t, .netns = f.netns });
		} else {
			/* A followed process's own lookup (connect, sendmsg) has no skb yet. */
			__u32 tgid = f.pid;

			pass = flow_known(&t) || bpf_map_lookup_elem(&followed_pids, &tgid);
		}
	}
	if (!pass) {
		count_filtered(NW_PROBE_FIB_LOOKUP);
		return 0;
	}

	struct nw_fib *r = reserve(NW_PROBE_FIB_LOOKUP, sizeof(*r), NW_REC_FIB);

	if (!r)
		return 0;
	__builtin_memcpy((char *)r + sizeof(r->hdr), (char *)&f + sizeof(f.hdr),
			 sizeof(f) - sizeof(f.hdr));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tp_btf/fib_table_lookup")
int BPF_PROG(fib_table_lookup__tp_btf, u32 tb_id, const struct flowi4 *flp,
	     const struct fib_nh_common *nhc, int err)
{
	return on_fib(tb_id, flp, nhc, err);
}

SEC("raw_tp/fib_table_lookup")
int BPF_PROG(fib_table_lookup__raw_tp, u32 tb_id, const struct flowi4 *flp,
	     const struct fib_nh_common *nhc, int err)
{
	return on_fib(tb_id, flp, nhc, err);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
