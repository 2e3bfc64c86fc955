// The JSON contract (docs/schemas) as a test assertion: every test that
// produces a JSON document or line checks it against the published schema,
// so a renamed, missing or unknown field fails where it is made.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { expect } from 'vitest';

export type SchemaKind = 'explain' | 'trace-line' | 'doctor' | 'agent-line';

const DIR = resolve(__dirname, '../../docs/schemas');
const KINDS: SchemaKind[] = ['explain', 'trace-line', 'doctor', 'agent-line'];
/** The `type`s of a trace line, each a $def of trace-line.schema.json. */
const LINE_TYPES = ['event', 'flow', 'summary'];

let ajv: Ajv2020 | undefined;

/** Compile the schemas once (they refer to each other by file name). */
function schema(ref: string): ValidateFunction {
  if (!ajv) {
    ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
    for (const k of KINDS) ajv.addSchema(JSON.parse(readFileSync(`${DIR}/${k}.schema.json`, 'utf8')));
  }
  const v = ajv.getSchema(ref);
  if (!v) throw new Error(`no schema ${ref}`);
  return v;
}

function describeErrors(errors: ErrorObject[]): string {
  return errors.map((e) => `${e.instancePath || '(root)'} ${e.message}${Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ''}`).join('\n');
}

/** The schema's complaints about `value`, one per line; '' when it is valid. */
export function schemaErrors(kind: SchemaKind, value: unknown): string {
  const validate = schema(`${kind}.schema.json`);
  if (validate(value)) return '';
  if (kind === 'trace-line') {
    // A trace line that fails the oneOf: what its own type's branch objects to, not every branch's
    // complaints; a line of no known type: that type.
    const type = (value as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || !LINE_TYPES.includes(type)) return `/type must be one of ${LINE_TYPES.join(', ')} (it is ${JSON.stringify(type) ?? 'missing'})`;
    const branch = schema(`trace-line.schema.json#/$defs/${type}`);
    if (!branch(value)) return describeErrors(branch.errors ?? []);
  }
  return describeErrors(validate.errors ?? []);
}

/**
 * Fail unless `value` is valid against docs/schemas/<kind>.schema.json. The
 * value goes through JSON first, as a consumer reads it (undefined fields
 * vanish). Returns the value for chaining.
 */
export function expectValid<T>(kind: SchemaKind, value: T): T {
  const errors = schemaErrors(kind, JSON.parse(JSON.stringify(value)));
  expect(errors, `not a valid ${kind} document (docs/schemas/${kind}.schema.json)`).toBe('');
  return value;
}

/** Every complete line of `netwhy trace --json` output, parsed and validated. */
export function expectValidTraceLines(out: string): Record<string, unknown>[] {
  const complete = out.slice(0, out.lastIndexOf('\n') + 1);
  return complete.split('\n').filter(Boolean).map((l) => expectValid('trace-line', JSON.parse(l) as Record<string, unknown>));
}

/** Fail unless `value` is one flow of the explain document (explain.schema.json#/$defs/flow). */
export function expectValidFlow<T>(value: T): T {
  const validate = schema('explain.schema.json#/$defs/flow');
  const ok = validate(JSON.parse(JSON.stringify(value)));
  expect(ok ? '' : describeErrors(validate.errors ?? []), 'not a valid flow (docs/schemas/explain.schema.json#/$defs/flow)').toBe('');
  return value;
}
