// doctor's name-source section: one line per source with status, detail and
// counts; the JSON report carries the same reports, valid against the schema.
import { describe, expect, it } from 'vitest';
import { type DoctorReport, doctorText, nameSourceLines } from '../../src/commands/doctor.js';
import { collectK8sFacts } from '../../src/state/k8s/collect.js';
import { expectValid } from '../helpers/schema.js';

describe('doctor name sources', () => {
  it('one line each: status, source, detail, counts', () => {
    expect(nameSourceLines([
      { source: 'containerd', status: 'ok', detail: '/run/containerd/containerd.sock, namespace k8s.io: 3 pod sandboxes', pods: 3 },
      { source: 'kube-proxy-rules', status: 'ok', detail: '4 from iptables comments, 0 from nftables table kube-proxy', services: 4 },
      { source: 'api', status: 'absent', detail: 'no kubeconfig: $KUBECONFIG unset, /root/.kube/config missing' },
    ])).toEqual([
      '  ok     containerd       /run/containerd/containerd.sock, namespace k8s.io: 3 pod sandboxes (3 pods)',
      '  ok     kube-proxy-rules 4 from iptables comments, 0 from nftables table kube-proxy (4 services)',
      '  absent api              no kubeconfig: $KUBECONFIG unset, /root/.kube/config missing',
    ]);
  });

  it('the reports collectK8sFacts gives validate as doctor\'s nameSources, and show in the text', async () => {
    const f = await collectK8sFacts({ containerdSocket: '/nonexistent.sock', cniCacheDir: '/nonexistent', iptablesSave: [], nftJson: [], kubeconfig: '/nonexistent/kubeconfig' });
    const report: DoctorReport = {
      version: 1, kernel: { release: '6.18.0', machine: 'x86_64' }, btf: { path: '/sys/kernel/btf/vmlinux', present: true, dropReasons: 1 },
      privileges: { root: true, capBpf: true, capPerfmon: true, capSysAdmin: true, capNetAdmin: true, canTrace: true, missing: [] },
      features: [], probes: [], explanations: [], ipvsPreflight: [], nameSources: f.sources, problems: [],
    };
    expectValid('doctor', report);
    expect(f.sources.map((s) => `${s.source} ${s.status}`)).toEqual(expect.arrayContaining(['containerd absent', 'cni-cache absent', 'kube-proxy-rules absent', 'api error']));
    expect(doctorText(report)).toContain('\nKubernetes name sources\n  absent containerd       no socket at /nonexistent.sock\n');
  });
});
