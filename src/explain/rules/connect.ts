// connect() (or sendmsg()) failed before any packet existed: the output route
// lookup of the process's socket found no usable route, so the call returned
// ENETUNREACH or EHOSTUNREACH and no device ever saw a packet. The failed
// lookups are the only trace, and the namespace's routes say why.
import type { FibRecord } from '../../abi.js';
import { isSocketLookup } from '../flows.js';
import { lookupText, mainTableText } from '../evidence.js';
import { recordPkt } from '../../journey.js';
import { errnoText, lookupErrno } from '../../model/socket.js';
import type { FlowRule } from '../types.js';
import { bestRoute } from '../../model/route.js';

export const connectFailedRule: FlowRule = {
  name: 'connect-failed',
  explain({ flow, state, netnsName }) {
    const records = flow.journeys.flatMap((j) => j.records);
    if (records.some((r) => recordPkt(r))) return null; // a packet existed: not this
    const lookups = records.filter((r): r is FibRecord => r.kind === 'fib' && isSocketLookup(r) && r.err < 0);
    if (!lookups.length) return null;
    const f = lookups[lookups.length - 1];
    const ns = netnsName(f.netns);
    const errno = lookupErrno(f.err);
    const call = f.proto === 6 ? 'connect()' : 'connect() or sendmsg()';
    const evidence = [
      `${call} to ${f.dst}${f.dport ? `:${f.dport}` : ''} failed before any packet existed: no device saw one`,
      ...lookups.map((l) => lookupText(l, ns)),
      `the kernel returned ${errnoText(errno)} to the process (pid ${f.pid})`,
    ];
    const st = state(f.netns);
    const route = st ? bestRoute(st.routes, f.dst) : undefined;
    if (route && route.type !== 'unicast') {
      evidence.push(`table main in ${ns} has "${route.type} ${route.dst}" for ${f.dst}`);
      return {
        cause: { type: 'route', ref: `${route.type} ${route.dst}`, value: route.type, netns: ns },
        evidence,
        fix: `remove or replace the ${route.type} route ${route.dst} in ${ns} (ip route del ${route.type} ${route.dst})`,
      };
    }
    if (st) {
      evidence.push(`table main in ${ns}: ${mainTableText(st.routes, 4)} — nothing covers ${f.dst} and there is no default route`);
    }
    return {
      cause: { type: 'route', ref: `no route to ${f.dst}`, value: 'unreachable', netns: ns },
      evidence,
      fix: `add a route covering ${f.dst} in ${ns} (ip -n ${ns} route add ${f.dst} via <gateway>), or a default route`,
    };
  },
};
