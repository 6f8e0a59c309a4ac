/**
 * The client's handle on the privileged firewall helper: starts
 * `<prefix...> <command...> --firewall --method M [-v...]` in its own session
 * (so a terminal Ctrl-C reaches the client, not the helper), waits for
 * `READY`, sends the request and waits for `STARTED`. Closing our end of its
 * stdin is the signal to restore everything; the helper also sees that EOF
 * when this process dies, however it dies.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as E from 'fp-ts/lib/Either.js';
import type { Method } from '../../domain/config.js';
import type { FirewallRequest } from '../../domain/firewall-plan.js';
import {
  type AnnouncedMethod,
  decodeHelperLine,
  encodeHost,
  encodeRequest,
  type HostEntry,
  MAX_LINE_LENGTH,
} from '../../domain/firewall-protocol.js';
import { firewallHelperArgs } from '../../domain/privilege.js';
import { makeLineSplitter } from './line-splitter.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

export interface StartFirewallOptions {
  readonly method: Method;
  readonly verbose: number;
  /** argv that starts the helper, e.g. `[process.execPath, '/path/to/bin/sshuttle-ts']`. */
  readonly command: readonly string[];
  /** Words run in front of `command`: `sudo -p ... --` or `doas`; in tests `ip netns exec NS`. */
  readonly prefix?: readonly string[];
  /**
   * Stay in the caller's session instead of a new one, so sudo/doas can
   * prompt for a password on the terminal (the helper is then reached by a
   * terminal Ctrl-C too, and restores as on EOF).
   */
  readonly sameSession?: boolean;
  /** How long to wait for READY (a sudo password prompt counts). Default 60 s. */
  readonly readyTimeoutMs?: number;
  /** How long to wait for STARTED after the request. Default 60 s. */
  readonly setupTimeoutMs?: number;
  /** Receives the helper's stderr (its `fw: ` log). Default: this process's stderr. */
  readonly onStderr?: (text: string) => void;
}

export interface FirewallHandle {
  /** The method the helper announced in READY. */
  readonly method: AnnouncedMethod;
  /** Process id of the spawned command (the prefix's process when there is one). */
  readonly pid: number;
  /** Send the request; resolves once the rules are in (STARTED). */
  readonly setup: (req: FirewallRequest) => Promise<E.Either<string, void>>;
  /** Send a HOST line (the helper currently only logs it). */
  readonly addHost: (host: HostEntry) => void;
  /** End the helper's stdin (it restores and exits); resolves when it has exited. */
  readonly close: () => Promise<void>;
  /** The helper's exit code (null: killed by a signal or never started). */
  readonly exited: Promise<number | null>;
}

/** How a helper process ended: it could not be spawned, or it exited. */
export type HelperEnd =
  | { readonly error: Error }
  | { readonly code: number | null; readonly signal: string | null };

/**
 * A helper process, started (by `startFirewall`, or earlier by a root client
 * before its own modules load, src/effects/firewall/prestart.ts). `ended` is
 * watched from the spawn on, so an exit before adoption is not missed.
 */
export interface SpawnedHelper {
  readonly child: ChildProcessWithoutNullStreams;
  readonly ended: Promise<HelperEnd>;
  /** Taken over by `startFirewall`. */
  readonly adopt: () => void;
  /** Not adopted: end its stdin (it exits, having touched nothing) and let go of it. */
  readonly release: () => void;
}

export type HelperSpawnOptions = Pick<
  StartFirewallOptions,
  'method' | 'verbose' | 'command' | 'prefix' | 'sameSession'
>;

/** Starts the helper; its output waits in the pipes until someone reads it. */
export const spawnHelper = (opts: HelperSpawnOptions): SpawnedHelper | null => {
  const [cmd, ...args] = helperArgv(opts);
  if (cmd === undefined) return null;
  const child = spawn(cmd, args, {
    detached: opts.sameSession !== true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const ended = new Promise<HelperEnd>((resolve) => {
    child.on('error', (error) => {
      // Spawn failure: no 'close' follows on every Node version.
      if (child.pid === undefined) resolve({ error });
    });
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  // EPIPE when the helper is gone: `ended` reports that.
  child.stdin.on('error', () => {});
  let adopted = false;
  return {
    child,
    ended,
    adopt: () => {
      adopted = true;
    },
    release: () => {
      if (adopted) return;
      adopted = true;
      child.stdin.end();
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
    },
  };
};

/** sshuttle's client skips this many junk lines (e.g. from sudo) before READY. */
const MAX_JUNK_LINES = 100;
const STDERR_TAIL = 2048;

/** The argv the helper is started with. */
export const helperArgv = (opts: HelperSpawnOptions): string[] => [
  ...(opts.prefix ?? []),
  ...opts.command,
  ...firewallHelperArgs(opts.method, opts.verbose),
];

// ---------------------------------------------------------------------------
// driver
// ---------------------------------------------------------------------------

type Next = E.Either<string, string>;

/** Starts the helper (or adopts `spawned`, started earlier with the same options) and waits for READY. */
export const startFirewall = async (
  opts: StartFirewallOptions,
  spawned: SpawnedHelper | null = null,
): Promise<E.Either<string, FirewallHandle>> => {
  const helper = spawned ?? spawnHelper(opts);
  if (helper === null) return E.left('no firewall helper command given');
  helper.adopt();
  const { child } = helper;
  const onStderr = opts.onStderr ?? ((text: string) => void process.stderr.write(text));
  let stderrTail = '';
  let exitNote: string | null = null;
  const lines: string[] = [];
  let waiter: ((n: Next) => void) | null = null;
  const splitter = makeLineSplitter(MAX_LINE_LENGTH);

  const why = (what: string): string =>
    stderrTail.trim() === ''
      ? `firewall helper ${what}`
      : `firewall helper ${what}; its last words: ${stderrTail.trim()}`;

  const wake = (): void => {
    if (waiter === null) return;
    const w = waiter;
    const line = lines.shift();
    if (line !== undefined) {
      waiter = null;
      w(E.right(line));
    } else if (exitNote !== null) {
      waiter = null;
      w(E.left(why(exitNote)));
    }
  };

  const exited = helper.ended.then((end) => {
    if ('error' in end) exitNote = `could not be started (${end.error.message})`;
    else
      exitNote ??= `exited (${end.code !== null ? `code ${end.code}` : `signal ${String(end.signal)}`})`;
    wake();
    return 'error' in end ? null : end.code;
  });
  child.stdout.on('data', (b: Buffer) => {
    lines.push(...splitter.push(b));
    if (splitter.overflowed() && exitNote === null) {
      exitNote = 'sent an overlong line';
      child.stdin.end();
    }
    wake();
  });
  child.stderr.on('data', (b: Buffer) => {
    const text = b.toString('utf8');
    stderrTail = (stderrTail + text).slice(-STDERR_TAIL);
    onStderr(text);
  });

  /** The next stdout line, or Left on exit / timeout. */
  const nextLine = (timeoutMs: number, what: string): Promise<Next> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiter = null;
        resolve(E.left(why(`did not answer within ${timeoutMs} ms (waiting for ${what})`)));
      }, timeoutMs);
      waiter = (n) => {
        clearTimeout(timer);
        resolve(n);
      };
      wake();
    });

  /** Give up on the helper: end its stdin (it restores) and ask it to stop. */
  const abandon = async (): Promise<void> => {
    child.stdin.end();
    if (exitNote === null) child.kill('SIGTERM');
    await exited;
  };

  // READY, after at most MAX_JUNK_LINES other lines (sudo may print some).
  const readyTimeout = opts.readyTimeoutMs ?? 60_000;
  let method: AnnouncedMethod | null = null;
  for (let i = 0; i <= MAX_JUNK_LINES && method === null; i++) {
    const line = await nextLine(readyTimeout, 'READY');
    if (E.isLeft(line)) {
      await abandon();
      return line;
    }
    const msg = decodeHelperLine(line.right);
    if (E.isRight(msg) && msg.right.kind === 'ready') method = msg.right.method;
  }
  if (method === null) {
    await abandon();
    return E.left(why(`sent ${MAX_JUNK_LINES} lines but no READY`));
  }

  let closed = false;
  let setupSent = false;
  const send = (text: string): void => {
    if (!closed && !child.stdin.destroyed) child.stdin.write(text);
  };

  const handle: FirewallHandle = {
    method,
    pid: child.pid ?? -1,
    exited,
    setup: async (req) => {
      if (setupSent) return E.left('firewall helper: setup() may be called only once');
      setupSent = true;
      send(`${encodeRequest(req).join('\n')}\n`);
      const line = await nextLine(opts.setupTimeoutMs ?? 60_000, 'STARTED');
      if (E.isLeft(line)) return line;
      const msg = decodeHelperLine(line.right);
      if (E.isRight(msg) && msg.right.kind === 'started') return E.right(undefined);
      return E.left(
        E.isLeft(msg) ? msg.left : `firewall helper said ${line.right} instead of STARTED`,
      );
    },
    addHost: (host) => send(`${encodeHost(host)}\n`),
    close: async () => {
      closed = true;
      child.stdin.end();
      await exited;
    },
  };
  return E.right(handle);
};
