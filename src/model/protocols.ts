// IP protocol numbers and their names, as the filter language and every output spell them.
export const PROTOCOLS: Record<string, number> = { icmp: 1, tcp: 6, udp: 17, icmp6: 58, sctp: 132 };

const PROTO_NAMES = new Map(Object.entries(PROTOCOLS).map(([n, v]) => [v, n]));

export function protoName(p: number): string {
  return PROTO_NAMES.get(p) ?? `proto-${p}`;
}

/** Protocols whose packets carry ports. */
export function hasPorts(proto: number): boolean {
  return proto === PROTOCOLS.tcp || proto === PROTOCOLS.udp || proto === PROTOCOLS.sctp;
}
