// What the rules may know of one network namespace: its addresses, routes,
// sysctls, netfilter and IPVS, captured before the rules run.
import type { IpvsState } from './ipvs.js';
import type { NetfilterEvaluator } from './netfilter.js';

export interface AddrInfo {
  dev: string;
  address: string;
  prefixlen: number;
  secondary: boolean;
}

export interface RouteInfo {
  table: string;
  dst: string;
  /** absent when the route's text does not tell (an `unreachable default` listed without -4/-6) */
  family?: 4 | 6;
  dev?: string;
  gateway?: string;
  type: string;
}

export interface LinkInfo {
  name: string;
  /** veth, bridge, …; absent for lo and physical NICs */
  kind?: string;
  /** the bridge (or bond) it is a port of */
  master?: string;
  mtu?: number;
  up?: boolean;
}

export interface NeighInfo {
  dst: string;
  dev: string;
  lladdr?: string;
  state: string[];
}

/** What the rules may know of one network namespace. */
export interface NetnsState {
  name: string;
  sysctl(key: string): string | undefined;
  addrs: AddrInfo[];
  /** absent when not captured (so whether a device is a bridge port, or its MTU, is not known) */
  links?: LinkInfo[];
  routes: RouteInfo[];
  /** Neighbour (ARP/ND) entries; absent when not captured. */
  neigh?: NeighInfo[];
  /** Evaluate a packet through a netfilter hook; undefined when no ruleset could be read. */
  netfilter?: NetfilterEvaluator;
  /** IPVS services and connections; null when the namespace has no IPVS. */
  ipvs: IpvsState | null;
  /** conntrack counters after the command (conntrack -S), summed over CPUs; absent when not read. */
  conntrack?: { invalid: number; drop: number; earlyDrop: number };
  /** conntrack insert_failed before the traced command and after it. */
  insertFailed?: { before?: number; after?: number };
  errors: string[];
}
