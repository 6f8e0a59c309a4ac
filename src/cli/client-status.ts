/**
 * The client's live status: folds every event (with the session state it
 * produced) through the pure status reducer, serves the report on the
 * control socket, and draws the status line on a terminal.
 */
import type { Logger } from 'pino';
import type { Command } from '../domain/commands.js';
import type { Event } from '../domain/events.js';
import type { SessionState } from '../domain/session.js';
import {
  initialStatus,
  reduceStatus,
  type StatusState,
  statusLine,
  statusReport,
} from '../domain/status.js';
import { type ControlSocket, openControlSocket, runtimeDir } from '../effects/control-socket.js';
import { type StatusLine, startStatusLine } from '../effects/status-line.js';
import { VERSION } from './version.js';

export interface ClientStatus {
  readonly observe: (event: Event, state: SessionState, commands: readonly Command[]) => void;
  /** Erases the status line before a log line. */
  readonly beforeLog: () => void;
  readonly close: () => void;
}

export const makeClientStatus = (opts: {
  readonly now: () => number;
  /** Draw the live line (stderr is a terminal and no -v). */
  readonly liveLine: boolean;
  /** The logger, once made (it needs beforeLog first). */
  readonly log: () => Logger;
}): ClientStatus => {
  let status: StatusState = initialStatus;
  let socket: ControlSocket | null = null;
  let opening = false;
  let closed = false;
  const who = { pid: process.pid, version: VERSION };
  const report = () => statusReport(status, opts.now(), who);
  let line: StatusLine | null = null;

  const openSocket = (port: number): void => {
    opening = true;
    const dir = runtimeDir(process.env, process.getuid?.() ?? 0);
    void openControlSocket({
      dir,
      uid: process.getuid?.() ?? 0,
      port,
      pid: process.pid,
      report,
    }).then((r) => {
      if ('error' in r) {
        opts.log().warn(`no status for this instance: ${r.error}`);
        return;
      }
      if (closed) {
        r.ok.close();
        return;
      }
      socket = r.ok;
      opts.log().debug(`control socket ${r.ok.path} ("sshuttle-ts status")`);
    });
  };

  return {
    observe: (event, state) => {
      status = reduceStatus(status, event, state);
      if (event.kind === 'listen.up' && !opening) openSocket(event.port);
      if (event.kind === 'fw.started' && opts.liveLine && line === null && !closed) {
        line = startStatusLine(() => statusLine(report()));
      }
    },
    beforeLog: () => line?.clear(),
    close: () => {
      closed = true;
      line?.stop();
      socket?.close();
    },
  };
};
