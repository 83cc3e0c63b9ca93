/** The slice of a pino logger the server uses; tests pass a silent one, the CLI a child of the root. */
export interface NbdLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): NbdLogger;
}

export const silentNbdLogger: NbdLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentNbdLogger,
};
