/**
 * How the direct transport writes into an ssh2 channel. Written against
 * ssh2 1.x's Channel.js.
 *
 * - `channelTakesNow`: whether a write is copied out of the caller's chunk
 *   before `write` returns. It is when nothing is queued in the stream and
 *   the peer's window covers the chunk: `Channel._write` then frames it
 *   straight into SSH packets (`channelData` copies into the packet) and
 *   completes. Otherwise the stream or `_write` keeps the chunk for later.
 * - `queueAtMostOneRead`: ssh2 lets a channel queue 2 MiB (its window) of
 *   writes beyond the peer's window before `write` says to stop. In a bulk
 *   upload the window is spent most of the time, so nearly every read was
 *   queued there: held in memory, and copied when the read was lent. With
 *   room for one read only, the source is paused as soon as the window runs
 *   out and the bytes wait in the kernel's socket buffer instead; the
 *   peer's window adjust flushes the queued read and `drain` resumes it.
 */
import type { ClientChannel } from 'ssh2';

interface Outgoing {
  readonly state?: string;
  readonly window?: number;
}

export const channelTakesNow =
  (channel: ClientChannel) =>
  (bytes: number): boolean => {
    const out = (channel as unknown as { outgoing?: Outgoing }).outgoing;
    return (
      out?.state === 'open' &&
      typeof out.window === 'number' &&
      out.window >= bytes &&
      channel.writableLength === 0 &&
      channel.writableCorked === 0 &&
      !channel.destroyed
    );
  };

/**
 * `write` returns false once more than `readBytes` are queued (a write that
 * is taken at once never counts: the stream computes the answer before
 * `_write` runs, so the limit sits one byte above a whole read).
 */
export const queueAtMostOneRead = (channel: ClientChannel, readBytes: number): void => {
  const state = (channel as unknown as { _writableState?: { highWaterMark?: unknown } })
    ._writableState;
  if (state !== undefined && typeof state.highWaterMark === 'number') {
    state.highWaterMark = readBytes + 1;
  }
};
