// collectK8sFacts: every source at once, merged, each with its report; offline
// runs from captured rules and a CNI cache directory.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { refText } from '../../src/model/k8s.js';
import { NameResolver } from '../../src/model/names.js';
import { collectK8sFacts } from '../../src/state/k8s/collect.js';

const FIX = resolve(__dirname, '../fixtures');
const offline = {
  containerdSocket: '/nonexistent/containerd.sock',
  cniCacheDir: `${FIX}/k8s/cni-cache`,
  iptablesSave: [readFileSync(`${FIX}/iptables/kube-proxy-iptables.rules`, 'utf8')],
  nftJson: [JSON.parse(readFileSync(`${FIX}/k8s/kube-proxy-nftables.json`, 'utf8'))],
};

describe('collectK8sFacts', () => {
  it('one report per source, merged facts the resolver can use', async () => {
    const f = await collectK8sFacts({ ...offline, api: false });
    const reports = Object.fromEntries(f.sources.map((s) => [s.source, s]));
    expect(Object.keys(reports).sort()).toEqual(['api', 'cni-cache', 'containerd', 'crictl', 'kube-proxy-rules']);
    expect(reports.containerd).toEqual({ source: 'containerd', status: 'absent', detail: 'no socket at /nonexistent/containerd.sock' });
    expect(reports['cni-cache']).toMatchObject({ status: 'ok', pods: 2 });
    expect(reports['kube-proxy-rules']).toMatchObject({ status: 'ok', services: 9 });
    expect(reports.api).toEqual({ source: 'api', status: 'absent', detail: 'not asked (offline)' });
    const r = new NameResolver(f);
    expect(refText(r.endpoint('10.244.2.2', 80)!)).toBe('pod default/web-7c9f');
    expect(refText(r.endpoint('192.168.0.77', 30080, 'tcp')!)).toBe('svc default/web:80');
  });

  it('a kubeconfig that is not there: the api source says so, the others still answer', async () => {
    const f = await collectK8sFacts({ ...offline, kubeconfig: '/nonexistent/kubeconfig' });
    expect(f.sources.find((s) => s.source === 'api')).toEqual({ source: 'api', status: 'error', detail: '--kubeconfig /nonexistent/kubeconfig: no such file' });
    expect(f.pods.length).toBe(2);
  });
});
