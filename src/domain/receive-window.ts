/**
 * How much a direct-tcpip channel may have in flight towards us.
 *
 * ssh2 always grants a channel 2 MiB and tops it up once half is used, as
 * OpenSSH does. On a short path that is far more than the bandwidth-delay
 * product, so a bulk download keeps up to 2 MiB queued in sshd and the
 * kernel ahead of every other channel's data: small answers wait behind it
 * (p99 16 ms in the lab while 300 MB/s flow). Sizing the window to the
 * path (RTT x 1 GB/s, at least 128 KiB, at most ssh2's 2 MiB) keeps long
 * paths as fast as before and short ones from queueing.
 *
 * ssh2 has no setting for it, so we keep two books: ssh2's view of the
 * window (`incoming.window`, which it lowers per packet and tops up to
 * 2 MiB when it falls to 1 MiB) and the real credit sshd holds. Each time
 * ssh2 wants to top up, {@link topUp} says what to really grant and which
 * view to leave ssh2 with, so that it asks again exactly when the real
 * credit falls to half the limit. The view stays above the credit, so ssh2
 * never drops data it thinks came without credit.
 *
 * While other channels are receiving too, a bulk channel gets an equal share
 * of the path's BDP, at least 64 KiB: what it queues ahead of their answers
 * is what they wait for. The floors only guard a round trip measured too
 * short; the window is the measured BDP. With floors of 512 and 256 KiB the
 * lab's window was the floor, and the download queued up to 512 KiB ahead of
 * every answer: 128 and 64 KiB took the p99 under a download from 3.4-3.6 to
 * 1.6-2.4 ms with the same download rate (290-340 MB/s, alternating runs,
 * docs/performance-log.md).
 */

/** ssh2's window per channel (Channel.js MAX_WINDOW) and its top-up point. */
export const SSH2_WINDOW = 2 * 1024 * 1024;
export const SSH2_THRESHOLD = SSH2_WINDOW / 2;

export const MIN_LIMIT = 128 * 1024;
/** The floor while other channels are receiving as well. */
export const SHARED_MIN_LIMIT = 64 * 1024;
/** Bytes per second the window is sized for: RTT x this. */
const TARGET_RATE = 1e9;

/**
 * The window for a path with this round-trip time (null: not measured yet),
 * for one of `receivers` channels receiving now: alone, the path's BDP with
 * a 128 KiB floor; shared, an equal share of it with a 64 KiB floor.
 */
export const windowLimitFor = (rttMs: number | null, receivers = 1, floor = MIN_LIMIT): number => {
  if (rttMs === null || !Number.isFinite(rttMs)) return SSH2_WINDOW;
  const bdp = Math.ceil((rttMs / 1000) * TARGET_RATE);
  if (receivers <= 1) return Math.min(SSH2_WINDOW, Math.max(floor, bdp));
  return Math.min(SSH2_WINDOW, Math.max(SHARED_MIN_LIMIT, Math.ceil(bdp / receivers)));
};

/** Round-trip samples kept: a minute of them at one per 2 s. */
export const RTT_SAMPLES = 30;

/** Adds a round-trip sample (ms), dropping the oldest beyond `RTT_SAMPLES`. */
export const keepRttSample = (samples: readonly number[], ms: number): readonly number[] =>
  samples.length < RTT_SAMPLES ? [...samples, ms] : [...samples.slice(1), ms];

/**
 * The path's round trip: the quickest recent sample. A sample only ever adds
 * delay to the path's (a busy peer, a busy event loop, a queue), so the
 * minimum is the best estimate; recent only, in case the path changes.
 */
export const pathRtt = (samples: readonly number[]): number | null =>
  samples.length === 0 ? null : Math.min(...samples);

/**
 * Which channels received data since the last sample, from their ssh2
 * window views then and now (a view moves with every packet and top-up).
 */
export const receivingSince = (
  before: ReadonlyMap<number, number>,
  now: ReadonlyMap<number, number>,
): ReadonlySet<number> => {
  const moved = new Set<number>();
  for (const [id, view] of now) if (before.get(id) !== view) moved.add(id);
  return moved;
};

export interface WindowBook {
  /** What sshd may still send, as of the last top-up. */
  readonly credit: number;
  /** The view we left ssh2 with at the last top-up. */
  readonly view: number;
}

export interface TopUp {
  /** Bytes to grant sshd now (0: send nothing). */
  readonly grant: number;
  /** What to set ssh2's `incoming.window` to. */
  readonly view: number;
  readonly book: WindowBook;
}

/**
 * ssh2 wants to top up a channel whose view had fallen to `viewBefore`.
 * Bytes received since the last top-up are `book.view - viewBefore`.
 */
export const topUp = (book: WindowBook, viewBefore: number, limit: number): TopUp => {
  const cap = Math.min(Math.max(limit, 1), SSH2_WINDOW);
  const credit = Math.max(0, book.credit - (book.view - viewBefore));
  const grant = Math.max(0, cap - credit);
  const after = credit + grant;
  // ssh2 asks again when its view is down to SSH2_THRESHOLD: make that the
  // moment the real credit is down to half the cap.
  const view = after + (SSH2_WINDOW - cap) / 2;
  return { grant, view, book: { credit: after, view } };
};
