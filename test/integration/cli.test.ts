// What a user sees: exit codes and messages for bad input, and doctor's report.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/netns.js';
import { expectValid } from '../helpers/schema.js';

const CLI = resolve(__dirname, '../../dist/cli.js');

function netwhy(args: string[], opts: { env?: Record<string, string>; asNobody?: boolean } = {}) {
  const cmd = opts.asNobody ? 'setpriv' : process.execPath;
  const argv = opts.asNobody ? ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, CLI, ...args] : [CLI, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...opts.env }, timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('netwhy command line', () => {
  it('a filter that does not parse: exit 2 and where it went wrong, no stack trace', () => {
    const r = netwhy(['trace', 'host', '10.0.0.1', 'and', 'port', 'http']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("bad filter: 'http' is not a port (0-65535) at column 24");
    expect(r.err).toContain('^');
    expect(r.err).not.toMatch(/at .*\.js:\d+/);
  });

  it('an unknown command: exit 2 with a pointer to --help', () => {
    const r = netwhy(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'frobnicate'");
  });

  it('every error line starts with the one prefix "netwhy:", commander\'s own included', () => {
    for (const args of [['frobnicate'], ['trace', '--count', 'many'], ['explain']]) {
      const r = netwhy(args);
      expect(r.err.split('\n')[0], args.join(' ')).toMatch(/^netwhy: /);
      expect(r.err).not.toMatch(/^error:/m);
    }
  });

  it('--version prints the version in package.json', () => {
    const pkg = JSON.parse(readFileSync(resolve(__dirname, '../../package.json'), 'utf8')) as { version: string };
    expect(netwhy(['--version']).out.trim()).toBe(pkg.version);
  });

  it('a reader that is already gone (lab list | true): no EPIPE stack trace, exit 0', () => {
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${CLI}" lab list | true`], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).not.toMatch(/EPIPE|Error/);
    expect(r.status).toBe(0);
  });

  it.skipIf(!isRoot())('explain exits with the traced command\'s own status', () => {
    expect(netwhy(['explain', '--settle', '0', '--', 'sh', '-c', 'exit 7']).code).toBe(7);
    expect(netwhy(['explain', '--settle', '0', '--', 'true']).code).toBe(0);
  });

  it.skipIf(!isRoot())('explain --json prints one document of the published schema, and --replay of its recording the same', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netwhy-cli-'));
    try {
      // a UDP datagram to a closed port on loopback: one flow, dropped with NO_SOCKET
      const send = "require('dgram').createSocket('udp4').send('x', 9, '127.0.0.1', () => process.exit(3))";
      const r = netwhy(['explain', '--json', '--settle', '200', '--record', `${dir}/rec`, '--', process.execPath, '-e', send]);
      expect(r.code, r.err).toBe(3);
      const doc = expectValid('explain', JSON.parse(r.out));
      expect(doc).toMatchObject({ exitCode: 3, command: [process.execPath, '-e', send] });
      expect(doc.flows.map((f: { verdict: { cause: { type: string } } }) => f.verdict.cause.type)).toContain('socket');
      const replay = netwhy(['explain', '--json', '--replay', `${dir}/rec`]);
      expect(replay.code, replay.err).toBe(0);
      expect(expectValid('explain', JSON.parse(replay.out))).toEqual(doc);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad option value: exit 2', () => {
    const r = netwhy(['trace', '--count', 'many']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('must be a positive number');
  });

  it('--help teaches the filter language with examples', () => {
    const r = netwhy(['trace', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('netwhy trace host 10.0.0.1 and port 30080');
  });

  it.skipIf(!isRoot() || !existsSync('/usr/bin/setpriv'))('not root: exit 3 and the missing capabilities', () => {
    const r = netwhy(['trace', 'udp'], { asNobody: true });
    expect(r.code).toBe(3);
    expect(r.err).toContain('needs root, or CAP_BPF and CAP_PERFMON');
    expect(r.err).toContain('missing: CAP_BPF, CAP_PERFMON');
  });

  it.skipIf(!isRoot())('no kernel BTF: exit 3 and what kernel is needed', () => {
    const r = netwhy(['trace', 'udp'], { env: { NETWHY_KERNEL_BTF: '/nonexistent/vmlinux' } });
    expect(r.code).toBe(3);
    expect(r.err).toContain('this kernel has no BTF');
    expect(r.err).toContain('CONFIG_DEBUG_INFO_BTF');
  });

  it.skipIf(!isRoot())('doctor tells the truth about this kernel', () => {
    const r = netwhy(['doctor', '--json']);
    const report = expectValid('doctor', JSON.parse(r.out));
    const feature = (n: string) => report.features.find((f: { name: string }) => f.name === n);
    expect(feature('btf').available).toBe(existsSync('/sys/kernel/btf/vmlinux'));
    expect(feature('tp_btf').available).toBe(true);
    // kprobes need the kprobe PMU; when it is missing doctor must say so
    const kprobePmu = existsSync('/sys/bus/event_source/devices/kprobe/type');
    expect(feature('kprobe').available).toBe(kprobePmu);
    if (!kprobePmu) expect(feature('kprobe').reason).toContain('no kprobe PMU');
    if (!feature('fentry').available) expect(feature('fentry').reason).toMatch(/fentry program load failed|attach/);
    const ipvsLoaded = existsSync('/proc/net/ip_vs');
    for (const p of report.probes) {
      if (p.probe.startsWith('ip_vs_')) {
        // the same object on a kernel without ip_vs: unavailable, with the reason
        if (!ipvsLoaded) expect(p.mode, p.probe).toBeNull();
        if (!ipvsLoaded) expect(p.skipped[0].reason, p.probe).toMatch(/not in kernel or module BTF|kprobes are not available/);
        continue;
      }
      expect(p.mode, p.probe).toBe('tp_btf'); // tp_btf works here, so no probe falls back further
      expect(p.attached).toBe(false); // doctor only loads
    }
    for (const e of report.explanations) if (!e.name.startsWith('IPVS')) expect(e.supported, e.name).toBe(true);
    expect(report.ipvsPreflight.find((c: { name: string }) => c.name === 'module ip_vs').ok).toBe(ipvsLoaded);
    expect(r.code).toBe(0);
    const text = netwhy(['doctor']);
    expect(text.out).toMatch(/kfree_skb\s+tp_btf/);
  });

  it('doctor lists the name sources; --kubeconfig to a closed port is an api error, not a doctor problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netwhy-doctor-'));
    try {
      const config = join(dir, 'kubeconfig');
      // port 1 on loopback: nothing listens there
      writeFileSync(config, 'apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: t\n  context: {cluster: t, user: u}\n');
      const r = netwhy(['doctor', '--json', '--kubeconfig', config, '--containerd-socket', join(dir, 'none.sock'), '--cni-cache', dir]);
      const report = expectValid('doctor', JSON.parse(r.out));
      const src = Object.fromEntries(report.nameSources.map((s: { source: string }) => [s.source, s]));
      expect(src.api).toMatchObject({ status: 'error' });
      expect(src.api.detail).toMatch(/^https:\/\/127\.0\.0\.1:1 \(.*\): .*ECONNREFUSED/);
      expect(src.containerd).toEqual({ source: 'containerd', status: 'absent', detail: `no socket at ${join(dir, 'none.sock')}` });
      expect(src['cni-cache']).toMatchObject({ status: 'ok', pods: 0 });
      expect(report.problems.join('\n')).not.toMatch(/kubeconfig|containerd|ECONNREFUSED/);
      const text = netwhy(['doctor', '--kubeconfig', config]);
      expect(text.out).toMatch(/\nKubernetes name sources\n(  (ok|absent|error) +\S+ +.+\n){5}/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!isRoot())('NETWHY_AVOID_MODES passes a mechanism over: the tracepoints fall back to raw_tp; an unknown mode is a usage error', async () => {
    const r = netwhy(['doctor', '--json'], { env: { NETWHY_AVOID_MODES: 'tp_btf' } });
    const report = expectValid('doctor', JSON.parse(r.out));
    const drop = report.probes.find((p: { probe: string }) => p.probe === 'kfree_skb');
    expect(drop.mode).toBe('raw_tp');
    expect(drop.skipped[0]).toEqual({ mode: 'tp_btf', reason: 'tp_btf avoided on request (NETWHY_AVOID_MODES)' });
    const bad = netwhy(['trace', 'udp'], { env: { NETWHY_AVOID_MODES: 'fentry,kprobez' } });
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown attach mode 'kprobez'");
  });
});
