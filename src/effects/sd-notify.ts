/**
 * systemd's readiness protocol (sd_notify(3)) for `Type=notify` units: one
 * datagram of `KEY=VALUE` lines to the Unix socket named in $NOTIFY_SOCKET
 * (a path, or `@name` for an abstract socket). Without $NOTIFY_SOCKET it
 * does nothing. Failures are reported once to the caller's log and never
 * stop the tunnel, as upstream's sdnotify.py.
 */
import * as E from 'fp-ts/lib/Either.js';
import { sendDatagram } from './unix-native.js';

export interface Notifier {
  /** Sends `READY=1`, `STATUS=...`, `STOPPING=1` ...; returns why it failed, if it did. */
  readonly send: (...lines: string[]) => string | null;
  readonly enabled: boolean;
}

export const makeNotifier = (socket: string | undefined = process.env.NOTIFY_SOCKET): Notifier => {
  if (socket === undefined || socket === '') return { enabled: false, send: () => null };
  if (!socket.startsWith('/') && !socket.startsWith('@'))
    return {
      enabled: false,
      send: () => `NOTIFY_SOCKET ${JSON.stringify(socket)} is neither a path nor @abstract`,
    };
  return {
    enabled: true,
    send: (...lines) => {
      const r = sendDatagram(socket, Buffer.from(`${lines.join('\n')}\n`));
      return E.isLeft(r) ? `sd_notify to ${socket}: ${r.left}` : null;
    },
  };
};
