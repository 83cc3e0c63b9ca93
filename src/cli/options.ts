import type { Options } from 'yargs';
import { CairnError } from '../core/errors.js';
import { formatBytes, parseSize } from '../util/bytes.js';

/**
 * The one validator of numeric options. Every number or size a command takes is declared through
 * `numberOption` or `sizeOption`, so `--connections 0`, `--grace-seconds -100` or `--keep-last abc`
 * are refused while parsing, with one line naming the option, what it takes and what it got, before
 * a command opens anything. Options stay strings for yargs (a number type would turn `abc` into NaN
 * and lose what the user typed); the coerce step hands the handler a checked number.
 */
export interface NumberRule {
  /** Whole numbers only (counts, MiB); otherwise decimals are allowed (seconds). */
  integer?: boolean;
  /** Smallest accepted value, inclusive. */
  min?: number;
  /** Values must be strictly greater than this (timeouts that cannot be zero). */
  above?: number;
  max?: number;
}

interface NumberOptionSpec extends NumberRule {
  describe: string;
  default?: number;
}

const WHOLE = /^[+-]?[0-9]+$/;
const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;

/** What the rule accepts, as the refusal says it: "a whole number from 1 to 16". */
export function describeRule(rule: NumberRule): string {
  const noun = rule.integer ? 'a whole number' : 'a number';
  if (rule.min !== undefined && rule.max !== undefined) return `${noun} from ${rule.min} to ${rule.max}`;
  const bounds: string[] = [];
  if (rule.above !== undefined) bounds.push(`greater than ${rule.above}`);
  if (rule.min !== undefined) bounds.push(`of at least ${rule.min}`);
  if (rule.max !== undefined) bounds.push(`of at most ${rule.max}`);
  return [noun, ...bounds].join(' ');
}

/** A repeated option (`--connections 2 --connections 4`) takes its last value, as most tools do. */
function lastValue(value: unknown): unknown {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function refuse(name: string, expected: string, given: unknown): never {
  throw new CairnError('ERR_INVALID_ARGUMENT', `--${name} must be ${expected}, got '${String(given)}'`, { option: name });
}

function inRange(value: number, rule: NumberRule): boolean {
  return (
    (rule.min === undefined || value >= rule.min) &&
    (rule.above === undefined || value > rule.above) &&
    (rule.max === undefined || value <= rule.max)
  );
}

export function parseNumberOption(name: string, raw: unknown, rule: NumberRule): number {
  const given = lastValue(raw);
  if (typeof given === 'number') {
    // A default declared in code.
    if (Number.isFinite(given) && (!rule.integer || Number.isSafeInteger(given)) && inRange(given, rule)) return given;
    return refuse(name, describeRule(rule), given);
  }
  const text = String(given ?? '').trim();
  const value = Number(text);
  if (!(rule.integer ? WHOLE : DECIMAL).test(text) || !Number.isFinite(value) || (rule.integer && !Number.isSafeInteger(value))) {
    return refuse(name, describeRule(rule), given);
  }
  if (!inRange(value, rule)) return refuse(name, describeRule(rule), given);
  return value;
}

/** A numeric option for `.option(name, numberOption(name, …))`. */
export function numberOption(name: string, spec: NumberOptionSpec): Options {
  const { describe, default: defaultValue, ...rule } = spec;
  return {
    type: 'string',
    requiresArg: true,
    describe: `${describe} (${describeRule(rule)})`,
    ...(defaultValue !== undefined ? { default: defaultValue } : {}),
    coerce: (value: unknown) => parseNumberOption(name, value, rule),
  };
}

interface SizeOptionSpec {
  describe: string;
  default?: string;
  /** Smallest accepted size in bytes. */
  min?: number;
}

export function parseSizeOption(name: string, raw: unknown, min = 0): number {
  const given = lastValue(raw);
  let bytes: number;
  try {
    bytes = parseSize(String(given ?? ''), `--${name}`);
  } catch {
    return refuse(name, 'a size such as 64KiB, 100MiB or 1GiB', given);
  }
  if (bytes < min) return refuse(name, `a size of at least ${formatBytes(min)}`, given);
  return bytes;
}

/** A size option (`64KiB`, `100MiB`; plain numbers are bytes): the handler gets bytes. */
export function sizeOption(name: string, spec: SizeOptionSpec): Options {
  return {
    type: 'string',
    requiresArg: true,
    describe: spec.describe,
    ...(spec.default !== undefined ? { default: spec.default } : {}),
    coerce: (value: unknown) => parseSizeOption(name, value, spec.min ?? 0),
  };
}
