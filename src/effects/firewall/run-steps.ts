/**
 * The step runner: executes planned firewall Steps as child processes,
 * never through a shell, with sshuttle's environment (PATH extended with the
 * sbin directories, LC_ALL=C so probe output is parseable).
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { type Probe, type Step, showArgv } from '../../domain/firewall-plan.js';
import {
  batchNft,
  isBatch,
  NFT_SCRIPT_ARGV,
  type NftBatch,
  nftScript,
} from '../../domain/nft-batch.js';

// ---------------------------------------------------------------------------
// environment
// ---------------------------------------------------------------------------

const EXTRA_PATH = ['/sbin', '/usr/sbin', '/bin', '/usr/bin'];

/**
 * The environment firewall commands run with: only PATH (the caller's plus
 * the system directories, as a root helper started by sudo may lack /sbin)
 * and LC_ALL=C. Nothing else leaks into root's commands.
 */
export const firewallEnv = (base: Readonly<Record<string, string | undefined>>) => {
  const dirs = (base.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const d of EXTRA_PATH) if (!dirs.includes(d)) dirs.push(d);
  return { PATH: dirs.join(delimiter), LC_ALL: 'C' } as const;
};

export type FirewallEnv = ReturnType<typeof firewallEnv>;

/** The full path of `cmd` on `env.PATH`, or null. */
export const which = (cmd: string, env: FirewallEnv): string | null => {
  for (const dir of env.PATH.split(delimiter)) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
};

// ---------------------------------------------------------------------------
// one command
// ---------------------------------------------------------------------------

export interface CommandResult {
  /** Exit code; null when killed by a signal or not started. */
  readonly code: number | null;
  readonly stdout: string;
  /** The last few KiB of stderr. */
  readonly stderr: string;
  /** Why the command could not be started (e.g. not on PATH). */
  readonly spawnError: string | null;
}

const STDERR_TAIL = 4096;

/**
 * Run `argv` (no shell), with `input` on its stdin (none by default),
 * collecting stdout and a stderr tail. Never rejects.
 */
export const runCommand = (
  argv: readonly string[],
  env: FirewallEnv,
  input?: string,
): Promise<CommandResult> =>
  new Promise((resolve) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      resolve({ code: null, stdout: '', stderr: '', spawnError: 'empty command' });
      return;
    }
    const out: Buffer[] = [];
    let err = '';
    let spawnError: string | null = null;
    const child = spawn(cmd, args, {
      env,
      shell: false,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] as const,
    });
    // EPIPE from a command that exits without reading shows as its exit code.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => {
      err = (err + b.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.on('error', (e) => {
      spawnError = e.message;
    });
    child.on('close', (code) => {
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: err, spawnError });
    });
  });

/** A one-line reason why a command failed, or null if it succeeded. */
export const failure = (argv: readonly string[], r: CommandResult): string | null => {
  if (r.spawnError !== null) return `${showArgv(argv)}: ${r.spawnError}`;
  if (r.code === 0) return null;
  const why = r.stderr.trim().split('\n').slice(-2).join(' / ');
  return `${showArgv(argv)} returned ${r.code ?? 'a signal'}${why === '' ? '' : `: ${why}`}`;
};

// ---------------------------------------------------------------------------
// steps
// ---------------------------------------------------------------------------

/** Logger of the helper: level 0 always shown, higher with more -v. */
export type Log = (level: number, message: string) => void;

export interface RunOptions {
  readonly env: FirewallEnv;
  readonly log: Log;
  /** Restore mode: run every step even after a fatal one failed. */
  readonly keepGoing?: boolean;
  /** Checked before each step; true stops the run (Left). */
  readonly shouldStop?: () => boolean;
}

const probeMatches = (probe: Probe, stdout: string): boolean =>
  stdout
    .split('\n')
    .some((l) => (probe.match === 'exact' ? l === probe.line : l.startsWith(probe.line)));

/** Runs a batch as one `nft -f -`; the log shows its commands as single steps would. */
const runBatch = async (batch: NftBatch, opts: RunOptions): Promise<string | null> => {
  for (const s of batch.steps) opts.log(1, `>> ${showArgv(s.argv)}`);
  const r = await runCommand(NFT_SCRIPT_ARGV, opts.env, nftScript(batch));
  const why = failure(NFT_SCRIPT_ARGV, r);
  return why === null ? null : `${why} (${batch.steps.length} commands, none applied)`;
};

/**
 * Run `steps` in order; consecutive nft steps that must succeed run as one
 * transaction (src/domain/nft-batch.ts), except in restore mode. A failing
 * fatal step ends the run with Left (or, with `keepGoing`, is remembered
 * while the rest still run); a failing non-fatal step is logged. A probe is asked once and its answer reused by the gated
 * steps that follow, until an ungated step runs (that may change the answer).
 */
export const runSteps = async (
  steps: readonly Step[],
  opts: RunOptions,
): Promise<E.Either<string, void>> => {
  let firstError: string | null = null;
  let cached: { key: string; answer: E.Either<string, boolean> } | null = null;

  const ask = async (probe: Probe): Promise<E.Either<string, boolean>> => {
    const key = JSON.stringify(probe);
    if (cached?.key === key) return cached.answer;
    const r = await runCommand(probe.argv, opts.env);
    const why = failure(probe.argv, r);
    const answer = why === null ? E.right(probeMatches(probe, r.stdout)) : E.left(why);
    cached = { key, answer };
    return answer;
  };

  // One transaction per run of nft steps, unless every step must be tried.
  const runs = opts.keepGoing === true ? steps : batchNft(steps);
  for (const step of runs) {
    if (opts.shouldStop?.() === true) return E.left('stopped');
    if (isBatch(step)) {
      cached = null;
      const problem = await runBatch(step, opts);
      if (problem !== null) return E.left(problem);
      continue;
    }
    let problem: string | null = null;
    if (step.when === undefined) {
      cached = null;
    } else {
      const ok = await ask(step.when);
      if (E.isLeft(ok)) problem = ok.left;
      else if (!ok.right) {
        opts.log(2, `skip (no "${step.when.line.trim()}"): ${showArgv(step.argv)}`);
        continue;
      }
    }
    if (problem === null) {
      opts.log(1, `>> ${showArgv(step.argv)}`);
      problem = failure(step.argv, await runCommand(step.argv, opts.env));
    }
    if (problem === null) continue;
    if (!step.fatal) {
      opts.log(0, `error (ignored): ${problem}`);
      continue;
    }
    if (opts.keepGoing !== true) return E.left(problem);
    opts.log(0, `error: ${problem}`);
    firstError ??= problem;
  }
  return firstError === null ? E.right(undefined) : E.left(firstError);
};
