/**
 * Fewer, larger writes to the SSH connection's TCP socket.
 *
 * ssh2 hands every SSH packet to `socket.write` on its own, so each packet
 * was one system call (the largest single item in CPU profiles: a bulk
 * transfer writes a 64 KiB chunk as two packets, and a short connection's
 * open, data, EOF and close are four). Here the first write of a tick corks
 * the socket and the end of the tick uncorks it: the packets written in one
 * go of the event loop leave in one `writev`, in the same order, with no
 * timer and no delay beyond the current tick.
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
