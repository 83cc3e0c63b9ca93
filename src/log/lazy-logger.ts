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
  bindings: Record<string, unknown>;
  level: LevelWithSilent;
  real: Logger | undefined;
}

/**
 * A pino logger that calls `create` (which loads pino) only when it must: when a line is logged at an
 * enabled level, or when anything but `child`, `level`, `isLevelEnabled` or a log method is used.
 * Most commands log nothing (`ls`, a quiet backup) and loading pino is ~15 ms of their start-up.
 * Children behave as pino's: they take the parent's level when created, and keep their own after.
 */
export function lazyLogger(create: (level: LevelWithSilent) => Logger, level: LevelWithSilent): Logger {
  const materialize = (node: Node): Logger => {
    if (!node.real) {
      node.real = node.parent ? materialize(node.parent).child(node.bindings) : create(node.level);
      node.real.level = node.level;
    }
    return node.real;
  };

  const proxyOf = (node: Node): Logger =>
    new Proxy(node, {
      get(target, prop) {
        if (target.real) return forward(target.real, prop);
        if (prop === 'level') return target.level;
        if (prop === 'levelVal') return LEVEL_VALUES[target.level];
        if (prop === 'isLevelEnabled') return (name: string) => isLevel(name) && LEVEL_VALUES[name] >= LEVEL_VALUES[target.level];
        if (prop === 'child') {
          return (bindings: Record<string, unknown>, options?: object) =>
            options === undefined
              ? proxyOf({ parent: target, bindings, level: target.level, real: undefined })
              : materialize(target).child(bindings, options);
        }
        if (LOG_METHODS.has(prop) && LEVEL_VALUES[prop as LevelWithSilent] < LEVEL_VALUES[target.level]) return noop;
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

  return proxyOf({ parent: undefined, bindings: {}, level, real: undefined });
}

function forward(real: Logger, prop: string | symbol): unknown {
  const value: unknown = Reflect.get(real, prop);
  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(real) : value;
}

function noop(): void {}
