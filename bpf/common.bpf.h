/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What every probe family shares: the maps, packet parsing, the filter and
 * the reserve → fill → submit path with loss accounting. Maps are __weak so
 * that each .bpf.c can include this header and the BPF linker (bpftool gen
 * object) merges them into one object.
 */
#ifndef NETWHY_COMMON_BPF_H
#define NETWHY_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "netwhy.h"
#include "core_fixes.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMP 1
#define IPPROTO_ICMPV6 58
#define IPS_SRC_NAT_BIT 4
#define IPS_DST_NAT_BIT 5
#define IPS_TEMPLATE_BIT 11
#define NFCT_PTRMASK (~7UL)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by user space before load */
} events __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NW_PROBE_MAX);
	__type(key, __u32);
	__type(value, struct nw_stats);
} stats __weak SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_filter);
} filter __weak SEC(".maps");

/* Flows that followed processes started (NW_FILTER_FOLLOW). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct nw_flow_key);
	__type(value, __u64);
} flows __weak SEC(".maps");

/* Thread-group ids whose packets seed followed flows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} followed_pids __weak SEC(".maps");

/*
 * Sockets of followed processes (sk address -> tgid), from connect() on
 * (sock.bpf.c): a packet of such a socket that dies before it was ever sent
 * (in the neighbour queue, from a timer) still belongs to the flow.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u32);
} followed_socks __weak SEC(".maps");

/*
 * Read-only configuration, set by user space before load (the addon writes
 * .rodata by name): the verifier sees constants and drops the dead branches.
 * __weak like the maps, so every probe family's object shares one copy.
 */
/* Wake the reader only once this many bytes wait (0: on every record, the
 * kernel's default); the reader also polls on a timer, so a quiet ring is
 * still drained promptly. */
const volatile __u64 nw_wakeup_bytes __weak = 0;
/* Take the kernel stack on every drop, not only where it is evidence. */
const volatile bool nw_stack_always __weak = false;

/* The skb this CPU is receiving, so a FIB lookup can be tied to it. */
struct nw_cur_skb {
	__u64 skb;     /* 0 when the skb did not pass the filter */
	__u32 netns;
	__u32 ifindex; /* the device it came in on */
	__u8 family;   /* AF_INET / AF_INET6 */
	__u8 pad[3];
	struct nw_addr saddr; /* its source: IPv4 in the first 4 bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_cur_skb);
} cur_skb __weak SEC(".maps");

/* Losses of this CPU not yet reported by an NW_REC_LOST record. */
struct nw_lost_pending {
	__u64 count;
	__u64 first_ts;
	__u64 last_ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nw_lost_pending);
} lost_pending __weak SEC(".maps");

/*
 * Commit a record. Below the threshold without a wake-up: under load the
 * reader wakes once per nw_wakeup_bytes (or per poll period), not once per
 * record, which costs the traced CPUs an irq_work and the reader a context
 * switch each.
 */
static __always_inline void submit(void *rec)
{
	__u64 flags = 0;

	if (nw_wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= nw_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline struct nw_stats *probe_stats(__u32 probe)
{
	return bpf_map_lookup_elem(&stats, &probe);
}

static __always_inline void count_filtered(__u32 probe)
{
	struct nw_stats *s = probe_stats(probe);

	if (s)
		s->filtered++;
}

static __always_inline void fill_hdr(struct nw_hdr *h, __u32 probe, __u32 size, __u8 type, __u64 now)
{
	h->version = NW_ABI_VERSION;
	h->type = type;
	h->size = size;
	h->probe = probe;
	h->cpu = bpf_get_smp_processor_id();
	h->ts = now;
}

/*
 * Reserve a record; on a full ring buffer count the loss and return NULL.
 * Losses are also remembered per CPU (when, how many) and reported by an
 * NW_REC_LOST record ahead of the next record that fits: a verdict must know
 * whether its flow was traced while events were lost.
 */
static __always_inline void *reserve(__u32 probe, __u32 size, __u8 type)
{
	struct nw_stats *s = probe_stats(probe);
	__u32 zero = 0;
	struct nw_lost_pending *lp = bpf_map_lookup_elem(&lost_pending, &zero);
	__u64 now = bpf_ktime_get_ns();
	struct nw_hdr *h;

	if (lp && lp->count) {
		struct nw_lost *l = bpf_ringbuf_reserve(&events, sizeof(*l), 0);

		if (l) {
			fill_hdr(&l->hdr, probe, sizeof(*l), NW_REC_LOST, now);
			l->count = lp->count;
			l->first_ts = lp->first_ts;
			l->last_ts = lp->last_ts;
			submit(l);
			lp->count = 0;
			if (s)
				s->events++;
		}
	}
	h = bpf_ringbuf_reserve(&events, size, 0);
	if (!h) {
		if (s)
			s->lost++;
		if (lp) {
			if (!lp->count)
				lp->first_ts = now;
			lp->count++;
			lp->last_ts = now;
		}
		return NULL;
	}
	if (s)
		s->events++;
	fill_hdr(h, probe, size, type, now);
	return h;
}

static __always_inline __u32 task_netns(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
}

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static __always_inline __u32 skb_netns(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct sock *sk;

	if (dev)
		return BPF_CORE_READ(dev, nd_net.net, ns.inum);
	sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return 0;
}

static __always_inline void read_ct(struct sk_buff *skb, struct nw_pkt *p)
{
	unsigned long nfct;
	struct nf_conn *ct;
	unsigned long status;

	if (!have_conntrack())
		return;
	nfct = BPF_CORE_READ(skb, _nfct);
	ct = (struct nf_conn *)(nfct & NFCT_PTRMASK);
	if (!ct)
		return;
	status = BPF_CORE_READ(ct, status);
	if (status & (1UL << IPS_TEMPLATE_BIT))
		return;
	p->ct_status = status;
	p->flags |= NW_PKT_HAS_CT;
	if (status & (1UL << IPS_SRC_NAT_BIT))
		p->flags |= NW_PKT_CT_SNAT;
	if (status & (1UL << IPS_DST_NAT_BIT))
		p->flags |= NW_PKT_CT_DNAT;

#pragma unroll
	for (int dir = 0; dir < 2; dir++) {
		struct nw_tuple *t = dir ? &p->ct_reply : &p->ct_orig;
		struct nf_conntrack_tuple *ctt = &ct->tuplehash[dir].tuple;

		bpf_core_read(&t->saddr, sizeof(t->saddr), &ctt->src.u3);
		bpf_core_read(&t->daddr, sizeof(t->daddr), &ctt->dst.u3);
		t->sport = bpf_ntohs(BPF_CORE_READ(ctt, src.u.all));
		t->dport = bpf_ntohs(BPF_CORE_READ(ctt, dst.u.all));
		t->proto = BPF_CORE_READ(ctt, dst.protonum);
		t->family = BPF_CORE_READ(ctt, src.l3num);
	}
}

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60

/* What parsing the network header found: the L4 protocol and where it starts. */
struct nw_l3 {
	__u8 proto;      /* IPPROTO_* of the L4 header (after IPv6 extension headers) */
	__u8 ttl;
	__u16 flags;     /* NW_PKT_FRAG, NW_PKT_FRAG_LATER */
	__u16 l4off;     /* offset of the L4 header from l3; 0 = none (a later fragment, unknown) */
};

/*
 * Walk an IPv6 header's extension headers (hop-by-hop, routing, fragment,
 * destination options, AH) to the L4 header, as ipv6_skip_exthdr() does.
 * Bounded: after NW_IPV6_MAX_EXT headers the packet counts as having no L4
 * header. A fragment header marks the packet; a fragment after the first
 * (offset != 0) carries no L4 header. ESP and "no next header" end the walk.
 * l3 may be any kernel address (read with bpf_probe_read_kernel).
 */
static __always_inline void ipv6_walk(const unsigned char *l3, __u8 nexthdr, struct nw_l3 *out)
{
	__u16 off = sizeof(struct ipv6hdr);

	out->l4off = 0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < NW_IPV6_MAX_EXT; i++) {
		__u8 h[4];

		if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING && nexthdr != NEXTHDR_FRAGMENT &&
		    nexthdr != NEXTHDR_AUTH && nexthdr != NEXTHDR_DEST) {
			out->proto = nexthdr;
			out->l4off = off;
			return;
		}
		if (bpf_probe_read_kernel(h, sizeof(h), l3 + off))
			break;
		if (nexthdr == NEXTHDR_FRAGMENT) {
			/* h[2..3]: 13-bit offset in 8-byte units, 2 reserved bits, M */
			__u16 frag = ((__u16)h[2] << 8 | h[3]) & 0xfff8;

			out->flags |= NW_PKT_FRAG;
			if (frag) {
				out->flags |= NW_PKT_FRAG_LATER;
				out->proto = h[0];
				return;
			}
			off += 8;
		} else if (nexthdr == NEXTHDR_AUTH) {
			off += ((__u16)h[1] + 2) * 4;
		} else {
			off += ((__u16)h[1] + 1) * 8;
		}
		nexthdr = h[0];
	}
	/* too many extension headers, or unreadable: no L4 header */
	out->proto = nexthdr;
	out->l4off = 0;
}

/* Parse the IPv4 or IPv6 header at l3 into p's tuple; the L4 header's offset in *l3info. */
static __always_inline bool parse_l3(const unsigned char *l3, __u16 ethertype, struct nw_pkt *p, struct nw_l3 *l3info)
{
	if (ethertype == ETH_P_IP) {
		struct iphdr iph;

		if (bpf_probe_read_kernel(&iph, sizeof(iph), l3) || iph.version != 4)
			return false;
		p->tuple.family = AF_INET;
		l3info->proto = iph.protocol;
		l3info->ttl = iph.ttl;
		__builtin_memcpy(p->tuple.saddr.b, &iph.saddr, 4);
		__builtin_memcpy(p->tuple.daddr.b, &iph.daddr, 4);
		if (iph.frag_off & bpf_htons(0x3fff))
			l3info->flags |= NW_PKT_FRAG;
		/* Only the first fragment carries the ports. */
		if (iph.frag_off & bpf_htons(0x1fff))
			l3info->flags |= NW_PKT_FRAG_LATER;
		else
			l3info->l4off = iph.ihl * 4;
		return true;
	}
	if (ethertype == ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), l3) || ip6.version != 6)
			return false;
		p->tuple.family = AF_INET6;
		l3info->ttl = ip6.hop_limit;
		__builtin_memcpy(p->tuple.saddr.b, &ip6.saddr, 16);
		__builtin_memcpy(p->tuple.daddr.b, &ip6.daddr, 16);
		ipv6_walk(l3, ip6.nexthdr, l3info);
		return true;
	}
	return false;
}

/* Ports (or ICMP type/code) and TCP flags from the L4 header at l4. */
static __always_inline void parse_l4(const unsigned char *l4, struct nw_pkt *p)
{
	if (p->tuple.proto == IPPROTO_TCP || p->tuple.proto == IPPROTO_UDP) {
		__be16 ports[2];

		if (!bpf_probe_read_kernel(ports, sizeof(ports), l4)) {
			p->tuple.sport = bpf_ntohs(ports[0]);
			p->tuple.dport = bpf_ntohs(ports[1]);
			p->flags |= NW_PKT_HAS_L4;
		}
		if (p->tuple.proto == IPPROTO_TCP)
			bpf_probe_read_kernel(&p->tcp_flags, 1, l4 + 13);
	} else if (p->tuple.proto == IPPROTO_ICMP || p->tuple.proto == IPPROTO_ICMPV6) {
		/* type/code in the port fields, as conntrack keeps them */
		__u8 tc[2];

		if (!bpf_probe_read_kernel(tc, sizeof(tc), l4)) {
			p->tuple.sport = tc[0];
			p->tuple.dport = tc[1];
		}
	}
}

/* The packet's headers at l3 into p (tuple, ports, ttl, fragment flags). */
static __always_inline void parse_headers(const unsigned char *l3, __u16 ethertype, struct nw_pkt *p)
{
	struct nw_l3 l3info = {};

	if (!parse_l3(l3, ethertype, p, &l3info))
		return;
	p->tuple.proto = l3info.proto;
	p->ttl = l3info.ttl;
	p->flags |= l3info.flags | NW_PKT_HAS_TTL;
	if (l3info.l4off)
		parse_l4(l3 + l3info.l4off, p);
}

/* A socket of this namespace: an skb can carry another namespace's socket
 * across a veth (an ICMP error keeps the sender's icmp socket). */
static __always_inline void read_local_sk(struct sk_buff *skb, struct nw_pkt *p)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);

	if (sk && sk_is_fullsock(sk) && BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) == p->netns)
		p->flags |= NW_PKT_LOCAL_SK;
}

/*
 * What the filter needs of skb: its namespace, headers and conntrack entry.
 * l3_at_data: the network header starts at skb->data (true at
 * netif_receive_skb, which fires before the stack resets the header
 * offsets); elsewhere use skb->network_header.
 */
static __always_inline void read_pkt_key(struct sk_buff *skb, struct nw_pkt *p, bool l3_at_data)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	unsigned char *l3;
	__u16 nh;

	p->skb = (__u64)skb;
	p->netns = skb_netns(skb);
	nh = BPF_CORE_READ(skb, network_header);
	if (l3_at_data || nh == (__u16)~0U)
		l3 = BPF_CORE_READ(skb, data);
	else
		l3 = head + nh;

	parse_headers(l3, proto, p);
	read_ct(skb, p);
}

/* The rest, read only for a packet that passed the filter: device, length, mark, task. */
static __always_inline void read_pkt_meta(struct sk_buff *skb, struct nw_pkt *p)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);

	p->len = BPF_CORE_READ(skb, len);
	p->mark = BPF_CORE_READ(skb, mark);
	p->pid = current_tgid();
	if (dev) {
		p->ifindex = BPF_CORE_READ(dev, ifindex);
		bpf_core_read_str(p->dev, sizeof(p->dev), &dev->name);
	}
	read_local_sk(skb, p);
}

static __always_inline void read_pkt(struct sk_buff *skb, struct nw_pkt *p, bool l3_at_data)
{
	read_pkt_key(skb, p, l3_at_data);
	read_pkt_meta(skb, p);
}

/*
 * Global functions (filter.bpf.c): the verifier checks each once, instead of
 * once per clause and term at every call site.
 */
extern int nw_clause_match(const struct nw_clause *c, const struct nw_tuple *tp, __u32 netns);

static __always_inline bool static_match(const struct nw_filter *f, const struct nw_pkt *p)
{
	__u32 n = f->nclauses;
	bool has_ct = p->flags & NW_PKT_HAS_CT;

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < NW_FILTER_CLAUSES; i++) {
		if (i >= n)
			break;
		if (nw_clause_match(&f->clauses[i], &p->tuple, p->netns))
			return true;
		if (has_ct && nw_clause_match(&f->clauses[i], &p->ct_orig, p->netns))
			return true;
	}
	return false;
}

static __always_inline bool addr_less(const struct nw_addr *a, const struct nw_addr *b)
{
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (a->b[i] != b->b[i])
			return a->b[i] < b->b[i];
	}
	return false;
}

/* Both directions of a tuple map to one key. */
static __always_inline void flow_key(struct nw_flow_key *k, const struct nw_tuple *t)
{
	bool swap = addr_less(&t->daddr, &t->saddr) ||
		    (!addr_less(&t->saddr, &t->daddr) && t->dport < t->sport);

	__builtin_memset(k, 0, sizeof(*k));
	k->proto = t->proto;
	if (swap) {
		k->a = t->daddr;
		k->b = t->saddr;
		k->aport = t->dport;
		k->bport = t->sport;
	} else {
		k->a = t->saddr;
		k->b = t->daddr;
		k->aport = t->sport;
		k->bport = t->dport;
	}
}

static __always_inline bool flow_known(const struct nw_tuple *t)
{
	struct nw_flow_key k;

	if (!t->family)
		return false;
	flow_key(&k, t);
	return bpf_map_lookup_elem(&flows, &k) != NULL;
}

static __always_inline void flow_add(const struct nw_tuple *t)
{
	struct nw_flow_key k;
	__u64 now = bpf_ktime_get_ns();

	if (!t->family)
		return;
	flow_key(&k, t);
	bpf_map_update_elem(&flows, &k, &now, BPF_NOEXIST);
}

/*
 * Follow mode: a packet belongs to a followed flow when its tuple, or its
 * conntrack entry's original or reply tuple, is known. Every tuple of a
 * matching packet is then learnt, so the flow stays followed after NAT
 * rewrites it and into the next namespace. A packet from a local socket of a
 * followed process, sent (never received) in that process's own namespace,
 * seeds the flow.
 */
static __always_inline bool follow_match(struct nw_pkt *p, bool may_seed)
{
	bool has_ct = p->flags & NW_PKT_HAS_CT;
	bool known = flow_known(&p->tuple) ||
		     (has_ct && (flow_known(&p->ct_orig) || flow_known(&p->ct_reply)));

	/* Neighbour discovery and MLD (ICMPv6 types 130-143) a process's packet
	 * triggers go out from the kernel's ndisc socket in its context: they
	 * are address resolution, like ARP, not the process's traffic. */
	bool nd = p->tuple.proto == IPPROTO_ICMPV6 && p->tuple.sport >= 130 && p->tuple.sport <= 143;

	if (!known && may_seed && !nd)
		read_local_sk((struct sk_buff *)p->skb, p);
	if (!known && may_seed && !nd && (p->flags & NW_PKT_LOCAL_SK) && p->netns == task_netns()) {
		__u32 tgid = current_tgid();

		known = bpf_map_lookup_elem(&followed_pids, &tgid) != NULL;
	}
	if (!known)
		return false;
	p->flags |= NW_PKT_FOLLOWED;
	flow_add(&p->tuple);
	if (has_ct) {
		flow_add(&p->ct_orig);
		flow_add(&p->ct_reply);
	}
	return true;
}

static __always_inline bool filter_pass(struct nw_pkt *p, bool may_seed)
{
	__u32 zero = 0;
	const struct nw_filter *f = bpf_map_lookup_elem(&filter, &zero);

	if (!f || f->mode == NW_FILTER_ALL)
		return true;
	if (f->mode == NW_FILTER_STATIC)
		return static_match(f, p);
	/* Drops mode: only a drop seeds (drop_filter_pass); other events follow. */
	return follow_match(p, may_seed && f->mode == NW_FILTER_FOLLOW);
}

/*
 * A drop passes like any packet, except in drops mode: there every drop that
 * matches the clauses (all drops without clauses) passes and its tuples are
 * learnt, so the flow's next packets (retransmissions, the reply) are traced
 * hop by hop with their route lookups, and a node-wide tracer sees the path
 * of what failed without tracing every packet of the node.
 */
static __always_inline bool drop_filter_pass(struct nw_pkt *p)
{
	__u32 zero = 0;
	const struct nw_filter *f = bpf_map_lookup_elem(&filter, &zero);

	if (!f || f->mode != NW_FILTER_DROPS)
		return filter_pass(p, true);
	if (follow_match(p, false))
		return true;
	if (f->nclauses && !static_match(f, p))
		return false;
	p->flags |= NW_PKT_FOLLOWED;
	flow_add(&p->tuple);
	if (p->flags & NW_PKT_HAS_CT) {
		flow_add(&p->ct_orig);
		flow_add(&p->ct_reply);
	}
	return true;
}

/*
 * Follow mode: a packet of a followed process's socket that never left it
 * (freed from the neighbour queue by a timer, when no followed task runs)
 * seeds its flow too.
 */
static __always_inline bool followed_sock_pass(struct sk_buff *skb, struct nw_pkt *p)
{
	__u32 zero = 0;
	const struct nw_filter *f = bpf_map_lookup_elem(&filter, &zero);
	__u64 sk;

	if (!f || f->mode != NW_FILTER_FOLLOW)
		return false;
	read_local_sk(skb, p);
	if (!(p->flags & NW_PKT_LOCAL_SK))
		return false;
	sk = (__u64)BPF_CORE_READ(skb, sk);
	if (!bpf_map_lookup_elem(&followed_socks, &sk))
		return false;
	p->flags |= NW_PKT_FOLLOWED;
	flow_add(&p->tuple);
	if (p->flags & NW_PKT_HAS_CT) {
		flow_add(&p->ct_orig);
		flow_add(&p->ct_reply);
	}
	return true;
}

#endif /* NETWHY_COMMON_BPF_H */
