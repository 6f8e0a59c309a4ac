/**
 * Fewer, larger writes to a socket: the writes of one event-loop turn leave
 * in one `writev`.
 *
 * Used where one read turns into several writes to the same socket:
 * - the SSH connection: ssh2 hands every SSH packet to `socket.write` on its
 *   own (a bulk transfer writes a 64 KiB chunk as two packets, and a short
 *   connection's open, data, EOF and close are four);
 * - a local or target socket fed by the tunnel: one read of the SSH stream
 *   or of the mux pipe carries several packets or frames for it.
 * Each write was one system call (and, with Nagle off, one TCP segment).
 * Here the first write of a tick corks the socket and the end of the tick
 * uncorks it: the writes of one go of the event loop leave together, in the
 * same order, with no timer and no delay beyond the current tick.
 */
import type { Writable } from 'node:stream';

export const coalesceWrites = (socket: Writable): void => {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  const write = socket.write;
  socket.write = function (this: Writable, ...args: Parameters<Writable['write']>): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return (write as (...a: Parameters<Writable['write']>) => boolean).apply(this, args);
  } as Writable['write'];
};
