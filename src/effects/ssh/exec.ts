/**
 * Runs one command on the server over an exec channel and collects its
 * output: for small read-only jobs (resolv.conf, `ip route`, /etc/hosts).
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Client, ClientChannel } from 'ssh2';

export interface ExecResult {
  /** Exit status; null when the command died from a signal or none was sent. */
  readonly code: number | null;
  readonly signal: string | null;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

export interface ExecOptions {
  /** Written to the command's stdin, then EOF. Default: EOF at once. */
  readonly stdin?: Buffer | string;
  /** Default 30 s. */
  readonly timeoutMs?: number;
  /** Stop and fail when stdout+stderr exceed this. Default 16 MiB. */
  readonly maxBytes?: number;
}

/** Left carries one line saying why the command could not be run to the end. */
export const execCommand = (
  client: Client,
  cmd: string,
  opts: ExecOptions = {},
): Promise<E.Either<string, ExecResult>> =>
  new Promise((resolve) => {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
    let channel: ClientChannel | null = null;
    let done = false;
    const finish = (r: E.Either<string, ExecResult>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (E.isLeft(r)) channel?.close();
      resolve(r);
    };
    const timer = setTimeout(
      () => finish(E.left(`"${cmd}" did not finish within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      client.exec(cmd, (err, ch) => {
        if (err) return finish(E.left(`cannot run "${cmd}": ${err.message}`));
        channel = ch;
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let size = 0;
        let code: number | null = null;
        let signal: string | null = null;
        const collect = (into: Buffer[]) => (b: Buffer) => {
          size += b.length;
          if (size > maxBytes) finish(E.left(`"${cmd}" wrote more than ${maxBytes} bytes`));
          else into.push(b);
        };
        ch.on('data', collect(out));
        ch.stderr.on('data', collect(errOut));
        ch.on('exit', (c: number | null, s?: string) => {
          code = typeof c === 'number' ? c : null;
          signal = s ?? null;
        });
        ch.on('error', (e: Error) => finish(E.left(`"${cmd}": ${e.message}`)));
        ch.on('close', () =>
          finish(
            E.right({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(errOut) }),
          ),
        );
        if (opts.stdin === undefined) ch.end();
        else ch.end(opts.stdin);
      });
    } catch (e) {
      finish(E.left(`cannot run "${cmd}": ${e instanceof Error ? e.message : String(e)}`));
    }
  });
