// The metadata text parser against lvm2's own parser: `lvmconfig` reads a file with the same libdm
// config code the metadata goes through and prints the tree back. Its printout is lossy (top-level
// section headers are left out, a one-item list prints as its item), so Cairn's tree is printed the
// same lossy way and the two compared.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCairnError } from '../../src/core/errors.js';
import { parseConfigText, type ConfigScalar, type ConfigSection, type ConfigValue } from '../../src/guest/lvm/config-text.js';
import { makeTempDir } from '../helpers/disk-images.js';
import { bytesFromRuns, type LvmHeadFixture } from '../helpers/lvm-images.js';

let dir: string;
beforeAll(() => {
  dir = makeTempDir('lvmconfig');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lvmconfig(text: Buffer | string): { ok: boolean; out: string } {
  const etc = join(dir, `etc-${Math.random().toString(36).slice(2)}`);
  mkdirSync(etc);
  writeFileSync(join(etc, 'lvm.conf'), text);
  try {
    const out = execFileSync('lvmconfig', [], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LVM_SYSTEM_DIR: etc, LVM_SUPPRESS_FD_WARNINGS: '1' },
    });
    return { ok: true, out };
  } catch (err) {
    return { ok: false, out: String((err as { stderr?: string }).stderr ?? '') };
  } finally {
    rmSync(etc, { recursive: true, force: true });
  }
}

function printScalar(value: ConfigScalar): string {
  if (value.type === 'int') return value.value.toString();
  if (value.type === 'float') return value.value.toFixed(6);
  return `"${value.value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function printValue(value: ConfigValue): string {
  if (value.type !== 'array') return printScalar(value);
  if (value.items.length === 1) return printScalar(value.items[0] as ConfigScalar);
  return `[${value.items.map(printScalar).join(',')}]`;
}

/**
 * lvmconfig prints top-level entries in an order of its own: compare the top-level blocks (a value
 * line, or the indented lines of a section) as a set, and everything inside a block in order.
 */
function blocks(printout: string): string[] {
  const out: string[] = [];
  for (const line of printout.split('\n').filter(Boolean)) {
    const last = out.length - 1;
    if (line.startsWith('\t') && last >= 0 && (out[last] as string).startsWith('\t')) out[last] += `\n${line}`;
    else out.push(line);
  }
  return out.sort();
}

/** Cairn's tree in lvmconfig's print form. */
function printLikeLvmconfig(root: ConfigSection): string {
  const lines: string[] = [];
  const walk = (section: ConfigSection, depth: number): void => {
    for (const [name, entry] of section.entries) {
      const indent = '\t'.repeat(depth);
      if (entry.type === 'section') {
        lines.push(`${indent}${name} {`);
        walk(entry, depth + 1);
        lines.push(`${indent}}`);
      } else {
        lines.push(`${indent}${name}=${printValue(entry)}`);
      }
    }
  };
  for (const [name, entry] of root.entries) {
    if (entry.type === 'section') walk(entry, 1);
    else lines.push(`${name}=${printValue(entry)}`);
  }
  return lines.map((line) => `${line}\n`).join('');
}

const ACCEPTED: [string, string][] = [
  ['escapes in double quotes', 'zz_a { s = "a\\"b\\\\c\\d" t = "" }\n'],
  ['single quotes, no escapes', `zz_a { q = 'say "hi" \\ there' }\n`],
  ['integers', 'zz_a { a = 0 b = -5 c = +7 d = 9223372036854775807 e = -9223372036854775808 }\n'],
  ['floats', 'zz_a { a = 1.5 b = .25 c = 3. d = -2.75 }\n'],
  ['lists', 'zz_a { a = [1, 2, 3] b = [] c = ["x" "y", "z",] d = [ "one" ] e = [1, "mixed", 2.5] }\n'],
  ['comments everywhere', '# head\nzz_a { # after brace\n a = 1 # after value\n b = [ # in list\n 1,\n 2 ] }\n# tail'],
  ['nesting and quoted names', 'zz_a { b { c { d { e = 1 } } } "quoted name" = 2 "q sec" { x = "y" } }\n'],
  ['bare words', 'zz_a { mode = passdown path = /dev/sda }\n'],
  ['a string across lines, tabs, CRLF, UTF-8', 'zz_a {\r\n\ta = "line1\nline2"\r\n\tb = "héllo wörld"\r\n}\r\n'],
  ['top-level values around a section', 'version = 1\nzz_a { x = 1 y = [2, 3] }\ndescription = "d"\ncreation_time = 1700000000\n'],
];

describe('lvm metadata text parser vs lvmconfig', () => {
  it.each(ACCEPTED)('reads %s as lvm does', (_what, text) => {
    const oracle = lvmconfig(text);
    expect(oracle.ok, oracle.out).toBe(true);
    expect(blocks(printLikeLvmconfig(parseConfigText(Buffer.from(text))))).toEqual(blocks(oracle.out));
  });

  it('reads real metadata text as lvm does', () => {
    const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/lvm/pv-head.json'), 'utf8')) as LvmHeadFixture;
    const head = bytesFromRuns(fixture.size, fixture.runs);
    const at = fixture.mda.start + fixture.mda.textOffset;
    const text = head.subarray(at, at + fixture.mda.textSize - 1);
    const oracle = lvmconfig(text);
    expect(oracle.ok, oracle.out).toBe(true);
    expect(blocks(printLikeLvmconfig(parseConfigText(text)))).toEqual(blocks(oracle.out));
  });

  it.each([
    ['a number without a comma before it', 'zz_a { a = [1 2] }'],
    ['a missing value', 'zz_a { a = }'],
    ['an unclosed section', 'zz_a {'],
    ['an unterminated string', 'zz_a { a = "open }'],
    ['a number run into letters', 'zz_a { a = 1abc }'],
    ['a stray closing brace', 'zz_a { a = 1 } }'],
    ['an equals sign without a name', '= 1'],
  ])('rejects %s, as lvm does', (_what, text) => {
    expect(lvmconfig(text).ok).toBe(false);
    let err: unknown;
    try {
      parseConfigText(Buffer.from(text));
    } catch (e) {
      err = e;
    }
    expect(isCairnError(err, 'ERR_FORMAT_INVALID'), String(err)).toBe(true);
  });
});
