// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The probes' packet parser (common.bpf.h parse_headers) run on crafted
 * packets with BPF_PROG_TEST_RUN: a tc program parses the Ethernet frame it
 * is given and writes what it found over the frame's first bytes, which the
 * test reads back from data_out. Not part of netwhy.bpf.o
 * (test/integration/bpf-parse.test.ts).
 */
#include "../common.bpf.h"

/* What the test reads back, at offset 0 of data_out. */
struct parse_result {
	struct nw_tuple tuple;
	__u16 flags;
	__u8 ttl;
	__u8 tcp_flags;
};

SEC("tc")
int parse_test(struct __sk_buff *ctx)
{
	struct nw_pkt p = {};
	struct parse_result r = {};
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u16 ethertype;

	if (data + 14 > end)
		return 1;
	ethertype = bpf_ntohs(*(__be16 *)(data + 12));
	parse_headers(data + 14, ethertype, &p);
	r.tuple = p.tuple;
	r.flags = p.flags;
	r.ttl = p.ttl;
	r.tcp_flags = p.tcp_flags;
	if (bpf_skb_store_bytes(ctx, 0, &r, sizeof(r), 0))
		return 2;
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
