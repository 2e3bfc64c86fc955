// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * IPVS: new connections (client -> virtual service -> real server), a
 * scheduler finding no destination, the hook's NF_DROP, NAT transmit errors,
 * and the control plane (who added, edited or deleted a service or a real
 * server). Each probe has an fentry/fexit variant and a kprobe/kretprobe
 * variant; user space picks what this kernel can attach. ip_vs is a module:
 * without it loaded no variant is usable and none is loaded.
 */
#include "common.bpf.h"

/*
 * The IPVS types are not in vmlinux.h (this vmlinux.h comes from a kernel
 * without IPVS). Only the fields read here are declared; CO-RE finds them by
 * name in the ip_vs module's BTF of the running kernel.
 */
struct netns_ipvs {
	struct net *net;
} __attribute__((preserve_access_index));

struct ip_vs_scheduler {
	char *name;
} __attribute__((preserve_access_index));

struct ip_vs_service {
	__u16 af;
	__u16 protocol;
	union nf_inet_addr addr;
	__be16 port;
	__u32 fwmark;
	unsigned int flags;
	struct netns_ipvs *ipvs;
	struct ip_vs_scheduler *scheduler;
} __attribute__((preserve_access_index));

struct ip_vs_dest {
	struct ip_vs_service *svc;
} __attribute__((preserve_access_index));

struct ip_vs_conn {
	__be16 cport;
	__be16 dport;
	__be16 vport;
	__u16 af;
	union nf_inet_addr caddr;
	union nf_inet_addr vaddr;
	union nf_inet_addr daddr;
	__u32 flags;
	__u16 protocol;
	__u16 daf;
	struct netns_ipvs *ipvs;
	struct ip_vs_dest *dest;
} __attribute__((preserve_access_index));

struct ip_vs_service_user_kern {
	__u16 af;
	__u16 protocol;
	union nf_inet_addr addr;
	__be16 port;
	__u32 fwmark;
	char *sched_name;
	unsigned int flags;
} __attribute__((preserve_access_index));

struct ip_vs_dest_user_kern {
	union nf_inet_addr addr;
	__be16 port;
	int weight;
} __attribute__((preserve_access_index));

#define NF_DROP 0

static __always_inline __u32 ipvs_netns(struct netns_ipvs *ipvs)
{
	return BPF_CORE_READ(ipvs, net, ns.inum);
}

static __always_inline void read_svc(struct nw_ipvs_svc *o, struct ip_vs_service *svc)
{
	struct ip_vs_scheduler *sched;

	if (!svc)
		return;
	o->af = BPF_CORE_READ(svc, af);
	o->protocol = BPF_CORE_READ(svc, protocol);
	bpf_core_read(&o->addr, sizeof(o->addr), &svc->addr);
	o->port = bpf_ntohs(BPF_CORE_READ(svc, port));
	o->fwmark = BPF_CORE_READ(svc, fwmark);
	o->flags = BPF_CORE_READ(svc, flags);
	sched = BPF_CORE_READ(svc, scheduler);
	if (sched)
		bpf_probe_read_kernel_str(o->sched, sizeof(o->sched), BPF_CORE_READ(sched, name));
}

static __always_inline void conn_tuple(struct nw_tuple *t, struct ip_vs_conn *cp)
{
	t->family = BPF_CORE_READ(cp, af);
	t->proto = BPF_CORE_READ(cp, protocol);
	bpf_core_read(&t->saddr, sizeof(t->saddr), &cp->caddr);
	bpf_core_read(&t->daddr, sizeof(t->daddr), &cp->vaddr);
	t->sport = bpf_ntohs(BPF_CORE_READ(cp, cport));
	t->dport = bpf_ntohs(BPF_CORE_READ(cp, vport));
}

/* New connection: followed like a packet of its client tuple. */
static __always_inline int on_conn_new(struct ip_vs_conn *cp)
{
	struct nw_pkt probe = {};
	struct nw_ipvs_conn *r;

	if (!cp)
		return 0;
	conn_tuple(&probe.tuple, cp);
	probe.netns = ipvs_netns(BPF_CORE_READ(cp, ipvs));
	if (!filter_pass(&probe, false)) {
		count_filtered(NW_PROBE_IPVS_CONN_NEW);
		return 0;
	}
	r = reserve(NW_PROBE_IPVS_CONN_NEW, sizeof(*r), NW_REC_IPVS_CONN);
	if (!r)
		return 0;
	r->client = probe.tuple;
	r->netns = probe.netns;
	bpf_core_read(&r->daddr, sizeof(r->daddr), &cp->daddr);
	r->dport = bpf_ntohs(BPF_CORE_READ(cp, dport));
	r->daf = BPF_CORE_READ(cp, daf);
	r->conn_flags = BPF_CORE_READ(cp, flags);
	__builtin_memset(&r->svc, 0, sizeof(r->svc));
	read_svc(&r->svc, BPF_CORE_READ(cp, dest, svc));
	submit(r);
	return 0;
}

/* ip_vs_conn_new() has 7 arguments: fexit cannot attach to it (> 6). */
SEC("fexit/ip_vs_conn_new")
int BPF_PROG(ip_vs_conn_new__fexit, const void *p, int dest_af, const void *daddr, __be16 dport,
	     unsigned int flags, struct ip_vs_dest *dest, __u32 fwmark, struct ip_vs_conn *ret)
{
	return on_conn_new(ret);
}

SEC("kretprobe/ip_vs_conn_new")
int BPF_KRETPROBE(ip_vs_conn_new__kretprobe, struct ip_vs_conn *ret)
{
	return on_conn_new(ret);
}

static __always_inline struct nw_ipvs_err *reserve_err(__u32 probe, __u32 kind)
{
	struct nw_ipvs_err *r = reserve(probe, sizeof(struct nw_ipvs_err), NW_REC_IPVS_ERR);

	if (!r)
		return NULL;
	__builtin_memset((char *)r + sizeof(r->hdr), 0, sizeof(*r) - sizeof(r->hdr));
	r->kind = kind;
	return r;
}

static __always_inline int on_sched_err(struct ip_vs_service *svc, const char *msg)
{
	struct nw_ipvs_err *r = reserve_err(NW_PROBE_IPVS_SCHED_ERR, NW_IPVS_ERR_NO_DEST);

	if (!r)
		return 0;
	read_svc(&r->svc, svc);
	r->netns = ipvs_netns(BPF_CORE_READ(svc, ipvs));
	bpf_probe_read_kernel_str(r->msg, sizeof(r->msg), msg);
	submit(r);
	return 0;
}

SEC("fentry/ip_vs_scheduler_err")
int BPF_PROG(ip_vs_scheduler_err__fentry, struct ip_vs_service *svc, const char *msg)
{
	return on_sched_err(svc, msg);
}

SEC("kprobe/ip_vs_scheduler_err")
int BPF_KPROBE(ip_vs_scheduler_err__kprobe, struct ip_vs_service *svc, const char *msg)
{
	return on_sched_err(svc, msg);
}

/* A packet IPVS refused: the hook's NF_DROP, or a NAT transmit that failed. */
static __always_inline int on_pkt_err(struct sk_buff *skb, struct ip_vs_conn *cp, __u32 probe, __u32 kind, int ret)
{
	struct nw_pkt p = {};
	struct nw_ipvs_err *r;

	read_pkt(skb, &p, false);
	if (!filter_pass(&p, false)) {
		count_filtered(probe);
		return 0;
	}
	r = reserve_err(probe, kind);
	if (!r)
		return 0;
	r->pkt = p;
	r->ret = ret;
	r->netns = p.netns;
	if (cp) {
		conn_tuple(&r->conn, cp);
		bpf_core_read(&r->daddr, sizeof(r->daddr), &cp->daddr);
		r->dport = bpf_ntohs(BPF_CORE_READ(cp, dport));
		read_svc(&r->svc, BPF_CORE_READ(cp, dest, svc));
	}
	submit(r);
	return 0;
}

SEC("fexit/ip_vs_in_hook")
int BPF_PROG(ip_vs_in_hook__fexit, void *priv, struct sk_buff *skb, const void *state, unsigned int ret)
{
	if (ret != NF_DROP)
		return 0;
	return on_pkt_err(skb, NULL, NW_PROBE_IPVS_IN_HOOK, NW_IPVS_ERR_HOOK_DROP, ret);
}

/* NF_STOLEN: sent on; NF_ACCEPT: handed to the local stack; NF_DROP: lost. */
SEC("fexit/ip_vs_nat_xmit")
int BPF_PROG(ip_vs_nat_xmit__fexit, struct sk_buff *skb, struct ip_vs_conn *cp, void *pp, void *ipvsh, int ret)
{
	if (ret != NF_DROP)
		return 0;
	return on_pkt_err(skb, cp, NW_PROBE_IPVS_NAT_XMIT, NW_IPVS_ERR_XMIT, ret);
}

/*
 * Without fexit, a kretprobe sees the verdict but not the arguments: its
 * companion kprobe (the "_entry" program, attached with it) keeps them, on a
 * stack per task. Not per CPU: at LOCAL_OUT the hook runs in process context,
 * where the task may be preempted or migrate between entry and return. Not
 * per pid: the idle tasks are all pid 0. A softirq that runs the hook on top
 * of a task's call completes under the same task, so the stack stays LIFO.
 */
#define NW_ARG_DEPTH 4

struct nw_arg_key {
	__u64 task;
	__u32 which;
	__u32 pad;
};

struct nw_arg_stack {
	__u32 depth;
	__u32 pad;
	__u64 skb[NW_ARG_DEPTH];
	__u64 cp[NW_ARG_DEPTH];
};

enum { NW_ARGS_IN_HOOK, NW_ARGS_NAT_XMIT };

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct nw_arg_key);
	__type(value, struct nw_arg_stack);
} ipvs_args SEC(".maps");

static __always_inline void args_push(__u32 which, void *skb, void *cp)
{
	struct nw_arg_key k = { .task = bpf_get_current_task(), .which = which };
	struct nw_arg_stack *s = bpf_map_lookup_elem(&ipvs_args, &k);
	__u32 d;

	if (!s) {
		struct nw_arg_stack zero = {};

		bpf_map_update_elem(&ipvs_args, &k, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&ipvs_args, &k);
		if (!s)
			return;
	}
	d = s->depth;
	if (d >= NW_ARG_DEPTH)
		d = 0; /* returns were missed: start over rather than refuse */
	s->skb[d & (NW_ARG_DEPTH - 1)] = (__u64)skb;
	s->cp[d & (NW_ARG_DEPTH - 1)] = (__u64)cp;
	s->depth = d + 1;
}

static __always_inline bool args_pop(__u32 which, struct sk_buff **skb, struct ip_vs_conn **cp)
{
	struct nw_arg_key k = { .task = bpf_get_current_task(), .which = which };
	struct nw_arg_stack *s = bpf_map_lookup_elem(&ipvs_args, &k);
	__u32 d;

	if (!s || s->depth == 0)
		return false;
	d = s->depth - 1;
	s->depth = d;
	*skb = (struct sk_buff *)s->skb[d & (NW_ARG_DEPTH - 1)];
	*cp = (struct ip_vs_conn *)s->cp[d & (NW_ARG_DEPTH - 1)];
	return true;
}

SEC("kprobe/ip_vs_in_hook")
int BPF_KPROBE(ip_vs_in_hook__kretprobe_entry, void *priv, struct sk_buff *skb)
{
	args_push(NW_ARGS_IN_HOOK, skb, NULL);
	return 0;
}

SEC("kretprobe/ip_vs_in_hook")
int BPF_KRETPROBE(ip_vs_in_hook__kretprobe, unsigned int ret)
{
	struct sk_buff *skb;
	struct ip_vs_conn *cp;

	if (!args_pop(NW_ARGS_IN_HOOK, &skb, &cp) || ret != NF_DROP)
		return 0;
	return on_pkt_err(skb, NULL, NW_PROBE_IPVS_IN_HOOK, NW_IPVS_ERR_HOOK_DROP, ret);
}

SEC("kprobe/ip_vs_nat_xmit")
int BPF_KPROBE(ip_vs_nat_xmit__kretprobe_entry, struct sk_buff *skb, struct ip_vs_conn *cp)
{
	args_push(NW_ARGS_NAT_XMIT, skb, cp);
	return 0;
}

SEC("kretprobe/ip_vs_nat_xmit")
int BPF_KRETPROBE(ip_vs_nat_xmit__kretprobe, int ret)
{
	struct sk_buff *skb;
	struct ip_vs_conn *cp;

	if (!args_pop(NW_ARGS_NAT_XMIT, &skb, &cp) || ret != NF_DROP)
		return 0;
	return on_pkt_err(skb, cp, NW_PROBE_IPVS_NAT_XMIT, NW_IPVS_ERR_XMIT, ret);
}

/* Control plane: rare, never filtered; the point is who did it. */
static __always_inline struct nw_ipvs_ctl *reserve_ctl(__u32 op)
{
	struct nw_ipvs_ctl *r = reserve(NW_PROBE_IPVS_CONTROL, sizeof(struct nw_ipvs_ctl), NW_REC_IPVS_CTL);

	if (!r)
		return NULL;
	__builtin_memset((char *)r + sizeof(r->hdr), 0, sizeof(*r) - sizeof(r->hdr));
	r->op = op;
	r->pid = current_tgid();
	r->netns = task_netns();
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	return r;
}

static __always_inline void read_user_svc(struct nw_ipvs_svc *o, struct ip_vs_service_user_kern *u)
{
	o->af = BPF_CORE_READ(u, af);
	o->protocol = BPF_CORE_READ(u, protocol);
	bpf_core_read(&o->addr, sizeof(o->addr), &u->addr);
	o->port = bpf_ntohs(BPF_CORE_READ(u, port));
	o->fwmark = BPF_CORE_READ(u, fwmark);
	o->flags = BPF_CORE_READ(u, flags);
	bpf_probe_read_kernel_str(o->sched, sizeof(o->sched), BPF_CORE_READ(u, sched_name));
}

static __always_inline int on_svc_op(__u32 op, struct ip_vs_service *svc, struct ip_vs_service_user_kern *u, int ret)
{
	struct nw_ipvs_ctl *r = reserve_ctl(op);

	if (!r)
		return 0;
	r->ret = ret;
	if (u)
		read_user_svc(&r->svc, u);
	else
		read_svc(&r->svc, svc);
	submit(r);
	return 0;
}

static __always_inline int on_dest_op(__u32 op, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	struct nw_ipvs_ctl *r = reserve_ctl(op);

	if (!r)
		return 0;
	read_svc(&r->svc, svc);
	bpf_core_read(&r->daddr, sizeof(r->daddr), &ud->addr);
	r->dport = bpf_ntohs(BPF_CORE_READ(ud, port));
	r->weight = BPF_CORE_READ(ud, weight);
	submit(r);
	return 0;
}

SEC("fexit/ip_vs_add_service")
int BPF_PROG(ip_vs_add_service__fexit, void *ipvs, struct ip_vs_service_user_kern *u, void *svc_p, int ret)
{
	return on_svc_op(NW_IPVS_ADD_SERVICE, NULL, u, ret);
}

SEC("kprobe/ip_vs_add_service")
int BPF_KPROBE(ip_vs_add_service__kprobe, void *ipvs, struct ip_vs_service_user_kern *u)
{
	return on_svc_op(NW_IPVS_ADD_SERVICE, NULL, u, 0);
}

SEC("fexit/ip_vs_edit_service")
int BPF_PROG(ip_vs_edit_service__fexit, struct ip_vs_service *svc, struct ip_vs_service_user_kern *u, int ret)
{
	return on_svc_op(NW_IPVS_EDIT_SERVICE, NULL, u, ret);
}

SEC("kprobe/ip_vs_edit_service")
int BPF_KPROBE(ip_vs_edit_service__kprobe, struct ip_vs_service *svc, struct ip_vs_service_user_kern *u)
{
	return on_svc_op(NW_IPVS_EDIT_SERVICE, NULL, u, 0);
}

/* ip_vs_del_service() is inlined; every deletion (and flush) unlinks here. */
SEC("fentry/ip_vs_unlink_service")
int BPF_PROG(ip_vs_unlink_service__fentry, struct ip_vs_service *svc, bool cleanup)
{
	return on_svc_op(NW_IPVS_DEL_SERVICE, svc, NULL, 0);
}

SEC("kprobe/ip_vs_unlink_service")
int BPF_KPROBE(ip_vs_unlink_service__kprobe, struct ip_vs_service *svc)
{
	return on_svc_op(NW_IPVS_DEL_SERVICE, svc, NULL, 0);
}

SEC("fentry/ip_vs_add_dest")
int BPF_PROG(ip_vs_add_dest__fentry, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	return on_dest_op(NW_IPVS_ADD_DEST, svc, ud);
}

SEC("kprobe/ip_vs_add_dest")
int BPF_KPROBE(ip_vs_add_dest__kprobe, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	return on_dest_op(NW_IPVS_ADD_DEST, svc, ud);
}

SEC("fentry/ip_vs_edit_dest")
int BPF_PROG(ip_vs_edit_dest__fentry, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	return on_dest_op(NW_IPVS_EDIT_DEST, svc, ud);
}

SEC("kprobe/ip_vs_edit_dest")
int BPF_KPROBE(ip_vs_edit_dest__kprobe, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	return on_dest_op(NW_IPVS_EDIT_DEST, svc, ud);
}

SEC("fentry/ip_vs_del_dest")
int BPF_PROG(ip_vs_del_dest__fentry, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	return on_dest_op(NW_IPVS_DEL_DEST, svc, ud);
}

SEC("kprobe/ip_vs_del_dest")
int BPF_KPROBE(ip_vs_del_dest__kprobe, struct ip_vs_service *svc, struct ip_vs_dest_user_kern *ud)
{
	return on_dest_op(NW_IPVS_DEL_DEST, svc, ud);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
