import { CairnError } from '../../core/errors.js';
import { quoteName } from './lvm-names.js';

/**
 * A strict reader of lvm2's configuration syntax, the one the text metadata is written in (lvm2
 * `libdm/libdm-config.c`: `_get_token`, `_section`, `_value`, `_type`; `dm_unescape_double_quotes`):
 *
 * ```
 * file    := item*
 * item    := name '{' item* '}' | name '=' value
 * value   := scalar | '[' (scalar ','?)* ']'      a number item must follow '[' or ','
 * scalar  := int [+-]?[0-9]+ | float [0-9]*.[0-9]* | "string with \" and \\ escapes" | 'raw string' | bare word
 * name    := identifier | quoted string;   '#' starts a comment to the end of the line
 * ```
 *
 * Stricter than lvm where lvm is lenient by accident: a duplicate name in a section (lvm keeps one and
 * warns), a NUL before the end, integers with leading zeros (lvm's strtoll would read them as octal),
 * a lone sign (lvm reads 0) and names with '/' (lvm would split them into a path) are errors. Bounded: the caller caps the
 * text; nesting depth and the total number of elements are capped here.
 */
export type ConfigScalar =
  | { readonly type: 'int'; readonly value: bigint }
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'string'; readonly value: string };

export type ConfigValue = ConfigScalar | { readonly type: 'array'; readonly items: readonly ConfigScalar[] };

export interface ConfigSection {
  readonly type: 'section';
  readonly name: string;
  /** 1-based line of the section's name, for messages. */
  readonly line: number;
  /** In file order. */
  readonly entries: ReadonlyMap<string, ConfigSection | ConfigValue>;
}

export const CONFIG_LIMITS = {
  /** Sections inside sections: metadata needs 4 (vg, logical_volumes, lv, segment). */
  MAX_DEPTH: 16,
  /** Sections, values and array items together; a VG with a thousand LVs uses some 30 000. */
  MAX_ELEMENTS: 262_144,
} as const;

const Tok = {
  Eof: 0,
  SectionBegin: 1,
  SectionEnd: 2,
  ArrayBegin: 3,
  ArrayEnd: 4,
  Comma: 5,
  Equals: 6,
  Name: 7,
  Int: 8,
  Float: 9,
  String: 10,
} as const;
type Tok = (typeof Tok)[keyof typeof Tok];

const CHAR = {
  TAB: 0x09,
  LF: 0x0a,
  CR: 0x0d,
  SPACE: 0x20,
  QUOTE: 0x22,
  HASH: 0x23,
  APOSTROPHE: 0x27,
  PLUS: 0x2b,
  COMMA: 0x2c,
  MINUS: 0x2d,
  DOT: 0x2e,
  SLASH: 0x2f,
  ZERO: 0x30,
  NINE: 0x39,
  EQUALS: 0x3d,
  BRACKET_OPEN: 0x5b,
  BACKSLASH: 0x5c,
  BRACKET_CLOSE: 0x5d,
  BRACE_OPEN: 0x7b,
  BRACE_CLOSE: 0x7d,
} as const;

const SINGLE_CHAR_TOKENS: ReadonlyMap<number, Tok> = new Map<number, Tok>([
  [CHAR.BRACE_OPEN, Tok.SectionBegin],
  [CHAR.BRACE_CLOSE, Tok.SectionEnd],
  [CHAR.BRACKET_OPEN, Tok.ArrayBegin],
  [CHAR.BRACKET_CLOSE, Tok.ArrayEnd],
  [CHAR.COMMA, Tok.Comma],
  [CHAR.EQUALS, Tok.Equals],
]);

function isSpace(c: number): boolean {
  // C isspace: space, \t, \n, \v, \f, \r.
  return c === CHAR.SPACE || (c >= CHAR.TAB && c <= CHAR.CR);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function isDigit(c: number): boolean {
  return c >= CHAR.ZERO && c <= CHAR.NINE;
}

/** Characters that end a name or bare word (lvm stops at space, '#', '=', '{', '}'; we add the rest). */
function isDelimiter(c: number): boolean {
  return (
    isSpace(c) ||
    c === CHAR.HASH ||
    c === CHAR.EQUALS ||
    c === CHAR.BRACE_OPEN ||
    c === CHAR.BRACE_CLOSE ||
    c === CHAR.BRACKET_OPEN ||
    c === CHAR.BRACKET_CLOSE ||
    c === CHAR.COMMA ||
    c === CHAR.QUOTE ||
    c === CHAR.APOSTROPHE
  );
}

class Tokenizer {
  private at = 0;
  line = 1;
  /** Start of the current token and its kind. */
  start = 0;
  kind: Tok = Tok.Eof;
  /** Decoded text of Name / String / Int / Float tokens. */
  text = '';

  constructor(private readonly bytes: Buffer) {}

  /** The current token's kind (a method, so that TypeScript does not narrow it across `next`). */
  current(): Tok {
    return this.kind;
  }

  fail(why: string): never {
    throw new CairnError('ERR_FORMAT_INVALID', `LVM metadata text: ${why} at line ${this.line} (byte ${this.start})`, {
      structure: 'lvm metadata text',
      line: this.line,
      offset: this.start,
    });
  }

  /** Reads the next token; `valueAllowed` mirrors lvm, where digits after '=', '[' or ',' start a number. */
  next(valueAllowed: boolean): void {
    this.skipSpaceAndComments();
    this.start = this.at;
    const { bytes } = this;
    if (this.at >= bytes.length) {
      this.kind = Tok.Eof;
      return;
    }
    const c = bytes[this.at] as number;
    const kind = SINGLE_CHAR_TOKENS.get(c);
    if (kind !== undefined) {
      this.at++;
      this.kind = kind;
      return;
    }
    if (c === 0) this.fail('a NUL byte inside the text');
    if (c === CHAR.QUOTE) return this.quoted();
    if (c === CHAR.APOSTROPHE) return this.apostrophed();
    if (valueAllowed && (isDigit(c) || c === CHAR.PLUS || c === CHAR.MINUS || c === CHAR.DOT)) return this.number();
    this.word(valueAllowed);
  }

  private skipSpaceAndComments(): void {
    const { bytes } = this;
    while (this.at < bytes.length) {
      const c = bytes[this.at] as number;
      if (c === CHAR.LF) this.line++;
      if (isSpace(c)) {
        this.at++;
      } else if (c === CHAR.HASH) {
        while (this.at < bytes.length && bytes[this.at] !== CHAR.LF) this.at++;
      } else {
        return;
      }
    }
  }

  /** "…" with lvm's two escapes, \" and \\; any other backslash stays as it is. */
  private quoted(): void {
    const { bytes } = this;
    let chunkStart = this.at + 1;
    let out = '';
    let i = chunkStart;
    for (;;) {
      if (i >= bytes.length) this.fail('an unterminated string');
      const c = bytes[i] as number;
      if (c === 0) this.fail('a NUL byte inside a string');
      if (c === CHAR.LF) this.line++;
      if (c === CHAR.QUOTE) break;
      if (c === CHAR.BACKSLASH && i + 1 < bytes.length) {
        const n = bytes[i + 1] as number;
        if (n === CHAR.QUOTE || n === CHAR.BACKSLASH) {
          out += bytes.toString('utf8', chunkStart, i) + String.fromCharCode(n);
          i += 2;
          chunkStart = i;
          continue;
        }
      }
      i++;
    }
    this.text = out + bytes.toString('utf8', chunkStart, i);
    this.at = i + 1;
    this.kind = Tok.String;
  }

  /** '…' without escapes. */
  private apostrophed(): void {
    const { bytes } = this;
    const end = bytes.indexOf(CHAR.APOSTROPHE, this.at + 1);
    if (end < 0) this.fail('an unterminated string');
    const raw = bytes.subarray(this.at + 1, end);
    if (raw.includes(0)) this.fail('a NUL byte inside a string');
    for (const c of raw) if (c === CHAR.LF) this.line++;
    this.text = raw.toString('utf8');
    this.at = end + 1;
    this.kind = Tok.String;
  }

  private number(): void {
    const { bytes } = this;
    let i = this.at + 1;
    let float = bytes[this.at] === CHAR.DOT;
    while (i < bytes.length) {
      const c = bytes[i] as number;
      if (isDigit(c)) i++;
      else if (c === CHAR.DOT && !float) {
        float = true;
        i++;
      } else break;
    }
    if (i < bytes.length && !isDelimiter(bytes[i] as number)) {
      this.at = i;
      this.fail('a malformed number');
    }
    const text = bytes.toString('latin1', this.at, i);
    this.at = i;
    if (float) {
      if (!/^[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)$/.test(text)) this.fail(`a malformed number ${quoteName(text)}`);
      this.kind = Tok.Float;
    } else {
      if (!/^[+-]?(?:0|[1-9][0-9]{0,19})$/.test(text)) this.fail(`a malformed integer ${quoteName(text)}`);
      // lvm reads integers with strtoll: anything beyond 64 bits is an error there too.
      const value = BigInt(text);
      if (value < INT64_MIN || value > INT64_MAX) this.fail(`integer ${text} out of range`);
      this.kind = Tok.Int;
    }
    this.text = text;
  }

  /** An identifier (a name) or, in value position, a bare word (lvm's TOK_STRING_BARE). */
  private word(valueAllowed: boolean): void {
    const { bytes } = this;
    let i = this.at;
    while (i < bytes.length && !isDelimiter(bytes[i] as number) && bytes[i] !== 0) i++;
    if (i === this.at) this.fail(`an unexpected character ${quoteName(String.fromCharCode(bytes[i] ?? 0))}`);
    const raw = bytes.subarray(this.at, i);
    if (raw.includes(CHAR.SLASH) && !valueAllowed) this.fail("a name with '/'");
    this.text = raw.toString('utf8');
    this.at = i;
    this.kind = valueAllowed ? Tok.String : Tok.Name;
  }
}

class Parser {
  private readonly tok: Tokenizer;
  private elements = 0;

  constructor(bytes: Buffer) {
    this.tok = new Tokenizer(bytes);
  }

  parseFile(): ConfigSection {
    this.tok.next(false);
    const entries = this.items(0, Tok.Eof);
    return { type: 'section', name: '', line: 1, entries };
  }

  private count(): void {
    if (++this.elements > CONFIG_LIMITS.MAX_ELEMENTS) this.tok.fail(`more than ${CONFIG_LIMITS.MAX_ELEMENTS} elements`);
  }

  /** Items until `end` (Eof at top level, '}' inside a section), which is left as the current token. */
  private items(depth: number, end: Tok): Map<string, ConfigSection | ConfigValue> {
    const entries = new Map<string, ConfigSection | ConfigValue>();
    const { tok } = this;
    while (tok.current() !== end) {
      if (tok.current() !== Tok.Name && tok.current() !== Tok.String)
        tok.fail(end === Tok.Eof ? 'expected a name' : "expected a name or '}'");
      const name = tok.text;
      const line = tok.line;
      if (name.length === 0) tok.fail('an empty name');
      if (entries.has(name)) tok.fail(`a duplicate name ${quoteName(name)}`);
      tok.next(false);
      this.count();
      if (tok.current() === Tok.SectionBegin) {
        if (depth + 1 > CONFIG_LIMITS.MAX_DEPTH) tok.fail(`sections nested deeper than ${CONFIG_LIMITS.MAX_DEPTH}`);
        tok.next(false);
        const children = this.items(depth + 1, Tok.SectionEnd);
        tok.next(false);
        entries.set(name, { type: 'section', name, line, entries: children });
      } else if (tok.current() === Tok.Equals) {
        tok.next(true);
        entries.set(name, this.value());
      } else {
        tok.fail(`expected '{' or '=' after ${quoteName(name)}`);
      }
    }
    return entries;
  }

  /** A value; leaves the token after it current. */
  private value(): ConfigValue {
    const { tok } = this;
    if (tok.current() !== Tok.ArrayBegin) {
      const scalar = this.scalar();
      tok.next(false);
      return scalar;
    }
    const items: ConfigScalar[] = [];
    tok.next(true);
    while (tok.current() !== Tok.ArrayEnd) {
      this.count();
      items.push(this.scalar());
      // As lvm: a number needs the comma before it (without one it reads as a name, not a value);
      // strings may follow each other, and a trailing comma is allowed.
      tok.next(false);
      if (tok.current() === Tok.Comma) tok.next(true);
    }
    tok.next(false);
    return { type: 'array', items };
  }

  private scalar(): ConfigScalar {
    const { tok } = this;
    switch (tok.current()) {
      case Tok.Int:
        return { type: 'int', value: BigInt(tok.text) };
      case Tok.Float:
        return { type: 'float', value: Number(tok.text) };
      case Tok.String:
        return { type: 'string', value: tok.text };
      default:
        return tok.fail('expected a value');
    }
  }
}

/**
 * Parses configuration text. `bytes` may end in NULs (lvm stores the text with its terminating NUL);
 * anything malformed is ERR_FORMAT_INVALID with the line and byte.
 */
export function parseConfigText(bytes: Buffer): ConfigSection {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return new Parser(bytes.subarray(0, end)).parseFile();
}
