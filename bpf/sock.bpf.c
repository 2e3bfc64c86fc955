// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Sockets: sock:inet_sock_set_state. A followed process's TCP socket is known
 * from connect() (SYN_SENT) on, so a flow whose first packet never leaves the
 * host (the next hop does not answer ARP) still exists, and its state changes
 * (SYN_SENT -> CLOSE with the error connect() returns) are evidence.
 */
#include "common.bpf.h"

static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	const struct nw_filter *f = bpf_map_lookup_elem(&filter, &zero);
	__u64 key = (__u64)sk;
	__u32 tgid = current_tgid();
	struct nw_tuple t = {};
	struct nw_sock *r;
	__u32 netns;
	bool followed;

	/* Only explain follows processes; trace has its filter for packets. */
	if (!f || f->mode != NW_FILTER_FOLLOW)
		return 0;
	if (BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	t.family = AF_INET;
	t.proto = IPPROTO_TCP;
	bpf_core_read(t.saddr.b, 4, &sk->__sk_common.skc_rcv_saddr);
	bpf_core_read(t.daddr.b, 4, &sk->__sk_common.skc_daddr);
	/* skc_num is cleared when the port is released (on CLOSE, before the
	 * tracepoint); inet_sport keeps it. */
	t.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!t.sport)
		t.sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));

	followed = bpf_map_lookup_elem(&followed_socks, &key) != NULL;
	if (!followed && newstate == TCP_SYN_SENT && netns == task_netns() &&
	    bpf_map_lookup_elem(&followed_pids, &tgid)) {
		bpf_map_update_elem(&followed_socks, &key, &tgid, BPF_ANY);
		followed = true;
	}
	if (!followed && !(t.sport && flow_known(&t))) {
		count_filtered(NW_PROBE_SOCK_STATE);
		return 0;
	}
	if (t.sport && t.dport)
		flow_add(&t);
	if (newstate == TCP_CLOSE)
		bpf_map_delete_elem(&followed_socks, &key);

	r = reserve(NW_PROBE_SOCK_STATE, sizeof(*r), NW_REC_SOCK);
	if (!r)
		return 0;
	r->sk = key;
	r->netns = netns;
	r->pid = tgid;
	r->tuple = t;
	r->oldstate = oldstate;
	r->newstate = newstate;
	r->pad = 0;
	r->err = BPF_CORE_READ(sk, sk_err);
	r->err_soft = BPF_CORE_READ(sk, sk_err_soft);
	r->pad2 = 0;
	submit(r);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state__tp_btf, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(inet_sock_set_state__raw_tp, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate);
}

/*
 * Any socket a followed process sends on (UDP, ICMP, ...): remembered so that
 * its packet still belongs to the flow when it dies before it was ever sent
 * (freed from the neighbour queue by a timer). No record: the packet's own
 * drop is the evidence.
 */
static __always_inline int on_send(struct sock *sk, int ret)
{
	__u32 zero = 0;
	const struct nw_filter *f = bpf_map_lookup_elem(&filter, &zero);
	__u64 key = (__u64)sk;
	__u32 tgid = current_tgid();

	if (!f || f->mode != NW_FILTER_FOLLOW || !sk || ret < 0)
		return 0;
	if (!bpf_map_lookup_elem(&followed_pids, &tgid)) {
		count_filtered(NW_PROBE_SOCK_SEND);
		return 0;
	}
	bpf_map_update_elem(&followed_socks, &key, &tgid, BPF_ANY);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send_length__tp_btf, struct sock *sk, int ret, int flags)
{
	return on_send(sk, ret);
}

SEC("raw_tp/sock_send_length")
int BPF_PROG(sock_send_length__raw_tp, struct sock *sk, int ret, int flags)
{
	return on_send(sk, ret);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
