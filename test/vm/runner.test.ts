// The microVM runner: boots the Debian kernel (4 boots in all) and runs commands
// in it. Skipped, with the reason, when qemu or what preparing the VM needs is
// missing here (local facts: see test/vm/helpers.ts).
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runInVm, type VmRunResult } from '../../src/vm/runner.js';
import { prepareVmBeforeAll, vmSkipReason } from './helpers.js';

const BOOT_TEST_MS = 240_000;
const repo = realpathSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'));

const unavailable = await vmSkipReason('the microVM runner tests');
const ipvsadm = ['/usr/sbin/ipvsadm', '/sbin/ipvsadm'].find((p) => existsSync(p));

function report(what: string, r: VmRunResult): void {
  console.log(`[vm] ${what}: accel=${r.accel} kernel=${r.kernel} boot=${r.bootMs}ms total=${r.totalMs}ms`);
}

describe.skipIf(unavailable !== null)('microVM runner', () => {
  prepareVmBeforeAll();
  const tmpDirs: string[] = [];
  afterAll(() => {
    for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  });

  it('runs uname -r in the Debian 6.1 kernel', { timeout: BOOT_TEST_MS }, async () => {
    const r = await runInVm({ command: ['uname', '-r'] });
    report('uname', r);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toMatch(/^6\.1\.\d+-\d+-amd64$/);
    expect(r.kernel).toBe(r.stdout.trim());
    expect(['kvm', 'tcg']).toContain(r.accel);
    expect(r.bootMs).toBeGreaterThan(0);
    expect(r.totalMs).toBeGreaterThanOrEqual(r.bootMs);
  });

  it('returns the exit code and stderr of a failing command', { timeout: BOOT_TEST_MS }, async () => {
    const r = await runInVm({
      command: ['sh', '-c', 'echo "out $FOO $NETWHY_IN_VM"; echo "bad thing" >&2; exit 3'],
      env: { FOO: "it's" },
    });
    report('exit 3', r);
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe("out it's 1\n");
    expect(r.stderr).toBe('bad thing\n');
  });

  it.skipIf(!ipvsadm)('loads ip_vs and configures a virtual service (needs ipvsadm on the host)', { timeout: BOOT_TEST_MS }, async () => {
    const r = await runInVm({
      command: ['sh', '-c', 'ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -Ln'],
      modules: ['ip_vs', 'ip_vs_rr'],
    });
    report('ipvsadm', r);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/TCP\s+10\.0\.0\.1:80 rr/);
  });

  it('a cwd under /tmp (named with a space and a comma) is the same directory in the guest: it reads a file there, the host gets the file it writes; a write into the repository stays in the guest', { timeout: BOOT_TEST_MS }, async () => {
    const dir = realpathSync(mkdtempSync('/tmp/netwhy-vm cwd,'));
    tmpDirs.push(dir);
    writeFileSync(path.join(dir, 'in.txt'), 'written on the host\n');
    const probe = path.join(repo, `.vm-write-probe-${process.pid}`);
    tmpDirs.push(probe);
    const r = await runInVm({
      command: ['sh', '-c', 'pwd; cat in.txt; echo "written in the guest" > out.txt; cat "$REPO/package.json"; echo guest > "$PROBE"'],
      cwd: dir,
      env: { REPO: repo, PROBE: probe },
    });
    report('cwd under /tmp', r);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    // the repository is readable at its host path too (from a checkout under /tmp: its own share)
    expect(r.stdout).toBe(`${dir}\nwritten on the host\n${readFileSync(path.join(repo, 'package.json'), 'utf8')}`);
    expect(readFileSync(path.join(dir, 'out.txt'), 'utf8')).toBe('written in the guest\n');
    expect(existsSync(probe)).toBe(false);
  });
});
