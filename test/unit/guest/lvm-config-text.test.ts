// Where Cairn's metadata text parser is stricter than lvm (lvmconfig agreement is checked in
// test/integration/guest-lvm-config-text.test.ts) and where its bounds are.
import { describe, expect, it } from 'vitest';
import { isCairnError } from '../../../src/core/errors.js';
import { CONFIG_LIMITS, parseConfigText, type ConfigSection } from '../../../src/guest/lvm/config-text.js';

function parse(text: string | Buffer): ConfigSection {
  return parseConfigText(typeof text === 'string' ? Buffer.from(text) : text);
}

function failure(text: string | Buffer): Error {
  try {
    parse(text);
  } catch (err) {
    expect(isCairnError(err, 'ERR_FORMAT_INVALID'), String(err)).toBe(true);
    return err as Error;
  }
  throw new Error('parsed');
}

describe('lvm metadata text parser', () => {
  it('builds sections, values and lists in file order', () => {
    const root = parse('vg { id = "x" seqno = 3 pvs { pv0 { pe_start = 2048 } } tags = ["a", "b"] }\ncontents = "Text"\n\0\0');
    const vg = root.entries.get('vg') as ConfigSection;
    expect([...vg.entries.keys()]).toEqual(['id', 'seqno', 'pvs', 'tags']);
    expect(vg.entries.get('seqno')).toEqual({ type: 'int', value: 3n });
    expect(vg.entries.get('tags')).toEqual({
      type: 'array',
      items: [
        { type: 'string', value: 'a' },
        { type: 'string', value: 'b' },
      ],
    });
    expect(((vg.entries.get('pvs') as ConfigSection).entries.get('pv0') as ConfigSection).line).toBe(1);
  });

  it.each([
    ['a duplicate name (lvm keeps one and warns)', 'a { x = 1 x = 2 }', /duplicate name "x"/],
    ['a duplicate section', 'a { } a { }', /duplicate name "a"/],
    ['leading zeros (lvm reads them as octal)', 'a { x = 007 }', /malformed integer "007"/],
    ['a lone sign', 'a { x = - }', /malformed integer "-"/],
    ['an integer beyond 64 bits', 'a { x = 9223372036854775808 }', /out of range/],
    ['a NUL inside the text', 'a { x = 1 }\0b { }', /NUL byte/],
    ['a NUL inside a string', 'a { x = "a\0b" }', /NUL byte inside a string/],
    ["a name with '/' (lvm would make it a path)", 'a/b { }', /name with '\/'/],
    ['an empty quoted name', '"" = 1', /empty name/],
    ['a value where a name belongs', 'a { 5 }', /expected '\{' or '='/],
    ['an unterminated quoted string', "a { x = 'open }", /unterminated string/],
  ])('rejects %s', (_what, text, pattern) => {
    expect(failure(text).message).toMatch(pattern);
  });

  it('names the line of the problem', () => {
    expect(failure('a {\n  x = 1\n  y = [1 2]\n}').message).toMatch(/line 3/);
  });

  it(`refuses sections nested deeper than ${CONFIG_LIMITS.MAX_DEPTH}`, () => {
    const deep = (n: number): string => `${'s { '.repeat(n)}${'} '.repeat(n)}`;
    expect(() => parse(deep(CONFIG_LIMITS.MAX_DEPTH))).not.toThrow();
    expect(failure(deep(CONFIG_LIMITS.MAX_DEPTH + 1)).message).toMatch(/nested deeper/);
    // Far deeper than the stack could take if the limit were not checked first.
    expect(failure(deep(200_000)).message).toMatch(/nested deeper/);
  });

  it(`refuses more than ${CONFIG_LIMITS.MAX_ELEMENTS} elements, in bounded time`, () => {
    const many = `a = [${'1,'.repeat(CONFIG_LIMITS.MAX_ELEMENTS + 1)}]`;
    const started = Date.now();
    expect(failure(many).message).toMatch(/more than 262144 elements/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
