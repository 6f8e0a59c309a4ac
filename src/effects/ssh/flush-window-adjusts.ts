import type { FlushWrites } from '../coalesce-writes.js';

/**
 * The peer stops sending once a channel's window is spent, so a window
 * adjust leaves at once rather than at the end of the turn (the SSH socket
 * coalesces per turn): held for a turn, a download's adjusts left sshd idle
 * until every read of the turn was handled. Written against ssh2 1.x's
 * Protocol.channelWindowAdjust; wraps nothing on another ssh2.
 */
export const flushWindowAdjusts = (protocol: object, flush: FlushWrites): void => {
  const p = protocol as { channelWindowAdjust?: (id: number, amount: number) => void };
  const adjust = p.channelWindowAdjust;
  if (typeof adjust !== 'function') return;
  p.channelWindowAdjust = function (this: unknown, id: number, amount: number): void {
    adjust.call(this, id, amount);
    flush();
  };
};
