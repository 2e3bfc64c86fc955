// Checks before loading anything, so the user gets a sentence, not an errno.
import { existsSync } from 'node:fs';
import { EnvironmentError } from './errors.js';
import { KERNEL_BTF } from './kernel/symbols.js';
import { currentPrivileges } from './kernel/privileges.js';

export function requireTracing(): void {
  const priv = currentPrivileges();
  if (!priv.canTrace) {
    throw new EnvironmentError(
      `netwhy needs root, or CAP_BPF and CAP_PERFMON, to load BPF programs (missing: ${priv.missing.join(', ')})`,
      'run it with sudo',
    );
  }
  if (!existsSync(KERNEL_BTF)) {
    throw new EnvironmentError(
      `this kernel has no BTF (${KERNEL_BTF} is missing)`,
      'netwhy needs a kernel built with CONFIG_DEBUG_INFO_BTF=y; Debian 11+, Ubuntu 20.10+, RHEL 8.2+ kernels have it',
    );
  }
}
