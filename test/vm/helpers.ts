// What every microVM test file does first: decide from local facts whether it
// can run (qemu, the tools vm/prepare.sh needs, a prepared kernel or apt-get to
// fetch one; no network at import), and prepare the VM in a beforeAll, where a
// download of the kernel package has time and a failure fails the tests
// instead of skipping them.
import { beforeAll } from 'vitest';
import { prepareVm, vmUnavailableReason } from '../../src/vm/runner.js';

/** Download (~70 MB), unpack, depmod, initramfs: seconds on a good mirror, minutes on a slow one. */
export const PREPARE_TIMEOUT_MS = 900_000;

/** Null, or why the microVM tests of `what` are skipped (also printed). */
export async function vmSkipReason(what: string): Promise<string | null> {
  const reason = await vmUnavailableReason();
  if (reason) console.warn(`skipping ${what}: ${reason}`);
  return reason;
}

/** Call inside the describe block, before the hooks and tests that boot the VM. */
export function prepareVmBeforeAll(): void {
  beforeAll(async () => {
    const t0 = Date.now();
    const vm = await prepareVm();
    console.log(`[vm] prepared ${vm.kernelVersion} in ${Date.now() - t0}ms`);
  }, PREPARE_TIMEOUT_MS);
}
