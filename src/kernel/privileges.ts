// What the current process may do with BPF.
import { readFileSync } from 'node:fs';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

export interface Privileges {
  root: boolean;
  capBpf: boolean;
  capPerfmon: boolean;
  capSysAdmin: boolean;
  capNetAdmin: boolean;
  /** Can load tracing programs: CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN. */
  canTrace: boolean;
  missing: string[];
}

/** From the CapEff line of /proc/self/status (hex) and the uid. */
export function privilegesFrom(capEffHex: string, uid: number): Privileges {
  const caps = BigInt('0x' + (capEffHex.trim() || '0'));
  const has = (bit: number) => (caps & (1n << BigInt(bit))) !== 0n;
  const p = {
    root: uid === 0,
    capBpf: has(CAP_BPF),
    capPerfmon: has(CAP_PERFMON),
    capSysAdmin: has(CAP_SYS_ADMIN),
    capNetAdmin: has(CAP_NET_ADMIN),
  };
  const canTrace = p.capSysAdmin || (p.capBpf && p.capPerfmon);
  const missing: string[] = [];
  if (!canTrace) {
    if (!p.capBpf) missing.push('CAP_BPF');
    if (!p.capPerfmon) missing.push('CAP_PERFMON');
  }
  return { ...p, canTrace, missing };
}

export function currentPrivileges(): Privileges {
  let capEff = '0';
  try {
    capEff = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  } catch {
    // no /proc: report no capabilities
  }
  return privilegesFrom(capEff, process.getuid?.() ?? -1);
}
