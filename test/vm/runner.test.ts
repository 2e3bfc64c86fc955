// The microVM runner: boots the Debian kernel (3 boots in all) and runs commands
// in it. Skipped, with the reason, when qemu or the kernel package can't be had.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runInVm, vmUnavailableReason, type VmRunResult } from '../../src/vm/runner.js';

const BOOT_TEST_MS = 240_000;

const unavailable = await vmUnavailableReason();
if (unavailable) console.warn(`skipping microVM tests: ${unavailable}`);
const ipvsadm = ['/usr/sbin/ipvsadm', '/sbin/ipvsadm'].find((p) => existsSync(p));

function report(what: string, r: VmRunResult): void {
  console.log(`[vm] ${what}: accel=${r.accel} kernel=${r.kernel} boot=${r.bootMs}ms total=${r.totalMs}ms`);
}

describe.skipIf(unavailable !== null)('microVM runner', () => {
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
});
