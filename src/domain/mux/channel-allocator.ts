/**
 * Client-side channel ids, allocated as sshuttle's `Mux.next_channel` does:
 * a counter that pre-increments, wraps from `wrap` (`--wrap`, default 65535)
 * back to 1, skips ids still in use, and gives up after 1024 probes
 * ("too many open channels"). Channel 0 is the control channel, never handed out.
 */
import * as E from 'fp-ts/lib/Either.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

export interface ChannelAllocator {
  /** The id handed out last (0 before the first). */
  readonly last: number;
  /** The largest id; the counter wraps from here back to 1. */
  readonly wrap: number;
}

/** sshuttle's MAX_CHANNEL. */
export const DEFAULT_WRAP = 65535;
/** Probes before giving up, as upstream. */
export const MAX_PROBES = 1024;

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/** A fresh allocator. Throws on a wrap outside 1..65535: the CLI validates `--wrap` first. */
export const newAllocator = (wrap: number = DEFAULT_WRAP): ChannelAllocator => {
  if (!Number.isInteger(wrap) || wrap < 1 || wrap > 65535) {
    throw new RangeError(`channel allocator: wrap ${wrap} is not in 1..65535`);
  }
  return { last: 0, wrap };
};

// ---------------------------------------------------------------------------
// allocation
// ---------------------------------------------------------------------------

/**
 * The next free id after `a.last`. The counter advances over every probe,
 * found or not, as upstream's does. Left when 1024 probes found nothing free.
 */
export const allocateChannel = (
  a: ChannelAllocator,
  inUse: (channel: number) => boolean,
): readonly [ChannelAllocator, E.Either<string, number>] => {
  let ch = a.last;
  for (let i = 0; i < MAX_PROBES; i++) {
    ch = ch >= a.wrap ? 1 : ch + 1;
    if (!inUse(ch)) return [{ ...a, last: ch }, E.right(ch)];
  }
  return [{ ...a, last: ch }, E.left('too many open channels')];
};
