// An nft rule as `nft -a list ruleset` prints it, rendered from its JSON
// expressions, so a verdict names the rule the way the user looks it up.
// What has no rendering here is printed as its JSON kind in angle brackets.
import type { NftChain, NftExpr, NftRule } from './ruleset.js';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);

/** The single key of an expression object (`{ "payload": {...} }` → payload). */
export function exprKind(e: unknown): string | undefined {
  const o = obj(e);
  if (!o) return undefined;
  const keys = Object.keys(o);
  return keys.length === 1 ? keys[0] : undefined;
}

const META_BARE = new Set(['iifname', 'oifname', 'iif', 'oif']);
const hex32 = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
const isMarkExpr = (e: unknown) => ['mark'].includes(String(obj(obj(e)?.meta)?.key ?? obj(obj(e)?.ct)?.key ?? ''));

/** A value or expression, as nft prints it. */
export function valueText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return /^[@$]/.test(v) || /^[a-zA-Z0-9_.:/-]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'boolean') return v ? 'exists' : 'missing';
  if (Array.isArray(v)) return v.map(valueText).join(',');
  const o = obj(v)!;
  const k = exprKind(o);
  const a = o[k ?? ''];
  const ao = obj(a) ?? {};
  switch (k) {
    case 'payload':
      return ao.protocol ? `${ao.protocol} ${ao.field}` : `@${ao.base},${ao.offset},${ao.len}`;
    case 'meta':
      return META_BARE.has(String(ao.key)) ? String(ao.key) : `meta ${ao.key}`;
    case 'ct':
      return `ct ${ao.dir ? `${ao.dir} ` : ''}${ao.key}`;
    case 'fib':
      return `fib ${(Array.isArray(ao.flags) ? ao.flags : [ao.flags]).filter(Boolean).join(' . ')} ${ao.result}`;
    case 'numgen':
      return `numgen ${ao.mode} mod ${ao.mod}${ao.offset ? ` offset ${ao.offset}` : ''}`;
    case 'concat':
      return (Array.isArray(a) ? a : []).map(valueText).join(' . ');
    case 'prefix':
      return `${valueText(ao.addr)}/${ao.len}`;
    case 'range':
      return Array.isArray(a) ? `${valueText(a[0])}-${valueText(a[1])}` : '?';
    case 'set':
      if (Array.isArray(a) && a.length === 1 && !Array.isArray(a[0]) && exprKind(a[0]) !== 'elem') return valueText(a[0]);
      return `{ ${(Array.isArray(a) ? a : [a]).map((e) => (Array.isArray(e) ? `${valueText(e[0])} : ${valueText(e[1])}` : valueText(e))).join(', ')} }`;
    case 'elem':
      return `${valueText(ao.val)}${typeof ao.comment === 'string' ? ` comment ${JSON.stringify(ao.comment)}` : ''}`;
    case 'map':
      return `${valueText(ao.key)} map ${valueText(ao.data)}`;
    case '&':
    case '|':
    case '^':
    case '<<':
    case '>>':
      return Array.isArray(a) ? `${valueText(a[0])} ${k} ${typeof a[1] === 'number' && isMarkExpr(a[0]) ? hex32(a[1]) : valueText(a[1])}` : '?';
    case 'accept':
    case 'drop':
    case 'continue':
    case 'return':
      return k;
    case 'jump':
    case 'goto':
      return `${k} ${ao.target}`;
    default:
      return `<${k ?? 'value'}>`;
  }
}

/** nft prints the mark and similar values as hex. */
function numText(left: unknown, right: unknown): string {
  const l = obj(left);
  const binop = ['&', '|', '^'].map((k) => l?.[k]).find(Array.isArray) as unknown[] | undefined;
  if (typeof right === 'number' && (isMarkExpr(l) || (binop && isMarkExpr(binop[0])))) return hex32(right);
  // interface names are printed quoted
  if (typeof right === 'string' && ['iifname', 'oifname'].includes(String(obj(l?.meta)?.key))) return JSON.stringify(right);
  return valueText(right);
}

function natText(kind: string, a: Json | undefined): string {
  if (!a) return kind;
  const parts = [kind];
  const addr = a.addr !== undefined ? valueText(a.addr) : '';
  const port = a.port !== undefined ? valueText(a.port) : '';
  if (kind === 'redirect' || kind === 'masquerade') {
    if (port) parts.push(`to :${port}`);
  } else if (addr || port) {
    const fam = typeof a.family === 'string' ? `${a.family} ` : '';
    parts.push(`${fam}to ${addr}${port ? `:${port}` : ''}`);
  }
  if (Array.isArray(a.flags)) parts.push(a.flags.join(','));
  else if (typeof a.flags === 'string') parts.push(a.flags);
  return parts.join(' ');
}

/** One statement or match of a rule, as nft prints it. */
export function exprText(e: NftExpr): string {
  const k = exprKind(e) ?? '?';
  const a = e[k];
  const ao = obj(a);
  switch (k) {
    case 'match': {
      const op = String(ao?.op ?? '==');
      const binopLeft = ['&', '|', '^'].some((b) => Array.isArray(obj(ao?.left)?.[b]));
      const shown = (op === '==' && !binopLeft) || op === 'in' ? '' : `${op} `;
      return `${valueText(ao?.left)} ${shown}${numText(ao?.left, ao?.right)}`;
    }
    case 'counter':
      // without its values: they change with every packet, and a ref must name the rule the same way each time
      return typeof a === 'string' ? `counter name ${a}` : 'counter';
    case 'accept':
    case 'drop':
    case 'continue':
    case 'return':
    case 'masquerade':
    case 'notrack':
      return k === 'masquerade' ? natText(k, ao) : k;
    case 'jump':
    case 'goto':
      return `${k} ${ao?.target}`;
    case 'reject':
      // nft leaves out its default: ICMP port unreachable
      if (!ao?.type || ((ao.type === 'icmp' || ao.type === 'icmpx') && (ao.expr === undefined || ao.expr === 'port-unreachable'))) return 'reject';
      return `reject with ${ao.type === 'tcp reset' ? 'tcp reset' : `${ao.type}${ao.expr ? ` ${ao.expr}` : ''}`}`;
    case 'queue':
      return `queue${ao?.num !== undefined ? ` to ${valueText(ao.num)}` : ''}`;
    case 'vmap':
      return `${valueText(ao?.key)} vmap ${valueText(ao?.data)}`;
    case 'dnat':
    case 'snat':
    case 'redirect':
      return natText(k, ao);
    case 'mangle':
      return `${valueText(ao?.key)} set ${valueText(ao?.value)}`;
    case 'log':
      return `log${ao?.prefix !== undefined ? ` prefix ${JSON.stringify(ao.prefix)}` : ''}${ao?.level ? ` level ${ao.level}` : ''}`;
    case 'limit': {
      const over = ao?.inv ? 'over ' : '';
      return `limit rate ${over}${ao?.rate}/${ao?.per}${ao?.burst && ao.burst !== 5 ? ` burst ${ao.burst} packets` : ''}`;
    }
    case 'xt':
      return `xt ${ao?.type ?? ''} ${JSON.stringify(ao?.name ?? '')}`.trim();
    default:
      return `<${k}>`;
  }
}

/** The rule's body as `nft -a list ruleset` prints it (without the handle). */
export function ruleText(r: NftRule): string {
  const parts = r.expr.map(exprText);
  if (r.comment !== undefined) parts.push(`comment ${JSON.stringify(r.comment)}`);
  return parts.join(' ');
}

/** Where the rule is and what it says: `table ip kube-proxy chain reject-chain handle 12: reject`. */
export function ruleRef(r: NftRule): string {
  return `table ${r.family} ${r.table} chain ${r.chain}${r.handle !== undefined ? ` handle ${r.handle}` : ''}: ${ruleText(r)}`;
}

/** A chain's policy, as a ref: `table inet fw chain input: policy drop`. */
export function policyRef(c: NftChain): string {
  return `table ${c.family} ${c.table} chain ${c.name}: policy ${c.base?.policy ?? 'accept'}`;
}
