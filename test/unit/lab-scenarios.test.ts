// checkVerdict, the judgement of `netwhy lab run` and the lab tests, on
// hand-made documents: every kind of expect field can fail it, a key no check
// knows fails it, and a document that says what the scenario expects passes.
import { describe, expect, it } from 'vitest';
import type { ExplainDoc, FlowDoc } from '../../src/explain/document.js';
import { type ClientRun, type Scenario, checkVerdict, expectKeyProblems, loadScenarios } from '../../src/lab/scenarios.js';

function failing(): Scenario {
  return {
    name: 'svip',
    description: 'd',
    fault: 'f',
    client: { netns: 'nw-client', argv: ['curl', 'http://192.168.0.100:6443/'] },
    expect: {
      outcome: 'refused',
      exitCode: 7,
      baselineExitCode: 52,
      stdoutIncludes: 'attempt 1',
      verdictNetns: 'nw-node1',
      verdictDev: 'eth0',
      dropReason: 'NETFILTER_DROP',
      counter: 'TcpOutRsts',
      cause: { type: 'iptables-rule', ref: '-A X -j REJECT', value: 'REJECT', netns: 'nw-node1', ipset: { name: 'kube-router-svip', member: '192.168.0.100' }, k8s: [{ kind: 'networkpolicy', namespace: 'default', name: 'allow-tools' }, { kind: 'pod', namespace: 'default', name: 'web-1' }] },
      evidenceIncludes: ['ipset kube-router-svip contains 192.168.0.100', "the rule's   counter shows * packet"],
      nat: [{ kind: 'dnat', netns: 'nw-node1', to: { dst: '10.244.2.2', dport: 80 }, by: { type: 'iptables-rule' } }],
    },
  };
}

function flow(over: Partial<FlowDoc['verdict']> = {}): FlowDoc {
  return {
    proto: 'tcp',
    orig: { src: '192.168.0.10', sport: 40000, dst: '192.168.0.100', dport: 6443 },
    nat: [{ kind: 'dnat', to: { dst: '10.244.2.2', dport: 80 }, by: { type: 'iptables-rule', ref: '-A KUBE-SEP-X -j DNAT' }, netns: 'nw-node1' }],
    hops: [],
    verdict: {
      outcome: 'dropped',
      where: { netns: 'nw-node1', dev: 'eth0', function: 'nft_do_chain', reason: 'NETFILTER_DROP' },
      cause: { type: 'iptables-rule', ref: '-A X -j REJECT', value: 'REJECT', netns: 'nw-node1', ipset: { name: 'kube-router-svip', member: '192.168.0.100' }, k8s: [{ kind: 'networkpolicy', namespace: 'default', name: 'allow-tools' }, { kind: 'pod', namespace: 'default', name: 'web-1' }] },
      evidence: ['ipset kube-router-svip contains 192.168.0.100, which is what the rule matched', "the rule's counter shows 1 packet"],
      ...over,
    },
  };
}

function docOf(...flows: FlowDoc[]): ExplainDoc {
  return { version: 1, command: ['curl'], exitCode: 7, flows, lost: { ringbuf: 0 } };
}

function run(): ClientRun {
  return { stdout: 'attempt 1: curl exit 7\n', baselineExitCode: 52, counter: { name: 'TcpOutRsts', netns: 'nw-node1', before: 4, after: 5 } };
}

describe('checkVerdict', () => {
  it('passes a document and a run that say everything the scenario expects', () => {
    expect(checkVerdict(failing(), docOf(flow()), run())).toEqual({ ok: true, problems: [] });
  });

  it('passes a delivered flow with no cause for a success scenario (verdictNetns null: no drop location)', () => {
    const s: Scenario = { ...failing(), expect: { outcome: 'success', exitCode: 0, stdoutIncludes: 'nw-pod2', verdictNetns: null, cause: null } };
    const d = docOf({ ...flow({ outcome: 'delivered', where: undefined, cause: { type: 'unknown', ref: 'none' }, evidence: [] }), nat: [] });
    d.exitCode = 0;
    expect(checkVerdict(s, d, { stdout: 'nw-pod2\n' }).problems).toEqual([]);
  });

  it('judges a failure scenario by its first flow that was not delivered', () => {
    const ok = flow({ outcome: 'delivered', where: undefined, cause: { type: 'unknown', ref: 'none' }, evidence: [] });
    expect(checkVerdict(failing(), docOf(ok, flow()), run()).problems).toEqual([]);
  });

  // Each case breaks one thing; checkVerdict must name it, and only it.
  const cases: [string, (s: Scenario, d: ExplainDoc, r: ClientRun) => void, RegExp][] = [
    ['fails when the client exit code differs from expect.exitCode', (_s, d) => { d.exitCode = 28; }, /the client exited 28, expected 7/],
    ['fails when the client output lacks expect.stdoutIncludes', (_s, _d, r) => { r.stdout = 'ok=12 failed=0\n'; }, /output has no "attempt 1"/],
    ['fails when expect.stdoutIncludes is set and no output was captured', (_s, _d, r) => { delete r.stdout; }, /stdoutIncludes: the client's output was not captured/],
    ['fails when the exit code before the fault differs from expect.baselineExitCode', (_s, _d, r) => { r.baselineExitCode = 0; }, /without the fault the client exited 0, expected 52/],
    ['fails when expect.baselineExitCode is set and the client was not run without the fault', (_s, _d, r) => { delete r.baselineExitCode; }, /baselineExitCode: the client was not run without the fault/],
    ['fails when the expect.counter did not grow while the client ran', (_s, _d, r) => { r.counter!.after = 4; }, /counter TcpOutRsts in nw-node1 did not grow while the client ran \(4 → 4\)/],
    ['fails when the counter was measured in another namespace than expect.verdictNetns', (_s, _d, r) => { r.counter!.netns = 'nw-node2'; }, /counter: measured TcpOutRsts in nw-node2, expected TcpOutRsts in nw-node1/],
    ['fails when expect.counter is set and was not measured', (_s, _d, r) => { delete r.counter; }, /counter: TcpOutRsts was not measured/],
    ['fails when the outcome differs from expect.outcome', (_s, d) => { d.flows[0].verdict.outcome = 'unknown'; }, /outcome unknown, expected dropped/],
    ['fails when the verdict is in another namespace than expect.verdictNetns', (_s, d) => { d.flows[0].verdict.where!.netns = 'nw-node2'; }, /verdict in "nw-node2", expected "nw-node1"/],
    ['fails when the verdict has no drop location and expect.verdictNetns names one', (s, d) => { delete s.expect.verdictDev; delete s.expect.dropReason; delete d.flows[0].verdict.where; }, /verdict in null, expected "nw-node1"/],
    ['fails when the drop device differs from expect.verdictDev', (_s, d) => { d.flows[0].verdict.where!.dev = 'eth1'; }, /verdict on device "eth1", expected "eth0"/],
    ['fails when the drop reason differs from expect.dropReason', (_s, d) => { d.flows[0].verdict.where!.reason = 'NO_SOCKET'; }, /drop reason "NO_SOCKET", expected "NETFILTER_DROP"/],
    ['fails when cause.type differs', (_s, d) => { d.flows[0].verdict.cause.type = 'sysctl'; }, /cause.type "sysctl", expected "iptables-rule"/],
    ['fails when cause.ref differs', (_s, d) => { d.flows[0].verdict.cause.ref = '-A Y -j DROP'; }, /cause.ref "-A Y -j DROP", expected "-A X -j REJECT"/],
    ['fails when cause.value differs', (_s, d) => { d.flows[0].verdict.cause.value = 'DROP'; }, /cause.value "DROP", expected "REJECT"/],
    ['fails when cause.netns differs', (_s, d) => { d.flows[0].verdict.cause.netns = 'nw-node2'; }, /cause.netns "nw-node2", expected "nw-node1"/],
    ['fails when cause.ipset names another member', (_s, d) => { d.flows[0].verdict.cause.ipset!.member = '10.96.0.10'; }, /cause.ipset .*"10.96.0.10".*, expected .*"192.168.0.100"/],
    ['fails when the verdict names no ipset and expect.cause.ipset does', (_s, d) => { delete d.flows[0].verdict.cause.ipset; }, /cause.ipset none, expected/],
    ['fails when cause.k8s names another policy', (_s, d) => { d.flows[0].verdict.cause.k8s![0].name = 'default-deny'; }, /cause.k8s .*"default-deny".*, expected .*"allow-tools"/],
    ['fails when cause.k8s names more objects than expected (the list is compared whole)', (_s, d) => { d.flows[0].verdict.cause.k8s!.push({ kind: 'networkpolicy', namespace: 'default', name: 'extra' }); }, /cause.k8s .*"extra".*, expected/],
    ['fails when the verdict names no Kubernetes object and expect.cause.k8s does', (_s, d) => { delete d.flows[0].verdict.cause.k8s; }, /cause.k8s none, expected/],
    ['fails when a cause is named and expect.cause is null', (s) => { s.expect.cause = null; }, /cause iptables-rule -A X -j REJECT, expected none/],
    ['fails when no evidence line matches an expect.evidenceIncludes pattern', (_s, d) => { d.flows[0].verdict.evidence[1] = "the rule's counter is unknown"; }, /no evidence line matches "the rule's   counter shows \* packet"/],
    ['fails when an expect.evidenceIncludes pattern is only met across two lines', (s) => { s.expect.evidenceIncludes = ['matched * counter']; }, /no evidence line matches "matched \* counter"/],
    ['fails when a NAT step differs from expect.nat', (_s, d) => { (d.flows[0].nat[0].to as { dst: string }).dst = '10.244.2.3'; }, /nat\[0\] .*"10.244.2.3".*, expected .*"10.244.2.2"/],
    ['fails when the flow has more NAT steps than expect.nat', (_s, d) => { d.flows[0].nat.push({ kind: 'snat', to: { src: '192.168.0.11', sport: 1 }, by: { type: 'iptables-rule', ref: 'MASQUERADE' }, netns: 'nw-node1' }); }, /2 NAT step\(s\) \(dnat in nw-node1, snat in nw-node1\), expected 1/],
    ['fails when no flow was traced', (_s, d) => { d.flows = []; }, /no flow was traced/],
    ['fails on an expect key no check knows (a typo is not ignored)', (s) => { (s.expect as unknown as Record<string, unknown>).dropReasons = 'NO_SOCKET'; }, /expect.dropReasons is not a known expectation/],
    ['fails on an expect.cause key that is not a field of netwhy\'s cause', (s) => { (s.expect.cause as Record<string, unknown>).device = 'eth1'; }, /expect.cause.device is not a field of netwhy's cause/],
    ['fails when a required expect key is missing', (s) => { delete (s.expect as Partial<Scenario['expect']>).exitCode; }, /expect.exitCode is missing/],
  ];
  for (const [title, breakIt, problem] of cases) {
    it(title, () => {
      const s = failing();
      const d = docOf(flow());
      const r = run();
      breakIt(s, d, r);
      const check = checkVerdict(s, d, r);
      expect(check.ok).toBe(false);
      expect(check.problems).toHaveLength(1);
      expect(check.problems[0]).toMatch(problem);
    });
  }
});

describe('lab/scenarios.json', () => {
  it('every scenario\'s expect uses only keys checkVerdict checks, and has the required ones', () => {
    const all = loadScenarios();
    expect(all.length).toBeGreaterThan(0);
    expect(all.flatMap((s) => expectKeyProblems(s.expect).map((p) => `${s.name}: ${p}`))).toEqual([]);
  });
});
