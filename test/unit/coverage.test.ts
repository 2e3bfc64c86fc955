// Coverage you can see: every drop reason of a kernel, what it means, and the
// rule that explains it; an unexplained drop carries the kernel's meaning.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reasonReport, reasonsText } from '../../src/commands/doctor.js';
import { explainCapture } from '../../src/explain/capture.js';
import { RULES } from '../../src/explain/explain.js';
import { dropReasonNames } from '../../src/kernel/symbols.js';
import { reasonMeaning } from '../../src/model/drop-reasons.js';
import { decodeCapture } from '../../src/recording.js';
import { expectValid } from '../helpers/schema.js';

const DIR = resolve(__dirname, '../fixtures/recordings');
const load = (name: string) => decodeCapture(readFileSync(`${DIR}/${name}.nwrec`));
/** The drop reasons of the kernel that recorded the fixtures (6.18). */
const kernelReasons = () => new Map(load('no-socket').dropReasons);

describe('drop reason coverage', () => {
  it('every reason of the recording kernel has a meaning; the mask and MAX are not reasons', () => {
    const r = kernelReasons();
    expect(r.size).toBeGreaterThan(100);
    const missing = [...r.values()].filter((n) => n !== 'SUBSYS_MASK' && !reasonMeaning(n));
    expect(missing).toEqual([]);
    expect(dropReasonNames(new Map([['SKB_DROP_REASON_SUBSYS_MASK', 0xffff0000], ['SKB_DROP_REASON_MAX', 131], ['SKB_DROP_REASON_NO_SOCKET', 3]]))).toEqual(new Map([[3, 'NO_SOCKET']]));
  });

  it('names the rules that claim each reason, in the order they are tried, and counts them', () => {
    const rep = reasonReport(new Map([[3, 'NO_SOCKET'], [12, 'NETFILTER_DROP'], [58, 'NEIGH_FAILED'], [4, 'SOCKET_CLOSE'], [1, 'CONSUMED'], [999, 'SOMETHING_NEW']]));
    const by = Object.fromEntries(rep.reasons.map((r) => [r.name, r]));
    expect(rep.reasons.map((r) => r.value)).toEqual([1, 3, 4, 12, 58, 999]);
    expect(by.NO_SOCKET.rules).toEqual(RULES.filter((r) => r.reasons.includes('NO_SOCKET')).map((r) => r.name));
    expect(by.NETFILTER_DROP.rules).toContain('netfilter');
    expect(by.SOCKET_CLOSE).toMatchObject({ rules: [], weak: false, meaning: 'the socket it was queued to was closed' });
    expect(by.CONSUMED.weak).toBe(true);
    expect(by.SOMETHING_NEW.meaning).toBeNull();
    expect(rep.defined).toBe(6);
    expect(rep.explained).toBe(rep.reasons.filter((r) => r.rules.length).length);
    const text = reasonsText(rep).join('\n');
    expect(text).toContain(`drop reasons: this kernel's BTF defines 6, netwhy has a rule for ${rep.explained}`);
    expect(text).toMatch(/4 SOCKET_CLOSE +no rule yet\n +the socket it was queued to was closed/);
  });

  it('a doctor report with the coverage is valid against the schema', () => {
    const rep = reasonReport(kernelReasons());
    expectValid('doctor', {
      version: 1,
      kernel: { release: '6.18.0', machine: 'x86_64' },
      btf: { path: '/sys/kernel/btf/vmlinux', present: true, dropReasons: rep.defined },
      privileges: { root: true, capBpf: true, capPerfmon: true, capSysAdmin: true, capNetAdmin: true, canTrace: true, missing: [] },
      features: [], probes: [], explanations: [], ipvsPreflight: [], problems: [],
      reasonCoverage: JSON.parse(JSON.stringify(rep)),
    });
  });

  it('a drop no rule explains keeps its reason, location and the kernel\'s meaning in the evidence', () => {
    const c = load('no-socket');
    // the same capture, as if the kernel had called that drop SOCKET_RCVBUFF (no rule claims it)
    const value = c.dropReasons.find(([, n]) => n === 'NO_SOCKET')![0];
    const doc = explainCapture({ ...c, dropReasons: c.dropReasons.map(([v, n]) => [v, v === value ? 'SOCKET_RCVBUFF' : n]) });
    const v = doc.flows[0].verdict;
    expect(v).toMatchObject({ outcome: 'dropped', where: { reason: 'SOCKET_RCVBUFF', netns: 'nwr-server' }, cause: { type: 'unknown', ref: 'SOCKET_RCVBUFF' } });
    expect(v.evidence).toContain('SOCKET_RCVBUFF, as the kernel means it: the socket\'s receive buffer was full');
    expect(v.evidence.join('\n')).toMatch(/dropped in nwr-server on eth0 with SOCKET_RCVBUFF at tcp_v4_rcv/);
  });
});
