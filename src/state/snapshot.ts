// State snapshot of one network namespace: the settings, addresses, routes and rulesets that
// decide a packet's fate. This is the IO half; the parsing is in parsers.ts.
//
// The commands of a snapshot run concurrently (at most MAX_PROCS at a time, over all snapshots),
// each with its own timeout. A missing tool, a non-zero exit or unparsable output is recorded in
// `errors`; only an unknown namespace name throws.

import { readdir } from 'node:fs/promises';
import { NetwhyError } from '../errors.js';
import { type RunResult, runCommand } from './run.js';
import {
  parseConntrackStats,
  parseIpAddrs,
  parseIpLinks,
  parseIpRoutes,
  parseIpRules,
  parseIpNeigh,
  parseIptablesBackend,
  parseNftJson,
  parseProcConntrackStat,
  parseSysctlDump,
  type Addr,
  type ConntrackStats,
  type Link,
  type Neigh,
  type Route,
  type RouteRule,
  type IpvsState,
  parseIpvsDump,
} from './parsers.js';

export type { Addr, ConntrackStats, IpvsState, Link, Neigh, Nexthop, Route, RouteRule } from './parsers.js';
export { StateParseError, confKey, confKey6 } from './parsers.js';

export interface Snapshot {
  /** Name as `ip netns` shows it, or 'host'. */
  netns: string;
  takenAt: number;
  /** Dotted keys, e.g. 'net.ipv4.ip_forward', 'net.ipv4.conf.eth0.rp_filter' (see confKey). */
  sysctl: Record<string, string>;
  links: Link[];
  addrs: Addr[];
  routes: Route[];
  /** IPv4 and IPv6 policy rules (each has `family`). */
  rules: RouteRule[];
  /** `iptables-save -c` text; null if the tool is missing or failed. */
  iptablesSave: string | null;
  /** `ip6tables-save -c` text; null if the tool is missing or failed, absent in older recordings. */
  ip6tablesSave?: string | null;
  /** `ip -j neigh show`, both families; absent in older recordings. */
  neigh?: Neigh[];
  iptablesBackend: 'nf_tables' | 'legacy' | null;
  ipsetSave: string | null;
  /** IPVS services and connections; null when this namespace has no IPVS. */
  ipvs: IpvsState | null;
  nftJson: unknown | null;
  conntrack: ConntrackStats | null;
  conntrackMax?: number;
  conntrackCount?: number;
  /** What could not be read, and why. */
  errors: string[];
  /** Wall time the snapshot took, ms. */
  durationMs: number;
}

export const HOST = 'host';
const NETNS_DIR = '/run/netns';
const DEFAULT_TIMEOUT_MS = 5_000;
/** iptables-save of a large Kubernetes node runs to tens of MB. */

/** Per-interface IPv4 settings read for all, default and every device. */
export const CONF_SYSCTLS = ['forwarding', 'rp_filter', 'accept_local', 'route_localnet', 'arp_ignore', 'arp_announce'] as const;
/**
 * Per-interface IPv6 settings read for all, default and every device. Forwarding is
 * conf.all.forwarding (ip6_forward reads only that), or force_forwarding on the ingress device
 * (6.17+); disable_ipv6 drops everything a device receives.
 */
export const CONF6_SYSCTLS = ['forwarding', 'force_forwarding', 'disable_ipv6', 'accept_ra', 'hop_limit', 'accept_source_route'] as const;
/** Single sysctls read when present (paths under /proc/sys). */
export const GLOBAL_SYSCTLS = [
  'net/ipv4/ip_forward',
  'net/bridge/bridge-nf-call-iptables',
  'net/bridge/bridge-nf-call-ip6tables',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_count',
  'net/netfilter/nf_conntrack_udp_timeout',
  'net/netfilter/nf_conntrack_tcp_be_liberal',
  'net/netfilter/nf_conntrack_tcp_loose',
] as const;

/**
 * Prints `path:value` for every sysctl we want (grep -H format), in two processes whatever the
 * number of devices: sh picks the files that exist, one grep reads them all. Shell `read` is no
 * use here: dash reads byte by byte and an int sysctl returns EOF at any offset past 0, so only
 * the first digit would come back. /proc/sys/net shows the netns of the reading process, hence
 * this runs inside the namespace. Unreadable files show up on stderr.
 */
export const SYSCTL_SCRIPT = `
cd /proc/sys || exit 1
set --
for f in ${GLOBAL_SYSCTLS.join(' ')}; do [ -f "$f" ] && set -- "$@" "$f"; done
for d in net/ipv4/conf/*; do
  for k in ${CONF_SYSCTLS.join(' ')}; do [ -f "$d/$k" ] && set -- "$@" "$d/$k"; done
done
for d in net/ipv6/conf/*; do
  for k in ${CONF6_SYSCTLS.join(' ')}; do [ -f "$d/$k" ] && set -- "$@" "$d/$k"; done
done
if [ -d net/ipv4/vs ]; then for f in net/ipv4/vs/*; do [ -f "$f" ] && set -- "$@" "$f"; done; fi
[ $# -gt 0 ] || exit 0
grep -aH '' -- "$@"
exit 0
`;

export interface SnapshotOptions {
  /** Per-command timeout. */
  timeoutMs?: number;
}

/** Names of the namespaces `ip netns` knows. */
export async function listNetns(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string[]> {
  const r = await runCommand(['ip', 'netns', 'list'], timeoutMs);
  if (!r.ok) throw new NetwhyError(`cannot list network namespaces: ${r.reason}`);
  // Lines look like `name` or `name (id: 3)`.
  return r.stdout
    .split('\n')
    .map((l) => l.trim().replace(/\s+\(id: \d+\)$/, ''))
    .filter((l) => l !== '');
}

/** conntrack's insert_failed counter of a namespace ('host' = this one), null if unreadable. */
export async function conntrackInsertFailed(netns: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<number | null> {
  const argv = netns === HOST ? ['conntrack', '-S'] : ['ip', 'netns', 'exec', netns, 'conntrack', '-S'];
  const r = await runCommand(argv, timeoutMs);
  if (!r.ok) return null;
  try {
    return parseConntrackStats(r.stdout).insertFailed;
  } catch {
    return null;
  }
}

/** A namespace's rules with their counters (iptables-save -c, nft -j list ruleset); what fails is left out. */
export async function netfilterCounters(netns: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ iptablesSave?: string; nftJson?: unknown }> {
  const inNs = (...argv: string[]) => (netns === HOST ? argv : ['ip', 'netns', 'exec', netns, ...argv]);
  const [ipt, nft] = await Promise.all([runCommand(inNs('iptables-save', '-c'), timeoutMs), runCommand(inNs('nft', '-j', 'list', 'ruleset'), timeoutMs)]);
  const out: { iptablesSave?: string; nftJson?: unknown } = {};
  if (ipt.ok) out.iptablesSave = ipt.stdout;
  if (nft.ok) {
    try {
      out.nftJson = parseNftJson(nft.stdout);
    } catch {
      /* no reading: the rule's counter is judged as before */
    }
  }
  return out;
}

async function assertNetnsExists(netns: string, timeoutMs: number): Promise<void> {
  if (netns !== '' && !netns.includes('/') && netns !== '.' && netns !== '..') {
    // Fast path: the name is a file in /run/netns (where `ip netns` keeps them).
    try {
      if ((await readdir(NETNS_DIR)).includes(netns)) return;
    } catch {
      /* no /run/netns: fall through to ip's own listing */
    }
  }
  const names = await listNetns(timeoutMs).catch(() => [] as string[]);
  if (names.includes(netns) && !netns.includes('/')) return;
  throw new NetwhyError(`network namespace '${netns}' does not exist (ip netns list: ${names.length ? names.join(', ') : 'none'})`);
}

/**
 * Read the state of a named network namespace, or of the current one with 'host'.
 * Throws only when the namespace does not exist.
 */
export async function takeSnapshot(netns: string, opts: SnapshotOptions = {}): Promise<Snapshot> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const isHost = netns === HOST;
  if (!isHost) await assertNetnsExists(netns, timeoutMs);

  const t0 = performance.now();
  const takenAt = Date.now();
  // `ip -n` switches namespace inside ip itself; other tools go through `ip netns exec`.
  const ipArgv = (...args: string[]): string[] => (isHost ? ['ip', ...args] : ['ip', '-n', netns, ...args]);
  const inNs = (...argv: string[]): string[] => (isHost ? argv : ['ip', 'netns', 'exec', netns, ...argv]);
  const go = (argv: string[]): Promise<RunResult> => runCommand(argv, timeoutMs);

  const [sysctlR, linkR, addrR, route4R, route6R, rule4R, rule6R, iptR, iptVerR, ipsetR, nftR, ctR, ipvsR, ip6tR, neighR] = await Promise.all([
    go(inNs('sh', '-c', SYSCTL_SCRIPT)),
    go(ipArgv('-j', '-d', 'link', 'show')),
    go(ipArgv('-j', 'addr', 'show')),
    go(ipArgv('-j', '-4', 'route', 'show', 'table', 'all')),
    go(ipArgv('-j', '-6', 'route', 'show', 'table', 'all')),
    go(ipArgv('-j', '-4', 'rule', 'show')),
    go(ipArgv('-j', '-6', 'rule', 'show')),
    go(inNs('iptables-save', '-c')),
    // The binary and its backend are the same in every namespace: no need to enter it.
    go(['iptables', '--version']),
    go(inNs('ipset', 'save')),
    go(inNs('nft', '-j', 'list', 'ruleset')),
    go(inNs('conntrack', '-S')),
    // IPVS is per namespace and only there with the module loaded.
    go(inNs('sh', '-c', '[ -e /proc/net/ip_vs ] || exit 0; ipvsadm -Ln && echo --- && ipvsadm -Lnc')),
    go(inNs('ip6tables-save', '-c')),
    go(ipArgv('-j', 'neigh', 'show')),
  ]);

  const errors: string[] = [];
  /** Parse a command's output, moving failures into `errors`. */
  function take<T>(what: string, r: RunResult, parse: (s: string) => T): T | null {
    if (!r.ok) {
      errors.push(`${what}: ${r.reason}`);
      return null;
    }
    try {
      return parse(r.stdout);
    } catch (e) {
      errors.push(`${what}: ${(e as Error).message}`);
      return null;
    }
  }

  const sysctl = take('sysctl', sysctlR, parseSysctlDump) ?? {};
  for (const line of sysctlR.stderr.split('\n')) if (line.trim() !== '') errors.push(`sysctl: ${line.trim()}`);

  const links = take('links', linkR, parseIpLinks) ?? [];
  const addrs = take('addrs', addrR, parseIpAddrs) ?? [];
  const routes = [...(take('routes (IPv4)', route4R, (s) => parseIpRoutes(s, 4)) ?? []), ...(take('routes (IPv6)', route6R, (s) => parseIpRoutes(s, 6)) ?? [])];
  const rules = [...(take('rules (IPv4)', rule4R, (s) => parseIpRules(s, 4)) ?? []), ...(take('rules (IPv6)', rule6R, (s) => parseIpRules(s, 6)) ?? [])];

  const iptablesSave = take('iptables-save', iptR, (s) => s);
  const ip6tablesSave = take('ip6tables-save', ip6tR, (s) => s);
  const neigh = take('neigh', neighR, parseIpNeigh) ?? [];
  const iptablesBackend = take('iptables --version', iptVerR, parseIptablesBackend);
  const ipsetSave = take('ipset', ipsetR, (s) => s);
  const nftJson = take('nft', nftR, parseNftJson);
  const ipvs = take('ipvsadm', ipvsR, parseIpvsDump);

  let conntrack: ConntrackStats | null = null;
  if (ctR.ok) {
    conntrack = take('conntrack -S', ctR, parseConntrackStats);
  } else {
    // Without the conntrack tool, the kernel's own table has the same counters.
    const procR = await go(inNs('cat', '/proc/net/stat/nf_conntrack'));
    const proc = take('conntrack stats', procR, parseProcConntrackStat);
    if (proc) {
      const { entries, ...stats } = proc;
      conntrack = stats;
      if (sysctl['net.netfilter.nf_conntrack_count'] === undefined) sysctl['net.netfilter.nf_conntrack_count'] = String(entries);
    } else {
      errors.push(`conntrack -S: ${ctR.reason}`);
    }
  }

  const snap: Snapshot = {
    netns,
    takenAt,
    sysctl,
    links,
    addrs,
    routes,
    rules,
    neigh,
    iptablesSave,
    ip6tablesSave,
    iptablesBackend,
    ipsetSave,
    nftJson,
    conntrack,
    ipvs,
    errors,
    durationMs: 0,
  };
  const max = intSysctl(sysctl, 'net.netfilter.nf_conntrack_max');
  if (max !== undefined) snap.conntrackMax = max;
  const count = intSysctl(sysctl, 'net.netfilter.nf_conntrack_count');
  if (count !== undefined) snap.conntrackCount = count;
  snap.durationMs = performance.now() - t0;
  return snap;
}

function intSysctl(sysctl: Record<string, string>, key: string): number | undefined {
  const v = sysctl[key];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/**
 * Snapshots reused for `ttlMs`. Concurrent gets of the same namespace share one read; a failed
 * read (unknown namespace) is not cached.
 */
export class SnapshotCache {
  private readonly entries = new Map<string, { at: number; snap: Promise<Snapshot> }>();

  constructor(
    private readonly ttlMs = 2_000,
    private readonly take: (netns: string) => Promise<Snapshot> = (n) => takeSnapshot(n),
  ) {}

  get(netns: string): Promise<Snapshot> {
    const now = Date.now();
    const hit = this.entries.get(netns);
    if (hit && now - hit.at < this.ttlMs) return hit.snap;
    const snap = this.take(netns);
    const entry = { at: now, snap };
    this.entries.set(netns, entry);
    snap.catch(() => {
      if (this.entries.get(netns) === entry) this.entries.delete(netns);
    });
    return snap;
  }

  invalidate(netns?: string): void {
    if (netns === undefined) this.entries.clear();
    else this.entries.delete(netns);
  }
}
