/**
 * Brings up the far end of the helper transport, by the route the options
 * choose: over the built-in ssh2 connection (an exec channel) or an external
 * ssh (`-e`); running our uploaded helper, or `--helper-cmd` (e.g. a stock
 * sshuttle server) instead.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import type { Remote } from '../../domain/config.js';
import type { SshConnection } from '../ssh/connect.js';
import { type HelperOptions, sshArgv, uploadCommand } from './command.js';
import type { HelperLink } from './helper-transport.js';
import {
  execRemote,
  type HelperExit,
  type HelperProcess,
  loadHelperBundle,
  spawnLocal,
} from './launch.js';

export interface HelperConnectParams {
  readonly remote: Remote;
  /** `-e CMD` split into words; null = the built-in ssh2 client. */
  readonly sshCmd: readonly string[] | null;
  readonly noCmdDelimiter: boolean;
  /** `--helper-cmd`: run this instead of uploading our helper. */
  readonly helperCmd: string | null;
  /** `--node`. */
  readonly node: string;
  readonly helper: HelperOptions;
  /** The built-in ssh2 connection (used when `sshCmd` is null). */
  readonly connectSsh: () => Promise<E.Either<{ readonly message: string }, SshConnection>>;
  readonly log: (level: 'debug' | 'info' | 'warn' | 'error', msg: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

type Failure = { readonly message: string };

/** Why the helper ended before its banner, in one line. */
export const explainExit = (
  how: { readonly upload: boolean; readonly node: string; readonly external: boolean },
  exit: HelperExit,
  tail: string,
): string => {
  const said = tail === '' ? '' : `: ${tail}`;
  if (exit.code === 127) {
    return how.upload
      ? `node not found on the server ("${how.node}" is not installed there or not executable): install Node.js >= 18 there, point --node at it, or use --transport direct`
      : `the helper command was not found on the server (exit 127)${said}`;
  }
  if (how.external && exit.code === 255) return `ssh failed (exit 255)${said}`;
  if (exit.code === 97) return `the helper upload was cut short (exit 97)${said}`;
  const how2 = exit.code !== null ? `code ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`;
  return `the helper exited with ${how2} before it started${said}`;
};

const resolveServer = async (host: string): Promise<E.Either<Failure, string[]>> => {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare) !== 0) return E.right([bare]);
  try {
    return E.right((await lookup(bare, { all: true })).map((a) => a.address));
  } catch (err) {
    return E.left({
      message: `cannot resolve "${bare}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    });
  }
};

export const connectHelper = async (
  p: HelperConnectParams,
): Promise<E.Either<Failure, HelperLink>> => {
  let preamble: Buffer | null = null;
  let command: string;
  if (p.helperCmd !== null) {
    command = p.helperCmd;
  } else {
    const bundle = loadHelperBundle();
    if (E.isLeft(bundle)) return E.left({ message: bundle.left });
    preamble = bundle.right;
    command = uploadCommand(p.node, preamble.length, p.helper);
  }
  const how = { upload: p.helperCmd === null, node: p.node, external: p.sshCmd !== null };
  const explain = (exit: HelperExit, tail: string): string => explainExit(how, exit, tail);
  const onStderr = (line: string): void => p.log('info', line);

  if (p.sshCmd !== null) {
    // The ssh config may know the name (an alias) where the resolver does not: then
    // nothing is excluded, as sshuttle (the established ssh connection is not redirected).
    const found = await resolveServer(p.remote.host);
    if (E.isLeft(found)) {
      p.log('warn', `${found.left.message}: the ssh server's address is not excluded from capture`);
    }
    const addrs = E.isRight(found) && found.right.length > 0 ? found.right : [];
    const argv = sshArgv({
      sshCmd: p.sshCmd,
      user: p.remote.user,
      host: p.remote.host,
      port: p.remote.port,
      noCmdDelimiter: p.noCmdDelimiter,
      password: p.remote.password,
      remoteCommand: command,
    });
    p.log(
      'debug',
      `executing: ${JSON.stringify(argv.map((a) => (a.length > 200 ? `${a.slice(0, 60)}...` : a)))}`,
    );
    const env =
      p.remote.password !== null && p.remote.password !== ''
        ? { ...p.env, SSHPASS: p.remote.password }
        : p.env;
    const proc = spawnLocal(argv, env, onStderr);
    if (E.isLeft(proc)) return E.left({ message: proc.left });
    return E.right({
      proc: proc.right,
      preamble,
      serverAddress: addrs[0] ?? p.remote.host,
      allServerAddresses: addrs,
      close: proc.right.kill,
      // The external ssh's exit ends the pipe; the transport watches that.
      closed: new Promise<{ reason: string }>(() => {}),
      explain,
    });
  }

  const conn = await p.connectSsh();
  if (E.isLeft(conn)) return conn;
  const c = conn.right;
  p.log(
    'debug',
    `starting the helper: ${command.length > 300 ? `${command.slice(0, 80)}...` : command}`,
  );
  const proc: E.Either<string, HelperProcess> = await execRemote(c.client, command, onStderr);
  if (E.isLeft(proc)) {
    c.close();
    return E.left({ message: proc.left });
  }
  return E.right({
    proc: proc.right,
    preamble,
    serverAddress: c.serverAddress,
    allServerAddresses: c.allServerAddresses,
    close: c.close,
    closed: c.closed,
    explain,
  });
};
