/* SPDX-License-Identifier: MIT */
/*
 * netwhy ABI: every record that crosses the ring buffer, and every map value
 * user space writes. Fixed-width fields only, no kernel types, so the BPF
 * programs, the addon and src/abi.ts all read this one layout.
 * test/unit/abi.test.ts compiles this header and checks src/abi.ts against it.
 *
 * Bump NW_ABI_VERSION whenever a layout below changes.
 */
#ifndef NETWHY_H
#define NETWHY_H

#ifndef __VMLINUX_H__ /* user space; BPF gets the types from vmlinux.h */
#include <linux/types.h>
#endif

#define NW_ABI_VERSION 1

#define NW_DEV_LEN 16
#define NW_STACK_DEPTH 10
#define NW_FILTER_TERMS 16
#define NW_FILTER_CLAUSES 8

/* Record types (nw_hdr.type). */
enum nw_record_type {
	NW_REC_DROP = 1,   /* skb:kfree_skb */
	NW_REC_RX = 2,     /* net:netif_receive_skb */
	NW_REC_TX = 3,     /* net:net_dev_queue */
	NW_REC_FIB = 4,    /* fib:fib_table_lookup */
	NW_REC_IPVS_CONN = 5, /* a new IPVS connection: client -> virtual service -> real server */
	NW_REC_IPVS_ERR = 6,  /* IPVS refused: no destination, hook NF_DROP, NAT transmit error */
	NW_REC_IPVS_CTL = 7,  /* a virtual service or destination added, edited or deleted */
	NW_REC_FIB6 = 8,   /* fib6:fib6_table_lookup */
	NW_REC_LOST = 9,      /* records a CPU could not write (ring buffer full), reported once one fits */
	NW_REC_SOCK = 10,     /* a followed TCP socket changed state (connect() on: no packet needed) */
};

/*
 * Probe ids: one per attach point, index into the stats map. Each probe may
 * have several program variants (fentry, kprobe, tp_btf, raw_tp); the addon
 * picks one per probe at load time.
 */
enum nw_probe_id {
	NW_PROBE_KFREE_SKB = 0,
	NW_PROBE_NETIF_RECEIVE = 1,
	NW_PROBE_NET_DEV_QUEUE = 2,
	NW_PROBE_FIB_LOOKUP = 3,
	NW_PROBE_PROCESS_FORK = 4,
	NW_PROBE_IPVS_CONN_NEW = 5,
	NW_PROBE_IPVS_SCHED_ERR = 6,
	NW_PROBE_IPVS_IN_HOOK = 7,
	NW_PROBE_IPVS_NAT_XMIT = 8,
	NW_PROBE_IPVS_CONTROL = 9, /* all control-plane probes */
	NW_PROBE_FIB6_LOOKUP = 10,
	NW_PROBE_SOCK_STATE = 11,  /* sock:inet_sock_set_state */
	NW_PROBE_SOCK_SEND = 12,   /* sock:sock_send_length: a followed process's sending sockets */
	NW_PROBE_MAX = 16,
};

/* nw_pkt.flags */
#define NW_PKT_HAS_CT     (1u << 0) /* ct_orig/ct_reply are valid */
#define NW_PKT_CT_SNAT    (1u << 1) /* IPS_SRC_NAT */
#define NW_PKT_CT_DNAT    (1u << 2) /* IPS_DST_NAT */
#define NW_PKT_HAS_L4     (1u << 3) /* ports are valid */
#define NW_PKT_LOCAL_SK   (1u << 4) /* skb->sk is a full local socket */
#define NW_PKT_FOLLOWED   (1u << 5) /* passed because it belongs to a followed flow */
#define NW_PKT_FRAG       (1u << 6) /* a fragment (IPv4 MF/offset, IPv6 fragment header) */
#define NW_PKT_FRAG_LATER (1u << 7) /* a fragment after the first: no L4 header */
#define NW_PKT_HAS_TTL    (1u << 8) /* ttl is valid */

/* IPv6 extension headers the parser walks past, at most this many. */
#define NW_IPV6_MAX_EXT 8

struct nw_hdr {
	__u8 version;      /* NW_ABI_VERSION */
	__u8 type;         /* enum nw_record_type */
	__u16 size;        /* whole record, header included */
	__u16 probe;       /* enum nw_probe_id */
	__u16 cpu;
	__u64 ts;          /* bpf_ktime_get_ns() */
};

/* An address in network byte order; IPv4 uses the first 4 bytes. */
struct nw_addr {
	__u8 b[16];
};

struct nw_tuple {
	struct nw_addr saddr;
	struct nw_addr daddr;
	__u16 sport;       /* host byte order */
	__u16 dport;
	__u8 proto;        /* IPPROTO_* */
	__u8 family;       /* AF_INET / AF_INET6, 0 when unknown */
	__u8 pad[2];
};

/* What every packet-carrying record knows about the skb. */
struct nw_pkt {
	__u64 skb;         /* skb address: the identity of a journey */
	__u32 netns;       /* inode of the skb's network namespace */
	__u32 ifindex;
	char dev[NW_DEV_LEN];
	struct nw_tuple tuple;   /* from the packet headers */
	struct nw_tuple ct_orig; /* conntrack original direction */
	struct nw_tuple ct_reply;/* conntrack reply direction */
	__u32 ct_status;   /* nf_conn->status (IPS_*) */
	__u32 mark;
	__u32 len;
	__u32 pid;         /* tgid of the current task, 0 in softirq for rx */
	__u16 flags;       /* NW_PKT_* */
	__u8 tcp_flags;
	__u8 ttl;          /* IPv4 TTL / IPv6 hop limit (NW_PKT_HAS_TTL) */
	__u8 pad[4];
};

struct nw_drop {
	struct nw_hdr hdr;
	struct nw_pkt pkt;
	__u64 location;    /* return address that freed the skb */
	__u32 reason;      /* enum skb_drop_reason value on this kernel */
	__u32 stack_len;   /* valid entries in stack */
	__u64 stack[NW_STACK_DEPTH];
};

/* NW_REC_RX and NW_REC_TX */
struct nw_path {
	struct nw_hdr hdr;
	struct nw_pkt pkt;
};

struct nw_fib {
	struct nw_hdr hdr;
	__u64 skb;         /* skb being received on this CPU, 0 if none */
	__u32 netns;       /* netns of the result device, else of the skb, else of the task */
	__u32 table;
	__u32 iif;         /* flowi4_iif (1 = loopback: a reverse-path check) */
	__u32 oif;         /* flowi4_oif */
	__u32 saddr;       /* network byte order */
	__u32 daddr;
	__u32 gw;          /* nexthop gateway, 0 if none */
	__u32 nh_ifindex;  /* device the route leaves by, 0 if none */
	__s32 err;         /* 0 = found, else -errno */
	__u32 pid;
	__u32 mark;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 tos;
	__u8 flags;        /* NW_FIB_* */
	__u8 pad;
	char nh_dev[NW_DEV_LEN];
};

/* nw_fib.flags, nw_fib6.flags: how the lookup was tied to the skb being received */
#define NW_FIB_TIED_FORWARD (1u << 0) /* lookup source = the packet's source */
#define NW_FIB_TIED_REVERSE (1u << 1) /* lookup destination = the packet's source */
#define NW_FIB_TIED_REPLY   (1u << 2) /* an output lookup to the packet's source made while
				       * receiving it: its answer (SYN-ACK, RST, ICMP error) */

/*
 * An IPv6 route lookup (fib6_table_lookup, one per table tried). Its own
 * record rather than a wider nw_fib, so IPv4 records and the recordings made
 * of them keep their layout. err is what the fib6 tracepoint reports
 * (ip6_rt_type_to_error: -EHOSTUNREACH for an unreachable route, -EACCES
 * prohibit, -EINVAL blackhole, -EAGAIN throw), except that a lookup that
 * matched nothing in the table (fib6_null_entry) is -EAGAIN, as an IPv4
 * lookup that matched nothing is.
 */
struct nw_fib6 {
	struct nw_hdr hdr;
	__u64 skb;         /* skb being received on this CPU, 0 if none */
	__u32 netns;
	__u32 table;
	__u32 iif;         /* flowi6_iif (1 = loopback) */
	__u32 oif;         /* flowi6_oif */
	struct nw_addr saddr;
	struct nw_addr daddr;
	struct nw_addr gw; /* nexthop gateway, all zero if none */
	__u32 nh_ifindex;
	__s32 err;
	__u32 pid;
	__u32 mark;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 tclass;
	__u8 flags;        /* NW_FIB_* */
	__u8 type;         /* the route's RTN_* type (fib6_type), 0 if none matched */
	char nh_dev[NW_DEV_LEN];
};

/* A virtual service, as `ipvsadm -Ln` names it. */
struct nw_ipvs_svc {
	struct nw_addr addr;
	__u16 port;        /* host byte order */
	__u16 af;
	__u16 protocol;
	__u16 pad;
	__u32 fwmark;
	__u32 flags;
	char sched[16];    /* scheduler name: rr, wrr, sh, ... */
};

struct nw_ipvs_conn {
	struct nw_hdr hdr;
	struct nw_tuple client;  /* caddr:cport -> vaddr:vport */
	struct nw_addr daddr;    /* the real server chosen */
	__u16 dport;
	__u16 daf;
	__u32 conn_flags;        /* IP_VS_CONN_F_*: forwarding method in the low bits */
	__u32 netns;
	__u32 pad;
	struct nw_ipvs_svc svc;
};

/* nw_ipvs_err.kind */
#define NW_IPVS_ERR_NO_DEST   1 /* ip_vs_scheduler_err: "no destination available" */
#define NW_IPVS_ERR_HOOK_DROP 2 /* ip_vs_in_hook returned NF_DROP */
#define NW_IPVS_ERR_XMIT      3 /* ip_vs_nat_xmit did not send the packet */

struct nw_ipvs_err {
	struct nw_hdr hdr;
	__u32 kind;
	__s32 ret;
	__u32 netns;
	__u32 pad;
	struct nw_pkt pkt;       /* hook drop and transmit error: the packet */
	struct nw_tuple conn;    /* transmit error: the connection's client side */
	struct nw_addr daddr;    /* transmit error: its real server */
	__u16 dport;
	__u16 pad2[3];
	struct nw_ipvs_svc svc;  /* no destination: the service */
	char msg[32];
};

/* nw_ipvs_ctl.op */
#define NW_IPVS_ADD_SERVICE  1
#define NW_IPVS_EDIT_SERVICE 2
#define NW_IPVS_DEL_SERVICE  3
#define NW_IPVS_ADD_DEST     4
#define NW_IPVS_EDIT_DEST    5
#define NW_IPVS_DEL_DEST     6

struct nw_ipvs_ctl {
	struct nw_hdr hdr;
	__u32 op;
	__s32 ret;               /* the call's result where known (fexit), else 0 */
	__u32 pid;               /* who: tgid and command name */
	__u32 netns;
	char comm[16];
	struct nw_ipvs_svc svc;
	struct nw_addr daddr;    /* destination ops: the real server */
	__u16 dport;
	__u16 pad;
	__s32 weight;
};

/*
 * The in-kernel filter. A packet passes when any clause matches; a clause
 * matches when all its terms match. The disjunctive normal form is computed
 * in user space (src/filter). A term is tested against the packet's own
 * tuple, and, when the skb carries a conntrack entry, against the original
 * tuple too: that keeps NAT-ed packets and their replies in a filtered trace.
 */
enum nw_term_kind {
	NW_TERM_NONE = 0,
	NW_TERM_PROTO,     /* lo = IPPROTO_* */
	NW_TERM_HOST,      /* addr/mask against src or dst */
	NW_TERM_SRC,       /* addr/mask against src */
	NW_TERM_DST,       /* addr/mask against dst */
	NW_TERM_PORT,      /* lo..hi against sport or dport */
	NW_TERM_SPORT,
	NW_TERM_DPORT,
	NW_TERM_NETNS,     /* lo = netns inode */
	NW_TERM_FAMILY,    /* lo = AF_INET / AF_INET6 */
};

struct nw_term {
	__u8 kind;         /* enum nw_term_kind */
	__u8 negate;
	__u8 family;       /* for address terms */
	__u8 pad;
	__u32 lo;
	__u32 hi;
	__u32 pad2;
	struct nw_addr addr;
	struct nw_addr mask;
};

struct nw_clause {
	__u32 nterms;
	__u32 pad;
	struct nw_term terms[NW_FILTER_TERMS];
};

/* nw_filter.mode */
#define NW_FILTER_ALL     0 /* pass everything */
#define NW_FILTER_STATIC  1 /* the clauses decide */
#define NW_FILTER_FOLLOW  2 /* only flows seeded by followed processes */
#define NW_FILTER_DROPS   3 /* drops (matching the clauses, if any) seed followed flows: the agent */

struct nw_filter {
	__u32 mode;
	__u32 nclauses;
	struct nw_clause clauses[NW_FILTER_CLAUSES];
};

/* Key of the followed-flows map: a tuple with its endpoints in canonical order. */
struct nw_flow_key {
	struct nw_addr a;
	struct nw_addr b;
	__u16 aport;
	__u16 bport;
	__u8 proto;
	__u8 pad[3];
};

/*
 * Records this CPU could not write because the ring buffer was full, between
 * first_ts and last_ts (bpf_ktime_get_ns). Written ahead of the next record
 * that fits, so user space knows when events were lost, not only how many;
 * losses still pending when the trace ends show only in the stats map.
 */
struct nw_lost {
	struct nw_hdr hdr;
	__u64 count;
	__u64 first_ts;
	__u64 last_ts;
};

/*
 * A TCP socket of a followed process changed state (NW_REC_SOCK): from
 * connect() on, before any packet exists. The tuple's source port is 0 until
 * the port is chosen (SYN_SENT is set just before); `sk` ties the records of
 * one socket together.
 */
struct nw_sock {
	struct nw_hdr hdr;
	__u64 sk;
	__u32 netns;
	__u32 pid;          /* tgid of the current task (0 in softirq) */
	struct nw_tuple tuple;
	__u8 oldstate;      /* TCP_* of include/net/tcp_states.h */
	__u8 newstate;
	__u16 pad;
	__s32 err;          /* sk_err: the error connect() or the next call returns, 0 = none */
	__s32 err_soft;     /* sk_err_soft: the last soft error (an ICMP unreachable) */
	__u32 pad2;
};

/* Per probe, per CPU counters (map "stats"). */
struct nw_stats {
	__u64 events;      /* records submitted */
	__u64 lost;        /* records that found the ring buffer full */
	__u64 filtered;    /* packets seen but kept out by the filter */
};

#endif /* NETWHY_H */
