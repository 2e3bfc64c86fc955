/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Kernel differences on the BPF side, all in this one file. Each fix names the
 * kernel change it follows. User space picks the attach mode per probe
 * (native/attach_modes.cc); this file only keeps field reads portable.
 */
#ifndef NETWHY_CORE_FIXES_BPF_H
#define NETWHY_CORE_FIXES_BPF_H

/*
 * flowi_common.flowic_tos became flowic_dscp (a dscp_t) in 6.13
 * ("ipv4: Convert flowi4_tos to dscp_t", 1fa3314c14c6 and follow-ups).
 * Both names are flavors, so the code compiles against a vmlinux.h from
 * either side of the change (bpf/arm64/vmlinux.h is from Debian's 6.1).
 */
struct flowi_common___tos {
	__u8 flowic_tos;
} __attribute__((preserve_access_index));

struct flowi_common___dscp {
	__u8 flowic_dscp;
} __attribute__((preserve_access_index));

static __always_inline __u8 flowi4_tos(const struct flowi4 *flp)
{
	const struct flowi_common___tos *old = (const void *)&flp->__fl_common;
	const struct flowi_common___dscp *new = (const void *)&flp->__fl_common;

	if (bpf_core_field_exists(old->flowic_tos))
		return BPF_CORE_READ(old, flowic_tos);
	return BPF_CORE_READ(new, flowic_dscp);
}

/*
 * nf_conntrack is a module on distribution kernels (Debian 6.1) and built in
 * here. Without the module its types are absent from BTF, and the code that
 * reads struct nf_conn must be dead for the verifier.
 */
static __always_inline bool have_conntrack(void)
{
	return bpf_core_type_exists(struct nf_conn);
}

/* sk_fullsock() from include/net/sock.h; the TCP states are stable since 4.4. */
static __always_inline bool sk_is_fullsock(struct sock *sk)
{
	__u8 st = BPF_CORE_READ(sk, __sk_common.skc_state);

	return st != TCP_TIME_WAIT && st != TCP_NEW_SYN_RECV;
}

#endif /* NETWHY_CORE_FIXES_BPF_H */
