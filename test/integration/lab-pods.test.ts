// The lab's pods are made the way kubelet's runtime makes them: the real CNI
// plugins called per the CNI protocol (in the node's netns), libcni's result
// cache, and where containerd is installed a sandbox container per pod whose
// netns is the pod's. Needs root; run under flock /tmp/netwhy-lab.lock.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NameResolver } from '../../src/model/names.js';
import { collectK8sFacts } from '../../src/state/k8s/collect.js';
import { isRoot, run, sh } from '../helpers/netns.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const labSh = path.join(repo, 'lab', 'lab.sh');
const stateDir = '/run/netwhy-lab';
const cacheDir = `${stateDir}/cni/results`;
const sock = `${stateDir}/containerd/containerd.sock`;
const realCni = '/usr/lib/cni';

// What other code relies on: pod netns, node, address, Kubernetes name.
const pods = [
  { netns: 'nw-pod1', node: 'nw-node1', ip: '10.244.1.2', ns: 'default', name: 'client-5f7b9c6d8-k2xqp' },
  { netns: 'nw-pod2', node: 'nw-node2', ip: '10.244.2.2', ns: 'default', name: 'web-7c9f5b6d4-x8mzt' },
  { netns: 'nw-coredns', node: 'nw-node2', ip: '10.244.2.3', ns: 'kube-system', name: 'coredns-5d78c9869d-q8x2k' },
  { netns: 'nw-pod3', node: 'nw-node2', ip: '10.244.2.4', ns: 'default', name: 'tools-6b8f7d9c5-p4wz7' },
].map((p) => ({ ...p, id: createHash('sha256').update(`${p.ns}/${p.name}`).digest('hex') }));

const hasContainerd = ['containerd', 'ctr', 'runc'].every(
  (c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0,
);

// The plugins the lab calls, wrapped: each call is logged (command, plugin,
// container, ifname, whether the pod netns still exists) and passed on.
const wrapDir = mkdtempSync(path.join(tmpdir(), 'nw-cni-wrap-'));
const callLog = path.join(wrapDir, 'calls.log');

// Asynchronous: a file of long synchronous steps starves vitest's worker RPC.
function lab(env: Record<string, string>, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return run('bash', [labSh, ...args], 120_000, { ...process.env, NW_LAB_CNI_PATH: wrapDir, ...env });
}

async function labOk(...args: string[]): Promise<string> {
  const r = await lab({}, ...args);
  if (r.status !== 0) throw new Error(`lab.sh ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stderr;
}

function ipJson<T>(netns: string, ...args: string[]): T {
  return JSON.parse(sh('ip', ['-n', netns, '-j', ...args])) as T;
}

function ctr(...args: string[]): string {
  return sh('ctr', ['-a', sock, '-n', 'k8s.io', ...args]);
}

interface CniCache {
  kind: string;
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns: string;
  cniArgs: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result: { cniVersion: string; interfaces: { name: string; sandbox?: string }[]; ips: { address: string; gateway: string; interface: number }[] };
}

function calls(): string[][] {
  return existsSync(callLog) ? readFileSync(callLog, 'utf8').trim().split('\n').map((l) => l.split(' ')) : [];
}

/** Processes of the lab's containerd: the daemon and its shims (by socket), and their sandboxes. */
function containerdProcesses(): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const cgroup = readFileSync(`/proc/${entry}/cgroup`, 'utf8');
      if (cmdline.includes(sock) || cgroup.includes('/netwhy-lab/')) found.push(`${entry} ${cmdline}`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

function assertNothingLeft(): void {
  expect(sh('ip', ['netns', 'list']).split('\n').filter((l) => l.startsWith('nw-'))).toEqual([]);
  expect(containerdProcesses()).toEqual([]);
  expect(existsSync(stateDir)).toBe(false);
  const cgroups = readdirSync('/sys/fs/cgroup').filter((h) => existsSync(`/sys/fs/cgroup/${h}/netwhy-lab`));
  expect(cgroups).toEqual([]);
  for (const p of pods) {
    // containerd 1.6 names a shim's socket sha256(address/namespace/id)
    const shimSock = createHash('sha256').update(`${sock}/k8s.io/${p.id}`).digest('hex');
    expect(existsSync(`/run/containerd/s/${shimSock}`)).toBe(false);
  }
}

describe.skipIf(!isRoot() || !existsSync(`${realCni}/bridge`))('lab pods: CNI plugins, CNI cache, containerd', () => {
  const outsideBefore = ['/etc/cni', '/var/lib/cni'].map(existsSync);

  beforeAll(async () => {
    for (const plugin of ['bridge', 'host-local', 'loopback']) {
      const wrapper = path.join(wrapDir, plugin);
      writeFileSync(
        wrapper,
        `#!/bin/sh\n[ -e "$CNI_NETNS" ] && n=netns-present || n=netns-gone\n` +
          `echo "$CNI_COMMAND ${plugin} $CNI_CONTAINERID $CNI_IFNAME $n" >>${callLog}\nexec ${realCni}/${plugin} "$@"\n`,
      );
      chmodSync(wrapper, 0o755);
    }
    await lab({}, 'down');
    await labOk('up');
  }, 180_000);

  afterAll(async () => {
    await lab({}, 'down');
    rmSync(wrapDir, { recursive: true, force: true });
  }, 180_000);

  it('each pod has eth0 with its address from the CNI bridge plugin, its host-side veth a hairpin port of cni0 in its node', () => {
    for (const p of pods) {
      const [eth0] = ipJson<{ ifname: string; link_index: number; addr_info: { family: string; local: string; prefixlen: number }[] }[]>(
        p.netns, 'addr', 'show', 'dev', 'eth0',
      );
      expect(eth0.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${p.ip}/24`]);
      const gw = p.ip.replace(/\.\d+$/, '.1');
      expect(ipJson<{ dst: string; gateway: string }[]>(p.netns, 'route', 'show', 'default')).toEqual([
        expect.objectContaining({ dst: 'default', gateway: gw }),
      ]);
      // eth0's peer, in the node: a veth<hash> the bridge plugin made, on cni0
      const links = ipJson<{ ifindex: number; ifname: string; master?: string; linkinfo?: { info_kind?: string; info_slave_data?: { hairpin?: boolean } } }[]>(
        p.node, '-d', 'link', 'show',
      );
      const peer = links.find((l) => l.ifindex === eth0.link_index);
      expect(peer?.ifname).toMatch(/^veth[0-9a-f]{8}$/);
      expect(peer?.master).toBe('cni0');
      expect(peer?.linkinfo?.info_kind).toBe('veth');
      expect(peer?.linkinfo?.info_slave_data?.hairpin).toBe(true);
      const [cni0] = ipJson<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(p.node, 'addr', 'show', 'dev', 'cni0');
      expect(cni0.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([`${gw}/24`]);
    }
  });

  it('the plugins were called per the CNI protocol: ADD of loopback (lo) and bridge (eth0, which ran host-local) for each pod, in the node netns', () => {
    const adds = calls().filter((c) => c[0] === 'ADD');
    for (const p of pods) {
      expect(adds).toContainEqual(['ADD', 'loopback', p.id, 'lo', 'netns-present']);
      expect(adds).toContainEqual(['ADD', 'bridge', p.id, 'eth0', 'netns-present']);
      expect(adds).toContainEqual(['ADD', 'host-local', p.id, 'eth0', 'netns-present']);
    }
  });

  it('the CNI result cache has a libcni cniCacheV1 file <network>-<containerID>-eth0 per pod with K8S_POD_NAMESPACE, K8S_POD_NAME and the pod IPv4 and IPv6 addresses', () => {
    for (const p of pods) {
      const file = path.join(cacheDir, `cbr0-${p.id}-eth0`);
      const cache = JSON.parse(readFileSync(file, 'utf8')) as CniCache;
      expect(cache.kind).toBe('cniCacheV1');
      expect(cache.containerId).toBe(p.id);
      expect(cache.ifName).toBe('eth0');
      expect(cache.networkName).toBe('cbr0');
      expect(cache.netns).toBe(`/run/netns/${p.netns}`);
      const args = new Map(cache.cniArgs);
      expect(cache.cniArgs[0]).toEqual(['IgnoreUnknown', '1']);
      expect(args.get('K8S_POD_NAMESPACE')).toBe(p.ns);
      expect(args.get('K8S_POD_NAME')).toBe(p.name);
      expect(args.get('K8S_POD_INFRA_CONTAINER_ID')).toBe(p.id);
      // config: the network's conflist, base64, as libcni keeps it
      const config = JSON.parse(Buffer.from(cache.config, 'base64').toString('utf8')) as { name: string; plugins: { type: string; bridge?: string }[] };
      expect(config.name).toBe('cbr0');
      expect(config.plugins[0]).toMatchObject({ type: 'bridge', bridge: 'cni0' });
      // dual-stack: the IPv4 range, then the IPv6 one (fd00:10:244:N::X, lab/lib.sh pod_addr6)
      const [, n, x] = /^10\.244\.(\d+)\.(\d+)$/.exec(p.ip)!;
      expect(cache.result.ips.map((i) => i.address)).toEqual([`${p.ip}/24`, `fd00:10:244:${n}::${x}/64`]);
      expect(cache.result.interfaces[cache.result.ips[0].interface]).toEqual(
        expect.objectContaining({ name: 'eth0', sandbox: `/run/netns/${p.netns}` }),
      );
      // host-local's lease, in the lab's own data dir
      const lease = `${stateDir}/cni/networks/${p.node}/cbr0/${p.ip}`;
      expect(readFileSync(lease, 'utf8').split(/\s/)[0]).toBe(p.id);
      expect(existsSync(path.join(cacheDir, `cni-loopback-${p.id}-lo`))).toBe(true);
    }
    expect(['/etc/cni', '/var/lib/cni'].map(existsSync)).toEqual(outsideBefore);
  });

  it.skipIf(!hasContainerd)('containerd (the lab\'s socket, namespace k8s.io) has one sandbox container per pod with the CRI labels, its task in the pod\'s netns', () => {
    expect(ctr('containers', 'ls', '-q').trim().split('\n').sort()).toEqual(pods.map((p) => p.id).sort());
    const tasks = new Map(
      ctr('tasks', 'ls').trim().split('\n').slice(1).map((l) => l.split(/\s+/)).map(([id, pid, status]) => [id, { pid, status }]),
    );
    for (const p of pods) {
      const info = JSON.parse(ctr('containers', 'info', p.id)) as { Labels: Record<string, string>; Image: string };
      expect(info.Labels).toMatchObject({
        'io.kubernetes.pod.name': p.name,
        'io.kubernetes.pod.namespace': p.ns,
        'io.kubernetes.container.name': 'POD',
        'io.cri-containerd.kind': 'sandbox',
      });
      expect(info.Labels['io.kubernetes.pod.uid']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(info.Image).toBe('netwhy.local/lab-pause:1');
      const task = tasks.get(p.id);
      expect(task?.status).toBe('RUNNING');
      expect(statSync(`/proc/${task?.pid}/ns/net`).ino).toBe(statSync(`/run/netns/${p.netns}`).ino);
    }
  });

  it.skipIf(!hasContainerd)('up over a lab never taken down stops the old containerd first: one daemon, one sandbox per pod', async () => {
    const old = Number(readFileSync(`${stateDir}/containerd/containerd.pid`, 'utf8'));
    await labOk('up');
    const now = Number(readFileSync(`${stateDir}/containerd/containerd.pid`, 'utf8'));
    expect(now).not.toBe(old);
    expect(existsSync(`/proc/${old}`)).toBe(false);
    const daemons = containerdProcesses().filter((p) => / containerd --config /.test(` ${p.split(' ').slice(1).join(' ')}`));
    expect(daemons.map((p) => Number(p.split(' ')[0]))).toEqual([now]);
    expect(ctr('tasks', 'ls', '-q').trim().split('\n').sort()).toEqual(pods.map((p) => p.id).sort());
  }, 180_000);

  it("netwhy's name sources name every lab pod by address and by netns inode, from the lab's CNI cache and (with containerd) its sandboxes", async () => {
    const facts = await collectK8sFacts({ cniCacheDir: cacheDir, containerdSocket: sock, api: false, iptablesSave: [] });
    const byName = Object.fromEntries(facts.sources.map((r) => [r.source, r]));
    expect(byName['cni-cache']).toMatchObject({ status: 'ok', pods: pods.length });
    if (hasContainerd) expect(byName.containerd).toMatchObject({ status: 'ok', pods: pods.length });
    const names = new NameResolver(facts);
    for (const p of pods) {
      const ref = { kind: 'pod', namespace: p.ns, name: p.name };
      expect(names.endpoint(p.ip), p.netns).toEqual(ref);
      expect(names.netns(statSync(`/run/netns/${p.netns}`).ino), p.netns).toEqual(ref);
    }
  });

  it('down calls CNI DEL for each pod while its netns exists, and leaves no netns, containerd process, cgroup or lab dir', async () => {
    writeFileSync(callLog, '');
    await labOk('down');
    const dels = calls().filter((c) => c[0] === 'DEL');
    for (const p of pods) {
      expect(dels).toContainEqual(['DEL', 'bridge', p.id, 'eth0', 'netns-present']);
      expect(dels).toContainEqual(['DEL', 'host-local', p.id, 'eth0', 'netns-present']);
      expect(dels).toContainEqual(['DEL', 'loopback', p.id, 'lo', 'netns-present']);
    }
    assertNothingLeft();
  }, 180_000);

  it.skipIf(!hasContainerd)('down after a crash (containerd SIGKILLed, its sandboxes running) still stops every sandbox and shim', async () => {
    await labOk('up');
    const pid = readFileSync(`${stateDir}/containerd/containerd.pid`, 'utf8').trim();
    process.kill(Number(pid), 'SIGKILL');
    await labOk('down');
    assertNothingLeft();
  }, 180_000);

  it('without containerd the lab still makes its pods with CNI, and says so once', async () => {
    const r = await lab({ NW_LAB_CONTAINERD: '0' }, 'up');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.match(/without containers/g)).toHaveLength(1);
    expect(existsSync(`${stateDir}/containerd`)).toBe(false);
    expect(existsSync(path.join(cacheDir, `cbr0-${pods[1].id}-eth0`))).toBe(true);
    expect((await lab({}, 'exec', 'nw-pod1', 'curl', '-sf', '-m', '2', 'http://10.244.2.2/')).stdout.trim()).toBe('nw-pod2');
    await labOk('down');
    assertNothingLeft();
  }, 180_000);
});
