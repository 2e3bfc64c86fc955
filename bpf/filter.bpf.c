// SPDX-License-Identifier: GPL-2.0 OR MIT
/* The in-kernel filter's terms and clauses (see struct nw_filter in netwhy.h). */
#include "common.bpf.h"

static __always_inline bool addr_match(const struct nw_addr *a, const struct nw_term *t)
{
	const __u32 *x = (const __u32 *)a->b;
	const __u32 *v = (const __u32 *)t->addr.b;
	const __u32 *m = (const __u32 *)t->mask.b;

	return ((x[0] ^ v[0]) & m[0]) == 0 && ((x[1] ^ v[1]) & m[1]) == 0 &&
	       ((x[2] ^ v[2]) & m[2]) == 0 && ((x[3] ^ v[3]) & m[3]) == 0;
}

__noinline int nw_term_match(const struct nw_term *t, const struct nw_tuple *tp, __u32 netns)
{
	bool m = false, fam;

	if (!t || !tp)
		return 0;
	fam = t->family == 0 || t->family == tp->family;
	switch (t->kind) {
	case NW_TERM_PROTO:
		m = tp->proto == t->lo;
		break;
	case NW_TERM_HOST:
		m = fam && (addr_match(&tp->saddr, t) || addr_match(&tp->daddr, t));
		break;
	case NW_TERM_SRC:
		m = fam && addr_match(&tp->saddr, t);
		break;
	case NW_TERM_DST:
		m = fam && addr_match(&tp->daddr, t);
		break;
	case NW_TERM_PORT:
		m = (tp->sport >= t->lo && tp->sport <= t->hi) ||
		    (tp->dport >= t->lo && tp->dport <= t->hi);
		break;
	case NW_TERM_SPORT:
		m = tp->sport >= t->lo && tp->sport <= t->hi;
		break;
	case NW_TERM_DPORT:
		m = tp->dport >= t->lo && tp->dport <= t->hi;
		break;
	case NW_TERM_NETNS:
		m = netns == t->lo;
		break;
	case NW_TERM_FAMILY:
		m = tp->family == t->lo;
		break;
	}
	return m != !!t->negate;
}

__noinline int nw_clause_match(const struct nw_clause *c, const struct nw_tuple *tp, __u32 netns)
{
	__u32 n;

	if (!c || !tp)
		return 0;
	n = c->nterms;
	for (__u32 i = 0; i < NW_FILTER_TERMS; i++) {
		if (i >= n)
			break;
		if (!nw_term_match(&c->terms[i], tp, netns))
			return 0;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
