/**
 * Structured logs with pino, on stderr: human-readable on a terminal
 * (pino-pretty), JSON lines otherwise. sshuttle-like levels: no -v shows
 * info and up, -v debug, -vv and more trace.
 *
 * Both write synchronously on this thread (no pino transport, so no worker
 * thread), and pino-pretty is loaded only when stderr is a terminal: a
 * tunnel started by a script or a service never pays for it.
 */
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export const levelFor = (verbose: number): pino.Level =>
  verbose <= 0 ? 'info' : verbose === 1 ? 'debug' : 'trace';

export const makeLogger = (verbose: number, opts: { readonly name?: string } = {}): Logger => {
  const level = levelFor(verbose);
  const base = { name: opts.name ?? 'sshuttle-ts', level, base: null };
  if (process.stderr.isTTY) {
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino(
      base,
      pretty({
        destination: 2,
        sync: true,
        colorize: true,
        ignore: 'name',
        translateTime: 'HH:MM:ss.l',
        messageFormat: '{msg}',
      }),
    );
  }
  return pino(base, pino.destination({ fd: 2, sync: true }));
};
