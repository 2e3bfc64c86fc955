import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type ParseErrorCase, parseErrorCases, parseErrorOf } from '../helpers/parse-errors.js';
import { type PacketContext, TCP_FLAGS } from '../../src/model/netfilter.js';
import type { HookResult } from '../../src/model/netfilter/xt-result.js';
import { type Ruleset, allRules, findRule } from '../../src/model/netfilter/xt-ruleset.js';
import { evaluateHook } from '../../src/model/netfilter/xt-walk.js';
import { parseIpsetSave } from '../../src/state/netfilter/ipset-save.js';
import { IptablesParseError, parseIptablesSave } from '../../src/state/netfilter/iptables-save.js';

const fixture = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../fixtures/iptables/${name}`, import.meta.url)), 'utf8');

const kubeProxyText = fixture('kube-proxy-iptables.rules');
const kubeProxy = parseIptablesSave(kubeProxyText);
const kubeRouter = parseIptablesSave(fixture('kube-router-filter.rules'));
const kubeRouterV2 = parseIptablesSave(fixture('kube-router-v2-filter.rules'));
const routerSets = parseIpsetSave(fixture('kube-router.ipset'));
const noSets = new Map();

const NODE = '192.168.0.11';
const nodeLocal = [NODE, '10.244.1.1', '127.0.0.1'];

function pkt(p: Partial<PacketContext>): PacketContext {
  return { proto: 6, src: '203.0.113.9', dst: NODE, mark: 0, ctstate: ['NEW'], localAddrs: nodeLocal, ...p };
}

/** The rule that decided, as text and line; fails the test when a policy decided. */
function decidingRule(r: HookResult): { text: string; line: number; table: string; chain: string; index: number } {
  if (r.decidedBy.kind !== 'rule') throw new Error(`decided by ${JSON.stringify(r.decidedBy)}`);
  const { text, line, table, chain, index } = r.decidedBy.rule;
  return { text, line, table, chain, index };
}

const effects = (r: HookResult) => r.trail.map((t) => `${t.table}/${t.chain}#${t.rule.index}: ${t.effect}`);

const parseError = (text: string): IptablesParseError => parseErrorOf(parseIptablesSave, IptablesParseError, text);

function mini(rules: string, policies = { INPUT: 'ACCEPT', FORWARD: 'ACCEPT', OUTPUT: 'ACCEPT' }, chains: string[] = []): Ruleset {
  return parseIptablesSave(
    [
      '*filter',
      `:INPUT ${policies.INPUT} [0:0]`,
      `:FORWARD ${policies.FORWARD} [0:0]`,
      `:OUTPUT ${policies.OUTPUT} [0:0]`,
      ...chains.map((c) => `:${c} - [0:0]`),
      rules.trim(),
      'COMMIT',
      '',
    ].join('\n'),
  );
}

describe('parseIptablesSave', () => {
  it('reads tables, chains, policies and counters of iptables-save -c', () => {
    expect([...kubeProxy.tables.keys()]).toEqual(['mangle', 'filter', 'nat']);
    const fwd = kubeProxy.tables.get('filter')!.chains.get('FORWARD')!;
    expect(fwd).toMatchObject({ builtin: true, policy: 'DROP', counters: { packets: 0, bytes: 0 }, line: 16 });
    const input = kubeProxy.tables.get('filter')!.chains.get('INPUT')!;
    expect(input.counters).toEqual({ packets: 1850210, bytes: 1493027460 });
    expect(kubeProxy.tables.get('nat')!.chains.get('KUBE-MARK-MASQ')).toMatchObject({ builtin: false, policy: null });
    expect(allRules(kubeProxy)).toHaveLength(57);
  });

  it('keeps each rule verbatim without the counter prefix, with its counters, index and comment', () => {
    const dnat = findRule(kubeProxy, 'nat', 'KUBE-SEP-QXMS4ZNRQ4MHA7GN', 2)!;
    expect(dnat).toMatchObject({
      table: 'nat',
      chain: 'KUBE-SEP-QXMS4ZNRQ4MHA7GN',
      index: 2,
      line: 93,
      text: '-A KUBE-SEP-QXMS4ZNRQ4MHA7GN -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.244.2.2:80',
      counters: { packets: 107, bytes: 6420 },
      comment: 'default/web',
    });
    expect(kubeProxyText.split('\n')[dnat.line - 1]).toBe(`[107:6420] ${dnat.text}`);
    expect(dnat.target).toMatchObject({ kind: 'nat', nat: 'dnat', to: '10.244.2.2:80', addr: '10.244.2.2', port: 80 });
    const np = findRule(kubeProxy, 'nat', 'KUBE-SERVICES', 4)!;
    expect(np.comment).toBe('kubernetes service nodeports; NOTE: this must be the last rule in this chain');
    expect(np.text).toBe(
      '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
    );
    expect(np.unevaluable).toBeUndefined();
    expect(allRules(kubeProxy).filter((r) => r.unevaluable)).toEqual([]);
  });

  it('reads rules without counters, negations and set matches', () => {
    const fw = findRule(kubeProxy, 'filter', 'KUBE-FIREWALL', 1)!;
    expect(fw.conditions.map((c) => [c.kind, c.neg])).toEqual([
      ['addr', true],
      ['addr', false],
      ['ctstate', true],
    ]);
    const reject = findRule(kubeRouter, 'filter', 'KUBE-ROUTER-SERVICES', 7)!;
    expect(reject.counters).toBeUndefined();
    expect(reject.line).toBe(37);
    expect(reject.conditions).toEqual([
      { kind: 'set', set: 'kube-router-svip', flags: ['dst'], returnNomatch: false, counterTests: false, neg: false, text: '-m set --match-set kube-router-svip dst' },
    ]);
    expect(reject.target).toEqual({ kind: 'reject', with: 'icmp-port-unreachable', name: 'REJECT', args: ['--reject-with', 'icmp-port-unreachable'] });
    const v2 = findRule(kubeRouterV2, 'filter', 'KUBE-ROUTER-SERVICES', 5)!;
    expect(v2.conditions[0]).toMatchObject({ kind: 'set', set: 'kube-router-local-ips', neg: true });
  });

  it('keeps rules it cannot evaluate, marked unevaluable with the reason', () => {
    const ipvs = findRule(kubeRouter, 'nat', 'POSTROUTING', 1)!;
    expect(ipvs.text).toBe('-A POSTROUTING -m ipvs --ipvs --vdir ORIGINAL --vmethod MASQ -m comment --comment "" -j SNAT --to-source 192.168.0.12 --random-fully');
    expect(ipvs.unevaluable).toBe('match -m ipvs is not supported');
    expect(ipvs.comment).toBe('');
    expect(ipvs.target).toMatchObject({ kind: 'nat', nat: 'snat', addr: '192.168.0.12' });
    const rs = mini('-A INPUT -p tcp -m foo --bar 1 -j DROP\n-A INPUT -m tcp --weird 7 -j ACCEPT\n-A INPUT -j FROBNICATE --level 3');
    const rules = rs.tables.get('filter')!.chains.get('INPUT')!.rules;
    expect(rules.map((r) => r.unevaluable)).toEqual([
      'match -m foo is not supported',
      'unknown option --weird for -m tcp',
      'target FROBNICATE is neither a chain of table filter nor a known target',
    ]);
  });

  it('handles -I, inline -c counters, escaped quotes and CRLF', () => {
    const rs = parseIptablesSave(
      '*filter\r\n:INPUT ACCEPT [0:0]\r\n-A INPUT -s 10.0.0.1/32 -j ACCEPT\r\n-I INPUT -m comment --comment "say \\"hi\\"" -c 5 300 -j DROP\r\n-I INPUT 2 -d 10.0.0.9/32 -j ACCEPT\r\nCOMMIT\r\n',
    );
    const rules = rs.tables.get('filter')!.chains.get('INPUT')!.rules;
    expect(rules.map((r) => [r.index, r.line])).toEqual([
      [1, 4],
      [2, 5],
      [3, 3],
    ]);
    expect(rules[0].comment).toBe('say "hi"');
    expect(rules[0].counters).toEqual({ packets: 5, bytes: 300 });
    expect(rules[0].text).toBe('-I INPUT -m comment --comment "say \\"hi\\"" -c 5 300 -j DROP');
  });

  describe('malformed input gives IptablesParseError with the line number and the line', () => {
    const cases: ParseErrorCase[] = [
      ['rule outside a table', '# x\n-A INPUT -j ACCEPT\n', 2, '-A INPUT -j ACCEPT', /outside a table/],
      ['chain outside a table', ':INPUT ACCEPT [0:0]', 1, ':INPUT ACCEPT [0:0]', /outside a table/],
      ['unterminated quote', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "oops -j ACCEPT\nCOMMIT', 3, '-A INPUT -m comment --comment "oops -j ACCEPT', /unterminated quote/],
      ['missing chain', '*filter\n:INPUT ACCEPT [0:0]\n-A\nCOMMIT', 3, '-A', /without a chain name/],
      ['-A with an option instead of a chain', '*filter\n:INPUT ACCEPT [0:0]\n-A -s 1.2.3.4 -j DROP\nCOMMIT', 3, '-A -s 1.2.3.4 -j DROP', /without a chain name/],
      ['undeclared chain', '*filter\n:INPUT ACCEPT [0:0]\n-A KUBE-NOPE -j DROP\nCOMMIT', 3, '-A KUBE-NOPE -j DROP', /KUBE-NOPE is not declared/],
      ['missing COMMIT at the end', '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\n', 1, '*nat', /table nat has no COMMIT/],
      ['missing COMMIT before the next table', '*nat\n:PREROUTING ACCEPT [0:0]\n*filter\nCOMMIT', 3, '*filter', /nat \(line 1\) has no COMMIT/],
      ['COMMIT outside a table', 'COMMIT', 1, 'COMMIT', /COMMIT outside a table/],
      ['unknown table', '*broute\nCOMMIT', 1, '*broute', /unknown table/],
      ['policy on a user chain', '*filter\n:KUBE-X DROP [0:0]\nCOMMIT', 2, ':KUBE-X DROP [0:0]', /user chain KUBE-X cannot have a policy/],
      ['built-in chain without policy', '*filter\n:INPUT - [0:0]\nCOMMIT', 2, ':INPUT - [0:0]', /needs policy ACCEPT or DROP/],
      ['bad chain counters', '*filter\n:INPUT ACCEPT [x:0]\nCOMMIT', 2, ':INPUT ACCEPT [x:0]', /bad counters/],
      ['bad rule counters', '*filter\n:INPUT ACCEPT [0:0]\n[1:] -A INPUT -j DROP\nCOMMIT', 3, '[1:] -A INPUT -j DROP', /bad counters/],
      ['duplicate chain', '*filter\n:INPUT ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\nCOMMIT', 3, ':INPUT ACCEPT [0:0]', /declared twice/],
      ['garbage line', '*filter\n:INPUT ACCEPT [0:0]\nhello world\nCOMMIT', 3, 'hello world', /not a table, chain, rule/],
      ['goto to an undeclared chain', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -g NOWHERE\nCOMMIT', 3, '-A INPUT -g NOWHERE', /goto \(-g\) to NOWHERE/],
      ['dangling !', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP !\nCOMMIT', 3, '-A INPUT -j DROP !', /! at the end/],
      ['two targets', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP -j ACCEPT\nCOMMIT', 3, '-A INPUT -j DROP -j ACCEPT', /more than one -j/],
      ['option without its value', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT -s\nCOMMIT', 3, '-A INPUT -j ACCEPT -s', /-s needs a value/],
      ['module option without its value', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport\nCOMMIT', 3, '-A INPUT -p tcp -m tcp --dport', /--dport needs a value/],
      ['stray word', '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 1.2.3.4 oops -j DROP\nCOMMIT', 3, '-A INPUT -s 1.2.3.4 oops -j DROP', /unexpected word/],
      ['not -A', '*filter\n:INPUT ACCEPT [0:0]\n-N FOO\nCOMMIT', 3, '-N FOO', /expected -A CHAIN/],
    ];
    parseErrorCases(cases, parseError);

    it('never throws anything but IptablesParseError on damaged fixtures, and evaluates whatever parses', () => {
      let seed = 12345;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const sources = [kubeProxyText, fixture('kube-router-filter.rules'), fixture('kube-router-v2-filter.rules')];
      let parsed = 0;
      let failed = 0;
      for (let round = 0; round < 400; round++) {
        const lines = sources[round % sources.length].split('\n');
        const li = rand(lines.length);
        const words = lines[li].split(' ');
        const wi = rand(words.length);
        switch (rand(5)) {
          case 0:
            words.splice(wi, 1);
            break;
          case 1:
            words.splice(wi, 0, ['!', '"', '-j', '--dport', '-m', 'COMMIT', '*nat', '[1:2]'][rand(8)]);
            break;
          case 2:
            words[wi] = words[wi].slice(0, rand(words[wi].length + 1));
            break;
          case 3:
            lines.splice(li, 1);
            break;
          default:
            words[wi] = words[rand(words.length)];
        }
        if (lines[li] !== undefined) lines[li] = words.join(' ');
        let rs: Ruleset;
        try {
          rs = parseIptablesSave(lines.join('\n'));
          parsed++;
        } catch (e) {
          expect(e).toBeInstanceOf(IptablesParseError);
          const pe = e as IptablesParseError;
          expect(pe.line).toBeGreaterThan(0);
          expect(lines[pe.line - 1].replace(/\r$/, '')).toBe(pe.text);
          failed++;
          continue;
        }
        for (const hook of ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'] as const) {
          const r = evaluateHook(rs, routerSets, hook, pkt({ iif: 'eth0', oif: 'eth0', dport: 30080, sport: 40000 }));
          expect(['ACCEPT', 'DROP', 'REJECT', 'UNKNOWN']).toContain(r.verdict);
        }
      }
      expect(parsed).toBeGreaterThan(50);
      expect(failed).toBeGreaterThan(50);
    });
  });
});

describe('evaluateHook: kube-proxy (iptables mode)', () => {
  const nodePortSyn = pkt({ sport: 51000, dport: 30080, iif: 'eth0', tcpFlags: TCP_FLAGS.SYN });

  it('a NodePort packet to node:30080 at PREROUTING is DNATed by the KUBE-SEP rule, and marked for masquerade', () => {
    const r = evaluateHook(kubeProxy, noSets, 'PREROUTING', nodePortSyn);
    expect(r.verdict).toBe('ACCEPT');
    expect(decidingRule(r)).toEqual({
      table: 'nat',
      chain: 'KUBE-SEP-QXMS4ZNRQ4MHA7GN',
      index: 2,
      line: 93,
      text: '-A KUBE-SEP-QXMS4ZNRQ4MHA7GN -p tcp -m comment --comment "default/web" -m tcp -j DNAT --to-destination 10.244.2.2:80',
    });
    expect(r.nat).toHaveLength(1);
    expect(r.nat[0]).toMatchObject({ kind: 'dnat', to: '10.244.2.2:80', addr: '10.244.2.2', port: 80, table: 'nat' });
    expect(r.nat[0].rule.line).toBe(93);
    expect(effects(r)).toEqual([
      'nat/PREROUTING#1: jump KUBE-SERVICES',
      'nat/KUBE-SERVICES#4: jump KUBE-NODEPORTS',
      'nat/KUBE-NODEPORTS#1: jump KUBE-EXT-7PUR4PFJ7YVXSEOC',
      'nat/KUBE-EXT-7PUR4PFJ7YVXSEOC#1: jump KUBE-MARK-MASQ',
      'nat/KUBE-MARK-MASQ#1: mark 0x0 -> 0x4000',
      'nat/KUBE-EXT-7PUR4PFJ7YVXSEOC#2: jump KUBE-SVC-7PUR4PFJ7YVXSEOC',
      'nat/KUBE-SVC-7PUR4PFJ7YVXSEOC#2: jump KUBE-SEP-QXMS4ZNRQ4MHA7GN',
      'nat/KUBE-SEP-QXMS4ZNRQ4MHA7GN#2: DNAT to 10.244.2.2:80',
    ]);
    expect(r.packet).toMatchObject({ dst: '10.244.2.2', dport: 80, mark: 0x4000, src: '203.0.113.9' });
    expect(r.packet.ctstate).toEqual(['NEW', 'DNAT']);
    // kube-proxy's random endpoint choice is reported, not hidden
    expect(r.uncertain).toHaveLength(1);
    expect(r.uncertain[0]).toMatchObject({ assumed: 'match', chain: 'KUBE-SVC-7PUR4PFJ7YVXSEOC' });
    expect(r.uncertain[0].rule.line).toBe(101);
    expect(r.uncertain[0].reason).toMatch(/statistic/);
    expect(r.certain).toBe(false);
    expect(r.tables.map((t) => [t.table, t.verdict ?? t.skipped])).toEqual([
      ['raw', 'table not in the ruleset'],
      ['mangle', 'ACCEPT'],
      ['nat', 'ACCEPT'],
    ]);
  });

  it('the DNATed NodePort packet is forwarded by KUBE-FORWARD because of mark 0x4000 (FORWARD policy is DROP)', () => {
    const pre = evaluateHook(kubeProxy, noSets, 'PREROUTING', nodePortSyn);
    const fwd = evaluateHook(kubeProxy, noSets, 'FORWARD', { ...pre.packet, oif: 'flannel.1' });
    expect(fwd.verdict).toBe('ACCEPT');
    expect(decidingRule(fwd)).toMatchObject({
      line: 44,
      text: '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
    });
    expect(fwd.certain).toBe(true);
    // without the mark (and not to/from the pod network) the FORWARD policy drops it
    const unmarked = evaluateHook(kubeProxy, noSets, 'FORWARD', pkt({ dst: '198.51.100.7', dport: 443, iif: 'eth0', oif: 'eth1' }));
    expect(unmarked.verdict).toBe('DROP');
    expect(unmarked.decidedBy).toEqual({ kind: 'policy', table: 'filter', chain: 'FORWARD', policy: 'DROP', verdict: 'DROP' });
  });

  it('external NodePort traffic is MASQUERADEd at POSTROUTING and the mark bit cleared', () => {
    const pre = evaluateHook(kubeProxy, noSets, 'PREROUTING', nodePortSyn);
    const post = evaluateHook(kubeProxy, noSets, 'POSTROUTING', { ...pre.packet, oif: 'flannel.1' });
    expect(post.verdict).toBe('ACCEPT');
    expect(decidingRule(post)).toMatchObject({
      chain: 'KUBE-POSTROUTING',
      index: 3,
      line: 85,
      text: '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    });
    expect(post.nat).toEqual([expect.objectContaining({ kind: 'masquerade', to: null, chain: 'KUBE-POSTROUTING' })]);
    expect(effects(post)).toEqual([
      'nat/POSTROUTING#1: jump KUBE-POSTROUTING',
      'nat/KUBE-POSTROUTING#2: mark 0x4000 -> 0x0',
      'nat/KUBE-POSTROUTING#3: MASQUERADE',
    ]);
    expect(post.packet.mark).toBe(0);
    expect(post.packet.ctstate).toContain('SNAT');
    // unmarked pod-to-pod traffic is left alone by kube-proxy and flannel
    const podToPod = evaluateHook(kubeProxy, noSets, 'POSTROUTING', pkt({ src: '10.244.1.7', dst: '10.244.2.2', dport: 80, oif: 'flannel.1' }));
    expect(podToPod.nat).toEqual([]);
    expect(podToPod.decidedBy).toMatchObject({ kind: 'policy', table: 'nat', chain: 'POSTROUTING' });
    expect(effects(podToPod)).toEqual([
      'nat/POSTROUTING#1: jump KUBE-POSTROUTING',
      'nat/KUBE-POSTROUTING#1: return to POSTROUTING',
      'nat/POSTROUTING#2: jump FLANNEL-POSTRTG',
      'nat/FLANNEL-POSTRTG#2: return to POSTROUTING',
    ]);
  });

  it('a pod reaching a ClusterIP is DNATed without the masquerade mark', () => {
    const r = evaluateHook(kubeProxy, noSets, 'PREROUTING', pkt({ src: '10.244.1.7', dst: '10.96.45.10', dport: 80, sport: 40000, iif: 'cni0' }));
    expect(r.nat[0]).toMatchObject({ kind: 'dnat', addr: '10.244.2.2', port: 80 });
    expect(r.packet.mark).toBe(0);
    expect(effects(r)).not.toContain('nat/KUBE-MARK-MASQ#1: mark 0x0 -> 0x4000');
  });

  it('OUTPUT: a node process reaching the kubernetes service is DNATed before the filter table sees it', () => {
    const r = evaluateHook(kubeProxy, noSets, 'OUTPUT', pkt({ src: NODE, dst: '10.96.0.1', dport: 443, sport: 33000, oif: 'eth0' }));
    expect(r.verdict).toBe('ACCEPT');
    expect(decidingRule(r).line).toBe(95);
    expect(r.packet).toMatchObject({ dst: '192.168.0.10', dport: 6443, mark: 0x4000 });
    expect(r.tables.map((t) => t.table)).toEqual(['raw', 'mangle', 'nat', 'filter', 'security']);
    expect(r.certain).toBe(true);
  });

  it('packets of established connections skip the nat table', () => {
    const r = evaluateHook(kubeProxy, noSets, 'PREROUTING', { ...nodePortSyn, ctstate: ['ESTABLISHED'], tcpFlags: TCP_FLAGS.ACK });
    expect(r.nat).toEqual([]);
    expect(r.tables.find((t) => t.table === 'nat')?.skipped).toMatch(/only the first packet/);
    expect(r.decidedBy).toMatchObject({ kind: 'policy', table: 'mangle', chain: 'PREROUTING', policy: 'ACCEPT' });
  });

  it('REJECTs services without endpoints (ClusterIP in FORWARD, NodePort in INPUT)', () => {
    const fwd = evaluateHook(kubeProxy, noSets, 'FORWARD', pkt({ src: '10.244.1.7', dst: '10.96.77.7', dport: 80, iif: 'cni0', oif: 'eth0' }));
    expect(fwd.verdict).toBe('REJECT');
    expect(fwd.rejectWith).toBe('icmp-port-unreachable');
    expect(decidingRule(fwd)).toMatchObject({ chain: 'KUBE-SERVICES', index: 1, line: 46 });
    const inp = evaluateHook(kubeProxy, noSets, 'INPUT', pkt({ dport: 30999, iif: 'eth0' }));
    expect(inp.verdict).toBe('REJECT');
    expect(decidingRule(inp)).toMatchObject({ chain: 'KUBE-EXTERNAL-SERVICES', line: 41 });
    // the same port on an address that is not local does not match --dst-type LOCAL
    const other = evaluateHook(kubeProxy, noSets, 'INPUT', pkt({ dst: '192.168.0.99', dport: 30999, iif: 'eth0' }));
    expect(other.verdict).toBe('ACCEPT');
  });

  it('KUBE-FIREWALL drops martian localnet traffic unless conntrack says DNAT (negated -s and --ctstate)', () => {
    const martian = pkt({ src: '10.0.0.5', dst: '127.0.0.1', dport: 10249, iif: 'eth0' });
    const r = evaluateHook(kubeProxy, noSets, 'INPUT', martian);
    expect(r.verdict).toBe('DROP');
    expect(decidingRule(r)).toMatchObject({ chain: 'KUBE-FIREWALL', line: 42 });
    expect(evaluateHook(kubeProxy, noSets, 'INPUT', { ...martian, ctstate: ['NEW', 'DNAT'] }).verdict).toBe('ACCEPT');
    expect(evaluateHook(kubeProxy, noSets, 'INPUT', { ...martian, src: '127.0.0.1' }).verdict).toBe('ACCEPT');
  });
});

describe('evaluateHook: kube-router', () => {
  const toVip = (dport: number) => pkt({ src: '192.168.0.50', sport: 40000, dst: '192.168.0.100', dport, iif: 'eth0', localAddrs: ['192.168.0.12', '192.168.0.100', '10.244.1.1'] });

  it('REJECTs traffic to the API server VIP because ipset kube-router-svip holds it', () => {
    const r = evaluateHook(kubeRouter, routerSets, 'INPUT', toVip(6443));
    expect(r.verdict).toBe('REJECT');
    expect(r.rejectWith).toBe('icmp-port-unreachable');
    expect(decidingRule(r)).toEqual({
      table: 'filter',
      chain: 'KUBE-ROUTER-SERVICES',
      index: 7,
      line: 37,
      text: '-A KUBE-ROUTER-SERVICES -m comment --comment "reject all unexpected traffic to service IPs" -m set --match-set kube-router-svip dst -j REJECT --reject-with icmp-port-unreachable',
    });
    expect(r.setMatches).toEqual([{ set: 'kube-router-svip', member: '192.168.0.100', flags: ['dst'], negated: false, memberLine: 11 }]);
    expect(effects(r)).toEqual([
      'filter/INPUT#1: jump KUBE-ROUTER-SERVICES',
      'filter/KUBE-ROUTER-SERVICES#7: REJECT with icmp-port-unreachable',
    ]);
    expect(r.trail[0].setMatches[0]).toMatchObject({ set: 'kube-router-svip', member: '192.168.0.100' });
    expect(r.certain).toBe(true);
    // the nat table's INPUT chain (after filter) never sees a rejected packet
    expect(r.tables.map((t) => t.table)).toEqual(['mangle', 'filter']);
  });

  it('ACCEPTs a port listed in kube-router-svip-prt by the earlier rule', () => {
    const r = evaluateHook(kubeRouter, routerSets, 'INPUT', toVip(443));
    expect(r.verdict).toBe('ACCEPT');
    expect(decidingRule(r)).toMatchObject({ chain: 'KUBE-ROUTER-SERVICES', index: 6, line: 36 });
    expect(r.setMatches).toEqual([{ set: 'kube-router-svip-prt', member: '192.168.0.100,tcp:443', flags: ['dst', 'dst'], negated: false, memberLine: 19 }]);
    // UDP to the same port is not in the set: rejected
    expect(evaluateHook(kubeRouter, routerSets, 'INPUT', { ...toVip(443), proto: 17 }).verdict).toBe('REJECT');
  });

  it('ACCEPTs by the kube-router-ipvs-services rule when that set holds the service', () => {
    const r = evaluateHook(kubeRouter, routerSets, 'INPUT', pkt({ src: '10.244.1.7', dst: '10.96.0.1', dport: 443, iif: 'kube-bridge' }));
    expect(decidingRule(r)).toMatchObject({ index: 5, line: 35 });
    expect(r.setMatches[0]).toMatchObject({ set: 'kube-router-ipvs-services', member: '10.96.0.1,tcp:443' });
  });

  it('ICMP echo to a service IP is accepted; established traffic by the conntrack rule', () => {
    const echo = evaluateHook(kubeRouter, routerSets, 'INPUT', pkt({ proto: 1, dst: '10.96.0.10', icmpType: 8, icmpCode: 0, iif: 'eth0' }));
    expect(decidingRule(echo)).toMatchObject({ index: 2, line: 32 });
    const est = evaluateHook(kubeRouter, routerSets, 'INPUT', { ...toVip(6443), ctstate: ['ESTABLISHED'] });
    expect(decidingRule(est)).toMatchObject({ index: 1, line: 31 });
  });

  it('traffic to a non-service address goes through the netpol chain and the INPUT policy accepts it', () => {
    const r = evaluateHook(kubeRouter, routerSets, 'INPUT', pkt({ src: '10.244.1.7', dst: '10.244.1.1', dport: 53, proto: 17, iif: 'kube-bridge' }));
    expect(r.verdict).toBe('ACCEPT');
    expect(r.decidedBy).toMatchObject({ kind: 'policy', table: 'filter', chain: 'INPUT', policy: 'ACCEPT' });
    expect(effects(r)).toEqual(['filter/INPUT#2: jump KUBE-ROUTER-INPUT']);
  });

  it('the older REJECT rule also hits SSH to the node IP, which NodePort services put in kube-router-svip; v2 spares it', () => {
    const ssh = pkt({ src: '192.168.0.50', dst: '192.168.0.12', dport: 22, iif: 'eth0', localAddrs: ['192.168.0.12'] });
    const old = evaluateHook(kubeRouter, routerSets, 'INPUT', ssh);
    expect(old.verdict).toBe('REJECT');
    expect(old.setMatches).toEqual([{ set: 'kube-router-svip', member: '192.168.0.12', flags: ['dst'], negated: false, memberLine: 10 }]);
    expect(evaluateHook(kubeRouterV2, routerSets, 'INPUT', ssh).verdict).toBe('ACCEPT');
  });

  it('kube-router v2 rejects only service IPs that are not local: the negated set match is reported', () => {
    const r = evaluateHook(kubeRouterV2, routerSets, 'INPUT', pkt({ src: '10.244.1.7', dst: '10.96.0.1', dport: 8443, iif: 'kube-bridge' }));
    expect(r.verdict).toBe('REJECT');
    expect(decidingRule(r)).toMatchObject({ line: 23, index: 5 });
    expect(r.setMatches).toEqual([{ set: 'kube-router-local-ips', member: null, flags: ['dst'], negated: true }]);
    expect(r.trail[0].setMatches).toEqual([{ set: 'kube-router-svip', member: '10.96.0.1', flags: ['dst'], negated: false, memberLine: 7 }]);
    // the VIP is in kube-router-local-ips, so v2 lets it through where the older rule rejects it
    const vip = evaluateHook(kubeRouterV2, routerSets, 'INPUT', toVip(6443));
    expect(vip.verdict).toBe('ACCEPT');
  });

  it('a set missing from the ipset snapshot makes the rule uncertain, never a silent match', () => {
    const r = evaluateHook(kubeRouter, new Map(), 'INPUT', toVip(6443));
    expect(r.certain).toBe(false);
    expect(r.uncertain.map((u) => [u.rule.line, u.assumed])).toEqual([
      [20, 'match'],
      [35, 'match'],
    ]);
    expect(r.uncertain[0].reason).toMatch(/ipset kube-router-svip is not in the ipset snapshot/);
  });

  it('an unevaluable -m ipvs rule is listed as uncertain with the assumption made', () => {
    const out = pkt({ src: '192.168.0.50', dst: '10.244.1.7', dport: 80, oif: 'kube-bridge' });
    const r = evaluateHook(kubeRouter, routerSets, 'POSTROUTING', out);
    expect(r.uncertain).toHaveLength(1);
    expect(r.uncertain[0]).toMatchObject({ assumed: 'match', chain: 'POSTROUTING' });
    expect(r.uncertain[0].reason).toContain('not understood: match -m ipvs is not supported');
    expect(r.nat[0]).toMatchObject({ kind: 'snat', addr: '192.168.0.12' });
    const r2 = evaluateHook(kubeRouter, routerSets, 'POSTROUTING', out, { uncertainAs: 'nomatch' });
    expect(r2.uncertain.map((u) => [u.rule.line, u.assumed])).toEqual([[47, 'no match']]);
    // the hairpin rule has the same unknown match, but its -s/-d already rule the packet out
    expect(r2.nat).toEqual([]);
    expect(r2.decidedBy).toMatchObject({ kind: 'policy', chain: 'POSTROUTING' });
  });
});

describe('evaluateHook: chain traversal', () => {
  const rs = mini(
    `
-A INPUT -p tcp -j A
-A INPUT -p udp -g B
-A INPUT -j DROP
-A A -p tcp -m tcp --dport 22 -j RETURN
-A A -j C
-A A -j LOG --log-prefix "after C: "
-A C -p tcp -m tcp --dport 80 -j ACCEPT
-A B -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -s 10.0.0.0/8 -j RETURN
-A FORWARD -j ACCEPT
`,
    { INPUT: 'ACCEPT', FORWARD: 'DROP', OUTPUT: 'ACCEPT' },
    ['A', 'B', 'C'],
  );
  const at = (p: Partial<PacketContext>, hook: 'INPUT' | 'FORWARD' = 'INPUT') => evaluateHook(rs, noSets, hook, pkt({ iif: 'eth0', ...p }));

  it('RETURN from a user chain continues after the jump', () => {
    const r = at({ dport: 22 });
    expect(r.verdict).toBe('DROP');
    expect(decidingRule(r)).toMatchObject({ chain: 'INPUT', index: 3, text: '-A INPUT -j DROP' });
    expect(effects(r)).toEqual(['filter/INPUT#1: jump A', 'filter/A#1: return to INPUT', 'filter/INPUT#3: DROP']);
  });

  it('nested jumps return to where they left; ACCEPT ends the table at once', () => {
    expect(decidingRule(at({ dport: 80 }))).toMatchObject({ chain: 'C', index: 1 });
    const r = at({ dport: 443 });
    expect(effects(r)).toEqual(['filter/INPUT#1: jump A', 'filter/A#2: jump C', 'filter/A#3: LOG (does not change the verdict)', 'filter/INPUT#3: DROP']);
  });

  it('the end of a chain entered by goto returns past the chain that did the goto: built-in policy', () => {
    expect(decidingRule(at({ proto: 17, dport: 53 }))).toMatchObject({ chain: 'B', index: 1 });
    const r = at({ proto: 17, dport: 54 });
    expect(r.verdict).toBe('ACCEPT'); // not the DROP in INPUT rule 3
    expect(r.decidedBy).toEqual({ kind: 'policy', table: 'filter', chain: 'INPUT', policy: 'ACCEPT', verdict: 'ACCEPT' });
  });

  it('RETURN in a built-in chain applies the chain policy', () => {
    const r = at({ src: '10.1.2.3' }, 'FORWARD');
    expect(r.verdict).toBe('DROP');
    expect(r.decidedBy).toMatchObject({ kind: 'policy', chain: 'FORWARD', policy: 'DROP' });
    expect(r.decidedBy.kind === 'policy' && r.decidedBy.viaReturn?.text).toBe('-A FORWARD -s 10.0.0.0/8 -j RETURN');
    expect(at({ src: '11.1.2.3' }, 'FORWARD').verdict).toBe('ACCEPT');
  });

  it('ACCEPT in one table does not stop the next table at the same hook', () => {
    const two = parseIptablesSave(
      '*mangle\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 25 -j DROP\nCOMMIT\n',
    );
    const r = evaluateHook(two, noSets, 'INPUT', pkt({ dport: 25 }));
    expect(r.verdict).toBe('DROP');
    expect(r.tables.map((t) => [t.table, t.verdict ?? t.skipped])).toEqual([
      ['mangle', 'ACCEPT'],
      ['filter', 'DROP'],
    ]);
  });

  it('raw NOTRACK makes the packet UNTRACKED: later --ctstate UNTRACKED matches, nat is skipped', () => {
    const r2 = parseIptablesSave(
      [
        '*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', '-A OUTPUT -p udp -m udp --dport 53 -j CT --notrack', 'COMMIT',
        '*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
        '-A OUTPUT -p udp -j DNAT --to-destination 10.0.0.53', 'COMMIT',
        '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT DROP [0:0]',
        '-A OUTPUT -m conntrack --ctstate UNTRACKED -j ACCEPT', 'COMMIT',
      ].join('\n'),
    );
    const r = evaluateHook(r2, noSets, 'OUTPUT', pkt({ proto: 17, src: NODE, dst: '169.254.20.10', dport: 53, oif: 'nodelocaldns' }));
    expect(r.verdict).toBe('ACCEPT');
    expect(r.nat).toEqual([]);
    expect(r.tables.find((t) => t.table === 'nat')?.skipped).toBe('untracked packets are never NATed');
    expect(decidingRule(r).text).toBe('-A OUTPUT -m conntrack --ctstate UNTRACKED -j ACCEPT');
  });

  it('a hook with no chains in any table accepts and says so', () => {
    const r = evaluateHook(mini(''), noSets, 'PREROUTING', pkt({}));
    expect(r.verdict).toBe('ACCEPT');
    expect(r.decidedBy).toEqual({ kind: 'none', reason: 'no table has a PREROUTING chain, so netfilter accepts' });
  });

  it('a jump loop is reported, not an endless walk', () => {
    const loop = mini('-A INPUT -j A\n-A A -j B\n-A B -j A', undefined, ['A', 'B']);
    const r = evaluateHook(loop, noSets, 'INPUT', pkt({}));
    expect(r.verdict).toBe('UNKNOWN');
    expect(r.uncertain[0]).toMatchObject({ assumed: 'stop' });
    expect(r.uncertain[0].reason).toMatch(/jump loop/);
  });
});

describe('evaluateHook: matches', () => {
  const verdictOf = (rules: string, p: Partial<PacketContext>, chains: string[] = []) =>
    evaluateHook(mini(rules, undefined, chains), noSets, 'INPUT', pkt({ iif: 'eth0', sport: 40000, dport: 80, ...p }));

  it('MARK operations update the mark for later rules', () => {
    const rules = `
-A INPUT -j MARK --set-xmark 0x10/0xff
-A INPUT -j MARK --or-mark 0x4000
-A INPUT -j MARK --and-mark 0xffff4fef
-A INPUT -m mark --mark 0x4000/0x4000 -j MARK --xor-mark 0x1
-A INPUT -j MARK --set-mark 0x2/0xf
-A INPUT -m mark --mark 0x4002 -j DROP
`;
    const r = verdictOf(rules, { mark: 0xabcd0000 });
    expect(r.trail.map((t) => t.effect)).toEqual([
      'mark 0xabcd0000 -> 0xabcd0010',
      'mark 0xabcd0010 -> 0xabcd4010',
      'mark 0xabcd4010 -> 0xabcd4000',
      'mark 0xabcd4000 -> 0xabcd4001',
      'mark 0xabcd4001 -> 0xabcd4002',
    ]);
    expect(r.verdict).toBe('ACCEPT');
    expect(verdictOf(rules, { mark: 0 }).verdict).toBe('DROP');
    expect(verdictOf(rules, { mark: 0 }).packet.mark).toBe(0x4002);
  });

  it('-p, -s/-d with !, -i/-o with + wildcard', () => {
    expect(verdictOf('-A INPUT ! -p udp -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p udp -j DROP', {}).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -s 203.0.113.0/24 -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT ! -s 203.0.113.0/24 -j DROP', {}).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -d 192.168.0.0/255.255.0.0 -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -i eth+ -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -i cali+ -j DROP', {}).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT ! -i lo -j DROP', {}).verdict).toBe('DROP');
  });

  it('ports: single, ranges, negation, multiport lists', () => {
    expect(verdictOf('-A INPUT -p tcp -m tcp --dport 30000:32767 -j DROP', { dport: 30080 }).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p tcp -m tcp ! --dport 30000:32767 -j DROP', { dport: 30080 }).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -p tcp -m tcp --sport 1024: -j DROP', { sport: 1023 }).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -p tcp --dport 80 -j DROP', {}).verdict).toBe('DROP'); // implicit -m tcp
    expect(verdictOf('-A INPUT -p tcp -m multiport --dports 22,80,443 -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p tcp -m multiport --dports 22,443 -j DROP', {}).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -p tcp -m multiport ! --dports 22,443 -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p tcp -m multiport --ports 40000 -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p udp -m udp --dport 80 -j DROP', {}).verdict).toBe('ACCEPT');
  });

  it('--syn / --tcp-flags use tcpFlags, and are uncertain without it', () => {
    const rule = '-A INPUT -p tcp -m tcp --syn -j DROP';
    expect(verdictOf(rule, { tcpFlags: TCP_FLAGS.SYN }).verdict).toBe('DROP');
    expect(verdictOf(rule, { tcpFlags: TCP_FLAGS.SYN | TCP_FLAGS.ACK }).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK RST -j DROP', { tcpFlags: TCP_FLAGS.RST | TCP_FLAGS.PSH }).verdict).toBe('DROP');
    const unknown = verdictOf(rule, {});
    expect(unknown.verdict).toBe('DROP');
    expect(unknown.certain).toBe(false);
    expect(unknown.uncertain[0].reason).toContain('-m tcp --syn: the packet\'s TCP flags are not known');
  });

  it('conntrack --ctstate and state --state, with !', () => {
    expect(verdictOf('-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j DROP', { ctstate: ['ESTABLISHED'] }).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP', { ctstate: ['ESTABLISHED'] }).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -m state --state NEW -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -m conntrack --ctstate INVALID -j DROP', {}).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -m conntrack --ctstate DNAT -j DROP', { ctstate: ['NEW', 'DNAT'] }).verdict).toBe('DROP');
  });

  it('icmp --icmp-type with names, numbers and codes', () => {
    const icmp = (type: number, code: number) => ({ proto: 1, icmpType: type, icmpCode: code, sport: undefined, dport: undefined });
    expect(verdictOf('-A INPUT -p icmp -m icmp --icmp-type 8 -j DROP', icmp(8, 0)).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p icmp -m icmp --icmp-type echo-request -j DROP', icmp(0, 0)).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -p icmp -m icmp --icmp-type 3/4 -j DROP', icmp(3, 4)).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -p icmp -m icmp --icmp-type 3/4 -j DROP', icmp(3, 3)).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -p icmp -m icmp ! --icmp-type 8 -j DROP', icmp(11, 0)).verdict).toBe('DROP');
  });

  it('addrtype: LOCAL from localAddrs, other types uncertain, --limit-iface-in uncertain', () => {
    expect(verdictOf('-A INPUT -m addrtype --dst-type LOCAL -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -m addrtype --dst-type LOCAL -j DROP', { dst: '8.8.8.8' }).verdict).toBe('ACCEPT');
    expect(verdictOf('-A INPUT -m addrtype ! --dst-type LOCAL -j DROP', { dst: '8.8.8.8' }).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -m addrtype --dst-type MULTICAST -j DROP', { dst: '224.0.0.251' }).verdict).toBe('DROP');
    const uni = verdictOf('-A INPUT -m addrtype --dst-type UNICAST -j DROP', { dst: '8.8.8.8' });
    expect(uni.certain).toBe(false);
    expect(uni.uncertain[0].reason).toMatch(/UNICAST needs the routing table/);
    const lim = verdictOf('-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in -j DROP', {});
    expect(lim.uncertain[0].reason).toMatch(/--limit-iface-in/);
    // a definite mismatch wins over an uncertain part
    expect(verdictOf('-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in -j DROP', { dst: '8.8.8.8' }).certain).toBe(true);
  });

  it('-i when the input device is unknown, physdev and statistic are uncertain; uncertainAs chooses the assumption', () => {
    const rs = mini('-A FORWARD -i eth1 -j DROP');
    const r = evaluateHook(rs, noSets, 'FORWARD', pkt({ oif: 'eth0' }));
    expect(r.verdict).toBe('DROP');
    expect(r.uncertain[0]).toMatchObject({ assumed: 'match', reason: '-i eth1: the input interface is not known at FORWARD' });
    const r2 = evaluateHook(rs, noSets, 'FORWARD', pkt({ oif: 'eth0' }), { uncertainAs: 'nomatch' });
    expect(r2.verdict).toBe('ACCEPT');
    expect(r2.uncertain[0].assumed).toBe('no match');
    const phys = verdictOf('-A INPUT -m physdev --physdev-is-bridged -j DROP', {});
    expect(phys.uncertain[0].reason).toMatch(/physdev/);
    const stat = verdictOf('-A INPUT -m statistic --mode random --probability 0.1 -j DROP', {});
    expect(stat.verdict).toBe('DROP');
    expect(stat.uncertain[0].reason).toMatch(/statistic/);
  });

  it('physdev: --physdev-is-bridged, -in, -out, -is-in, -is-out from the bridge ports the packet model knows', () => {
    const fwd = (rule: string, p: Partial<PacketContext>) => evaluateHook(mini(`-A FORWARD ${rule} -j DROP`), noSets, 'FORWARD', pkt(p));
    // Bridged between two ports of cni0 (same-node pods), routed (arrived by eth0), routed after coming in by a port.
    const bridged = { iif: 'cni0', oif: 'cni0', physIn: 'veth-pod3', physOut: 'veth-pod2' };
    const routed = { iif: 'eth0', oif: 'cni0', physIn: null, physOut: null };
    const fromPort = { iif: 'cni0', oif: 'eth0', physIn: 'veth-pod1', physOut: null };
    const v = (rule: string, p: Partial<PacketContext>) => {
      const r = fwd(rule, p);
      expect(r.certain).toBe(true);
      return r.verdict;
    };
    expect(v('-m physdev --physdev-is-bridged', bridged)).toBe('DROP');
    expect(v('-m physdev --physdev-is-bridged', routed)).toBe('ACCEPT');
    expect(v('-m physdev --physdev-is-bridged', fromPort)).toBe('ACCEPT');
    expect(v('-m physdev ! --physdev-is-bridged', routed)).toBe('DROP');
    expect(v('-m physdev ! --physdev-is-bridged', bridged)).toBe('ACCEPT');
    expect(v('-m physdev --physdev-in veth-pod3', bridged)).toBe('DROP');
    expect(v('-m physdev --physdev-in veth+', bridged)).toBe('DROP');
    expect(v('-m physdev --physdev-in veth-pod1', bridged)).toBe('ACCEPT');
    expect(v('-m physdev ! --physdev-in veth-pod1', bridged)).toBe('DROP');
    expect(v('-m physdev --physdev-in veth-pod1', fromPort)).toBe('DROP');
    expect(v('-m physdev --physdev-in veth-pod1', routed)).toBe('ACCEPT');
    expect(v('-m physdev ! --physdev-in veth-pod1', routed)).toBe('DROP');
    expect(v('-m physdev --physdev-out veth-pod2', bridged)).toBe('DROP');
    expect(v('-m physdev --physdev-out veth-pod2', routed)).toBe('ACCEPT');
    // bridge info but no output port yet: the kernel lets --physdev-out match, with or without !
    expect(v('-m physdev --physdev-out veth-pod2', fromPort)).toBe('DROP');
    expect(v('-m physdev ! --physdev-out veth-pod2', fromPort)).toBe('DROP');
    expect(v('-m physdev --physdev-is-in', fromPort)).toBe('DROP');
    expect(v('-m physdev --physdev-is-in', routed)).toBe('ACCEPT');
    expect(v('-m physdev --physdev-is-out', fromPort)).toBe('ACCEPT');
    expect(v('-m physdev --physdev-is-out', bridged)).toBe('DROP');
    // kube-router's same-node jump: physdev and -d together
    expect(v('-d 203.0.113.1/32 -m physdev --physdev-is-bridged', { ...bridged, dst: '203.0.113.1' })).toBe('DROP');
    // unknown ports: uncertain, naming the expression
    const unknownPorts = fwd('-m physdev --physdev-is-bridged', { iif: 'cni0', oif: 'cni0' });
    expect(unknownPorts.certain).toBe(false);
    expect(unknownPorts.uncertain[0].reason).toMatch(/^-m physdev --physdev-is-bridged: whether the packet was bridged/);
  });

  it('an uncertain match of a LOG/NFLOG rule (a rate limit) does not make the verdict uncertain', () => {
    const r = verdictOf('-A INPUT -m limit --limit 10/min -j NFLOG --nflog-group 100\n-A INPUT -j DROP', {});
    expect(r.verdict).toBe('DROP');
    expect(r.certain).toBe(true);
  });

  it('an unknown target is assumed not to end the chain, and listed', () => {
    const r = verdictOf('-A INPUT -j FROBNICATE\n-A INPUT -j DROP', {});
    expect(r.verdict).toBe('DROP');
    expect(r.uncertain).toEqual([expect.objectContaining({ assumed: 'continue', reason: 'target FROBNICATE is neither a chain of table filter nor a known target' })]);
  });

  it('NFQUEUE ends the hook with an UNKNOWN verdict', () => {
    const r = verdictOf('-A INPUT -j NFQUEUE --queue-num 1 --queue-bypass', {});
    expect(r.verdict).toBe('UNKNOWN');
    expect(r.certain).toBe(false);
  });

  it('CONNMARK --restore-mark without a ctmark makes later mark matches uncertain; with a ctmark it is exact', () => {
    const rules = '-A INPUT -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff\n-A INPUT -m mark --mark 0x1 -j DROP';
    const r = verdictOf(rules, {});
    expect(r.packet.markUnknown).toBe(true);
    expect(r.uncertain.map((u) => u.assumed)).toEqual(['continue', 'match']);
    expect(verdictOf(rules, { ctmark: 1 }).verdict).toBe('DROP');
    expect(verdictOf(rules, { ctmark: 2 }).verdict).toBe('ACCEPT');
    expect(verdictOf(rules, { ctmark: 2 }).certain).toBe(true);
  });

  it('-m iprange and -m set with src,dst flags', () => {
    expect(verdictOf('-A INPUT -m iprange --src-range 203.0.113.1-203.0.113.10 -j DROP', {}).verdict).toBe('DROP');
    expect(verdictOf('-A INPUT -m iprange --src-range 203.0.113.10-203.0.113.20 -j DROP', {}).verdict).toBe('ACCEPT');
    const sets = parseIpsetSave('create blocked hash:ip,port\nadd blocked 203.0.113.9,tcp:40000');
    const rs = mini('-A INPUT -m set --match-set blocked src,src -j DROP');
    const r = evaluateHook(rs, sets, 'INPUT', pkt({ sport: 40000, dport: 80 }));
    expect(r.verdict).toBe('DROP');
    expect(r.setMatches).toEqual([{ set: 'blocked', member: '203.0.113.9,tcp:40000', flags: ['src', 'src'], negated: false, memberLine: 2 }]);
    expect(evaluateHook(rs, sets, 'INPUT', pkt({ sport: 40001, dport: 80 })).verdict).toBe('ACCEPT');
  });
});
