// conntrack insert failure: two packets of one new tuple (parallel A and AAAA
// queries from one UDP socket) race to confirm their conntrack entry; the
// loser is dropped by nf_conntrack_confirm (NF_DROP → NETFILTER_DROP) and
// insert_failed grows. The DNS client then waits for its 5 s timeout.
import { endpointText } from '../../model/ip.js';
import { PktFlag } from '../../abi.js';
import { protoName } from '../../model/protocols.js';
import { ctStates } from './netfilter.js';
import type { ExplainRule } from '../types.js';

export const conntrackInsertRule: ExplainRule = {
  name: 'conntrack-insert-failed',
  reasons: ['NETFILTER_DROP'],
  explain({ drop, state, netnsName }) {
    const st = state(drop.pkt.netns);
    const before = st?.insertFailed?.before;
    const after = st?.insertFailed?.after;
    if (before === undefined || after === undefined || after <= before) return null;
    const states = ctStates(drop.pkt.flags, drop.pkt.ctStatus);
    if (!states.includes('NEW') || !(drop.pkt.flags & PktFlag.HAS_CT)) return null;
    const ns = netnsName(drop.pkt.netns);
    const t = drop.pkt.tuple;
    const udp = t.proto === 17;
    return {
      cause: { type: 'conntrack', ref: 'insert_failed', value: `+${after - before}`, netns: ns },
      evidence: [
        `conntrack insert_failed in ${ns} grew from ${before} to ${after} while the command ran`,
        `the dropped ${protoName(t.proto)} packet ${endpointText(t)} was the first of a new conntrack entry (NEW), and no iptables rule of ${ns} drops it`,
        udp
          ? 'two packets of the same new UDP tuple raced to insert their conntrack entry (a resolver sending A and AAAA queries in parallel from one socket); the loser was dropped'
          : 'two packets of the same new tuple raced to insert their conntrack entry; the loser was dropped',
      ],
      fix: udp
        ? 'have the resolver send the queries one after the other or from different sockets: `options single-request-reopen` in the pod\'s resolv.conf (dnsConfig.options in Kubernetes), or run NodeLocal DNSCache; kernels ≥ 5.0 resolve most such clashes'
        : 'find what sends two packets of one new connection at once; newer kernels resolve most conntrack clashes',
    };
  },
};
