/**
 * The control socket: one unix socket per running client, in a private
 * runtime directory, answering each connection with one JSON line (the
 * status report) and closing. `sshuttle-ts status` reads every socket there.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isLeft } from 'fp-ts/lib/Either.js';
import { type StatusReport, StatusReportC } from '../domain/status.js';

/**
 * Where control sockets live: $XDG_RUNTIME_DIR/sshuttle-ts, else
 * /run/sshuttle-ts for root, else /tmp/sshuttle-ts-UID.
 */
export const runtimeDir = (
  env: { readonly XDG_RUNTIME_DIR?: string | undefined },
  uid: number,
): string =>
  env.XDG_RUNTIME_DIR !== undefined && env.XDG_RUNTIME_DIR !== ''
    ? join(env.XDG_RUNTIME_DIR, 'sshuttle-ts')
    : uid === 0
      ? '/run/sshuttle-ts'
      : `/tmp/sshuttle-ts-${uid}`;

/** `12300.4711.sock`: the listen port, then the pid (two instances may share a port in two namespaces). */
export const socketName = (port: number, pid: number): string => `${port}.${pid}.sock`;

const SOCKET_RE = /^(\d+)\.(\d+)\.sock$/;

/** Makes `dir` (0700) and checks it is ours and private; a reason when it is not. */
const privateDir = (dir: string, uid: number): string | null => {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (!st.isDirectory()) return `${dir} is not a directory`;
    if (st.uid !== uid) return `${dir} belongs to uid ${st.uid}, not to me (${uid})`;
    if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
    return null;
  } catch (err) {
    return `cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
};

export interface ControlSocket {
  readonly path: string;
  readonly close: () => void;
}

/** Listens on DIR/PORT.PID.sock (0600); each connection gets `report()` as one JSON line. */
export const openControlSocket = (opts: {
  readonly dir: string;
  readonly uid: number;
  readonly port: number;
  readonly pid: number;
  readonly report: () => StatusReport;
}): Promise<{ ok: ControlSocket } | { error: string }> => {
  const bad = privateDir(opts.dir, opts.uid);
  if (bad !== null) return Promise.resolve({ error: bad });
  const path = join(opts.dir, socketName(opts.port, opts.pid));
  // Sockets of clients that were killed (kill -9 runs no exit code), ours
  // included when a dead process had our pid: gone before we add one.
  removeDeadInstances(opts.dir);
  try {
    unlinkSync(path);
  } catch {
    // none
  }
  const server: Server = createServer((conn) => {
    conn.on('error', () => {});
    conn.end(`${JSON.stringify(opts.report())}\n`);
  });
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      resolve({ error: `control socket ${path}: ${err.code ?? err.message}` }),
    );
    // The directory is 0700, so nobody else reaches the socket before the chmod.
    server.listen(path, () => {
      chmodSync(path, 0o600);
      server.unref();
      resolve({
        ok: {
          path,
          close: () => {
            server.close();
            try {
              unlinkSync(path);
            } catch {
              // gone already
            }
          },
        },
      });
    });
  });
};

export interface Instance {
  readonly socket: string;
  readonly port: number;
  readonly pid: number;
}

/** The control sockets in `dir`, oldest port first. */
export const listInstances = (dir: string): Instance[] => {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .flatMap((name) => {
      const m = SOCKET_RE.exec(name);
      return m === null ? [] : [{ socket: join(dir, name), port: Number(m[1]), pid: Number(m[2]) }];
    })
    .sort((a, b) => a.port - b.port || a.pid - b.pid);
};

/** Is this pid a running process (of any user)? */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Removes the sockets in `dir` whose client is no longer running. */
export const removeDeadInstances = (dir: string, alive = isAlive): void => {
  for (const i of listInstances(dir)) {
    if (alive(i.pid)) continue;
    try {
      unlinkSync(i.socket);
    } catch {
      // not ours to remove, or gone
    }
  }
};

/** Asks one instance for its report; a reason when it does not answer. */
export const queryInstance = (
  socket: string,
  timeoutMs = 2_000,
): Promise<{ ok: StatusReport } | { error: string }> =>
  new Promise((resolve) => {
    let text = '';
    const conn = createConnection(socket);
    const timer = setTimeout(() => {
      conn.destroy();
      resolve({ error: 'no answer' });
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('data', (d: string) => {
      text += d;
    });
    conn.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({
        error:
          err.code === 'ECONNREFUSED' ? 'not running (stale socket)' : (err.code ?? err.message),
      });
    });
    conn.on('end', () => {
      clearTimeout(timer);
      try {
        const decoded = StatusReportC.decode(JSON.parse(text));
        resolve(isLeft(decoded) ? { error: 'unexpected answer' } : { ok: decoded.right });
      } catch {
        resolve({ error: 'unexpected answer' });
      }
    });
  });
