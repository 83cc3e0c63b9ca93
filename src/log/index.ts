// The pino root: one logger for the whole process, child loggers per component and connection.
// Logs go to stderr (stdout carries data: `cairn cat`, --json); human readable on a terminal, JSON otherwise.
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { createRequire } from 'node:module';

// pino-pretty is only needed on a terminal; loading it costs start-up time everywhere else.
const require = createRequire(import.meta.url);

function createRoot(): Logger {
  const level = (process.env.CAIRN_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info';
  if (process.stderr.isTTY) {
    const pinoPretty = require('pino-pretty') as typeof import('pino-pretty');
    const pretty = pinoPretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss' });
    return pino({ level, base: undefined }, pretty);
  }
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}

export const logger: Logger = createRoot();

export function childLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return logger.child({ component, ...bindings });
}

export function setLogLevel(level: LevelWithSilent): void {
  logger.level = level;
}

export type { Logger };
