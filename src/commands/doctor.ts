// netwhy doctor: what this kernel and these privileges let netwhy do, and why not.
import { existsSync } from 'node:fs';
import { release, machine } from 'node:os';
import { KERNEL_BTF, kernelDropReasons } from '../kernel/symbols.js';
import { currentPrivileges, type Privileges } from '../kernel/privileges.js';
import { type KernelFeature, loadBinding } from '../native.js';
import { type ProbeReport, TraceSession } from '../tracer.js';
import type { Io } from './trace.js';

export interface DoctorReport {
  version: number;
  kernel: { release: string; machine: string };
  btf: { path: string; present: boolean; dropReasons: number };
  privileges: Privileges;
  features: KernelFeature[];
  probes: ProbeReport[];
  explanations: { name: string; supported: boolean; needs: string }[];
  problems: string[];
}

/** What netwhy can explain given which probes attach. Pure: unit-tested. */
export function supportedExplanations(probes: ProbeReport[]): DoctorReport['explanations'] {
  const on = (name: string) => probes.some((p) => p.probe === name && p.mode !== null);
  return [
    { name: 'drops with reason and location', supported: on('kfree_skb'), needs: 'kfree_skb' },
    { name: 'every hop: receive and transmit per namespace and device', supported: on('netif_receive_skb') && on('net_dev_queue'), needs: 'netif_receive_skb, net_dev_queue' },
    { name: 'route decisions, reverse-path checks (rp_filter)', supported: on('fib_table_lookup'), needs: 'fib_table_lookup' },
    { name: 'following a command and its children (explain)', supported: on('sched_process_fork'), needs: 'sched_process_fork' },
  ];
}

export function collectDoctor(): DoctorReport {
  const problems: string[] = [];
  const privileges = currentPrivileges();
  const btfPresent = existsSync(KERNEL_BTF);
  let dropReasons = 0;
  if (btfPresent) {
    try {
      dropReasons = kernelDropReasons().size;
    } catch (e) {
      problems.push(`reading drop reasons from ${KERNEL_BTF}: ${(e as Error).message}`);
    }
  } else {
    problems.push(`no kernel BTF at ${KERNEL_BTF}: netwhy needs CONFIG_DEBUG_INFO_BTF=y`);
  }
  if (!privileges.canTrace) problems.push(`missing privileges: ${privileges.missing.join(', ')} (run as root)`);

  let features: KernelFeature[] = [];
  let probes: ProbeReport[] = [];
  if (privileges.canTrace && btfPresent) {
    const binding = loadBinding();
    features = binding.kernelFeatures();
    try {
      const s = TraceSession.open({ ringBytes: 1 << 16, binding });
      probes = s.probes();
      s.close();
    } catch (e) {
      problems.push(`loading the BPF object: ${(e as Error).message}`);
    }
  }
  for (const p of probes) if (!p.mode) problems.push(`probe ${p.probe} cannot attach: ${p.skipped.map((s) => `${s.mode}: ${s.reason}`).join('; ')}`);
  return {
    version: 1,
    kernel: { release: release(), machine: machine() },
    btf: { path: KERNEL_BTF, present: btfPresent, dropReasons },
    privileges,
    features,
    probes,
    explanations: supportedExplanations(probes),
    problems,
  };
}

const yes = (b: boolean) => (b ? 'yes' : 'no');

export function doctorText(r: DoctorReport): string {
  const L: string[] = [];
  L.push(`kernel      ${r.kernel.release} (${r.kernel.machine})`);
  L.push(`BTF         ${r.btf.present ? `${r.btf.path}, ${r.btf.dropReasons} drop reasons` : 'MISSING'}`);
  const p = r.privileges;
  L.push(`privileges  root ${yes(p.root)}, CAP_BPF ${yes(p.capBpf)}, CAP_PERFMON ${yes(p.capPerfmon)}, CAP_SYS_ADMIN ${yes(p.capSysAdmin)}, CAP_NET_ADMIN ${yes(p.capNetAdmin)}`);
  if (r.features.length) {
    L.push('', 'attach mechanisms on this kernel');
    for (const f of r.features) L.push(`  ${f.name.padEnd(8)} ${f.available ? 'yes' : `no   ${f.reason}`}`);
  }
  if (r.probes.length) {
    L.push('', 'probes');
    for (const pr of r.probes) {
      const why = pr.skipped.map((s) => `${s.mode}: ${s.reason}`).join('; ');
      L.push(`  ${pr.probe.padEnd(20)} ${(pr.mode ?? 'UNAVAILABLE').padEnd(8)}${why ? ` (${pr.mode ? 'passed over ' : ''}${why})` : ''}`);
    }
  }
  L.push('', 'explanations');
  for (const e of r.explanations) L.push(`  ${e.supported ? 'yes' : 'no '}  ${e.name}${e.supported ? '' : ` (needs ${e.needs})`}`);
  L.push('', r.problems.length ? `problems\n${r.problems.map((x) => `  - ${x}`).join('\n')}` : 'no problems found');
  return L.join('\n');
}

export function runDoctor(opts: { json?: boolean }, io: Io = { out: process.stdout, err: process.stderr }): number {
  const r = collectDoctor();
  io.out.write((opts.json ? JSON.stringify(r, null, 2) : doctorText(r)) + '\n');
  return r.problems.length ? 1 : 0;
}

