// The agent's metrics without a kernel: which cause becomes which label (no
// addresses, no ports), which drops of a flow carry the verdict's cause, the cap
// on label sets, and --listen parsing.
import { describe, expect, it } from 'vitest';
import { parseListen } from '../../src/commands/agent.js';
import { UsageError } from '../../src/errors.js';
import type { FlowDoc } from '../../src/explain/document.js';
import type { Cause } from '../../src/explain/types.js';
import { AgentMetrics, MAX_CAUSE_LABEL, causeLabel, dropLabels } from '../../src/render/metrics.js';

const ADDRESS_OR_PORT = /\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b|:\d{2,5}\b/;

describe('causeLabel: a bounded identity, never an address or a port of the traffic', () => {
  const cases: [Cause, string][] = [
    [{ type: 'sysctl', ref: 'net.ipv4.ip_forward', value: '0' }, 'net.ipv4.ip_forward'],
    [{ type: 'sysctl', ref: 'net.ipv4.conf.eth1.rp_filter', value: '1' }, 'net.ipv4.conf.eth1.rp_filter'],
    [{ type: 'conntrack', ref: 'insert_failed' }, 'insert_failed'],
    [{ type: 'route', ref: 'unreachable 10.9.0.0/16' }, 'unreachable 10.9.0.0/16'],
    [{ type: 'route', ref: 'no route to 10.244.9.9' }, 'no route'],
    [{ type: 'address', ref: '192.168.0.99' }, 'not a local address'],
    [{ type: 'socket', ref: 'tcp 10.244.2.2:8080' }, 'no listener'],
    [{ type: 'ipvs-dest', ref: '-> 10.244.1.7:53' }, 'stale real server'],
    [{ type: 'unknown', ref: 'NO_SOCKET' }, 'NO_SOCKET'],
  ];
  for (const [cause, label] of cases) {
    it(`${cause.type} ${cause.ref} → ${label}`, () => expect(causeLabel(cause)).toBe(label));
  }

  it('the traffic-derived refs (a destination, a socket, a real server) lose their address and port', () => {
    for (const [c] of cases.filter(([c]) => ['address', 'socket', 'ipvs-dest'].includes(c.type) || c.ref.startsWith('no route'))) {
      expect(causeLabel(c)).not.toMatch(ADDRESS_OR_PORT);
    }
  });

  it('an iptables rule line is kept (a line of the ruleset is bounded by the ruleset), whitespace folded and trimmed to MAX_CAUSE_LABEL', () => {
    const rule = '-A KUBE-ROUTER-SERVICES -m set --match-set kube-router-svip dst -j REJECT --reject-with icmp-port-unreachable';
    expect(causeLabel({ type: 'iptables-rule', ref: rule })).toBe(rule);
    const long = `-A KUBE-SEP-XYZ ${'-m comment --comment "default/web:http" '.repeat(10)}-j DNAT`;
    const l = causeLabel({ type: 'iptables-rule', ref: long });
    expect(l.length).toBe(MAX_CAUSE_LABEL);
    expect(l.endsWith('…')).toBe(true);
    expect(causeLabel({ type: 'nft-rule', ref: 'ip daddr  10.96.0.10\n drop' })).toBe('ip daddr 10.96.0.10 drop');
  });
});

function doc(cause: Cause, where = { netns: 'nw-node1', dev: 'eth0', function: 'ip_error', reason: 'IP_INADDRERRORS' }, outcome: 'dropped' | 'delivered' = 'dropped'): FlowDoc {
  return { proto: 'tcp', orig: { src: '192.168.0.10', sport: 40000, dst: '192.168.0.11', dport: 30080 }, nat: [], hops: [], verdict: { outcome, where, cause, evidence: [] } };
}

describe('dropLabels', () => {
  it('the drops the verdict is about carry its cause; another drop of the flow counts as unknown under its own reason', () => {
    const d = doc({ type: 'sysctl', ref: 'net.ipv4.ip_forward', value: '0', netns: 'nw-node1' });
    const labels = dropLabels(d, [
      { reason: 'IP_INADDRERRORS', netns: 'nw-node1' },
      { reason: 'IP_INADDRERRORS', netns: 'nw-node1' },
      { reason: 'NO_SOCKET', netns: 'nw-client' },
    ]);
    expect(labels).toEqual([
      { reason: 'IP_INADDRERRORS', cause_type: 'sysctl', cause: 'net.ipv4.ip_forward', netns: 'nw-node1', pod_namespace: '' },
      { reason: 'IP_INADDRERRORS', cause_type: 'sysctl', cause: 'net.ipv4.ip_forward', netns: 'nw-node1', pod_namespace: '' },
      { reason: 'NO_SOCKET', cause_type: 'unknown', cause: 'NO_SOCKET', netns: 'nw-client', pod_namespace: '' },
    ]);
  });

  it('a drop elsewhere in the flow takes the pod namespace of where it happened, when the names know it', () => {
    const d = doc({ type: 'sysctl', ref: 'net.ipv4.ip_forward', value: '0', netns: 'nw-node1' });
    expect(dropLabels(d, [{ reason: 'NOT_SPECIFIED', netns: 'cni-2', pod: 'shop' }, { reason: 'IP_INADDRERRORS', netns: 'nw-node1' }]).map((l) => l.pod_namespace)).toEqual(['shop', '']);
  });

  it('pod_namespace is the namespace of the pod where the packet died', () => {
    const d = doc({ type: 'socket', ref: 'tcp 10.244.2.2:8080' }, { netns: 'cni-1', dev: 'eth0', function: 'tcp_v4_rcv', reason: 'NO_SOCKET', k8s: { kind: 'pod', namespace: 'shop', name: 'web-1' } } as never);
    expect(dropLabels(d, [{ reason: 'NO_SOCKET', netns: 'cni-1' }])[0]).toMatchObject({ cause: 'no listener', pod_namespace: 'shop' });
  });

  it('a flow that recovered (delivered) counts its drops as unknown, not under a cause', () => {
    const d = doc({ type: 'unknown', ref: 'none' }, undefined, 'delivered');
    d.verdict.where = undefined;
    expect(dropLabels(d, [{ reason: 'TCP_INVALID_SEQUENCE', netns: 'host' }])[0]).toMatchObject({ cause_type: 'unknown', cause: 'TCP_INVALID_SEQUENCE' });
  });
});

describe('AgentMetrics', () => {
  const value = (text: string, re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);

  it('past maxSeries distinct label sets, drops count in the cause="overflow" series and as shed label-sets', async () => {
    const m = new AgentMetrics({ maxSeries: 3, processMetrics: false });
    for (let i = 0; i < 5; i++) m.drop({ reason: 'NO_SOCKET', cause_type: 'unknown', cause: 'NO_SOCKET', netns: `ns${i}`, pod_namespace: '' }, 2);
    m.drop({ reason: 'NO_SOCKET', cause_type: 'unknown', cause: 'NO_SOCKET', netns: 'ns0', pod_namespace: '' }); // a known set still counts in place
    const t = await m.text();
    expect(t.match(/^netwhy_drops_total\{/gm)).toHaveLength(4);
    expect(t).toMatch(/^netwhy_drops_total\{reason="NO_SOCKET",cause_type="unknown",cause="NO_SOCKET",netns="ns0",pod_namespace=""\} 3$/m);
    expect(t).toMatch(/^netwhy_drops_total\{[^}]*cause="overflow"[^}]*\} 4$/m);
    expect(t).toMatch(/^netwhy_shed_total\{what="label-sets"\} 4$/m);
  });

  it('lost events per probe follow the kernel counters at each scrape; shed and outcome series exist at 0', async () => {
    let lost = [{ probe: 'kfree_skb', lost: 0 }, { probe: 'netif_receive_skb', lost: 5 }];
    const m = new AgentMetrics({ processMetrics: false, lost: () => lost });
    expect(value(await m.text(), /^netwhy_events_lost_total\{probe="netif_receive_skb"\} (\d+)/gm)).toBe(5);
    lost = [{ probe: 'kfree_skb', lost: 7 }, { probe: 'netif_receive_skb', lost: 5 }];
    const t = await m.text();
    expect(t).toMatch(/^netwhy_events_lost_total\{probe="kfree_skb"\} 7$/m);
    expect(t).toMatch(/^netwhy_events_lost_total\{probe="netif_receive_skb"\} 5$/m);
    for (const what of ['flows', 'label-sets', 'explained-keys']) expect(t).toMatch(new RegExp(`^netwhy_shed_total\\{what="${what}"\\} 0$`, 'm'));
    expect(t).toMatch(/^netwhy_flows_explained_total\{outcome="dropped"\} 0$/m);
  });

  it('probe_info is a gauge of 1 per attached probe and mode; process metrics are on by default', async () => {
    const m = new AgentMetrics();
    m.probe('kfree_skb', 'tp_btf');
    const t = await m.text();
    expect(t).toMatch(/^netwhy_probe_info\{probe="kfree_skb",mode="tp_btf"\} 1$/m);
    expect(t).toMatch(/^process_cpu_seconds_total /m);
  });
});

describe('parseListen', () => {
  it('ADDRESS:PORT, [V6]:PORT, :PORT (every address), port 0 for any free one', () => {
    expect(parseListen('127.0.0.1:9965')).toEqual({ host: '127.0.0.1', port: 9965 });
    expect(parseListen('[::1]:9965')).toEqual({ host: '::1', port: 9965 });
    expect(parseListen(':9965')).toEqual({ host: '0.0.0.0', port: 9965 });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0 });
  });
  for (const bad of ['', '9965', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', '127.0.0.1:-1', '::1:9965', '[::1:9965', 'a:b']) {
    it(`'${bad}' is a usage error`, () => expect(() => parseListen(bad)).toThrow(UsageError));
  }
});
