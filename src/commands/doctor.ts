// netwhy doctor: what this kernel and these privileges let netwhy do, and why not.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { machine, release } from 'node:os';
import { KERNEL_BTF, kernelDropReasons } from '../kernel/symbols.js';
import type { NameSourceReport } from '../model/k8s.js';
import { type NameOptions, gatherNames } from './names.js';
import { currentPrivileges, type Privileges } from '../kernel/privileges.js';
import { type KernelFeature, loadBinding } from '../native.js';
import { type ProbeReport, TraceSession } from '../tracer.js';
import type { Io } from './trace.js';
import { type NetfilterBackends, backendsText, netfilterBackends } from '../state/netfilter/backends.js';
import { HOST, takeSnapshot } from '../state/snapshot.js';
import { type ReasonCoverage, coverageCounts, reasonCoverage } from '../explain/coverage.js';

export interface PreflightCheck {
  name: string;
  ok: boolean;
  found: string;
  want: string;
  fix: string;
}

export interface PreflightFacts {
  /** Loaded or built-in kernel modules. */
  modules: Set<string>;
  sysctl: Record<string, string | undefined>;
}

const IPVS_MODULES = ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack'];

/** What kube-proxy's IPVS mode needs of a node, and how to fix each. Pure. */
export function ipvsPreflight(f: PreflightFacts): PreflightCheck[] {
  const checks: PreflightCheck[] = IPVS_MODULES.map((m) => ({
    name: `module ${m}`,
    ok: f.modules.has(m),
    found: f.modules.has(m) ? 'loaded' : 'not loaded',
    want: 'loaded',
    fix: `modprobe ${m}; echo ${m} >> /etc/modules-load.d/ipvs.conf`,
  }));
  const sys = (key: string, ok: (v: string) => boolean, want: string, fix: string, missing?: string) => {
    const v = f.sysctl[key];
    checks.push({ name: key, ok: v !== undefined && ok(v), found: v ?? missing ?? 'absent', want, fix });
  };
  sys('net.ipv4.ip_forward', (v) => v === '1', '1', 'sysctl -w net.ipv4.ip_forward=1 and persist it in /etc/sysctl.d/ (without it a NodePort answers only on the node that runs the pod, and CoreDNS times out)');
  sys('net.bridge.bridge-nf-call-iptables', (v) => v === '1', '1', 'modprobe br_netfilter; sysctl -w net.bridge.bridge-nf-call-iptables=1 (bridged pod traffic must pass iptables, or replies are not un-NAT-ed)', 'absent (br_netfilter not loaded)');
  const rp = Math.max(Number(f.sysctl['net.ipv4.conf.all.rp_filter'] ?? 0), Number(f.sysctl['net.ipv4.conf.default.rp_filter'] ?? 0));
  checks.push({
    name: 'net.ipv4.conf.{all,default}.rp_filter',
    ok: rp !== 1,
    found: String(rp),
    want: '0 or 2',
    fix: 'strict reverse-path filtering (1) drops asymmetric traffic on multi-homed nodes: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 (the larger of all and the device is in force)',
  });
  sys('net.ipv4.vs.conntrack', (v) => v === '1', '1', 'sysctl -w net.ipv4.vs.conntrack=1 (kube-proxy sets it: IPVS must keep conntrack entries for iptables MASQUERADE to work)', 'absent (ip_vs not loaded)');
  return checks;
}

/** The version of the doctor --json report (docs/json.md: additive changes keep it). */
export const DOCTOR_VERSION = 1;

export interface DoctorReport {
  version: number;
  kernel: { release: string; machine: string };
  btf: { path: string; present: boolean; dropReasons: number };
  privileges: Privileges;
  features: KernelFeature[];
  probes: ProbeReport[];
  explanations: { name: string; supported: boolean; needs: string }[];
  ipvsPreflight: PreflightCheck[];
  /** where Kubernetes names come from on this node (additive in version 1: older reports lack it) */
  nameSources?: NameSourceReport[];
  /** the netfilter front-ends live in the host namespace (and each --netns), and the kube-proxy mode their rules show */
  netfilter?: NetfilterBackends[];
  problems: string[];
  /** With --reasons: every drop reason this kernel's BTF defines, and which rule explains it. */
  reasonCoverage?: { explained: number; defined: number; reasons: ReasonCoverage[] };
}

/** The drop reasons of this kernel, with the rules that explain them. Pure. */
export function reasonReport(reasons: Map<number, string>): NonNullable<DoctorReport['reasonCoverage']> {
  const list = reasonCoverage(reasons);
  return { ...coverageCounts(list), reasons: list };
}

export interface DoctorOptions extends NameOptions {
  ipvs?: boolean;
  /** list every drop reason of this kernel and the rule that explains it */
  reasons?: boolean;
  /** network namespaces (as `ip netns` names them) whose netfilter front-ends to report besides the host's */
  netns?: string[];
}

/** One line per name source: status, source, what it found or why not, and its counts. Pure. */
export function nameSourceLines(reports: NameSourceReport[]): string[] {
  return reports.map((r) => {
    const counts = [r.pods !== undefined ? `${r.pods} pods` : '', r.services !== undefined ? `${r.services} services` : ''].filter(Boolean).join(', ');
    return `  ${r.status.padEnd(6)} ${r.source.padEnd(16)} ${r.detail}${counts ? ` (${counts})` : ''}`;
  });
}

/** IPVS probes are there only with the ip_vs module: their absence is no problem of netwhy's. */
const isIpvsProbe = (name: string) => name.startsWith('ip_vs_');
/** sock:sock_send_length came in 6.3: older kernels explain less (a UDP packet that never left), nothing stops netwhy. */
const isOptionalProbe = (name: string) => isIpvsProbe(name) || name === 'sock_send_length';

/** What netwhy can explain given which probes attach. Pure: unit-tested. */
export function supportedExplanations(probes: ProbeReport[]): DoctorReport['explanations'] {
  const on = (name: string) => probes.some((p) => p.probe === name && p.mode !== null);
  return [
    { name: 'drops with reason and location', supported: on('kfree_skb'), needs: 'kfree_skb' },
    { name: 'every hop: receive and transmit per namespace and device', supported: on('netif_receive_skb') && on('net_dev_queue'), needs: 'netif_receive_skb, net_dev_queue' },
    { name: 'route decisions, reverse-path checks (rp_filter)', supported: on('fib_table_lookup'), needs: 'fib_table_lookup' },
    { name: 'following a command and its children (explain)', supported: on('sched_process_fork'), needs: 'sched_process_fork' },
    { name: 'flows known from connect() on: a first packet that never left (neighbour failures)', supported: on('inet_sock_set_state'), needs: 'inet_sock_set_state' },
    { name: 'a UDP or ICMP packet that never left (neighbour failures of any socket)', supported: on('sock_send_length'), needs: 'sock_send_length (kernel 6.3 or later)' },
    { name: 'IPVS connections: virtual service → real server', supported: on('ip_vs_conn_new'), needs: 'ip_vs_conn_new (the ip_vs module, kprobes or fexit)' },
    { name: 'IPVS control plane: who added or deleted a service', supported: on('ip_vs_unlink_service') && on('ip_vs_add_service'), needs: 'ip_vs_unlink_service, ip_vs_add_service' },
    { name: 'IPVS errors: no destination, hook drops, NAT transmit', supported: on('ip_vs_scheduler_err'), needs: 'ip_vs_scheduler_err, ip_vs_in_hook, ip_vs_nat_xmit' },
  ];
}

function loadedModules(): Set<string> {
  const out = new Set<string>();
  try {
    for (const line of readFileSync('/proc/modules', 'utf8').split('\n')) if (line) out.add(line.split(' ')[0]);
  } catch {
    // no /proc/modules: a kernel without loadable modules
  }
  try {
    const builtin = readFileSync(`/lib/modules/${release()}/modules.builtin`, 'utf8');
    for (const line of builtin.split('\n')) if (line) out.add(basename(line).replace(/\.ko(\..*)?$/, ''));
  } catch {
    // no modules.builtin: fall back to /sys/module, which lists built-ins with parameters
  }
  try {
    for (const m of readdirSync('/sys/module')) out.add(m);
  } catch {
    // no sysfs
  }
  return out;
}

function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export async function collectDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  // Name sources are IO with their own deadlines: started first, they overlap the BPF load.
  const names = gatherNames(opts);
  const backends = Promise.all([HOST, ...(opts.netns ?? [])].map(async (ns) => netfilterBackends(await takeSnapshot(ns))));
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
      const s = await TraceSession.open({ ringBytes: 1 << 16, binding });
      probes = s.probes();
      s.close();
    } catch (e) {
      problems.push(`loading the BPF object: ${(e as Error).message}`);
    }
  }
  for (const p of probes) {
    if (!p.mode && !isOptionalProbe(p.probe)) problems.push(`probe ${p.probe} cannot attach: ${p.skipped.map((s) => `${s.mode}: ${s.reason}`).join('; ')}`);
  }
  const keys = ['net.ipv4.ip_forward', 'net.bridge.bridge-nf-call-iptables', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.default.rp_filter', 'net.ipv4.vs.conntrack'];
  const preflight = ipvsPreflight({ modules: loadedModules(), sysctl: Object.fromEntries(keys.map((k) => [k, readSysctl(k)])) });
  if (opts.ipvs) for (const c of preflight) if (!c.ok) problems.push(`IPVS mode: ${c.name} is ${c.found}, needs ${c.want}: ${c.fix}`);
  const report: DoctorReport = {
    version: DOCTOR_VERSION,
    kernel: { release: release(), machine: machine() },
    btf: { path: KERNEL_BTF, present: btfPresent, dropReasons },
    privileges,
    features,
    probes,
    explanations: supportedExplanations(probes),
    ipvsPreflight: preflight,
    // Not problems: a machine outside Kubernetes has no names to give, and netwhy traces without them.
    nameSources: (await names)?.sources,
    netfilter: await backends,
    problems,
  };
  if (opts.reasons) {
    let reasons = new Map<number, string>();
    try {
      if (btfPresent) reasons = kernelDropReasons();
    } catch {
      // reported above as a problem
    }
    report.reasonCoverage = reasonReport(reasons);
  }
  return report;
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
  L.push('', 'IPVS-mode node preflight (kube-proxy --proxy-mode=ipvs)');
  for (const c of r.ipvsPreflight) L.push(`  ${c.ok ? 'ok ' : 'NO '}  ${c.name.padEnd(38)} ${c.found}${c.ok ? '' : ` (want ${c.want})`}`);
  if (r.nameSources) L.push('', 'Kubernetes name sources', ...nameSourceLines(r.nameSources));
  if (r.netfilter) L.push('', 'netfilter (each rule is evaluated by one front-end: an iptables-nft table by its iptables-save form)', ...r.netfilter.map((b) => `  ${backendsText(b)}`));
  L.push('', 'explanations');
  for (const e of r.explanations) L.push(`  ${e.supported ? 'yes' : 'no '}  ${e.name}${e.supported ? '' : ` (needs ${e.needs})`}`);
  if (r.reasonCoverage) L.push('', ...reasonsText(r.reasonCoverage));
  L.push('', r.problems.length ? `problems\n${r.problems.map((x) => `  - ${x}`).join('\n')}` : 'no problems found');
  return L.join('\n');
}

export function reasonsText(c: NonNullable<DoctorReport['reasonCoverage']>): string[] {
  const L = [`drop reasons: this kernel's BTF defines ${c.defined}, netwhy has a rule for ${c.explained}`];
  const w = Math.max(4, ...c.reasons.map((r) => r.name.length));
  for (const r of c.reasons) {
    const rules = r.rules.length ? r.rules.join(', ') : r.weak ? 'not blamed alone (not a loss, or too vague)' : 'no rule yet';
    L.push(`  ${String(r.value).padStart(5)} ${r.name.padEnd(w)}  ${rules}`);
    if (r.meaning) L.push(`  ${''.padStart(5)} ${''.padEnd(w)}    ${r.meaning}`);
  }
  return L;
}

export async function runDoctor(opts: DoctorOptions & { json?: boolean }, io: Io = { out: process.stdout, err: process.stderr }): Promise<number> {
  const r = await collectDoctor(opts);
  io.out.write((opts.json ? JSON.stringify(r, null, 2) : doctorText(r)) + '\n');
  return r.problems.length ? 1 : 0;
}

