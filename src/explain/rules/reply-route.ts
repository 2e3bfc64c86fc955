// No route back: the request reached its receiver, but the receiver's answer
// (a SYN-ACK, a reply, an ICMP error) found no route back to the sender. The
// kernel consumes the request without a drop, so the failed output lookup,
// tied in the kernel to the request being received, is the only trace.
import { FibFlag, type FibRecord } from '../../abi.js';
import { recordPkt } from '../../journey.js';
import { protoName } from '../../model/protocols.js';
import { lookupText, mainTableText } from '../evidence.js';
import type { FlowRule } from '../types.js';

const TABLES: Record<number, string> = { 253: 'default', 254: 'main', 255: 'local' };

const tableName = (t: number) => TABLES[t] ?? String(t);

export const noRouteBackRule: FlowRule = {
  name: 'no-route-back',
  explain({ flow, state, netnsName }) {
    const records = flow.journeys.flatMap((j) => j.records);
    const replies = records.filter((r): r is FibRecord => r.kind === 'fib' && (r.flags & FibFlag.TIED_REPLY) !== 0);
    const ok = new Set(replies.filter((f) => f.err === 0).map((f) => `${f.netns}|${f.dst}`));
    const failed = replies.filter((f) => f.err < 0 && !ok.has(`${f.netns}|${f.dst}`));
    if (!failed.length) return null;
    const f = failed[0];
    const ns = netnsName(f.netns);
    const request = flow.journeys.find((j) => j.records.includes(f))?.records.find((r) => r.kind === 'rx' && recordPkt(r)!.netns === f.netns);
    const p = request && recordPkt(request);
    const evidence: string[] = [];
    if (p) evidence.push(`the request ${protoName(p.tuple.proto)} ${p.tuple.src}:${p.tuple.sport} > ${p.tuple.dst}:${p.tuple.dport} reached ${ns} on ${p.dev}`);
    const answer = f.proto === 6 ? 'its answer (SYN-ACK or reply)' : f.proto === 1 ? 'its ICMP error' : 'its reply';
    evidence.push(`${answer} needs a route from ${ns} back to ${f.dst}: ${lookupText(f, ns)}`);
    if (failed.length > 1) evidence.push(`${failed.length} such lookups failed (the sender retransmitted, the answer found no way back each time)`);
    const st = state(f.netns);
    if (st) {
      evidence.push(`table main in ${ns}: ${mainTableText(st.routes, 4)} — nothing covers ${f.dst}`);
    }
    evidence.push(`the kernel consumed the request without an answer and without a drop: the sender sees a timeout`);
    return {
      cause: { type: 'route', ref: `no route back to ${f.dst} (table ${tableName(f.table)})`, value: 'unreachable', netns: ns },
      evidence,
      fix: `add a route back to ${f.dst} in ${ns} (the client's network or pod CIDR via the node that leads there, or a default route); with asymmetric routing, SNAT the request so its reply returns the way it came`,
    };
  },
};
