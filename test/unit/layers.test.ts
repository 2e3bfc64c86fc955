// The house drawn from imports: each module imports only from its own layer or
// the ones below, so domain facts never come from a command or the renderer.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(__dirname, '../../src');

/** Lowest first. A path matches the first prefix that starts it. */
const LAYERS: [string, number][] = [
  ['errors.ts', 0], ['abi.ts', 0], ['kernel/', 0], ['native.ts', 0],
  ['model/netfilter/', 1], ['model/', 1],
  ['filter/', 2], ['state/netfilter/', 2], ['state/', 2], ['journey.ts', 2], ['recording.ts', 2], ['tracer.ts', 2], ['preflight.ts', 2],
  ['explain/', 3],
  ['render/', 4], ['lab/', 4],
  ['commands/', 5], ['vm/', 5],
  ['cli.ts', 6],
];

function layerOf(file: string): number {
  const hit = LAYERS.find(([p]) => file === p || (p.endsWith('/') && file.startsWith(p)));
  if (!hit) throw new Error(`${file} has no layer: add it to LAYERS`);
  return hit[1];
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/from '(\.{1,2}\/[^']+)'/g)].map((m) => relative(SRC, resolve(dirname(file), m[1])).replace(/\.js$/, '.ts'));
}

describe('layers', () => {
  it('every import points to the same layer or one below (model → state → explain → render → commands)', () => {
    const upward: string[] = [];
    for (const f of sources(SRC)) {
      const me = relative(SRC, f);
      for (const dep of imports(f)) if (layerOf(dep) > layerOf(me)) upward.push(`${me} → ${dep}`);
    }
    expect(upward).toEqual([]);
  });

  it('the layer check catches an upward import', () => {
    expect(layerOf('state/netfilter.ts')).toBeLessThan(layerOf('explain/types.ts'));
    expect(layerOf('explain/document.ts')).toBeLessThan(layerOf('render/events.ts'));
  });
});
