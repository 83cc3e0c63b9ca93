import { Writable } from 'node:stream';
import { pino, type LevelWithSilent, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { lazyLogger } from '../../../src/log/lazy-logger.js';

/** A lazy logger over a real pino root that writes JSON lines into `lines`; `created` counts roots made. */
function harness(level: LevelWithSilent) {
  const lines: Record<string, unknown>[] = [];
  /** The lines as pino wrote them: JSON.parse would keep only the last of a repeated key. */
  const written: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        written.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const state = { created: 0 };
  const logger: Logger = lazyLogger((rootLevel) => {
    state.created++;
    return pino({ level: rootLevel, base: undefined }, sink);
  }, level);
  return { logger, lines, written, state };
}

describe('lazyLogger', () => {
  it('creates no pino root while nothing is logged at an enabled level', () => {
    const { logger, lines, state } = harness('info');
    const child = logger.child({ component: 'backup' }).child({ disk: 'sda' });
    child.debug('hidden');
    child.trace({ offset: 0 }, 'hidden too');
    expect(child.level).toBe('info');
    expect(child.isLevelEnabled('debug')).toBe(false);
    expect(child.isLevelEnabled('warn')).toBe(true);
    expect(state.created).toBe(0);
    expect(lines).toEqual([]);
  });

  it('logs through pino with the bindings of every ancestor once a line is enabled', () => {
    const { logger, lines, state } = harness('info');
    const child = logger.child({ component: 'backup', vm: 'web' }).child({ disk: 'sda' });
    child.warn({ format: 'qcow2' }, 'looks like an image');
    child.info('again');
    expect(state.created).toBe(1);
    expect(lines).toMatchObject([
      { level: 40, component: 'backup', vm: 'web', disk: 'sda', format: 'qcow2', msg: 'looks like an image' },
      { level: 30, disk: 'sda', msg: 'again' },
    ]);
  });

  it('gives children the level of their parent when created, as pino does', () => {
    const { logger, lines } = harness('info');
    const early = logger.child({ component: 'early' });
    logger.level = 'debug';
    const late = logger.child({ component: 'late' });
    early.debug('dropped');
    late.debug('kept');
    expect(lines).toMatchObject([{ level: 20, component: 'late', msg: 'kept' }]);
    early.level = 'debug';
    early.debug('now kept');
    expect(lines).toHaveLength(2);
  });

  it('refuses an unknown level', () => {
    const { logger } = harness('info');
    expect(() => {
      logger.level = 'loud';
    }).toThrow(/unknown level/);
  });

  it('silent logs nothing at any level', () => {
    const { logger, lines, state } = harness('silent');
    logger.fatal('nothing');
    expect(state.created).toBe(0);
    expect(lines).toEqual([]);
  });

  it('never writes a key twice: children and log calls drop what is already bound to the same value', () => {
    const { logger, lines, written } = harness('info');
    const backup = logger.child({ component: 'backup', vm: 'web' });
    backup.warn({ vm: 'web', holder: 42 }, 'taking over');
    const fuse = logger.child({ component: 'fuse', dir: '/mnt' }).child({ dir: '/mnt', conn: 1 });
    fuse.info({ dir: '/mnt' }, 'mounted');
    // Once pino is loaded, new children still drop repeated bindings.
    fuse.child({ conn: 1, op: 'read' }).info('read');
    expect(lines).toMatchObject([
      { component: 'backup', vm: 'web', holder: 42, msg: 'taking over' },
      { component: 'fuse', dir: '/mnt', conn: 1, msg: 'mounted' },
      { component: 'fuse', dir: '/mnt', conn: 1, op: 'read', msg: 'read' },
    ]);
    for (const line of written) {
      const keys = [...line.matchAll(/"([a-z]+)":/g)].map((m) => m[1]);
      expect(new Set(keys).size).toBe(keys.length);
    }
  });
});
