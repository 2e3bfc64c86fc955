// Pods from the container runtime: ctr output captured from a real containerd
// 1.6 (a sandbox and an app container of one pod), crictl's JSON in the format
// of cri-tools (PodSandboxStatus plus containerd's verbose info).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { containerdSource, parseCtrContainerInfo, parseCtrTasks } from '../../src/state/k8s/containerd.js';
import { crictlSource, parseCrictlInspectp, parseCrictlPods } from '../../src/state/k8s/crictl.js';

const FIX = resolve(__dirname, '../fixtures/k8s');
const read = (f: string) => readFileSync(`${FIX}/${f}`, 'utf8');

describe('ctr', () => {
  it('a sandbox container: the pod from its labels', () => {
    expect(parseCtrContainerInfo(read('ctr-info-sandbox.json'))).toEqual({ containerId: 'nw-sandbox-1', namespace: 'default', name: 'web-7c9f', uid: 'u-1', ips: [], source: 'containerd' });
  });

  it('an app container of the same pod, or not JSON: not a pod (one sandbox per pod)', () => {
    expect(parseCtrContainerInfo(read('ctr-info-app.json'))).toBeUndefined();
    expect(parseCtrContainerInfo('ctr: container "x" not found')).toBeUndefined();
  });

  it('a sandbox whose spec names its netns path keeps it', () => {
    const info = JSON.parse(read('ctr-info-sandbox.json'));
    info.Spec.linux.namespaces = [{ type: 'network', path: '/var/run/netns/cni-1' }];
    expect(parseCtrContainerInfo(JSON.stringify(info))?.netnsPath).toBe('/var/run/netns/cni-1');
  });

  it('tasks ls: running tasks and their pids', () => {
    expect([...parseCtrTasks(read('ctr-tasks-ls.txt'))]).toEqual([['nw-sandbox-1', 28046], ['nw-app-1', 28125]]);
    expect(parseCtrTasks('TASK PID STATUS\nx 0 CREATED\ny 12 STOPPED\n').size).toBe(0);
  });

  it('no socket: absent with where it looked; NETWHY_CONTAINERD_SOCK moves it', async () => {
    expect((await containerdSource({ socket: '/nonexistent/containerd.sock' })).report).toEqual({ source: 'containerd', status: 'absent', detail: 'no socket at /nonexistent/containerd.sock' });
    process.env.NETWHY_CONTAINERD_SOCK = '/nonexistent/env.sock';
    try {
      expect((await containerdSource()).report.detail).toBe('no socket at /nonexistent/env.sock');
    } finally {
      delete process.env.NETWHY_CONTAINERD_SOCK;
    }
  });

  it('a socket nobody serves: an error, not an exception', async () => {
    // /dev/null exists but is no socket: ctr fails to dial
    const r = await containerdSource({ socket: '/dev/null', timeoutMs: 3000 });
    expect(['error', 'absent']).toContain(r.report.status); // absent where ctr is not installed
    if (r.report.status === 'error') expect(r.report.detail).toMatch(/failed to dial "\/dev\/null"/);
    expect(r.pods ?? []).toEqual([]);
  });
});

describe('crictl', () => {
  it('pods -o json: the ready sandboxes', () => {
    expect(parseCrictlPods(read('crictl-pods.json'))).toEqual(['3eff2d8d3a4f3d3c0d1c4d4737c21b397bf7cbf77fd8a0fe370f6a59129cd535']);
  });

  it('inspectp -o json: name, namespace, uid, IPs (additional IPs, IPv6 canonical), netns path, pid', () => {
    expect(parseCrictlInspectp(read('crictl-inspectp.json'))).toEqual({
      pod: {
        namespace: 'kube-system', name: 'coredns-5d78c9869d-79bfv', uid: '44e4b37f-504f-4f1c-80f3-4137bfbec5e4', ips: ['10.244.0.3', 'fd00:10:244::3'],
        netnsPath: '/var/run/netns/cni-1e2f3a4b-5c6d-7e8f-9a0b-1c2d3e4f5a6b', source: 'crictl',
      },
      pid: 1322,
    });
    expect(parseCrictlInspectp('{"status":{}}')).toBeUndefined();
  });

  it('crictl missing (or failing): a report, never an exception', async () => {
    const r = await crictlSource({ endpoint: '/nonexistent.sock', timeoutMs: 2000 });
    expect(r.report.source).toBe('crictl');
    expect(['absent', 'error']).toContain(r.report.status);
  });
});
