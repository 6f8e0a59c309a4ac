/**
 * The privileged firewall helper (`sshuttle-ts --firewall --method M [-v]`),
 * sshuttle's "firewall manager". Runs as root, talks the line protocol of
 * `domain/firewall-protocol.ts` on stdin/stdout, logs `fw: ` lines to stderr.
 *
 * It prints `READY <method>`, reads the request, installs the rules (IPv6
 * then IPv4), prints `STARTED` and waits. Whatever ends the wait - stdin EOF
 * (the client closed the pipe or died, even by SIGKILL), SIGTERM/SIGINT/SIGHUP,
 * a protocol error or a failed setup - it restores every rule it may have
 * installed, each family on its own so one failure does not stop the rest.
 *
 * Unlike upstream it does not relay SIGINT to the client pid from GO (a root
 * process signalling a pid the peer chose); the client notices the exit.
 */

import * as E from 'fp-ts/lib/Either.js';
import { type Method, MethodC } from '../domain/config.js';
import {
  checkRequest,
  type FirewallMethod,
  type FirewallRequest,
  familiesToSetup,
  planRestore,
  planSetup,
} from '../domain/firewall-plan.js';
import {
  decodeHost,
  encodeReady,
  encodeStarted,
  initialReader,
  MAX_LINE_LENGTH,
  type RequestReader,
  readRequestLine,
} from '../domain/firewall-protocol.js';
import { validateRequest } from '../domain/firewall-request-codec.js';
import type { Family } from '../domain/subnet.js';
import { writeHosts } from '../effects/firewall/hosts-file.js';
import { makeLineSplitter } from '../effects/firewall/line-splitter.js';
import { flushResolverCache } from '../effects/firewall/resolver-cache.js';
import { firewallEnv, type Log, runSteps } from '../effects/firewall/run-steps.js';
import { selectMethod } from '../effects/firewall/select-method.js';
import { dropStaleConntrack } from '../effects/firewall/stale-conntrack.js';
import { tproxyPreflight } from '../effects/firewall/tproxy-preflight.js';
import { releaseStartupPagesReport } from '../effects/startup-pages.js';

// ---------------------------------------------------------------------------
// arguments
// ---------------------------------------------------------------------------

export interface FirewallArgs {
  readonly method: Method;
  readonly verbose: number;
}

/** `--method M` (or `--method=M`), `-v`/`-vv`/`--verbose`; `--syslog` is accepted and ignored. */
export const parseFirewallArgs = (argv: readonly string[]): E.Either<string, FirewallArgs> => {
  let method: Method = 'auto';
  let verbose = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    let m: string | undefined;
    if (a === '--method') m = argv[++i];
    else if (a.startsWith('--method=')) m = a.slice(9);
    else if (/^-v+$/.test(a)) verbose += a.length - 1;
    else if (a === '--verbose') verbose++;
    else if (a === '--syslog' || a === '--firewall') continue;
    else return E.left(`unknown argument ${JSON.stringify(a)}`);
    if (m === undefined) continue;
    if (!MethodC.is(m)) return E.left(`unknown method ${JSON.stringify(m)}`);
    method = m;
  }
  return E.right({ method, verbose });
};

// ---------------------------------------------------------------------------
// input: stdin lines and signals, as one queue of events
// ---------------------------------------------------------------------------

type Input =
  | { readonly kind: 'line'; readonly line: string }
  | { readonly kind: 'eof' }
  | { readonly kind: 'overflow' }
  | { readonly kind: 'signal'; readonly signal: NodeJS.Signals };

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** stdin and signals merged; a signal jumps the queue. */
const openInput = () => {
  const queue: Input[] = [];
  let waiter: ((i: Input) => void) | null = null;
  let signalled: NodeJS.Signals | null = null;
  const push = (i: Input, urgent = false): void => {
    if (waiter !== null) {
      const w = waiter;
      waiter = null;
      w(i);
    } else if (urgent) queue.unshift(i);
    else queue.push(i);
  };
  const splitter = makeLineSplitter(MAX_LINE_LENGTH);
  const onData = (b: Buffer): void => {
    if (splitter.overflowed()) return;
    for (const line of splitter.push(b)) push({ kind: 'line', line });
    if (splitter.overflowed()) push({ kind: 'overflow' });
  };
  const onEnd = (): void => push({ kind: 'eof' });
  const onSignal = (signal: NodeJS.Signals): void => {
    signalled ??= signal;
    push({ kind: 'signal', signal }, true);
  };
  process.stdin.on('data', onData);
  process.stdin.on('end', onEnd);
  process.stdin.on('error', onEnd);
  for (const s of SIGNALS) process.on(s, onSignal);
  return {
    next: (): Promise<Input> =>
      new Promise((resolve) => {
        const i = queue.shift();
        if (i !== undefined) resolve(i);
        else waiter = resolve;
      }),
    signalled: (): NodeJS.Signals | null => signalled,
    close: (): void => {
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.off('error', onEnd);
      process.stdin.destroy();
      for (const s of SIGNALS) process.off(s, onSignal);
    },
  };
};

type Inputs = ReturnType<typeof openInput>;

// ---------------------------------------------------------------------------
// output
// ---------------------------------------------------------------------------

const ignore = (): void => {};

/** Write to a stream that may be a broken pipe (the client died): never throw. */
const safeWrite = (stream: NodeJS.WritableStream, text: string): void => {
  try {
    stream.write(text);
  } catch {
    // EPIPE and friends: nobody is listening, cleanup must go on.
  }
};

const makeLog =
  (verbose: number): Log =>
  (level, message) => {
    if (level <= verbose) safeWrite(process.stderr, `fw: ${message}\n`);
  };

// ---------------------------------------------------------------------------
// the helper
// ---------------------------------------------------------------------------

/** Exit code for a fatal error, as sshuttle's manager. */
const FATAL = 99;

/** Read ROUTES..GO; Left(exit code) when the conversation ends first. */
const readRequest = async (input: Inputs, log: Log): Promise<E.Either<number, FirewallRequest>> => {
  let reader: RequestReader = initialReader;
  for (;;) {
    if (reader.phase === 'done') return E.right(reader.request);
    const i = await input.next();
    if (i.kind === 'signal') return E.left(128 + (SIGNAL_NUMBERS[i.signal] ?? 0));
    if (i.kind === 'eof') {
      // Before ROUTES this is a client that gave up early; later it is an error.
      if (reader.phase === 'routes') return E.left(0);
      log(0, `error: the client went away in the middle of the request (at ${reader.phase})`);
      return E.left(FATAL);
    }
    if (i.kind === 'overflow') {
      log(0, `error: line longer than ${MAX_LINE_LENGTH} characters`);
      return E.left(FATAL);
    }
    log(2, `<< ${i.line}`);
    const next = readRequestLine(reader, i.line);
    if (E.isLeft(next)) {
      log(0, `error: ${next.left}`);
      return E.left(FATAL);
    }
    reader = next.right;
  }
};

/** After STARTED: wait for EOF, a signal or a bad line; returns the exit code. */
const waitForEnd = async (
  input: Inputs,
  log: Log,
  onHost: (host: { name: string; ip: string }) => void,
): Promise<number> => {
  for (;;) {
    const i = await input.next();
    if (i.kind === 'eof') {
      log(1, 'client closed the pipe');
      return 0;
    }
    if (i.kind === 'signal') {
      log(0, `got ${i.signal}`);
      return 128 + (SIGNAL_NUMBERS[i.signal] ?? 0);
    }
    if (i.kind === 'overflow') {
      log(0, `error: line longer than ${MAX_LINE_LENGTH} characters`);
      return FATAL;
    }
    const host = decodeHost(i.line);
    if (E.isLeft(host)) {
      log(0, `error: expected a command, ${host.left}`);
      return FATAL;
    }
    log(1, `HOST ${host.right.name} ${host.right.ip}`);
    onHost(host.right);
  }
};

/** NAT methods: connections tried before the rules went in must not stay unredirected. */
const dropStale = (req: FirewallRequest, families: readonly Family[], log: Log): void => {
  for (const family of families) {
    const r = dropStaleConntrack(req, family);
    if (E.isLeft(r)) log(1, `IPv${family}: could not check conntrack for stale entries: ${r.left}`);
    else if (r.right.stale > 0) {
      log(
        1,
        `IPv${family}: dropped ${r.right.dropped} of ${r.right.stale} stale conntrack entries`,
      );
    }
  }
};

/** Install the request's rules, family by family; pushes each family before touching it. */
const install = async (
  method: FirewallMethod,
  req: FirewallRequest,
  touched: Family[],
  env: ReturnType<typeof firewallEnv>,
  log: Log,
  input: Inputs,
): Promise<E.Either<string, void>> => {
  for (const family of familiesToSetup(req)) {
    if (method === 'tproxy' || method === 'nft-tproxy') {
      const ok = await tproxyPreflight(method, family, env, log);
      if (E.isLeft(ok)) return ok;
    }
    touched.push(family);
    log(2, `setting up IPv${family}`);
    const r = await runSteps(planSetup(method, family, req), {
      env,
      log,
      shouldStop: () => input.signalled() !== null,
    });
    if (E.isLeft(r)) return r;
  }
  return E.right(undefined);
};

/** Undo every touched family; one failing does not stop the next. */
const restore = async (
  method: FirewallMethod,
  req: FirewallRequest,
  touched: readonly Family[],
  env: ReturnType<typeof firewallEnv>,
  log: Log,
): Promise<boolean> => {
  let ok = true;
  for (const family of touched) {
    try {
      log(1, `undoing IPv${family} changes`);
      const r = await runSteps(planRestore(method, family, req), { env, log, keepGoing: true });
      if (E.isLeft(r)) {
        ok = false;
        log(0, `error undoing IPv${family} rules: ${r.left}`);
      }
    } catch (e) {
      ok = false;
      log(0, `error undoing IPv${family} rules: ${String(e)}`);
    }
  }
  return ok;
};

/** The firewall helper; resolves to the process exit code. */
export const runFirewall = async (argv: readonly string[]): Promise<number> => {
  // The client may vanish at any moment; a broken pipe must not kill cleanup.
  process.on('SIGPIPE', ignore);
  process.stdout.on('error', ignore);
  process.stderr.on('error', ignore);

  const args = parseFirewallArgs(argv);
  if (E.isLeft(args)) {
    safeWrite(process.stderr, `fw: ${args.left}\n`);
    return 2;
  }
  const log = makeLog(args.right.verbose);
  if (process.getuid?.() !== 0) {
    log(0, 'error: the firewall helper must run as root (sudo)');
    return FATAL;
  }
  // Started through sudo/doas for a normal user: that user's PATH must not
  // choose which `nft` or `iptables` root runs, so only the system directories.
  const elevated = process.env.SUDO_UID !== undefined || process.env.DOAS_USER !== undefined;
  const env = firewallEnv(elevated ? {} : process.env);
  const input = openInput();
  try {
    const method = await selectMethod(args.right.method, env);
    if (E.isLeft(method)) {
      log(0, `error: ${method.left}`);
      return FATAL;
    }
    log(1, `ready, method ${method.right}`);
    safeWrite(process.stdout, `${encodeReady(method.right)}\n`);

    const got = await readRequest(input, log);
    if (E.isLeft(got)) return got.left;
    const valid = validateRequest(got.right);
    if (E.isLeft(valid)) {
      log(0, `error: invalid request: ${valid.left}`);
      return FATAL;
    }
    const req = checkRequest(method.right, valid.right);
    if (E.isLeft(req)) {
      log(0, `error: ${req.left}`);
      return FATAL;
    }

    const touched: Family[] = [];
    // /etc/hosts lines are tagged with the v6 port if any, else the v4 one (as upstream).
    const hostsPort = req.right.ports.tcp6 || req.right.ports.tcp4;
    const hosts = new Map<string, string>();
    let code: number;
    try {
      const installed = await install(method.right, req.right, touched, env, log, input);
      if (E.isLeft(installed)) {
        const sig = input.signalled();
        log(0, sig !== null ? `got ${sig} during setup` : `error: ${installed.left}`);
        code = sig !== null ? 128 + (SIGNAL_NUMBERS[sig] ?? 0) : FATAL;
      } else {
        log(1, 'rules installed');
        if (method.right === 'nft' || method.right === 'nat') dropStale(req.right, touched, log);
        if (req.right.nameservers.length > 0) await flushResolverCache(env, log);
        safeWrite(process.stdout, `${encodeStarted()}\n`);
        // From here it waits for the client's whole session: keep mapped only what that uses.
        log(1, releaseStartupPagesReport());
        code = await waitForEnd(input, log, (h) => {
          hosts.set(h.name, h.ip);
          try {
            writeHosts(
              hostsPort,
              [...hosts].map(([name, ip]) => ({ name, ip })),
            );
          } catch (e) {
            log(0, `error writing /etc/hosts: ${String(e)}`);
          }
        });
      }
    } catch (e) {
      log(0, `error: ${String(e)}`);
      code = FATAL;
    }
    if (hosts.size > 0) {
      try {
        writeHosts(hostsPort, []);
        log(1, 'our /etc/hosts lines removed');
      } catch (e) {
        log(0, `error restoring /etc/hosts: ${String(e)}`);
      }
    }
    const restored = await restore(method.right, req.right, touched, env, log);
    if (req.right.nameservers.length > 0) await flushResolverCache(env, log);
    log(1, restored ? 'rules removed' : 'some rules could not be removed');
    return code !== 0 ? code : restored ? 0 : FATAL;
  } finally {
    input.close();
  }
};
