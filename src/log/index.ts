// The pino root: one logger for the whole process, child loggers per component and connection.
// Logs go to stderr (stdout carries data: `cairn cat`, --json); human readable on a terminal, JSON otherwise.
import type { Logger, LevelWithSilent } from 'pino';
import { createRequire } from 'node:module';
import { isLevel, lazyLogger } from './lazy-logger.js';

// pino loads on the first line actually logged (see lazy-logger.ts), pino-pretty only on a terminal:
// both cost start-up time that most commands never use.
const require = createRequire(import.meta.url);

function createRoot(level: LevelWithSilent): Logger {
  const { pino } = require('pino') as typeof import('pino');
  if (process.stderr.isTTY) {
    const pinoPretty = require('pino-pretty') as typeof import('pino-pretty');
    const pretty = pinoPretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss' });
    return pino({ level, base: undefined }, pretty);
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

function initialLevel(): LevelWithSilent {
  const level = process.env.CAIRN_LOG_LEVEL ?? 'info';
  // pino would refuse it when the root is created; say so at start, not on the first log line.
  if (!isLevel(level)) throw new Error(`CAIRN_LOG_LEVEL: unknown level '${level}'`);
  return level;
}

export const logger: Logger = lazyLogger(createRoot, initialLevel());

export function childLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return logger.child({ component, ...bindings });
}

export function setLogLevel(level: LevelWithSilent): void {
  logger.level = level;
}

export type { Logger };
