// IPVS as netwhy knows it: the state ipvsadm lists, and its objects named the
// way ipvsadm prints them.
import { type IpvsCtlRecord, type IpvsErrRecord, IpvsErrKind, IpvsOp, type IpvsRecord, type IpvsService } from '../abi.js';
import { hostPort } from './ip.js';

export interface IpvsRealServer {
  addr: string;
  port: number;
  forward: string; // Masq, Route, Tunnel, Local
  weight: number;
  active: number;
  inactive: number;
}

export interface IpvsVirtualService {
  /** "TCP 10.96.0.20:80 rr", or "FWM 5 rr": how netwhy names it in causes. */
  ref: string;
  protocol: string; // TCP, UDP, SCTP, FWM
  addr: string; // the address, or the fwmark for FWM
  port: number;
  scheduler: string;
  flags: string;
  dests: IpvsRealServer[];
}

export interface IpvsConnEntry {
  protocol: string;
  expire: string;
  state: string;
  source: string; // addr:port
  virtual: string;
  destination: string;
  line: string;
}

export interface IpvsState {
  services: IpvsVirtualService[];
  conns: IpvsConnEntry[];
}

const PROTO: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

/** "TCP 192.168.0.11:30080 rr", "FWM 5 rr" — a line of `ipvsadm -Ln`. */
export function serviceRef(s: IpvsService): string {
  if (s.fwmark) return `FWM ${s.fwmark} ${s.scheduler}`.trim();
  return `${PROTO[s.protocol] ?? `proto-${s.protocol}`} ${hostPort(s.addr, s.port)} ${s.scheduler}`.trim();
}

/** "-> 10.244.2.2:80", as ipvsadm lists a real server. */
export function destRef(addr: string, port: number): string {
  return `-> ${hostPort(addr, port)}`;
}

const OP_TEXT: Record<number, string> = {
  [IpvsOp.ADD_SERVICE]: 'added service',
  [IpvsOp.EDIT_SERVICE]: 'edited service',
  [IpvsOp.DEL_SERVICE]: 'deleted service',
  [IpvsOp.ADD_DEST]: 'added real server',
  [IpvsOp.EDIT_DEST]: 'edited real server',
  [IpvsOp.DEL_DEST]: 'deleted real server',
};

export function ctlText(r: IpvsCtlRecord): string {
  const dest = r.op >= IpvsOp.ADD_DEST ? ` ${destRef(r.daddr, r.dport)}` : '';
  const failed = r.ret < 0 ? ` (failed: ${r.ret})` : '';
  return `${r.comm}[${r.pid}] ${OP_TEXT[r.op] ?? `op ${r.op}`} ${serviceRef(r.svc)}${dest}${failed}`;
}

export function errText(r: IpvsErrRecord): string {
  if (r.err === IpvsErrKind.NO_DEST) return `${serviceRef(r.svc)}: ${r.msg || 'no destination available'}`;
  if (r.err === IpvsErrKind.HOOK_DROP) return 'the IPVS hook dropped the packet (NF_DROP)';
  return `NAT transmit to ${destRef(r.daddr, r.dport)} of ${serviceRef(r.svc)} failed`;
}

/** One line describing any IPVS record. */
export function ipvsText(r: IpvsRecord): string {
  switch (r.kind) {
    case 'ipvs-conn':
      return `new connection ${hostPort(r.client.src, r.client.sport)} > ${serviceRef(r.svc)} ${destRef(r.daddr, r.dport)}`;
    case 'ipvs-err':
      return errText(r);
    case 'ipvs-ctl':
      return ctlText(r);
  }
}
