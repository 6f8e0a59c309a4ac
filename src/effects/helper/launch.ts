/**
 * Starting the far end of the helper transport: a command on the server,
 * reached over an exec channel of the built-in ssh2 connection, or the
 * stdio of an external `ssh` process (`-e`). Either way the result is a
 * byte pipe plus the process's exit status and the tail of its stderr.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import type { Client } from 'ssh2';
import { packagePath } from '../package-root.js';
import { receiveWindows } from '../ssh/receive-window.js';

export interface HelperExit {
  readonly code: number | null;
  readonly signal: string | null;
}

/** A running remote command and its stdio. */
export interface HelperProcess {
  readonly readable: Readable;
  readonly writable: Writable;
  /** Resolves when the command (or the external ssh) has exited. */
  readonly exited: Promise<HelperExit>;
  /** The last stderr lines, for error messages. */
  readonly stderrTail: () => string;
  readonly kill: () => void;
}

export type StderrLine = (line: string) => void;

/** Splits a stderr stream into lines for `onLine` and keeps the last few. */
const watchStderr = (stream: Readable, onLine: StderrLine): (() => string) => {
  const tail: string[] = [];
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (line === '') continue;
      tail.push(line);
      if (tail.length > 5) tail.shift();
      onLine(line);
    }
  });
  stream.on('error', () => {});
  return () => [...tail, ...(partial === '' ? [] : [partial])].join(' | ');
};

/**
 * The helper channel's smallest window: it carries every connection's data,
 * fed by sshd from the helper's pipe in bursts. Alternating lab runs: p99
 * under a download 5.4-6.4 ms with 256 KiB against 8.5-9.0 with ssh2's
 * 2 MiB (7.3-8.3 with 512 KiB, 6.0 with 128 KiB), the download 160-190
 * MB/s against 180-195 (docs/performance-log.md).
 */
const HELPER_WINDOW_FLOOR = 256 * 1024;

/** Runs `command` over an exec channel of `client`. */
export const execRemote = (
  client: Client,
  command: string,
  onStderr: StderrLine,
): Promise<E.Either<string, HelperProcess>> =>
  new Promise((resolve) => {
    try {
      client.exec(command, (err, ch) => {
        if (err) {
          resolve(E.left(`cannot start the helper over ssh: ${err.message}`));
          return;
        }
        // Every mux channel's data shares this one SSH channel: with ssh2's
        // 2 MiB window a download queued that much in sshd ahead of every
        // small answer; sized to the path, the helper's fair scheduler decides.
        receiveWindows(client, { floor: HELPER_WINDOW_FLOOR }).cap(ch);
        let exit: HelperExit | null = null;
        let closed = false;
        const waiters: ((e: HelperExit) => void)[] = [];
        const settle = (): void => {
          if (!closed) return;
          const e = exit ?? { code: null, signal: null };
          for (const w of waiters.splice(0)) w(e);
        };
        ch.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
        });
        ch.on('close', () => {
          closed = true;
          settle();
        });
        ch.on('error', () => {});
        const exited = new Promise<HelperExit>((r) => {
          waiters.push(r);
          settle();
        });
        const stderrTail = watchStderr(ch.stderr, onStderr);
        resolve(
          E.right({
            readable: ch,
            writable: ch,
            exited,
            stderrTail,
            kill: () => ch.close(),
          }),
        );
      });
    } catch (e) {
      resolve(
        E.left(`cannot start the helper over ssh: ${e instanceof Error ? e.message : String(e)}`),
      );
    }
  });

/** Runs `argv` (an external ssh) locally; its stdio is the pipe. */
export const spawnLocal = (
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  onStderr: StderrLine,
): E.Either<string, HelperProcess> => {
  const [file, ...args] = argv;
  if (file === undefined) return E.left('empty ssh command');
  let failed: string | null = null;
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  const exited = new Promise<HelperExit>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      failed = err.code === 'ENOENT' ? `cannot run "${file}": not found` : err.message;
      resolve({ code: 127, signal: null });
    });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const stderrTail = watchStderr(child.stderr, onStderr);
  child.stdin.on('error', () => {});
  return E.right({
    readable: child.stdout,
    writable: child.stdin,
    exited,
    stderrTail: () => failed ?? stderrTail(),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  });
};

/** The bundled helper (dist/helper.cjs), from the built tree or from the sources. */
export const loadHelperBundle = (): E.Either<string, Buffer> => {
  const path = packagePath('dist', 'helper.cjs');
  if (existsSync(path)) return E.right(readFileSync(path));
  return E.left(`the helper bundle is missing (${path}): run "npm run build"`);
};
