// The published schemas (docs/schemas) against what netwhy makes: real
// documents and lines pass, and the schemas are strict enough to fail a
// document with a field removed or renamed, an unknown value or another version.
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IpvsOp, type IpvsRecord, type NwRecord, decodeBatch } from '../../src/abi.js';
import { DOCTOR_VERSION, type DoctorReport, ipvsPreflight, supportedExplanations } from '../../src/commands/doctor.js';
import type { NameSourceReport } from '../../src/model/k8s.js';
import { explainCapture } from '../../src/explain/capture.js';
import { DOCUMENT_VERSION, type ExplainDoc } from '../../src/explain/document.js';
import { FlowPipeline } from '../../src/explain/pipeline.js';
import { reasonName } from '../../src/kernel/symbols.js';
import { type Capture, decodeCapture } from '../../src/recording.js';
import { OUTPUT_VERSION, type EventView, eventView, summarize } from '../../src/render/events.js';
import type { ProbeReport, SessionCounters } from '../../src/tracer.js';
import { expectValid, schemaErrors, type SchemaKind } from '../helpers/schema.js';

const RECORDINGS = resolve(__dirname, '../fixtures/recordings');
const SCHEMAS = resolve(__dirname, '../../docs/schemas');
const names = readdirSync(RECORDINGS).filter((f) => f.endsWith('.nwrec')).map((f) => f.replace(/\.nwrec$/, ''));
const load = (name: string): Capture => decodeCapture(readFileSync(`${RECORDINGS}/${name}.nwrec`));
/** A document as a consumer reads it: through JSON. */
const asJson = <T>(v: T): T => JSON.parse(JSON.stringify(v));
const explained = (name: string) => asJson(explainCapture(load(name)));

/** Every record of a capture as the trace --json line trace prints for it. */
function eventLines(c: Capture): EventView[] {
  const reasons = new Map(c.dropReasons);
  const syms = new Map(c.symbols.map(([addr, name]) => [addr, name]));
  const netns = new Map(c.netns);
  const ctx = { t0: -1, netnsName: (i: number) => netns.get(i) ?? String(i), reasonName: (v: number) => reasonName(reasons, v), symbol: (a: bigint) => syms.get(a.toString(16)) ?? `0x${a.toString(16)}` };
  const pipeline = new FlowPipeline();
  return decodeBatch(c.records).records.flatMap((r: NwRecord) => {
    if (ctx.t0 < 0) ctx.t0 = r.ts;
    const journey = pipeline.add(r);
    // socket states and loss reports are no event lines (trace skips them too)
    return r.kind === 'sock' || r.kind === 'lost' ? [] : [asJson(eventView(r, journey, ctx))];
  });
}

const svc = { af: 2, protocol: 6, addr: '192.168.0.11', port: 30080, fwmark: 0, flags: 0, scheduler: 'rr' };
const client = { family: 2, proto: 6, src: '192.168.0.10', dst: '192.168.0.11', sport: 40000, dport: 30080 };
const IPVS: IpvsRecord[] = [
  { kind: 'ipvs-conn', ts: 1, cpu: 0, probe: 5, client, daddr: '10.244.2.2', dport: 80, connFlags: 0, netns: 7, svc },
  { kind: 'ipvs-err', ts: 2, cpu: 0, probe: 6, err: 1, ret: 0, netns: 7, conn: client, daddr: '', dport: 0, svc, msg: 'no destination available' },
  { kind: 'ipvs-ctl', ts: 3, cpu: 0, probe: 9, op: IpvsOp.DEL_SERVICE, ret: 0, pid: 4242, comm: 'kube-proxy', netns: 7, svc, daddr: '', dport: 0, weight: 0 },
];
const ipvsCtx = { t0: 0, netnsName: () => 'nw-node1', reasonName: String, symbol: String };

const probe = (name: string, mode: string | null, skipped: ProbeReport['skipped'] = []): ProbeReport => ({
  probe: name, mode, program: mode ? `${name}__${mode}` : null, skipped, attached: false,
});

/** What collectK8sFacts reports on a node with containerd and kube-proxy but no kubeconfig. */
const NAME_SOURCES: NameSourceReport[] = [
  { source: 'containerd', status: 'ok', detail: '/run/containerd/containerd.sock, namespace k8s.io: 2 pod sandboxes', pods: 2 },
  { source: 'crictl', status: 'absent', detail: 'crictl: not installed' },
  { source: 'cni-cache', status: 'ok', detail: '/var/lib/cni/results: 2 files, 2 pod attachments (2 with a live netns)', pods: 2 },
  { source: 'kube-proxy-rules', status: 'ok', detail: '4 from iptables comments, 0 from nftables table kube-proxy', services: 4 },
  { source: 'api', status: 'error', detail: 'https://127.0.0.1:6443 (/root/.kube/config): connect ECONNREFUSED 127.0.0.1:6443' },
];

/** A doctor report as this kernel gives one, built from its pure parts (no BPF needed). */
function doctorReport(): DoctorReport {
  const probes = [
    probe('kfree_skb', 'tp_btf'),
    probe('fib_table_lookup', 'raw_tp', [{ mode: 'tp_btf', reason: 'tp_btf avoided on request (NETWHY_AVOID_MODES)' }]),
    probe('ip_vs_conn_new', null, [{ mode: 'fexit', reason: 'function ip_vs_conn_new not in kernel or module BTF (module not loaded?)' }]),
  ];
  return asJson({
    version: DOCTOR_VERSION,
    kernel: { release: '6.18.0', machine: 'x86_64' },
    btf: { path: '/sys/kernel/btf/vmlinux', present: true, dropReasons: 120 },
    privileges: { root: true, capBpf: true, capPerfmon: true, capSysAdmin: true, capNetAdmin: true, canTrace: true, missing: [] },
    features: [{ name: 'tp_btf', available: true, reason: '' }, { name: 'kprobe', available: false, reason: 'kprobes are not available on this kernel (no kprobe PMU)' }],
    probes,
    explanations: supportedExplanations(probes),
    ipvsPreflight: ipvsPreflight({ modules: new Set(['nf_conntrack']), sysctl: { 'net.ipv4.ip_forward': '1' } }),
    nameSources: NAME_SOURCES,
    problems: [],
  });
}

const counters: SessionCounters = {
  probes: [{ probe: 'kfree_skb', events: 10, lost: 2, filtered: 5 }, { probe: 'net_dev_queue', events: 3, lost: 0, filtered: 0 }],
  lost: 2, undecodable: 0, records: 13,
};

/** Errors expected: the schema must refuse, and say where. */
function expectInvalid(kind: SchemaKind, value: unknown, where: RegExp): void {
  const errors = schemaErrors(kind, value);
  expect(errors, 'the schema accepted it').not.toBe('');
  expect(errors).toMatch(where);
}

describe('the schemas accept what netwhy makes', () => {
  it.each(names)('explain: the document of recording %s', (name) => {
    expectValid('explain', explained(name));
  });

  it.each(names)('trace: every event line of recording %s, and its flows as verdict lines', (name) => {
    const lines = eventLines(load(name));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expectValid('trace-line', l);
    for (const f of explained(name).flows) expectValid('trace-line', { type: 'flow', ...f });
  });

  it('trace: IPVS event lines (new connection, no destination, a deleted service)', () => {
    const lines = IPVS.map((r) => asJson(eventView(r, 0, ipvsCtx)));
    expect(lines.map((l) => l.event)).toEqual(['ipvs', 'ipvs', 'ipvs']);
    for (const l of lines) expectValid('trace-line', l);
  });

  it('trace: the summary line', () => {
    expectValid('trace-line', asJson(summarize(counters, { drop: 10, tx: 3 }, { NO_SOCKET: 10 }, 1.2345)));
  });

  it('doctor: a report from its pure parts', () => {
    expectValid('doctor', doctorReport());
  });

  it('the examples in docs/json.md are valid (explain document, trace lines, agent lines)', () => {
    const md = readFileSync(resolve(__dirname, '../../docs/json.md'), 'utf8');
    const [doc, ...lines] = [...md.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1]));
    expectValid('explain', doc);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expectValid('time' in l ? 'agent-line' : 'trace-line', l);
    expect(lines.some((l) => 'time' in l)).toBe(true);
  });

  it('every schema pins the version its document is made with', () => {
    const pinned = (kind: string, at: (s: Record<string, any>) => unknown) => at(JSON.parse(readFileSync(`${SCHEMAS}/${kind}.schema.json`, 'utf8')));
    expect(pinned('explain', (s) => s.properties.version.const)).toBe(DOCUMENT_VERSION);
    expect(pinned('trace-line', (s) => s.$defs.summary.properties.version.const)).toBe(OUTPUT_VERSION);
    expect(pinned('doctor', (s) => s.properties.version.const)).toBe(DOCTOR_VERSION);
  });
});

describe('the schemas refuse what a script would trip on', () => {
  const doc = (): ExplainDoc => explained('ip-forward-off');

  it('an agent line fails without its time, or with a field the flow does not have', () => {
    const f = doc().flows[0];
    expectValid('agent-line', { type: 'flow', ...f, time: '2026-12-05T07:58:01.123Z' });
    expectInvalid('agent-line', { type: 'flow', ...f }, /must have required property 'time'/);
    expectInvalid('agent-line', { type: 'flow', ...f, time: 'yesterday' }, /\/time must match pattern/);
    expectInvalid('agent-line', { type: 'flow', ...f, time: '2026-12-05T07:58:01Z', node: 'n1' }, /must NOT have unevaluated properties/);
  });

  it('explain fails with a field removed (flows[0].verdict.cause)', () => {
    const d = doc();
    delete (d.flows[0].verdict as Partial<ExplainDoc['flows'][0]['verdict']>).cause;
    expectInvalid('explain', d, /\/flows\/0\/verdict must have required property 'cause'/);
  });

  it('explain fails with a field renamed (exitCode → exit_code)', () => {
    const { exitCode, ...rest } = doc();
    expectInvalid('explain', { ...rest, exit_code: exitCode }, /must NOT have additional properties.*exit_code/);
  });

  it('explain fails with an unknown outcome', () => {
    const d = doc();
    (d.flows[0].verdict as { outcome: string }).outcome = 'blocked';
    expectInvalid('explain', d, /\/flows\/0\/verdict\/outcome must be equal to one of the allowed values/);
  });

  it('explain fails with an unknown cause type', () => {
    const d = doc();
    (d.flows[0].verdict.cause as { type: string }).type = 'firewall';
    expectInvalid('explain', d, /\/flows\/0\/verdict\/cause\/type must be equal to one of the allowed values/);
  });

  it('explain fails with the wrong version', () => {
    expectInvalid('explain', { ...doc(), version: DOCUMENT_VERSION + 1 }, /\/version must be equal to constant/);
  });

  it('explain fails with a delivered verdict that names where it was dropped', () => {
    const d = explained('delivered');
    d.flows[0].verdict.where = { netns: 'x', dev: 'eth0', function: 'ip_error', reason: 'IP_INADDRERRORS' };
    expectInvalid('explain', d, /\/flows\/0\/verdict\/where/);
  });

  it('explain fails with a dnat whose target is a source', () => {
    const d = explained('dnat-delivered');
    d.flows[0].nat[0].to = { src: '10.199.2.2', sport: 80 };
    expectInvalid('explain', d, /\/flows\/0\/nat\/0/);
  });

  it('trace fails with an unknown event kind, a drop without its drop, an unknown field', () => {
    const drop = eventLines(load('ip-forward-off')).find((l) => l.event === 'drop')!;
    expectInvalid('trace-line', { ...drop, event: 'free' }, /\/event must be equal to one of the allowed values/);
    const { drop: _, ...bare } = drop;
    expectInvalid('trace-line', bare, /must have required property 'drop'/);
    expectInvalid('trace-line', { ...drop, skb: 1 }, /must NOT have additional properties.*skb/);
  });

  it('trace fails with the wrong summary version, and with an unknown line type', () => {
    const s = asJson(summarize(counters, {}, {}, 1));
    expectInvalid('trace-line', { ...s, version: OUTPUT_VERSION + 1 }, /\/version must be equal to constant/);
    expectInvalid('trace-line', { ...s, type: 'totals' }, /oneOf|type/);
  });

  it('trace fails with a verdict line that lost its verdict', () => {
    const [f] = explained('no-socket').flows;
    const { verdict: _, ...rest } = f;
    expectInvalid('trace-line', { type: 'flow', ...rest }, /must have required property 'verdict'/);
  });

  it('doctor fails with a field removed, an unknown attach mode, the wrong version', () => {
    const { problems: _, ...noProblems } = doctorReport();
    expectInvalid('doctor', noProblems, /must have required property 'problems'/);
    const r = doctorReport();
    r.probes[0].mode = 'uprobe';
    expectInvalid('doctor', r, /\/probes\/0\/mode/);
    expectInvalid('doctor', { ...doctorReport(), version: DOCTOR_VERSION + 1 }, /\/version must be equal to constant/);
  });

  it('doctor: nameSources may be absent (older reports), but an entry with an unknown source or status, or no detail, fails', () => {
    const { nameSources: _, ...older } = doctorReport();
    expectValid('doctor', older);
    const r = doctorReport();
    r.nameSources![0].source = 'docker' as NameSourceReport['source'];
    expectInvalid('doctor', r, /\/nameSources\/0\/source must be equal to one of the allowed values/);
    const s = doctorReport();
    s.nameSources![4].status = 'refused' as NameSourceReport['status'];
    delete (s.nameSources![1] as Partial<NameSourceReport>).detail;
    expectInvalid('doctor', s, /\/nameSources\/1 must have required property 'detail'[\s\S]*\/nameSources\/4\/status must be equal to one of the allowed values/);
  });
});
