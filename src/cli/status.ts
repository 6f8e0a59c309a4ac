/**
 * `sshuttle-ts status [PID|PORT] [--json]`: asks each running client (or the
 * one chosen by pid or listen port) over its control socket and prints its
 * tunnel state, connections, bytes and rates, and DNS queries.
 */
import { unlinkSync } from 'node:fs';
import { EXIT_NOT_RUNNING, EXIT_OK } from '../domain/exit-codes.js';
import { type StatusReport, statusText } from '../domain/status.js';
import { isAlive, listInstances, queryInstance, runtimeDir } from '../effects/control-socket.js';

export const runStatus = async (opts: {
  readonly which: number | null;
  readonly json: boolean;
}): Promise<number> => {
  const dir = runtimeDir(process.env, process.getuid?.() ?? 0);
  const chosen = listInstances(dir).filter(
    (i) => opts.which === null || i.pid === opts.which || i.port === opts.which,
  );
  const found: { socket: string; report: StatusReport }[] = [];
  for (const i of chosen) {
    const r = await queryInstance(i.socket);
    if ('ok' in r) found.push({ socket: i.socket, report: r.ok });
    else if (!isAlive(i.pid)) {
      // Left by a client that was killed: tidy up.
      try {
        unlinkSync(i.socket);
      } catch {
        // not ours to remove, or gone
      }
    } else process.stderr.write(`sshuttle-ts: pid ${i.pid} (${i.socket}): ${r.error}\n`);
  }
  if (found.length === 0) {
    const what =
      opts.which === null
        ? 'no running sshuttle-ts'
        : `no running sshuttle-ts with pid or port ${opts.which}`;
    process.stderr.write(
      `sshuttle-ts: ${what} found in ${dir} (hint: run status as the same user as the client, with the same XDG_RUNTIME_DIR)\n`,
    );
    return EXIT_NOT_RUNNING;
  }
  for (const f of found) {
    process.stdout.write(
      opts.json
        ? `${JSON.stringify({ socket: f.socket, ...f.report })}\n`
        : `${statusText(f.report, f.socket)}\n`,
    );
  }
  return EXIT_OK;
};
