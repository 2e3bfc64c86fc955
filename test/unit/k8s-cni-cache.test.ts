// Pods from libcni's result cache: a captured-format directory, a live netns
// path (this process's own), a missing directory.
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cniCacheSource, parseCniCacheEntry } from '../../src/state/k8s/cni-cache.js';

const DIR = resolve(__dirname, '../fixtures/k8s/cni-cache');
const WEB = `${DIR}/cbr0-3f1a2b7c9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90-eth0`;
const tmp = mkdtempSync(join(tmpdir(), 'netwhy-cni-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('parseCniCacheEntry', () => {
  it('pod from K8S_POD_NAMESPACE/K8S_POD_NAME, IPs without their prefix (IPv4 and IPv6), uid, netns path', () => {
    expect(parseCniCacheEntry(readFileSync(WEB, 'utf8'))).toEqual({
      namespace: 'default', name: 'web-7c9f', uid: '1c2d3e4f-0000-4a5b-8c9d-0e1f2a3b4c5d', ips: ['10.244.2.2', 'fd00:10:244:2::2'],
      netnsPath: '/var/run/netns/cni-5a1c3d2e-8f4b-4c6d-9e0a-1b2c3d4e5f60', source: 'cni-cache',
    });
  });

  it('not a pod attachment (no K8S args), not the cache format, truncated: nothing', () => {
    expect(parseCniCacheEntry(readFileSync(`${DIR}/bridge-abc-eth0`, 'utf8'))).toBeUndefined();
    expect(parseCniCacheEntry(readFileSync(`${DIR}/truncated-file`, 'utf8'))).toBeUndefined();
    expect(parseCniCacheEntry('{"kind":"cniCacheV2"}')).toBeUndefined();
    expect(parseCniCacheEntry('null')).toBeUndefined();
  });

  it("the pod's loopback attachment (network cni-loopback, ifName lo, as containerd caches it) names no pod address", () => {
    const lo = `${DIR}/cni-loopback-3f1a2b7c9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f90-lo`;
    expect(parseCniCacheEntry(readFileSync(lo, 'utf8'))).toBeUndefined();
  });
});

describe('cniCacheSource', () => {
  it('reads the directory; a netns path that still exists gives its inode, a gone one none', async () => {
    cpSync(DIR, tmp, { recursive: true });
    const live = JSON.parse(readFileSync(WEB, 'utf8'));
    live.netns = '/proc/self/ns/net';
    writeFileSync(join(tmp, 'cbr0-live-eth0'), JSON.stringify({ ...live, cniArgs: [['K8S_POD_NAMESPACE', 'default'], ['K8S_POD_NAME', 'live-1']] }));
    const r = await cniCacheSource(tmp);
    expect(r.report).toMatchObject({ source: 'cni-cache', status: 'ok', pods: 3 });
    expect(r.report.detail).toBe(`${tmp}: 6 files, 3 pod attachments (1 with a live netns)`);
    const byName = Object.fromEntries(r.pods!.map((p) => [p.name, p]));
    expect(byName['live-1'].netnsInode).toBe(statSync('/proc/self/ns/net').ino);
    expect(byName['web-7c9f'].netnsInode).toBeUndefined();
  });

  it('a missing directory is absent, with where it looked; NETWHY_CNI_CACHE moves it', async () => {
    expect((await cniCacheSource('/nonexistent/cni')).report).toEqual({ source: 'cni-cache', status: 'absent', detail: '/nonexistent/cni: no such directory' });
    process.env.NETWHY_CNI_CACHE = DIR;
    try {
      expect((await cniCacheSource()).report.detail).toContain(DIR);
    } finally {
      delete process.env.NETWHY_CNI_CACHE;
    }
  });
});
