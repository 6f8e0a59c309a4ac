/**
 * Fewer, larger writes to a socket: the writes of one tick, or of one turn of
 * the event loop, leave in one `writev`.
 *
 * Used where one read turns into several writes to the same socket:
 * - the SSH connection: ssh2 hands every SSH packet to `socket.write` on its
 *   own (a bulk transfer writes a 64 KiB chunk as two packets, and a short
 *   connection's open, data, EOF and close are four);
 * - a local or target socket fed by the tunnel: one read of the SSH stream
 *   or of the mux pipe carries several packets or frames for it.
 * Each write was one system call (and, with Nagle off, one TCP segment).
 * Here the first write corks the socket and the end of the tick (or turn)
 * uncorks it: the writes leave together, in the same order, with no timer.
 *
 * - `'tick'`: uncorked when the current callback's tick ends. Every I/O
 *   callback ends its own tick: an accept, or one of the up to 32 reads
 *   libuv makes of a busy socket in one go.
 * - `'turn'`: uncorked by `setImmediate`, once all I/O callbacks of this
 *   turn of the event loop have run. For the SSH connection of the direct
 *   transport (the helper's mux gathers per turn itself): the packets of
 *   many short connections' opens, data, EOFs and closes share one write
 *   (strace: 5.1 write calls per HTTP request on a new connection with
 *   `'tick'`, 2.0 with `'turn'`). A packet the peer waits for (a window
 *   adjust) is sent at once with the returned flush. Not for sockets fed by
 *   the tunnel: holding a bulk download's reads for a whole turn filled the
 *   local socket's buffer, and the pauses cost 30% more CPU per byte.
 */
import type { Writable } from 'node:stream';

export type CoalesceUntil = 'tick' | 'turn';

/** Sends what is corked now (a packet the peer is waiting for). */
export type FlushWrites = () => void;

export const coalesceWrites = (socket: Writable, until: CoalesceUntil = 'tick'): FlushWrites => {
  let corked = false;
  const uncork = (): void => {
    if (!corked) return;
    corked = false;
    socket.uncork();
  };
  const write = socket.write;
  socket.write = function (this: Writable, ...args: Parameters<Writable['write']>): boolean {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      if (until === 'turn') setImmediate(uncork);
      else process.nextTick(uncork);
    }
    return (write as (...a: Parameters<Writable['write']>) => boolean).apply(this, args);
  } as Writable['write'];
  return uncork;
};
