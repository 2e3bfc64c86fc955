// containerdSource against a real containerd: a private daemon on a socket in a
// temp dir (never the machine's own), a pod sandbox and an app container run
// from a busybox rootfs, each task in its own network namespace. Root only.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerdSource } from '../../src/state/k8s/containerd.js';
import { isRoot } from '../helpers/netns.js';

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const usable = isRoot() && have('containerd') && have('ctr') && have('runc') && existsSync('/bin/busybox');

describe.skipIf(!usable)('containerd source against a private containerd', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netwhy-containerd-'));
  const sock = join(dir, 'containerd.sock');
  let daemon: ChildProcess | undefined;
  const ctr = (...args: string[]) => spawnSync('ctr', ['--address', sock, '--namespace', 'k8s.io', ...args], { encoding: 'utf8', timeout: 20_000 });

  beforeAll(async () => {
    writeFileSync(join(dir, 'config.toml'), [
      'version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]', `  address = "${sock}"`, '[ttrpc]', `  address = "${sock}.ttrpc"`, '',
    ].join('\n'));
    mkdirSync(join(dir, 'rootfs/bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(dir, 'rootfs/bin/busybox'));
    symlinkSync('busybox', join(dir, 'rootfs/bin/sleep'));
    daemon = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
    const run = (id: string, kind: string) => ctr('run', '-d', '--label', `io.cri-containerd.kind=${kind}`, '--label', 'io.kubernetes.pod.name=web-7c9f',
      '--label', 'io.kubernetes.pod.namespace=default', '--label', 'io.kubernetes.pod.uid=u-1', '--rootfs', join(dir, 'rootfs'), id, '/bin/sleep', '600');
    expect(run('nw-sandbox-1', 'sandbox').stderr).toBe('');
    expect(run('nw-app-1', 'container').stderr).toBe('');
  });

  afterAll(() => {
    for (const id of ['nw-sandbox-1', 'nw-app-1']) {
      ctr('tasks', 'kill', '-s', 'KILL', id);
      for (let i = 0; i < 20 && ctr('tasks', 'rm', id).status !== 0; i++) spawnSync('sleep', ['0.1']);
      ctr('containers', 'rm', id);
    }
    daemon?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('one pod per sandbox, with its uid and the inode of its task\'s network namespace', async () => {
    const r = await containerdSource({ socket: sock });
    expect(r.report).toMatchObject({ source: 'containerd', status: 'ok', pods: 1 });
    expect(r.report.detail).toBe(`${sock}, namespace k8s.io: 1 pod sandboxes`);
    const pid = Number(/nw-sandbox-1\s+(\d+)/.exec(ctr('tasks', 'ls').stdout)![1]);
    expect(r.pods).toEqual([{ namespace: 'default', name: 'web-7c9f', uid: 'u-1', ips: [], netnsInode: statSync(`/proc/${pid}/ns/net`).ino, source: 'containerd' }]);
    expect(r.pods![0].netnsInode).not.toBe(statSync('/proc/self/ns/net').ino);
  });
});
