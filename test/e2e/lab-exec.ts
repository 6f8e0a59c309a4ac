/**
 * Running programs for end-to-end tests: one-shot commands (with a timeout,
 * never a shell) and long-running processes in their own process group, in
 * the host namespace or inside a network namespace via `ip netns exec`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';

export interface RunResult {
  /** Exit code; -1 when the program could not be started or was killed. */
  readonly code: number;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

export interface RunOptions {
  /** Kill the program (SIGKILL) after this long; default 30 s. */
  readonly timeoutMs?: number;
  /** Written to stdin, which is then closed (it is closed at once without it). */
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Runs argv[0] with the rest as arguments; never rejects. */
export const run = (argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> =>
  new Promise((resolve) => {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('run: empty argv');
    const child = execFile(
      file,
      args,
      {
        timeout: opts.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: 256 * 1024 * 1024,
        encoding: 'utf8',
        env: opts.env ?? process.env,
        ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown; killed?: boolean; signal?: unknown }) | null;
        resolve({
          code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1,
          signal: typeof e?.signal === 'string' ? (e.signal as NodeJS.Signals) : null,
          stdout,
          stderr: e !== null && typeof e.code === 'string' ? `${stderr}${e.message}` : stderr,
          timedOut: e?.killed === true,
        });
      },
    );
    child.stdin?.on('error', () => {}); // the program may exit without reading it
    child.stdin?.end(opts.input ?? '');
  });

/** `ip netns exec NS argv...` */
export const nsArgv = (ns: string, argv: readonly string[]): string[] => [
  'ip',
  'netns',
  'exec',
  ns,
  ...argv,
];

/** Runs a command inside network namespace `ns`. */
export const inNs = (ns: string, argv: readonly string[], opts: RunOptions = {}) =>
  run(nsArgv(ns, argv), opts);

/** Runs a command in the lab's client namespace (pass `lab.env.clientNs`). */
export const inClient = inNs;

// ---------------------------------------------------------------------------
// long-running processes
// ---------------------------------------------------------------------------

const spawned = new Set<ChildProcess>();

export interface SpawnOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Keep stdin open as a pipe (default: /dev/null). */
  readonly stdin?: boolean;
}

/**
 * Starts a long-running program in its own process group and remembers it, so
 * {@link killSpawned} (run by describeLab's teardown) can stop the whole group.
 * stdout and stderr are pipes; read them or use {@link outputOf}.
 */
export const spawnProcess = (argv: readonly string[], opts: SpawnOptions = {}): ChildProcess => {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('spawnProcess: empty argv');
  const child = spawn(file, args, {
    detached: true, // its own process group, killed as a whole
    stdio: [opts.stdin === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    env: opts.env ?? process.env,
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  });
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  return child;
};

/** {@link spawnProcess} inside network namespace `ns`. */
export const spawnInNs = (ns: string, argv: readonly string[], opts: SpawnOptions = {}) =>
  spawnProcess(nsArgv(ns, argv), opts);

/** {@link spawnProcess} in the lab's client namespace (pass `lab.env.clientNs`). */
export const spawnInClient = spawnInNs;

const exited = (child: ChildProcess): boolean =>
  child.exitCode !== null || child.signalCode !== null;

const waitExit = (child: ChildProcess, ms: number): Promise<boolean> =>
  exited(child)
    ? Promise.resolve(true)
    : new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), ms);
        child.once('exit', () => {
          clearTimeout(t);
          resolve(true);
        });
      });

const signalGroup = (child: ChildProcess, sig: NodeJS.Signals): void => {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // group already gone
  }
};

/** SIGTERM to the process group, SIGKILL after `graceMs`; resolves when it has exited. */
export const killGroup = async (child: ChildProcess, graceMs = 3_000): Promise<void> => {
  if (child.pid === undefined) return;
  signalGroup(child, 'SIGTERM');
  if (await waitExit(child, graceMs)) {
    signalGroup(child, 'SIGKILL'); // stragglers in the group
    return;
  }
  signalGroup(child, 'SIGKILL');
  await waitExit(child, 2_000);
};

/** Stops every process started with spawnProcess/spawnInNs that is still running. */
export const killSpawned = async (graceMs = 3_000): Promise<void> => {
  await Promise.all([...spawned].map((c) => killGroup(c, graceMs)));
};

/** Synchronous last resort at process exit. */
export const killSpawnedNow = (): void => {
  for (const c of spawned) signalGroup(c, 'SIGKILL');
};

/** Accumulates a child's output; read the getters at any time. */
export const outputOf = (
  child: ChildProcess,
): { readonly stdout: string; readonly stderr: string } => {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
};

/**
 * Polls `check` every `everyMs` until it is truthy; rejects with `what` after
 * `timeoutMs` (a function is read then, so it can show what the wait saw).
 */
export const waitFor = async <T>(
  what: string | (() => string),
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
  everyMs = 100,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
};
