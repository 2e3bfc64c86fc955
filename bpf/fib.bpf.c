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
	if (cur && cur->skb && cur->family == AF_INET) {
		__u32 csaddr;

		__builtin_memcpy(&csaddr, cur->saddr.b, 4);
		if (csaddr == f.saddr && f.iif == cur->ifindex)
			f.flags = NW_FIB_TIED_FORWARD;
		else if (csaddr == f.daddr && !f.oif && !f.proto)
			f.flags = NW_FIB_TIED_REVERSE;
		else if (csaddr == f.daddr && f.proto)
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
	submit(r);
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

#define RTN_BLACKHOLE 6
#define RTN_UNREACHABLE 7
#define RTN_PROHIBIT 8
#define RTN_THROW 9
#define EHOSTUNREACH 113
#define EACCES 13
#define EINVAL 22
#define EAGAIN 11

/*
 * fib6:fib6_table_lookup. As for IPv4, the lookup is tied to the skb this CPU
 * is receiving: its input lookup (ip6_route_input: the packet's source, iif
 * = its device), or a reverse-path lookup of its source (ip6tables -m
 * rpfilter, nft fib saddr . iif: destination = its source, iif = loopback).
 */
static __always_inline int on_fib6(const struct net *net, const struct fib6_result *res,
				   struct fib6_table *table, const struct flowi6 *flp)
{
	struct nw_fib6 f = {};
	struct nw_pkt p = {};
	struct net_device *dev = NULL;
	struct fib6_info *f6i = BPF_CORE_READ(res, f6i);
	struct fib6_nh *nh = BPF_CORE_READ(res, nh);
	struct nw_cur_skb *cur;
	__u32 zero = 0;
	const struct nw_filter *flt;
	bool tied = false, pass;
	__u8 type = BPF_CORE_READ(res, fib6_type);
	__u16 uli_dport = BPF_CORE_READ(flp, uli.ports.dport);
	__u16 uli_sport = BPF_CORE_READ(flp, uli.ports.sport);

	f.table = BPF_CORE_READ(table, tb6_id);
	f.iif = BPF_CORE_READ(flp, __fl_common.flowic_iif);
	f.oif = BPF_CORE_READ(flp, __fl_common.flowic_oif);
	f.mark = BPF_CORE_READ(flp, __fl_common.flowic_mark);
	f.proto = BPF_CORE_READ(flp, __fl_common.flowic_proto);
	f.tclass = (bpf_ntohl(BPF_CORE_READ(flp, flowlabel)) >> 20) & 0xff;
	bpf_core_read(&f.saddr, sizeof(f.saddr), &flp->saddr);
	bpf_core_read(&f.daddr, sizeof(f.daddr), &flp->daddr);
	if (f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP) {
		f.sport = bpf_ntohs(uli_sport);
		f.dport = bpf_ntohs(uli_dport);
	}
	f.pid = current_tgid();
	if (!f6i || f6i == BPF_CORE_READ(net, ipv6.fib6_null_entry)) {
		f.err = -EAGAIN; /* nothing in this table */
	} else {
		f.type = type;
		if (type == RTN_UNREACHABLE)
			f.err = -EHOSTUNREACH;
		else if (type == RTN_PROHIBIT)
			f.err = -EACCES;
		else if (type == RTN_BLACKHOLE)
			f.err = -EINVAL;
		else if (type == RTN_THROW)
			f.err = -EAGAIN;
	}
	if (nh && !f.err) {
		dev = BPF_CORE_READ(nh, nh_common.nhc_dev);
		if (BPF_CORE_READ(nh, nh_common.nhc_gw_family) == AF_INET6)
			bpf_core_read(&f.gw, sizeof(f.gw), &nh->nh_common.nhc_gw.ipv6);
	}
	if (dev) {
		f.nh_ifindex = BPF_CORE_READ(dev, ifindex);
		bpf_core_read_str(f.nh_dev, sizeof(f.nh_dev), &dev->name);
	}

	cur = bpf_map_lookup_elem(&cur_skb, &zero);
	if (cur && cur->skb && cur->family == AF_INET6) {
		if (f.iif == cur->ifindex && !__builtin_memcmp(&cur->saddr, &f.saddr, 16))
			f.flags = NW_FIB_TIED_FORWARD;
		/* a reply the stack sends back (TCP reset, ICMPv6 error) also
		 * looks up that source from loopback, but with its ports or
		 * ICMPv6 type set; rpfilter and nft fib set neither */
		else if (f.iif == 1 && !uli_sport && !uli_dport && !__builtin_memcmp(&cur->saddr, &f.daddr, 16))
			f.flags = NW_FIB_TIED_REVERSE;
		if (f.flags) {
			tied = true;
			f.skb = cur->skb;
		}
	}
	f.netns = BPF_CORE_READ(net, ns.inum);

	flt = bpf_map_lookup_elem(&filter, &zero);
	if (!flt || flt->mode == NW_FILTER_ALL || tied) {
		pass = true;
	} else {
		p.tuple.family = AF_INET6;
		p.tuple.proto = f.proto;
		p.tuple.saddr = f.saddr;
		p.tuple.daddr = f.daddr;
		p.tuple.sport = f.sport;
		p.tuple.dport = f.dport;
		p.netns = f.netns;
		if (flt->mode == NW_FILTER_STATIC) {
			pass = static_match(flt, &p);
		} else {
			__u32 tgid = f.pid;

			pass = flow_known(&p.tuple) || bpf_map_lookup_elem(&followed_pids, &tgid);
		}
	}
	if (!pass) {
		count_filtered(NW_PROBE_FIB6_LOOKUP);
		return 0;
	}

	struct nw_fib6 *r = reserve(NW_PROBE_FIB6_LOOKUP, sizeof(*r), NW_REC_FIB6);

	if (!r)
		return 0;
	__builtin_memcpy((char *)r + sizeof(r->hdr), (char *)&f + sizeof(f.hdr),
			 sizeof(f) - sizeof(f.hdr));
	submit(r);
	return 0;
}

SEC("tp_btf/fib6_table_lookup")
int BPF_PROG(fib6_table_lookup__tp_btf, const struct net *net, const struct fib6_result *res,
	     struct fib6_table *table, const struct flowi6 *flp)
{
	return on_fib6(net, res, table, flp);
}

SEC("raw_tp/fib6_table_lookup")
int BPF_PROG(fib6_table_lookup__raw_tp, const struct net *net, const struct fib6_result *res,
	     struct fib6_table *table, const struct flowi6 *flp)
{
	return on_fib6(net, res, table, flp);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
