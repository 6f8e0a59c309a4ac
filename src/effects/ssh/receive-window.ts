/**
 * Caps the receive window of chosen ssh2 channels (see
 * src/domain/receive-window.ts for why and how). ssh2 tops a channel up by
 * calling its protocol's channelWindowAdjust(remoteId, amount) right after
 * raising the channel's `incoming.window`; we stand in for that call.
 * The round trip the window is sized for is timed with OpenSSH's keepalive
 * request (answered at once, as ssh2's own keepalive uses it), the quickest
 * of a few. Written against ssh2 1.x's Channel.js and client.js.
 */
import type { Client, ClientChannel } from 'ssh2';
import { topUp, type WindowBook, windowLimitFor } from '../../domain/receive-window.js';

interface Internals {
  readonly incoming: { window: number };
  readonly outgoing: { readonly id: number };
}
interface Protocol {
  channelWindowAdjust: (remoteId: number, amount: number) => void;
  ping: () => void;
}
type ReplyCallback = (failed: boolean) => void;

export interface ReceiveWindows {
  /** From now on `channel` has at most the path's window of credit outstanding. */
  readonly cap: (channel: ClientChannel) => void;
  /** The measured round trip (ms), null until measured. */
  readonly rttMs: () => number | null;
}

const PINGS = 3;

/** Times `PINGS` keepalive round trips one after the other; the quickest, or null. */
const measureRtt = async (client: Client, protocol: Protocol): Promise<number | null> => {
  const callbacks = (client as unknown as { _callbacks?: ReplyCallback[] })._callbacks;
  if (!Array.isArray(callbacks)) return null;
  let best: number | null = null;
  for (let i = 0; i < PINGS; i++) {
    const t0 = performance.now();
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5_000).unref();
      callbacks.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
      try {
        protocol.ping();
      } catch {
        clearTimeout(timer);
        resolve(false);
      }
    });
    if (!answered) return best;
    const took = performance.now() - t0;
    best = best === null ? took : Math.min(best, took);
  }
  return best;
};

export const receiveWindows = (client: Client): ReceiveWindows => {
  const capped = new Map<number, { channel: Internals; limit: number; book: WindowBook }>();
  const protocol = (client as unknown as { _protocol?: Protocol })._protocol;
  if (protocol === undefined || typeof protocol.channelWindowAdjust !== 'function') {
    return { cap: () => {}, rttMs: () => null }; // not the ssh2 we know: leave it alone
  }
  let rtt: number | null = null;
  void measureRtt(client, protocol).then((ms) => {
    rtt = ms;
  });
  const original = protocol.channelWindowAdjust.bind(protocol);
  protocol.channelWindowAdjust = (remoteId, amount) => {
    const entry = capped.get(remoteId);
    if (entry === undefined) {
      original(remoteId, amount);
      return;
    }
    const next = topUp(entry.book, entry.channel.incoming.window - amount, entry.limit);
    entry.book = next.book;
    entry.channel.incoming.window = next.view;
    if (next.grant > 0) original(remoteId, next.grant);
  };
  return {
    rttMs: () => rtt,
    cap: (channel) => {
      const limit = windowLimitFor(rtt);
      const c = channel as unknown as Internals;
      const id = c.outgoing.id;
      // Until now ssh2's view is the real credit (it grants 2 MiB at open).
      const now = c.incoming.window;
      capped.set(id, { channel: c, limit, book: { credit: now, view: now } });
      channel.once('close', () => {
        if (capped.get(id)?.channel === c) capped.delete(id);
      });
    },
  };
};
