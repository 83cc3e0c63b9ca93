import type { Logger, LevelWithSilent } from 'pino';

/** pino's numeric levels (pino.levels.values), known here without loading pino. */
export const LEVEL_VALUES: Readonly<Record<LevelWithSilent, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

const LOG_METHODS = new Set<string | symbol>(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

export function isLevel(level: string): level is LevelWithSilent {
  return Object.prototype.hasOwnProperty.call(LEVEL_VALUES, level);
}

interface Node {
  parent: Node | undefined;
  /** This logger's own bindings, without those of its ancestors. */
  bindings: Record<string, unknown>;
  /** Its own and every ancestor's bindings: what each of its lines carries. */
  bound: Record<string, unknown>;
  level: LevelWithSilent;
  real: Logger | undefined;
}

/** `bindings` without the keys already bound to the same value: pino would write both (`"vm":"a","vm":"a"`). */
function unbound(bindings: Record<string, unknown>, bound: Record<string, unknown>): Record<string, unknown> {
  let result = bindings;
  for (const key of Object.keys(bindings)) {
    if (Object.prototype.hasOwnProperty.call(bound, key) && bound[key] === bindings[key]) {
      if (result === bindings) result = { ...bindings };
      delete result[key];
    }
  }
  return result;
}

/** A log call's merging object loses the keys its logger already binds to the same value. */
function withoutBound(args: unknown[], bound: Record<string, unknown>): unknown[] {
  const [first, ...rest] = args;
  if (typeof first !== 'object' || first === null || Array.isArray(first) || first instanceof Error) return args;
  const own = unbound(first as Record<string, unknown>, bound);
  return own === first ? args : [own, ...rest];
}

/**
 * A pino logger that calls `create` (which loads pino) only when it must: when a line is logged at an
 * enabled level, or when anything but `child`, `level`, `isLevelEnabled` or a log method is used.
 * Most commands log nothing (`ls`, a quiet backup) and loading pino is ~15 ms of their start-up.
 * Children behave as pino's: they take the parent's level when created, and keep their own after.
 * Unlike pino, a key is never written twice: a child does not bind again what its parent binds, and
 * a log call's object drops what the logger binds (`log.info({ dir }, …)` on a logger bound to `dir`).
 */
export function lazyLogger(create: (level: LevelWithSilent) => Logger, level: LevelWithSilent): Logger {
  const materialize = (node: Node): Logger => {
    if (!node.real) {
      node.real = node.parent ? materialize(node.parent).child(node.bindings) : create(node.level);
      node.real.level = node.level;
    }
    return node.real;
  };

  const childOf =
    (parent: Node) =>
    (bindings: Record<string, unknown>, options?: object): Logger => {
      const own = unbound(bindings, parent.bound);
      // pino's child options (serializers, redact…) need the real logger.
      if (options !== undefined) return materialize(parent).child(own, options);
      return proxyOf({
        parent,
        bindings: own,
        bound: { ...parent.bound, ...own },
        level: parent.real ? (parent.real.level as LevelWithSilent) : parent.level,
        real: parent.real ? parent.real.child(own) : undefined,
      });
    };

  const proxyOf = (node: Node): Logger =>
    new Proxy(node, {
      get(target, prop) {
        if (prop === 'child') return childOf(target);
        if (LOG_METHODS.has(prop)) {
          if (!target.real && LEVEL_VALUES[prop as LevelWithSilent] < LEVEL_VALUES[target.level]) return noop;
          const real = materialize(target);
          const method = Reflect.get(real, prop) as (...args: unknown[]) => void;
          return (...args: unknown[]) => method.apply(real, withoutBound(args, target.bound));
        }
        if (target.real) return forward(target.real, prop);
        if (prop === 'level') return target.level;
        if (prop === 'levelVal') return LEVEL_VALUES[target.level];
        if (prop === 'isLevelEnabled') return (name: string) => isLevel(name) && LEVEL_VALUES[name] >= LEVEL_VALUES[target.level];
        return forward(materialize(target), prop);
      },
      set(target, prop, value: unknown) {
        if (prop === 'level' && !target.real) {
          if (typeof value !== 'string' || !isLevel(value)) throw new Error(`unknown level ${String(value)}`);
          target.level = value;
        } else {
          Reflect.set(materialize(target), prop, value);
        }
        return true;
      },
    }) as unknown as Logger;

  return proxyOf({ parent: undefined, bindings: {}, bound: {}, level, real: undefined });
}

function forward(real: Logger, prop: string | symbol): unknown {
  const value: unknown = Reflect.get(real, prop);
  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(real) : value;
}

function noop(): void {}
