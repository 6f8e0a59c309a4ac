/**
 * Structured logs with pino, on stderr: human-readable on a terminal
 * (pino-pretty), JSON lines otherwise. sshuttle-like levels: no -v shows
 * info and up, -v debug, -vv and more trace.
 *
 * Both write synchronously on this thread (no pino transport, so no worker
 * thread), and pino-pretty is loaded only when stderr is a terminal: a
 * tunnel started by a script or a service never pays for it.
 */
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export const levelFor = (verbose: number): pino.Level =>
  verbose <= 0 ? 'info' : verbose === 1 ? 'debug' : 'trace';

/** Where log lines go: anything with `write(line)`. */
export interface LogDestination {
  readonly write: (line: string) => unknown;
}

export const makeLogger = (
  verbose: number,
  opts: {
    readonly name?: string;
    /** Wraps the stderr destination (e.g. to switch to syslog later). */
    readonly wrap?: (stderr: LogDestination) => LogDestination;
    /** Called before each line on a terminal (the live status line erases itself). */
    readonly beforeWrite?: () => void;
  } = {},
): Logger => {
  const level = levelFor(verbose);
  const base = { name: opts.name ?? 'sshuttle-ts', level, base: null };
  const wrap = opts.wrap ?? ((d: LogDestination) => d);
  if (process.stderr.isTTY) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino(
      base,
      wrap(
        pretty({
          destination:
            opts.beforeWrite === undefined
              ? 2
              : new Writable({
                  write: (chunk: Buffer, _enc, done) => {
                    opts.beforeWrite?.();
                    writeSync(2, chunk);
                    done();
                  },
                }),
          sync: true,
          colorize: true,
          ignore: 'name',
          translateTime: 'HH:MM:ss.l',
          messageFormat: '{msg}',
        }),
      ),
    );
  }
  return pino(base, wrap(pino.destination({ fd: 2, sync: true })));
};
