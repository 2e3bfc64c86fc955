// What iptables' targets do to the packet and the walk, besides jumps and RETURN (the walker's):
// verdicts, MARK/CONNMARK on the mark and ctmark, NAT rewrites, NOTRACK, and the targets whose
// outcome the walk cannot predict.
import { parseIp } from '../ip.js';
import { rewriteNat } from './walk.js';
import type { NatRewrite, Uncertainty } from './xt-result.js';
import type { Rule, TableName, Target, Verdict } from './xt-ruleset.js';
import type { State } from './xt-state.js';

export type NoteUncertain = (rule: Rule, reason: string, assumed: Uncertainty['assumed']) => void;

/**
 * Apply a matching rule's target (not a chain, not RETURN): the verdict that ends the table, or
 * null when the walk goes on. `trail` records what the rule did.
 */
export function applyTarget(
  t: Exclude<Target, { kind: 'chain' | 'return' }>,
  rule: Rule,
  table: TableName,
  st: State,
  trail: (effect: string) => void,
  uncertain: NoteUncertain,
): Verdict | null {
  switch (t.kind) {
    case 'accept':
      trail('ACCEPT');
      return 'ACCEPT';
    case 'drop':
      trail('DROP');
      return 'DROP';
    case 'reject':
      trail(`REJECT with ${t.with}`);
      return 'REJECT';
    case 'mark': {
      const before = st.mark;
      if (st.mark !== null) st.mark = ((st.mark & ~t.mask) ^ t.value) >>> 0;
      else if (t.mask === 0xffffffff) st.mark = t.value; // a full-mask set makes the mark known again
      trail(`mark ${hex(before)} -> ${hex(st.mark)}`);
      return null;
    }
    case 'mark-unknown':
      st.mark = null;
      trail(`${t.name}: mark set to a value that is not computed`);
      uncertain(rule, `${t.name} sets the mark to a value that is not computed; later mark matches are uncertain`, 'continue');
      return null;
    case 'connmark':
      if (t.op === 'set') {
        if (st.ctmark !== null) st.ctmark = ((st.ctmark & ~t.mask) ^ t.value) >>> 0;
        else if (t.mask === 0xffffffff) st.ctmark = t.value;
        trail(`ctmark -> ${hex(st.ctmark)}`);
      } else if (t.op === 'save') {
        st.ctmark = st.mark === null || st.ctmark === null ? null : ((st.ctmark & ~t.ctmask) ^ (st.mark & t.nfmask)) >>> 0;
        trail(`save mark to ctmark -> ${hex(st.ctmark)}`);
      } else {
        const before = st.mark;
        st.mark = st.mark === null || st.ctmark === null ? null : ((st.mark & ~t.nfmask) ^ (st.ctmark & t.ctmask)) >>> 0;
        trail(`restore mark from ctmark: ${hex(before)} -> ${hex(st.mark)}`);
        if (st.mark === null) uncertain(rule, 'CONNMARK --restore-mark without a known ctmark: later mark matches are uncertain', 'continue');
      }
      return null;
    case 'notrack':
      st.pkt.ctstate = ['UNTRACKED'];
      trail('NOTRACK: conntrack will not track this packet');
      return null;
    case 'nat':
      if (table !== 'nat') {
        uncertain(rule, `${t.name} outside the nat table has no effect`, 'continue');
        return null;
      }
      applyNat(t, rule, table, st, uncertain);
      trail(`${t.name}${t.to ? ` to ${t.to}` : ''}`);
      return 'ACCEPT';
    case 'passive':
      trail(`${t.name} (does not change the verdict)`);
      return null;
    case 'queue':
      trail(`${t.name}: the verdict comes from a user-space program`);
      uncertain(rule, `${t.name} hands the packet to user space, which decides`, 'stop');
      return 'UNKNOWN';
    case 'opaque-terminal':
      trail(t.name);
      uncertain(rule, t.why, 'stop');
      return 'UNKNOWN';
    case 'unknown':
      trail(`${t.name} (unknown target, assumed not to end the chain)`);
      uncertain(rule, t.why, 'continue');
      return null;
  }
}

function hex(v: number | null): string {
  return v === null ? 'unknown' : `0x${v.toString(16)}`;
}

function applyNat(t: Extract<Target, { kind: 'nat' }>, rule: Rule, table: TableName, st: State, uncertain: NoteUncertain): void {
  const rw: NatRewrite = { kind: t.nat, table, chain: rule.chain, rule, to: t.to };
  if (t.addr !== undefined) rw.addr = t.addr;
  if (t.port !== undefined) rw.port = t.port;
  st.nat.push(rw);
  if (t.range) uncertain(rule, `${t.name} to a range (${t.to}): the packet was rewritten to the first address/port`, 'continue');
  const ports = st.pkt.proto === 6 || st.pkt.proto === 17 || st.pkt.proto === 132 || st.pkt.proto === 136;
  const port = ports ? t.port : undefined;
  switch (t.nat) {
    case 'dnat':
    case 'redirect': {
      // REDIRECT of a locally sent packet goes to the loopback address
      const loopback = t.nat === 'redirect' && st.hook === 'OUTPUT' ? (st.dst.family === 4 ? '127.0.0.1' : '::1') : undefined;
      rewriteNat(st.pkt, 'dst', t.addr ?? loopback, port);
      st.dst = parseIp(st.pkt.dst)!;
      break;
    }
    case 'snat':
    case 'masquerade':
      rewriteNat(st.pkt, 'src', t.addr, port);
      st.src = parseIp(st.pkt.src)!;
      break;
    case 'netmap':
      uncertain(rule, 'NETMAP rewrites by prefix; the new address is not computed', 'continue');
      break;
  }
}
