/**
 * A Prompter on the user's terminal: /dev/tty when the process has a
 * controlling terminal (so prompts work even with stdin/stdout redirected,
 * like ssh), else stdin/stderr when stdin is a TTY. Secrets are read with
 * echo off (raw mode). Prompts are serialized so two never interleave.
 */
import { closeSync, openSync } from 'node:fs';
import { isatty, ReadStream, WriteStream } from 'node:tty';
import type { Prompter } from './types.js';

interface Terminal {
  readonly input: ReadStream;
  readonly output: NodeJS.WritableStream;
  readonly close: () => void;
}

const openDevTty = (): Terminal | null => {
  let rfd: number | null = null;
  let wfd: number | null = null;
  try {
    rfd = openSync('/dev/tty', 'r');
    wfd = openSync('/dev/tty', 'w');
    if (!isatty(rfd)) throw new Error('not a tty');
    const input = new ReadStream(rfd);
    const output = new WriteStream(wfd);
    return {
      input,
      output,
      close: () => {
        input.destroy();
        output.destroy();
      },
    };
  } catch {
    if (rfd !== null) closeSync(rfd);
    if (wfd !== null) closeSync(wfd);
    return null;
  }
};

const openStdio = (): Terminal | null =>
  process.stdin.isTTY === true
    ? {
        input: process.stdin as ReadStream,
        output: process.stderr,
        close: () => {
          process.stdin.pause();
        },
      }
    : null;

/** Whether a terminal can be opened right now. */
const hasTerminal = (): boolean => {
  const t = openDevTty();
  if (t !== null) {
    t.close();
    return true;
  }
  return process.stdin.isTTY === true;
};

/** The terminal prompter, or null when there is no terminal (then nothing is ever asked). */
export const ttyPrompter = (): Prompter | null => {
  if (!hasTerminal()) return null;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    readLine: (message, opts) => {
      const run = queue.then(() => readLineOnce(message, opts.secret));
      queue = run.catch(() => undefined);
      return run;
    },
  };
};

const readLineOnce = (message: string, secret: boolean): Promise<string | null> =>
  new Promise((resolve) => {
    const term = openDevTty() ?? openStdio();
    if (term === null) {
      resolve(null);
      return;
    }
    const { input, output } = term;
    let line = '';
    const wasRaw = input.isRaw;
    const finish = (value: string | null, interrupted = false): void => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      if (secret) {
        input.setRawMode(wasRaw);
        output.write('\n');
      }
      term.close();
      resolve(value);
      // Ctrl-C in raw mode is just a byte: turn it back into the signal the
      // user meant, after the terminal is restored.
      if (interrupted) process.kill(process.pid, 'SIGINT');
    };
    const onEnd = (): void => finish(null);
    const onData = (chunk: Buffer | string): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish(line);
          return;
        }
        if (secret && (ch === '\u0003' || (ch === '\u0004' && line === ''))) {
          finish(null, ch === '\u0003');
          return;
        }
        if (secret && (ch === '\u007f' || ch === '\b')) line = line.slice(0, -1);
        else if (secret && ch === '\u0015') line = '';
        else line += ch;
      }
    };
    output.write(message);
    if (secret) input.setRawMode(true);
    input.setEncoding('utf8');
    input.on('data', onData);
    input.on('end', onEnd);
    input.resume();
  });
