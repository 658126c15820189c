/**
 * Structured JSON logs, one object per line on stdout (errors on stderr), with a level filter.
 * Secrets never reach it: callers log ids and counts, never headers or bodies.
 *
 * @module
 */

export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger that carries fixed fields (component, request id, …). */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. @default "info" */
  level?: Level;
  /** Where lines go. @default console.log / console.error */
  write?: (level: Level, line: string) => void;
}

function defaultWrite(level: Level, line: string): void {
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
}

/** Creates a JSON-lines logger. */
export function createLogger(
  options: LoggerOptions = {},
  base: Record<string, unknown> = {},
): Logger {
  const min = RANK[options.level ?? "info"];
  const write = options.write ?? defaultWrite;
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < min) return;
    const entry: Record<string, unknown> = {
      time: new Date().toISOString(),
      level,
      msg,
      ...base,
      ...fields,
    };
    if (entry.err instanceof Error) {
      entry.err = { message: entry.err.message, name: entry.err.name };
    }
    write(level, JSON.stringify(entry));
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A logger that drops everything, for tests. */
export const silentLogger: Logger = createLogger({ write: () => {} });
