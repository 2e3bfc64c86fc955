// The records of bpf/netwhy.h, decoded. test/unit/abi.test.ts compiles the C
// header and checks every offset below against it.

export const ABI_VERSION = 1;
export const DEV_LEN = 16;
export const STACK_DEPTH = 10;
export const FILTER_TERMS = 16;
export const FILTER_CLAUSES = 8;

export const RecordType = { DROP: 1, RX: 2, TX: 3, FIB: 4, IPVS_CONN: 5, IPVS_ERR: 6, IPVS_CTL: 7, FIB6: 8, LOST: 9, SOCK: 10 } as const;

/**
 * enum nw_probe_id: one entry per attach point, the stats map's key, with the
 * name reports use and the trace event kind it gives (if any). The one probe
 * table: the tracer, trace and doctor take names from here, and the ABI test
 * checks it against the C enum.
 */
export const PROBES = [
  { id: 0, c: 'NW_PROBE_KFREE_SKB', name: 'kfree_skb', event: 'drop' },
  { id: 1, c: 'NW_PROBE_NETIF_RECEIVE', name: 'netif_receive_skb', event: 'rx' },
  { id: 2, c: 'NW_PROBE_NET_DEV_QUEUE', name: 'net_dev_queue', event: 'tx' },
  { id: 3, c: 'NW_PROBE_FIB_LOOKUP', name: 'fib_table_lookup', event: 'route' },
  { id: 4, c: 'NW_PROBE_PROCESS_FORK', name: 'sched_process_fork', event: null },
  { id: 5, c: 'NW_PROBE_IPVS_CONN_NEW', name: 'ip_vs_conn_new', event: 'ipvs' },
  { id: 6, c: 'NW_PROBE_IPVS_SCHED_ERR', name: 'ip_vs_scheduler_err', event: 'ipvs' },
  { id: 7, c: 'NW_PROBE_IPVS_IN_HOOK', name: 'ip_vs_in_hook', event: 'ipvs' },
  { id: 8, c: 'NW_PROBE_IPVS_NAT_XMIT', name: 'ip_vs_nat_xmit', event: 'ipvs' },
  { id: 9, c: 'NW_PROBE_IPVS_CONTROL', name: 'ipvs control plane', event: 'ipvs' },
  { id: 10, c: 'NW_PROBE_FIB6_LOOKUP', name: 'fib6_table_lookup', event: 'route' },
  { id: 11, c: 'NW_PROBE_SOCK_STATE', name: 'inet_sock_set_state', event: null },
  { id: 12, c: 'NW_PROBE_SOCK_SEND', name: 'sock_send_length', event: null },
] as const;

export type ProbeName = (typeof PROBES)[number]['name'];

/** The probe a name refers to (for names known at compile time). */
export function probeNamed(name: ProbeName): (typeof PROBES)[number] {
  return PROBES.find((p) => p.name === name)!;
}

export const PROBE_MAX = 16;

export const IpvsErrKind = { NO_DEST: 1, HOOK_DROP: 2, XMIT: 3 } as const;
export const IpvsOp = { ADD_SERVICE: 1, EDIT_SERVICE: 2, DEL_SERVICE: 3, ADD_DEST: 4, EDIT_DEST: 5, DEL_DEST: 6 } as const;

export const PktFlag = {
  HAS_CT: 1 << 0,
  CT_SNAT: 1 << 1,
  CT_DNAT: 1 << 2,
  HAS_L4: 1 << 3,
  LOCAL_SK: 1 << 4,
  FOLLOWED: 1 << 5,
  /** a fragment (IPv4 MF or offset, an IPv6 fragment header) */
  FRAG: 1 << 6,
  /** a fragment after the first: it carries no ports */
  FRAG_LATER: 1 << 7,
  /** ttl (IPv4 TTL, IPv6 hop limit) is valid; recordings made before it have 0 */
  HAS_TTL: 1 << 8,
} as const;

export const FibFlag = { TIED_FORWARD: 1 << 0, TIED_REVERSE: 1 << 1, TIED_REPLY: 1 << 2 } as const;

export const TermKind = {
  NONE: 0,
  PROTO: 1,
  HOST: 2,
  SRC: 3,
  DST: 4,
  PORT: 5,
  SPORT: 6,
  DPORT: 7,
  NETNS: 8,
  FAMILY: 9,
} as const;

export const FilterMode = { ALL: 0, STATIC: 1, FOLLOW: 2, DROPS: 3 } as const;

export const AF_INET = 2;
export const AF_INET6 = 10;

/** Offsets and sizes, one entry per C struct. */
export const LAYOUT = {
  nw_hdr: { size: 16, version: 0, type: 1, size_: 2, probe: 4, cpu: 6, ts: 8 },
  nw_tuple: { size: 40, saddr: 0, daddr: 16, sport: 32, dport: 34, proto: 36, family: 37 },
  nw_pkt: {
    size: 176, skb: 0, netns: 8, ifindex: 12, dev: 16, tuple: 32, ct_orig: 72, ct_reply: 112,
    ct_status: 152, mark: 156, len: 160, pid: 164, flags: 168, tcp_flags: 170, ttl: 171,
  },
  nw_drop: { size: 288, hdr: 0, pkt: 16, location: 192, reason: 200, stack_len: 204, stack: 208 },
  nw_path: { size: 192, hdr: 0, pkt: 16 },
  nw_fib: {
    size: 96, skb: 16, netns: 24, table: 28, iif: 32, oif: 36, saddr: 40, daddr: 44, gw: 48,
    nh_ifindex: 52, err: 56, pid: 60, mark: 64, sport: 68, dport: 70, proto: 72, tos: 73, flags: 74, nh_dev: 76,
  },
  nw_fib6: {
    size: 128, skb: 16, netns: 24, table: 28, iif: 32, oif: 36, saddr: 40, daddr: 56, gw: 72,
    nh_ifindex: 88, err: 92, pid: 96, mark: 100, sport: 104, dport: 106, proto: 108, tclass: 109, flags: 110, type: 111, nh_dev: 112,
  },
  nw_ipvs_svc: { size: 48, addr: 0, port: 16, af: 18, protocol: 20, fwmark: 24, flags: 28, sched: 32 },
  nw_ipvs_conn: { size: 136, hdr: 0, client: 16, daddr: 56, dport: 72, daf: 74, conn_flags: 76, netns: 80, svc: 88 },
  nw_ipvs_err: { size: 352, hdr: 0, kind: 16, ret: 20, netns: 24, pkt: 32, conn: 208, daddr: 248, dport: 264, svc: 272, msg: 320 },
  nw_ipvs_ctl: { size: 120, hdr: 0, op: 16, ret: 20, pid: 24, netns: 28, comm: 32, svc: 48, daddr: 96, dport: 112, weight: 116 },
  nw_lost: { size: 40, hdr: 0, count: 16, first_ts: 24, last_ts: 32 },
  nw_sock: { size: 88, hdr: 0, sk: 16, netns: 24, pid: 28, tuple: 32, oldstate: 72, newstate: 73, err: 76, err_soft: 80 },
  nw_term: { size: 48, kind: 0, negate: 1, family: 2, lo: 4, hi: 8, addr: 16, mask: 32 },
  nw_clause: { size: 776, nterms: 0, terms: 8 },
  nw_filter: { size: 6216, mode: 0, nclauses: 4, clauses: 8 },
  nw_flow_key: { size: 40, a: 0, b: 16, aport: 32, bport: 34, proto: 36 },
  nw_stats: { size: 24, events: 0, lost: 8, filtered: 16 },
} as const;

export interface Tuple {
  family: number; // AF_INET, AF_INET6, 0 = not IP
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface Pkt {
  skb: number; // skb address (low 48 bits): the identity of a journey
  netns: number;
  ifindex: number;
  dev: string;
  tuple: Tuple;
  ctOrig?: Tuple;
  ctReply?: Tuple;
  ctStatus: number;
  mark: number;
  len: number;
  pid: number;
  flags: number;
  tcpFlags: number;
  /** IPv4 TTL or IPv6 hop limit; undefined when not recorded (PktFlag.HAS_TTL) */
  ttl?: number;
}

interface RecordBase {
  ts: number; // ns since boot
  cpu: number;
  probe: number;
}

export interface DropRecord extends RecordBase {
  kind: 'drop';
  pkt: Pkt;
  location: bigint;
  reason: number;
  stack: bigint[];
}

export interface PathRecord extends RecordBase {
  kind: 'rx' | 'tx';
  pkt: Pkt;
}

/** A route lookup of either family (nw_fib for IPv4, nw_fib6 for IPv6). */
export interface FibRecord extends RecordBase {
  kind: 'fib';
  family: typeof AF_INET | typeof AF_INET6;
  skb: number;
  netns: number;
  table: number;
  iif: number;
  oif: number;
  src: string;
  dst: string;
  gw: string | null;
  nhIfindex: number;
  nhDev: string;
  err: number;
  pid: number;
  mark: number;
  sport: number;
  dport: number;
  proto: number;
  /** IPv4 TOS, IPv6 traffic class */
  tos: number;
  flags: number;
  /** IPv6: the matched route's RTN_* type, 0 when none matched */
  routeType?: number;
}

/** A virtual service as `ipvsadm -Ln` names it. */
export interface IpvsService {
  af: number;
  protocol: number;
  addr: string;
  port: number;
  fwmark: number;
  flags: number;
  scheduler: string;
}

export interface IpvsConnRecord extends RecordBase {
  kind: 'ipvs-conn';
  client: Tuple;
  daddr: string;
  dport: number;
  connFlags: number;
  netns: number;
  svc: IpvsService;
}

export interface IpvsErrRecord extends RecordBase {
  kind: 'ipvs-err';
  err: number; // IpvsErrKind
  ret: number;
  netns: number;
  pkt?: Pkt;
  conn?: Tuple;
  daddr: string;
  dport: number;
  svc: IpvsService;
  msg: string;
}

export interface IpvsCtlRecord extends RecordBase {
  kind: 'ipvs-ctl';
  op: number; // IpvsOp
  ret: number;
  pid: number;
  comm: string;
  netns: number;
  svc: IpvsService;
  daddr: string;
  dport: number;
  weight: number;
}

/** Records a CPU could not write (ring buffer full) between first and last (ns since boot). */
export interface LostRecord extends RecordBase {
  kind: 'lost';
  count: number;
  first: number;
  last: number;
}

/** A followed TCP socket changed state (TCP_* numbers of include/net/tcp_states.h). */
export interface SockRecord extends RecordBase {
  kind: 'sock';
  sk: number; // socket address (low 48 bits)
  netns: number;
  pid: number;
  tuple: Tuple;
  oldstate: number;
  newstate: number;
  /** sk_err and sk_err_soft: positive errno values, 0 = none */
  err: number;
  errSoft: number;
}

export type IpvsRecord = IpvsConnRecord | IpvsErrRecord | IpvsCtlRecord;
export type PacketRecord = DropRecord | PathRecord | FibRecord | SockRecord;
export type NwRecord = PacketRecord | IpvsRecord | LostRecord;

export function isIpvs(r: NwRecord): r is IpvsRecord {
  return r.kind === 'ipvs-conn' || r.kind === 'ipvs-err' || r.kind === 'ipvs-ctl';
}

export class AbiError extends Error {}

const decoder = new TextDecoder();

function cString(buf: Uint8Array, off: number, len: number): string {
  let end = off;
  while (end < off + len && buf[end] !== 0) end++;
  return decoder.decode(buf.subarray(off, end));
}

/*
 * A storm repeats a handful of device names, addresses and kernel addresses
 * millions of times; building each string or bigint anew was most of the
 * decoder's time and garbage. Direct-mapped caches (a slot per hash, the full
 * key compared on a hit, the slot overwritten on a miss) return the same
 * immutable value for the same bytes, allocate nothing on a hit and never grow.
 */
const SLOTS = 4096;
const slot = (h: number) => (Math.imul(h, 0x9e3779b1) >>> 20) & (SLOTS - 1);

const devKey = new Int32Array(SLOTS * 4);
const devVal: (string | undefined)[] = new Array(SLOTS).fill(undefined);

/** A device name (char[16], NUL-terminated), as cString would decode it. */
function devName(b: Uint8Array, dv: DataView, off: number): string {
  if (b[off] === 0) return '';
  const w0 = dv.getInt32(off, true);
  const w1 = dv.getInt32(off + 4, true);
  const w2 = dv.getInt32(off + 8, true);
  const w3 = dv.getInt32(off + 12, true);
  const i = slot(w0 ^ Math.imul(w1, 31) ^ Math.imul(w2, 961) ^ Math.imul(w3, 29791));
  const k = i * 4;
  const hit = devVal[i];
  if (hit !== undefined && devKey[k] === w0 && devKey[k + 1] === w1 && devKey[k + 2] === w2 && devKey[k + 3] === w3) return hit;
  const name = cString(b, off, DEV_LEN);
  devKey[k] = w0;
  devKey[k + 1] = w1;
  devKey[k + 2] = w2;
  devKey[k + 3] = w3;
  devVal[i] = name;
  return name;
}

const v4Key = new Int32Array(SLOTS);
const v4Val: (string | undefined)[] = new Array(SLOTS).fill(undefined);

export function formatIPv4(b: Uint8Array, off: number): string {
  const key = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
  const i = slot(key);
  const hit = v4Val[i];
  if (hit !== undefined && v4Key[i] === key) return hit;
  const text = `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  v4Key[i] = key;
  v4Val[i] = text;
  return text;
}

const u64Lo = new Int32Array(SLOTS);
const u64Hi = new Int32Array(SLOTS);
const u64Val: (bigint | undefined)[] = new Array(SLOTS).fill(undefined);

/** A 64-bit kernel address as a bigint, the same value getBigUint64 gives. */
function u64(dv: DataView, off: number): bigint {
  const lo = dv.getInt32(off, true);
  const hi = dv.getInt32(off + 4, true);
  const i = slot(lo ^ hi);
  const hit = u64Val[i];
  if (hit !== undefined && u64Lo[i] === lo && u64Hi[i] === hi) return hit;
  const v = dv.getBigUint64(off, true);
  u64Lo[i] = lo;
  u64Hi[i] = hi;
  u64Val[i] = v;
  return v;
}

/** ns since boot: exact below 2^53, and rounded like Number(bigint) above. */
function u64Number(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
}

export function formatIPv6(b: Uint8Array, off: number): string {
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[off + i] << 8) | b[off + i + 1]).toString(16));
  // Compress the longest run of zero words, as inet_ntop does.
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}

function formatAddr(b: Uint8Array, off: number, family: number): string {
  if (family === AF_INET) return formatIPv4(b, off);
  if (family === AF_INET6) return formatIPv6(b, off);
  return '';
}

function u48(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + (dv.getUint16(off + 4, true) * 0x1_0000_0000);
}

const T = LAYOUT.nw_tuple;
const P = LAYOUT.nw_pkt;

function decodeTuple(b: Uint8Array, dv: DataView, off: number): Tuple {
  const family = b[off + T.family];
  return {
    family,
    proto: b[off + T.proto],
    src: formatAddr(b, off + T.saddr, family),
    dst: formatAddr(b, off + T.daddr, family),
    sport: dv.getUint16(off + T.sport, true),
    dport: dv.getUint16(off + T.dport, true),
  };
}

function decodePkt(b: Uint8Array, dv: DataView, off: number): Pkt {
  const flags = dv.getUint16(off + P.flags, true);
  const hasCt = (flags & PktFlag.HAS_CT) !== 0;
  return {
    skb: u48(dv, off + P.skb),
    netns: dv.getUint32(off + P.netns, true),
    ifindex: dv.getUint32(off + P.ifindex, true),
    dev: devName(b, dv, off + P.dev),
    tuple: decodeTuple(b, dv, off + P.tuple),
    ctOrig: hasCt ? decodeTuple(b, dv, off + P.ct_orig) : undefined,
    ctReply: hasCt ? decodeTuple(b, dv, off + P.ct_reply) : undefined,
    ctStatus: dv.getUint32(off + P.ct_status, true),
    mark: dv.getUint32(off + P.mark, true),
    len: dv.getUint32(off + P.len, true),
    pid: dv.getUint32(off + P.pid, true),
    flags,
    tcpFlags: b[off + P.tcp_flags],
    ttl: flags & PktFlag.HAS_TTL ? b[off + P.ttl] : undefined,
  };
}

function decodeSvc(b: Uint8Array, dv: DataView, off: number): IpvsService {
  const S = LAYOUT.nw_ipvs_svc;
  const af = dv.getUint16(off + S.af, true);
  return {
    af,
    protocol: dv.getUint16(off + S.protocol, true),
    addr: formatAddr(b, off + S.addr, af),
    port: dv.getUint16(off + S.port, true),
    fwmark: dv.getUint32(off + S.fwmark, true),
    flags: dv.getUint32(off + S.flags, true),
    scheduler: cString(b, off + S.sched, 16),
  };
}

function need(type: number, size: number, n: number): void {
  if (size < n) throw new AbiError(`record type ${type} is ${size} bytes, expected ${n}`);
}

/** A route lookup record, IPv4 (nw_fib) or IPv6 (nw_fib6): one FibRecord, the family says which. */
function decodeFib(b: Uint8Array, dv: DataView, off: number, six: boolean, base: Pick<RecordBase, 'ts' | 'cpu' | 'probe'>): FibRecord {
  const F = six ? LAYOUT.nw_fib6 : LAYOUT.nw_fib;
  const addr = six ? formatIPv6 : formatIPv4;
  const gwSet = b.subarray(off + F.gw, off + F.gw + (six ? 16 : 4)).some((x) => x !== 0);
  const r: FibRecord = {
    kind: 'fib', ...base,
    family: six ? AF_INET6 : AF_INET,
    skb: u48(dv, off + F.skb),
    netns: dv.getUint32(off + F.netns, true),
    table: dv.getUint32(off + F.table, true),
    iif: dv.getUint32(off + F.iif, true),
    oif: dv.getUint32(off + F.oif, true),
    src: addr(b, off + F.saddr),
    dst: addr(b, off + F.daddr),
    gw: gwSet ? addr(b, off + F.gw) : null,
    nhIfindex: dv.getUint32(off + F.nh_ifindex, true),
    nhDev: devName(b, dv, off + F.nh_dev),
    err: dv.getInt32(off + F.err, true),
    pid: dv.getUint32(off + F.pid, true),
    mark: dv.getUint32(off + F.mark, true),
    sport: dv.getUint16(off + F.sport, true),
    dport: dv.getUint16(off + F.dport, true),
    proto: b[off + F.proto],
    tos: b[off + (six ? LAYOUT.nw_fib6.tclass : LAYOUT.nw_fib.tos)],
    flags: b[off + F.flags],
  };
  if (six) r.routeType = b[off + LAYOUT.nw_fib6.type];
  return r;
}

function decodeOne(b: Uint8Array, dv: DataView, off: number, type: number, size: number): NwRecord {
  const H = LAYOUT.nw_hdr;
  // Plain locals and object literals in one fixed key order (kind, ts, cpu,
  // probe, ...): the hot record types get one hidden class each.
  const ts = u64Number(dv, off + H.ts);
  const cpu = dv.getUint16(off + H.cpu, true);
  const probe = dv.getUint16(off + H.probe, true);
  switch (type) {
    case RecordType.DROP: {
      const D = LAYOUT.nw_drop;
      need(type, size, D.size);
      const n = Math.min(dv.getUint32(off + D.stack_len, true), STACK_DEPTH);
      const stack: bigint[] = [];
      for (let i = 0; i < n; i++) stack.push(u64(dv, off + D.stack + i * 8));
      return {
        kind: 'drop', ts, cpu, probe,
        pkt: decodePkt(b, dv, off + D.pkt),
        location: u64(dv, off + D.location),
        reason: dv.getUint32(off + D.reason, true),
        stack,
      };
    }
    case RecordType.RX:
      need(type, size, LAYOUT.nw_path.size);
      return { kind: 'rx', ts, cpu, probe, pkt: decodePkt(b, dv, off + LAYOUT.nw_path.pkt) };
    case RecordType.TX:
      need(type, size, LAYOUT.nw_path.size);
      return { kind: 'tx', ts, cpu, probe, pkt: decodePkt(b, dv, off + LAYOUT.nw_path.pkt) };
    case RecordType.FIB:
    case RecordType.FIB6:
      need(type, size, type === RecordType.FIB ? LAYOUT.nw_fib.size : LAYOUT.nw_fib6.size);
      return decodeFib(b, dv, off, type === RecordType.FIB6, { ts, cpu, probe });
    case RecordType.IPVS_CONN: {
      const C = LAYOUT.nw_ipvs_conn;
      need(type, size, C.size);
      const base = { ts, cpu, probe };
      return {
        kind: 'ipvs-conn', ...base,
        client: decodeTuple(b, dv, off + C.client),
        daddr: formatAddr(b, off + C.daddr, dv.getUint16(off + C.daf, true)),
        dport: dv.getUint16(off + C.dport, true),
        connFlags: dv.getUint32(off + C.conn_flags, true),
        netns: dv.getUint32(off + C.netns, true),
        svc: decodeSvc(b, dv, off + C.svc),
      };
    }
    case RecordType.IPVS_ERR: {
      const E = LAYOUT.nw_ipvs_err;
      need(type, size, E.size);
      const base = { ts, cpu, probe };
      const err = dv.getUint32(off + E.kind, true);
      const conn = decodeTuple(b, dv, off + E.conn);
      return {
        kind: 'ipvs-err', ...base, err,
        ret: dv.getInt32(off + E.ret, true),
        netns: dv.getUint32(off + E.netns, true),
        pkt: err === IpvsErrKind.NO_DEST ? undefined : decodePkt(b, dv, off + E.pkt),
        conn: conn.family ? conn : undefined,
        daddr: formatAddr(b, off + E.daddr, conn.family),
        dport: dv.getUint16(off + E.dport, true),
        svc: decodeSvc(b, dv, off + E.svc),
        msg: cString(b, off + E.msg, 32),
      };
    }
    case RecordType.IPVS_CTL: {
      const C = LAYOUT.nw_ipvs_ctl;
      need(type, size, C.size);
      const base = { ts, cpu, probe };
      const svc = decodeSvc(b, dv, off + C.svc);
      return {
        kind: 'ipvs-ctl', ...base,
        op: dv.getUint32(off + C.op, true),
        ret: dv.getInt32(off + C.ret, true),
        pid: dv.getUint32(off + C.pid, true),
        comm: cString(b, off + C.comm, 16),
        netns: dv.getUint32(off + C.netns, true),
        svc,
        daddr: formatAddr(b, off + C.daddr, svc.af),
        dport: dv.getUint16(off + C.dport, true),
        weight: dv.getInt32(off + C.weight, true),
      };
    }
    case RecordType.SOCK: {
      const S = LAYOUT.nw_sock;
      need(type, size, S.size);
      return {
        kind: 'sock', ts, cpu, probe,
        sk: u48(dv, off + S.sk),
        netns: dv.getUint32(off + S.netns, true),
        pid: dv.getUint32(off + S.pid, true),
        tuple: decodeTuple(b, dv, off + S.tuple),
        oldstate: b[off + S.oldstate],
        newstate: b[off + S.newstate],
        err: dv.getInt32(off + S.err, true),
        errSoft: dv.getInt32(off + S.err_soft, true),
      };
    }
    case RecordType.LOST: {
      const L = LAYOUT.nw_lost;
      need(type, size, L.size);
      return { kind: 'lost', ts, cpu, probe, count: u64Number(dv, off + L.count), first: u64Number(dv, off + L.first_ts), last: u64Number(dv, off + L.last_ts) };
    }
    default:
      throw new AbiError(`unknown record type ${type}`);
  }
}

/**
 * Decode a batch of concatenated records. A record of an unknown version or
 * type is counted and skipped; a record whose size runs past the batch ends
 * the batch (the rest cannot be trusted) and is counted too. From byte `from`,
 * at most `max` records: `next` is where to go on (the batch's length at its end).
 */
export function decodeBatch(buf: Uint8Array, out: NwRecord[] = [], from = 0, max = Infinity): { records: NwRecord[]; bad: number; next: number } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const H = LAYOUT.nw_hdr;
  let off = from;
  let bad = 0;
  let n = 0;
  while (off + H.size <= buf.length) {
    if (n >= max) return { records: out, bad, next: off };
    const version = buf[off + H.version];
    const type = buf[off + H.type];
    const size = dv.getUint16(off + H.size_, true);
    if (size < H.size || off + size > buf.length) {
      bad++;
      return { records: out, bad, next: buf.length }; // no way to the next record
    }
    if (version !== ABI_VERSION) {
      bad++;
    } else {
      try {
        out.push(decodeOne(buf, dv, off, type, size));
        n++;
      } catch (e) {
        if (!(e instanceof AbiError)) throw e;
        bad++;
      }
    }
    off += size;
  }
  if (off < buf.length) bad++; // trailing bytes shorter than a header
  return { records: out, bad, next: buf.length };
}
