// The parsers of saved rulesets (iptables-save, ipset save) fail the same way:
// an error naming the line, quoting it, and saying why. One test per case.
import { expect, it } from 'vitest';

/** [test name, input, line, the line as quoted, why] */
export type ParseErrorCase = [string, string, number, string, RegExp];

interface LineError extends Error {
  line: number;
  text: string;
}

/** Run `parse`, which must throw an instance of `type`; return that error. */
export function parseErrorOf<E extends LineError>(parse: (text: string) => unknown, type: new (...a: never[]) => E, text: string): E {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(type);
    return e as E;
  }
  throw new Error(`expected a ${type.name}`);
}

export function parseErrorCases(cases: ParseErrorCase[], parseError: (text: string) => LineError): void {
  for (const [name, text, line, lineText, reason] of cases) {
    it(name, () => {
      const e = parseError(text);
      expect(e.line).toBe(line);
      expect(e.text).toBe(lineText);
      expect(e.message).toMatch(reason);
      expect(e.message).toContain(`line ${line}`);
    });
  }
}
