/**
 * The lab (test/lab/lab.sh) for vitest end-to-end suites: a client, a server
 * with sshd and a target network, each a network namespace, under a unique
 * short name, always torn down.
 *
 *   describeLab('tunnel', (lab) => {
 *     it('reaches the target', async () => {
 *       const r = await lab.curl(`http://${lab.env.targetIp}/`);
 *       expect(r.stdout).toBe('hello from lab\n');
 *     });
 *   });
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import {
  inNs,
  killSpawned,
  killSpawnedNow,
  type RunOptions,
  type RunResult,
  run,
  type SpawnOptions,
  spawnInNs,
} from './lab-exec.js';
import { countOurRules } from './lab-firewall.js';
import { describeWhen, labAvailable } from './lab-gate.js';

export * from './lab-exec.js';
export * from './lab-firewall.js';
export * from './lab-gate.js';

/** test/lab/lab.sh, found from this file so it works from any cwd. */
export const LAB_SH = fileURLToPath(new URL('../lab/lab.sh', import.meta.url));

/** What lab.sh prints (its LAB_* variables), typed. */
export interface LabEnv {
  readonly name: string;
  readonly dir: string;
  readonly clientNs: string;
  readonly serverNs: string;
  readonly targetNs: string;
  readonly serverIp: string;
  readonly serverIp6: string;
  readonly clientIp: string;
  readonly targetIp: string;
  readonly targetIp6: string;
  readonly targetNet: string;
  readonly targetNet6: string;
  readonly targetName: string;
  readonly sshUser: string;
  /** Private key that logs in as root on the server. */
  readonly sshKey: string;
  /** ssh_config: the key, no host-key checking, BatchMode. */
  readonly sshConfig: string;
  /** ssh_config that checks the host key against {@link knownHosts}. */
  readonly sshConfigStrict: string;
  /** The server's host key for 198.51.100.1 and 2001:db8:1::1. */
  readonly knownHosts: string;
  /** The raw LAB_* variables, e.g. to pass as environment to a script. */
  readonly vars: Readonly<Record<string, string>>;
}

const FIELDS = {
  name: 'LAB_NAME',
  dir: 'LAB_DIR',
  clientNs: 'LAB_CLIENT_NS',
  serverNs: 'LAB_SERVER_NS',
  targetNs: 'LAB_TARGET_NS',
  serverIp: 'LAB_SERVER_IP',
  serverIp6: 'LAB_SERVER_IP6',
  clientIp: 'LAB_CLIENT_IP',
  targetIp: 'LAB_TARGET_IP',
  targetIp6: 'LAB_TARGET_IP6',
  targetNet: 'LAB_TARGET_NET',
  targetNet6: 'LAB_TARGET_NET6',
  targetName: 'LAB_TARGET_NAME',
  sshUser: 'LAB_SSH_USER',
  sshKey: 'LAB_SSH_KEY',
  sshConfig: 'LAB_SSH_CONFIG',
  sshConfigStrict: 'LAB_SSH_CONFIG_STRICT',
  knownHosts: 'LAB_KNOWN_HOSTS',
} as const satisfies Record<Exclude<keyof LabEnv, 'vars'>, string>;

/** Parses lab.sh's `KEY=VALUE` lines. */
export const parseLabEnv = (text: string): LabEnv => {
  const vars: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(LAB_[A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) vars[m[1]] = m[2];
  }
  const field = (key: string): string => {
    const v = vars[key];
    if (v === undefined) throw new Error(`lab.sh printed no ${key}`);
    return v;
  };
  const env = Object.fromEntries(Object.entries(FIELDS).map(([k, key]) => [k, field(key)])) as Omit<
    LabEnv,
    'vars'
  >;
  return { ...env, vars };
};

// 'l' is the opt-in LAN of `lab.sh lan`.
const namespacesOf = (name: string): string[] => ['c', 's', 't', 'l'].map((x) => `${name}-${x}`);

const nsExists = (ns: string): boolean => existsSync(`/run/netns/${ns}`);

/**
 * A fresh lab name: prefix + 4 hex digits (e.g. `t3f9a`), not in use.
 * Short, because interface and namespace names are built from it.
 */
export const uniqueLabName = (prefix = 't'): string => {
  for (;;) {
    const name = `${prefix}${randomBytes(2).toString('hex')}`;
    if (!namespacesOf(name).some(nsExists) && !existsSync(`/tmp/${name}`)) return name;
  }
};

/** A running lab. */
export interface Lab {
  readonly env: LabEnv;
  /** Tears it down (idempotent); rejects if a namespace survives. */
  readonly down: () => Promise<void>;
}

// lab.sh reads LAB_DIR; never let one from the caller's shell point it elsewhere.
const labShEnv = (name: string): NodeJS.ProcessEnv => ({ ...process.env, LAB_DIR: `/tmp/${name}` });

const labDownSync = (name: string): void => {
  spawnSync('bash', [LAB_SH, 'down', name], {
    stdio: 'ignore',
    timeout: 30_000,
    env: labShEnv(name),
  });
};

/** What lab.sh left behind for `name` (namespaces, /etc/netns dirs, its directory). */
export const labLeftovers = (name: string, dir = `/tmp/${name}`): string[] => [
  ...namespacesOf(name)
    .filter(nsExists)
    .map((ns) => `netns ${ns}`),
  ...namespacesOf(name)
    .filter((ns) => existsSync(`/etc/netns/${ns}`))
    .map((ns) => `/etc/netns/${ns}`),
  ...(existsSync(dir) ? [dir] : []),
];

/** Brings up a lab under a new unique name. */
export const startLab = async (prefix = 't'): Promise<Lab> => {
  const name = uniqueLabName(prefix);
  // If this process dies before down(), still take the lab down.
  const onExit = () => {
    killSpawnedNow();
    labDownSync(name);
  };
  process.once('exit', onExit);
  const shEnv = labShEnv(name);
  const up = await run(['bash', LAB_SH, 'up', name], { timeoutMs: 90_000, env: shEnv });
  if (up.code !== 0) {
    await run(['bash', LAB_SH, 'down', name], { timeoutMs: 30_000, env: shEnv });
    process.removeListener('exit', onExit);
    throw new Error(`lab.sh up ${name} failed (${up.code}):\n${up.stderr}${up.stdout}`);
  }
  const env = parseLabEnv(up.stdout);
  let isDown = false;
  const down = async (): Promise<void> => {
    if (isDown) return;
    const r = await run(['bash', LAB_SH, 'down', name], { timeoutMs: 30_000, env: shEnv });
    process.removeListener('exit', onExit);
    isDown = true;
    const left = labLeftovers(name, env.dir);
    if (r.code !== 0 || left.length > 0) {
      throw new Error(
        `lab.sh down ${name} (${r.code}) left: ${left.join(', ') || 'nothing'} ${r.stderr}`,
      );
    }
  };
  return { env, down };
};

/** What a describeLab suite gets: the lab's env, and commands run inside it. */
export interface LabHandle {
  /** The lab's variables; only inside tests and hooks (it is up from beforeAll). */
  readonly env: LabEnv;
  readonly inClient: (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;
  readonly inServer: (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;
  readonly inTarget: (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;
  /** A long-running process in the client namespace, killed (whole group) at teardown. */
  readonly spawnInClient: (
    argv: readonly string[],
    opts?: SpawnOptions,
  ) => ReturnType<typeof spawnInNs>;
  /** curl from the client namespace (`-sS --max-time`); see {@link curlInClient}. */
  readonly curl: (url: string, opts?: CurlOptions) => Promise<RunResult>;
  /** Firewall objects of ours in the client namespace. */
  readonly countOurRules: () => Promise<number>;
}

export interface CurlOptions {
  /** Extra curl arguments, before the URL. */
  readonly args?: readonly string[];
  /** curl --max-time, in seconds; default 10. */
  readonly maxTimeS?: number;
}

/** `curl -sS --max-time T [args] URL` inside `ns`. */
export const curlInClient = (ns: string, url: string, opts: CurlOptions = {}) => {
  const t = opts.maxTimeS ?? 10;
  return inNs(ns, ['curl', '-sS', '--max-time', String(t), ...(opts.args ?? []), url], {
    timeoutMs: t * 1000 + 5_000,
  });
};

/**
 * A suite that runs against its own lab: up in beforeAll, down in afterAll
 * (also when tests fail; processes from spawnInClient are killed first).
 * Skips with the reason printed when root or a tool is missing, and fails
 * instead when CI=true.
 */
export const describeLab = (title: string, fn: (lab: LabHandle) => void): void => {
  describeWhen(labAvailable(), title, () => {
    let lab: Lab | undefined;
    const env = (): LabEnv => {
      if (lab === undefined) throw new Error('lab env used outside a test (or lab.sh up failed)');
      return lab.env;
    };
    const handle: LabHandle = {
      get env() {
        return env();
      },
      inClient: (argv, opts) => inNs(env().clientNs, argv, opts),
      inServer: (argv, opts) => inNs(env().serverNs, argv, opts),
      inTarget: (argv, opts) => inNs(env().targetNs, argv, opts),
      spawnInClient: (argv, opts) => spawnInNs(env().clientNs, argv, opts),
      curl: (url, opts) => curlInClient(env().clientNs, url, opts),
      countOurRules: () => countOurRules(env().clientNs),
    };
    beforeAll(async () => {
      lab = await startLab();
    }, 120_000);
    afterAll(async () => {
      await killSpawned();
      await lab?.down();
    }, 60_000);
    fn(handle);
  });
};
