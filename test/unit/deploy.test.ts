// deploy/: the manifests parse, and say what the README promises (the node's
// network and processes, read-only mounts, capabilities instead of privileged,
// read-only RBAC, the metrics port everywhere it is named).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { DEFAULT_LISTEN } from '../../src/commands/defaults.js';

const DEPLOY = resolve(__dirname, '../../deploy');
const README = readFileSync(resolve(__dirname, '../../README.md'), 'utf8');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function docs(file: string): Obj[] {
  const all = parseAllDocuments(readFileSync(`${DEPLOY}/${file}`, 'utf8'));
  for (const d of all) expect(d.errors.map((e) => e.message), file).toEqual([]);
  return all.map((d) => d.toJS() as Obj).filter(Boolean);
}

const agent = docs('netwhy-agent.yaml');
const monitoring = docs('monitoring.yaml');
const kind = (k: string, from = agent) => from.filter((d) => d.kind === k);
const ds = kind('DaemonSet')[0];
const pod = ds?.spec.template.spec;
const container = pod?.containers[0];
const PORT = Number(DEFAULT_LISTEN.split(':')[1]);

describe('deploy/netwhy-agent.yaml', () => {
  it('holds a Namespace, ServiceAccount, ClusterRole, ClusterRoleBinding, DaemonSet and Service', () => {
    expect(agent.map((d) => d.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'Namespace', 'Service', 'ServiceAccount']);
  });

  it('the DaemonSet runs in the node\'s network and PID namespaces, as its service account', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.hostPID).toBe(true);
    expect(pod.serviceAccountName).toBe(kind('ServiceAccount')[0].metadata.name);
  });

  it('mounts BTF, bpffs, /run/netns, the CNI cache and the containerd socket from the host, read-only', () => {
    const byName = new Map(pod.volumes.map((v: Obj) => [v.name, v.hostPath?.path]));
    const mounts = container.volumeMounts.filter((m: Obj) => byName.get(m.name));
    const paths = mounts.map((m: Obj) => byName.get(m.name)).sort();
    expect(paths).toEqual(['/run/containerd/containerd.sock', '/run/netns', '/sys/fs/bpf', '/sys/kernel/btf', '/var/lib/cni']);
    for (const m of mounts) expect(m.readOnly, m.name).toBe(true);
  });

  it('adds the capabilities it needs (dropping the rest) and is not privileged; the README explains each', () => {
    const sc = container.securityContext;
    expect(sc.privileged).not.toBe(true);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    expect(sc.capabilities.add).toEqual(expect.arrayContaining(['BPF', 'PERFMON', 'SYS_ADMIN', 'NET_ADMIN', 'SYS_RESOURCE']));
    for (const cap of sc.capabilities.add) expect(README, `README says what CAP_${cap} is for`).toContain(`CAP_${cap}`);
  });

  it('the ClusterRole only reads (get, list) pods, services, endpointslices, nodes and networkpolicies', () => {
    const rules = kind('ClusterRole')[0].rules as Obj[];
    const resources = rules.flatMap((r) => r.resources).sort();
    expect(resources).toEqual(['endpointslices', 'networkpolicies', 'nodes', 'pods', 'services']);
    for (const r of rules) expect([...r.verbs].sort()).toEqual(['get', 'list']);
    const binding = kind('ClusterRoleBinding')[0];
    expect(binding.roleRef.name).toBe(kind('ClusterRole')[0].metadata.name);
    expect(binding.subjects[0]).toMatchObject({ kind: 'ServiceAccount', name: pod.serviceAccountName });
  });

  it(`serves metrics on port ${PORT} (the agent's default) named "metrics", with /healthz and /readyz probes, and the Service exposes it`, () => {
    expect(container.args.slice(0, 1)).toEqual(['agent']);
    expect(container.args.join(' ')).toContain(`--listen $(NODE_IP):${PORT}`);
    expect(container.ports).toContainEqual({ name: 'metrics', containerPort: PORT, protocol: 'TCP' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    const svc = kind('Service')[0];
    expect(svc.spec.selector).toEqual(ds.spec.selector.matchLabels);
    expect(svc.spec.ports).toContainEqual({ name: 'metrics', port: PORT, targetPort: 'metrics' });
  });
});

describe('deploy/monitoring.yaml', () => {
  it('a PodMonitor and a ServiceMonitor scrape the "metrics" port of the agents', () => {
    const labels = ds.spec.template.metadata.labels;
    const pm = kind('PodMonitor', monitoring)[0];
    expect(pm.spec.selector.matchLabels).toEqual(labels);
    expect(pm.spec.podMetricsEndpoints[0].port).toBe('metrics');
    const sm = kind('ServiceMonitor', monitoring)[0];
    expect(sm.spec.selector.matchLabels).toEqual(kind('Service')[0].metadata.labels);
    expect(sm.spec.endpoints[0].port).toBe('metrics');
  });

  it('the PrometheusRule alerts on drops caused by a sysctl, from netwhy_drops_total', () => {
    const rules = kind('PrometheusRule', monitoring)[0].spec.groups.flatMap((g: Obj) => g.rules) as Obj[];
    expect(rules.some((r) => r.alert && /increase\(netwhy_drops_total\{cause_type="sysctl"\}\[5m\]\)/.test(r.expr))).toBe(true);
  });
});
