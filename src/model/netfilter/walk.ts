// What the two walkers share (xt-walk.ts for iptables' rules, nft-walk.ts for nftables'):
// the three-valued answer of a match, the limits that stop a jump loop, and how a NAT rewrite
// changes the packet and its conntrack state.
import type { PacketContext } from '../netfilter.js';

/** A match's answer: the packet meets it, does not, or what it tests is not known. */
export type Tri = 'yes' | 'no' | 'unknown';

/** Rules looked at before a walk gives up (a jump loop). */
export const MAX_STEPS = 200_000;
/** Chains a jump may nest. */
export const MAX_DEPTH = 64;

/** Protocols whose headers carry ports as netfilter matches read them (tcp, udp, sctp, udplite, dccp). */
export const PORT_PROTOS: readonly number[] = [6, 17, 132, 136, 33];

/**
 * A NAT rewrite of the packet: DNAT/REDIRECT change the destination, SNAT/MASQUERADE the source
 * (each when the rule gives an address or port), and conntrack marks the connection DNAT or SNAT.
 */
export function rewriteNat(pkt: PacketContext, side: 'dst' | 'src', addr: string | undefined, port: number | undefined): void {
  if (side === 'dst') {
    if (addr !== undefined) pkt.dst = addr;
    if (port !== undefined) pkt.dport = port;
  } else {
    if (addr !== undefined) pkt.src = addr;
    if (port !== undefined) pkt.sport = port;
  }
  const flag = side === 'dst' ? 'DNAT' : 'SNAT';
  if (!pkt.ctstate.includes(flag)) pkt.ctstate.push(flag);
}

/** Where the walk stands when a rule runs. */
export interface WalkAt<C> {
  /** chains called below the base chain (0: in the base chain) */
  readonly depth: number;
  /** the chain a return goes back to; undefined in the base chain */
  readonly caller: C | undefined;
  /** the labels of the frames from the base chain on (nft: the chains and maps that led here) */
  path(): string[];
}

/** What a rule did, as far as the chain machine is concerned. */
export type Move<C, T> =
  /** no match, or a match that does not leave the chain */
  | { kind: 'next' }
  /** jump (a return comes back here) or goto (a return goes back to this chain's caller) */
  | { kind: 'call'; chain: C; goto: boolean; labels?: string[] }
  /** back to the caller; from the base chain, the policy */
  | { kind: 'return' }
  /** the walk ends with this result (a verdict) */
  | { kind: 'end'; result: T };

export interface ChainWalker<C, R, T> {
  /** run one rule */
  rule(rule: R, at: WalkAt<C>): Move<C, T>;
  /** the packet fell off the end of the base chain, or a rule (`returnedBy`) returned from it */
  policy(at: WalkAt<C>, returnedBy?: R): T;
  /** MAX_STEPS rules were looked at (a jump loop?) */
  tooManySteps(rule: R, at: WalkAt<C>): T;
}

/**
 * The chain-call machine of both walkers, as nft_do_chain and ipt_do_table run it: rules in
 * order, a jump pushes a frame, a goto replaces it, a return or the end of a called chain pops it,
 * and the end of the base chain (or a return from it) is the chain's policy. What each rule does,
 * and what a policy or a runaway walk gives, is the caller's.
 */
export function walkChains<C extends { readonly rules: readonly R[] }, R, T>(base: C, h: ChainWalker<C, R, T>, baseLabels: string[] = []): T {
  const frames: { chain: C; pos: number; labels: string[] }[] = [{ chain: base, pos: 0, labels: baseLabels }];
  const at: WalkAt<C> = {
    get depth() {
      return frames.length - 1;
    },
    get caller() {
      return frames[frames.length - 2]?.chain;
    },
    path: () => frames.flatMap((f) => f.labels),
  };
  let steps = 0;
  for (;;) {
    const f = frames[frames.length - 1];
    if (f.pos >= f.chain.rules.length) {
      if (frames.length === 1) return h.policy(at);
      frames.pop();
      continue;
    }
    const rule = f.chain.rules[f.pos++];
    if (++steps > MAX_STEPS) return h.tooManySteps(rule, at);
    const move = h.rule(rule, at);
    switch (move.kind) {
      case 'next':
        continue;
      case 'end':
        return move.result;
      case 'return':
        if (frames.length === 1) return h.policy(at, rule);
        frames.pop();
        continue;
      case 'call': {
        const labels = move.labels ?? [];
        if (move.goto) {
          const old = frames.pop()!;
          frames.push({ chain: move.chain, pos: 0, labels: [...old.labels, ...labels] });
        } else frames.push({ chain: move.chain, pos: 0, labels });
        continue;
      }
    }
  }
}
