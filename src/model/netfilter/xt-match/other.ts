// -m rpfilter (the reverse-path lookup the packet context may answer), -m statistic (always taken
// as matching; the walker lists it as uncertain), and what is understood but not evaluable.
import { type CondEval, tri, unknown, yes } from './types.js';

export const rpfilter: CondEval<'rpfilter'> = (c, { pkt }) => {
  if (!pkt.reversePath) return unknown('-m rpfilter: the reverse-path route lookup is not modelled');
  const r = pkt.reversePath({ src: pkt.src, iif: pkt.iif, loose: c.loose, acceptLocal: c.acceptLocal });
  return 'unknown' in r ? unknown(`-m rpfilter: ${r.unknown}`) : tri(r.ok);
};

export const statistic: CondEval<'statistic'> = () => yes;

export const opaque: CondEval<'opaque'> = (c) => unknown(c.why);

export const notUnderstood: CondEval<'unknown'> = (c) => unknown(`not understood: ${c.why}`);
