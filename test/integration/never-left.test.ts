// Flows whose first packet never left the host, explained on this kernel in
// namespaces of this test's own (nwe-*): a next hop that never answers ARP,
// and a connect() with no route at all. Both attach modes of the socket
// probe (tp_btf, and raw_tp when tp_btf is avoided) must give the flow.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainDoc } from '../../src/explain/document.js';
import { isRoot, run } from '../helpers/netns.js';
import { expectValid } from '../helpers/schema.js';

const CLI = resolve(__dirname, '../../dist/cli.js');
const A = 'nwe-a';
const B = 'nwe-b';

const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });

async function explain(argv: string[], env: Record<string, string> = {}): Promise<ExplainDoc> {
  const r = await run(process.execPath, [CLI, 'explain', '--json', '--settle', '300', '--', 'ip', 'netns', 'exec', A, ...argv], 30_000, { ...process.env, ...env });
  return expectValid('explain', JSON.parse(r.stdout) as ExplainDoc);
}

describe.skipIf(!isRoot())('flows whose first packet never left', () => {
  beforeAll(() => {
    for (const n of [A, B]) ip('netns', 'del', n);
    for (const n of [A, B]) ip('netns', 'add', n);
    ip('link', 'add', 'eth0', 'netns', A, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', B);
    ip('-n', A, 'addr', 'add', '10.199.60.1/24', 'dev', 'eth0');
    ip('-n', B, 'addr', 'add', '10.199.60.2/24', 'dev', 'eth0');
    for (const n of [A, B]) {
      ip('-n', n, 'link', 'set', 'lo', 'up');
      ip('-n', n, 'link', 'set', 'eth0', 'up');
    }
    // a network behind a next hop nobody has on the link
    ip('-n', A, 'route', 'add', '10.199.61.0/24', 'via', '10.199.60.9');
  });
  afterAll(() => {
    for (const n of [A, B]) ip('netns', 'del', n);
  });

  for (const mode of ['tp_btf', 'raw_tp']) {
    it(`the next hop never answers ARP (socket probe by ${mode}): one flow, NEIGH_FAILED in the neighbour queue, the next hop named`, async () => {
      ip('-n', A, 'neigh', 'flush', 'dev', 'eth0');
      const doc = await explain(['curl', '-sS', '-m', '5', 'http://10.199.61.7/'], mode === 'raw_tp' ? { NETWHY_AVOID_MODES: 'tp_btf' } : {});
      expect(doc.flows).toHaveLength(1);
      const v = doc.flows[0].verdict;
      expect(v).toMatchObject({ outcome: 'dropped', where: { netns: A, dev: 'eth0', reason: 'NEIGH_FAILED' }, cause: { type: 'address', ref: '10.199.60.9 dev eth0', value: 'neighbour FAILED', netns: A } });
      expect(v.evidence).toContain(`nobody answers ARP for 10.199.60.9 on eth0 in ${A}`);
      expect(v.evidence.some((e) => /^the socket went .*SYN_SENT → CLOSE/.test(e))).toBe(true);
    }, 40_000);
  }

  it('a UDP datagram to a next hop that never answers ARP (the socket known from sendmsg()): one flow, NEIGH_FAILED', async () => {
    ip('-n', A, 'neigh', 'flush', 'dev', 'eth0');
    // bash's /dev/udp sends one datagram; the shell stays until the neighbour entry has failed
    const doc = await explain(['bash', '-c', 'echo query > /dev/udp/10.199.61.7/53; sleep 4; exit 1']);
    expect(doc.flows).toHaveLength(1);
    expect(doc.flows[0]).toMatchObject({ proto: 'udp', orig: { dst: '10.199.61.7', dport: 53 } });
    expect(doc.flows[0].verdict).toMatchObject({ outcome: 'dropped', where: { reason: 'NEIGH_FAILED' }, cause: { type: 'address', ref: '10.199.60.9 dev eth0' } });
  }, 40_000);

  it('connect() with no route: the flow exists with no packet, ENETUNREACH, the failed lookup', async () => {
    const doc = await explain(['curl', '-sS', '-m', '2', 'http://10.199.99.9/']);
    expect(doc.exitCode).toBe(7);
    expect(doc.flows).toHaveLength(1);
    expect(doc.flows[0].hops).toEqual([]);
    expect(doc.flows[0].verdict.cause).toMatchObject({ type: 'route', ref: 'no route to 10.199.99.9', netns: A });
    expect(doc.flows[0].verdict.evidence.join('\n')).toContain('ENETUNREACH');
  }, 40_000);
});
