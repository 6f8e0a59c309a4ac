/**
 * Caps the receive window of chosen ssh2 channels (see
 * src/domain/receive-window.ts for why and how). ssh2 tops a channel up by
 * calling its protocol's channelWindowAdjust(remoteId, amount) right after
 * raising the channel's `incoming.window`; we stand in for that call.
 * The round trip the window is sized for is timed with OpenSSH's keepalive
 * request (answered at once, as ssh2's own keepalive uses it): the quickest
 * of the last minute's. Which channels are receiving is sampled from their
 * window views. Written against ssh2 1.x's Channel.js and client.js.
 */
import type { Client } from 'ssh2';
import {
  keepRttSample,
  MIN_LIMIT,
  pathRtt,
  receivingSince,
  topUp,
  type WindowBook,
  windowLimitFor,
} from '../../domain/receive-window.js';

interface Internals {
  readonly incoming: { window: number };
  readonly outgoing: { readonly id: number };
}
interface Protocol {
  channelWindowAdjust: (remoteId: number, amount: number) => void;
  ping: () => void;
}
type ReplyCallback = (failed: boolean) => void;

/** A channel with ssh2's window fields: ssh2's own, or a `TcpipChannel`. */
export interface WindowedChannel {
  once(event: 'close', listener: () => void): unknown;
}

export interface ReceiveWindows {
  /** From now on `channel` has at most the path's window of credit outstanding. */
  readonly cap: (channel: WindowedChannel) => void;
  /** The measured round trip (ms), null until measured. */
  readonly rttMs: () => number | null;
}

const FIRST_PINGS = 3;
/** A keepalive round trip is timed this often after the first ones (ms). */
const PING_EVERY_MS = 2_000;

/**
 * Times keepalive round trips: a few at once, then one every
 * `PING_EVERY_MS` until the connection closes, each passed to `onSample`.
 * The first ones run while the client is still starting (10-14 ms in the
 * lab against 0.3-0.9 ms later), hence the later ones.
 */
const timeRoundTrips = (
  client: Client,
  protocol: Protocol,
  everyMs: number,
  onSample: (ms: number) => void,
): void => {
  const callbacks = (client as unknown as { _callbacks?: ReplyCallback[] })._callbacks;
  if (!Array.isArray(callbacks)) return;
  let closed = false;
  const once = (): Promise<number | null> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const timer = setTimeout(() => resolve(null), 5_000).unref();
      callbacks.push(() => {
        clearTimeout(timer);
        resolve(performance.now() - t0);
      });
      try {
        protocol.ping();
      } catch {
        clearTimeout(timer);
        resolve(null);
      }
    });
  const run = async (): Promise<void> => {
    for (let i = 0; i < FIRST_PINGS; i++) {
      const ms = await once();
      if (ms === null) return;
      onSample(ms);
    }
    while (!closed) {
      await new Promise((r) => setTimeout(r, everyMs).unref());
      if (closed) return;
      const ms = await once();
      if (ms === null) return;
      onSample(ms);
    }
  };
  const c = client as unknown as { once?: (e: string, f: () => void) => void };
  c.once?.('close', () => {
    closed = true;
  });
  void run();
};

/** How often the channels that are receiving are sampled (ms). */
const SAMPLE_MS = 100;

export interface ReceiveWindowOptions {
  /** Round trips after the first ones, one per this (ms). */
  readonly pingEveryMs: number;
  /** Which channels are receiving, sampled once per this (ms). */
  readonly sampleMs: number;
  /** The smallest window of a channel receiving alone. */
  readonly floor: number;
}

export const receiveWindows = (
  client: Client,
  options: Partial<ReceiveWindowOptions> = {},
): ReceiveWindows => {
  const {
    pingEveryMs = PING_EVERY_MS,
    sampleMs = SAMPLE_MS,
    floor = MIN_LIMIT,
  }: Partial<ReceiveWindowOptions> = options;
  const capped = new Map<number, { channel: Internals; book: WindowBook }>();
  const protocol = (client as unknown as { _protocol?: Protocol })._protocol;
  if (protocol === undefined || typeof protocol.channelWindowAdjust !== 'function') {
    return { cap: () => {}, rttMs: () => null }; // not the ssh2 we know: leave it alone
  }
  let samples: readonly number[] = [];
  let rtt: number | null = null;
  timeRoundTrips(client, protocol, pingEveryMs, (ms) => {
    samples = keepRttSample(samples, ms);
    rtt = pathRtt(samples);
  });

  // Which channels received data in the last period; sampled only while
  // there are two or more, since a channel alone shares the path with nobody.
  let views = new Map<number, number>();
  let receiving: ReadonlySet<number> = new Set();
  let sampler: NodeJS.Timeout | null = null;
  const sample = (): void => {
    const now = new Map<number, number>();
    for (const [id, e] of capped) now.set(id, e.channel.incoming.window);
    receiving = receivingSince(views, now);
    views = now;
  };
  const watch = (): void => {
    if (capped.size >= 2 && sampler === null) {
      sampler = setInterval(sample, sampleMs);
      sampler.unref();
    } else if (capped.size < 2 && sampler !== null) {
      clearInterval(sampler);
      sampler = null;
      // Start afresh next time: a stale view would pass for (or hide) movement.
      views = new Map();
      receiving = new Set();
    }
  };

  const original = protocol.channelWindowAdjust.bind(protocol);
  protocol.channelWindowAdjust = (remoteId, amount) => {
    const entry = capped.get(remoteId);
    if (entry === undefined) {
      original(remoteId, amount);
      return;
    }
    const others = receiving.size - (receiving.has(remoteId) ? 1 : 0);
    const limit = windowLimitFor(rtt, others + 1, floor);
    const next = topUp(entry.book, entry.channel.incoming.window - amount, limit);
    entry.book = next.book;
    entry.channel.incoming.window = next.view;
    if (next.grant > 0) original(remoteId, next.grant);
  };
  return {
    rttMs: () => rtt,
    cap: (channel) => {
      const c = channel as unknown as Internals;
      const id = c.outgoing.id;
      // Until now ssh2's view is the real credit (it grants 2 MiB at open).
      const now = c.incoming.window;
      capped.set(id, { channel: c, book: { credit: now, view: now } });
      watch();
      channel.once('close', () => {
        if (capped.get(id)?.channel === c) capped.delete(id);
        watch();
      });
    },
  };
};
