/**
 * direct-tcpip channels without ssh2's stream objects.
 *
 * ssh2's `forwardOut` gives each channel a `Channel` (a Node Duplex) and a
 * second Readable for stderr, built and torn down per connection. Here a
 * channel is a small EventEmitter with just what the streams driver uses,
 * driven by ssh2's `Protocol` (packets, cipher, re-keying stay ssh2's).
 * Under short connections that saved about 7% of the client's CPU per
 * connection (docs/performance-log.md; a bare forwarder saves more, 290 against
 * 200 µs of user time per request, since nothing else of ours runs there).
 *
 * How it plugs in, written against ssh2 1.x's client.js, Channel.js and
 * utils.js: a channel id is reserved in the client's ChannelManager with
 * ssh2's placeholder value `true` (which ssh2's own handlers and its cleanup
 * skip), and the protocol's CHANNEL_* handlers are wrapped to hand messages
 * for our ids to us. Windows behave as ssh2's (2 MiB granted at open, topped
 * up through `channelWindowAdjust` once half is used), so
 * `receive-window.ts` caps these channels as it caps ssh2's. Unlike ssh2, a
 * paused channel grants no more window: what arrives while paused is bounded
 * by the window, not by a 2 MiB read buffer.
 */
import { EventEmitter } from 'node:events';
import type { Client } from 'ssh2';
import { SSH2_THRESHOLD, SSH2_WINDOW } from '../../domain/receive-window.js';

/** The packet size we advertise (ssh2's Channel.js PACKET_SIZE). */
const PACKET_SIZE = 32 * 1024;

/** The parts of ssh2's `Protocol` used here (tests stand in for it). */
export interface ChannelProtocol {
  directTcpip(
    chan: number,
    initWindow: number,
    maxPacket: number,
    cfg: { srcIP: string; srcPort: number; dstIP: string; dstPort: number },
  ): void;
  channelData(chan: number, data: Uint8Array): void;
  channelEOF(chan: number): void;
  channelClose(chan: number): void;
  channelWindowAdjust(chan: number, amount: number): void;
  channelFailure(chan: number): void;
}

interface Protocol extends ChannelProtocol {
  _handlers: Record<string, ((...args: never[]) => void) | undefined>;
}

interface ChannelManager {
  add(val?: unknown): number;
  remove(id: number): void;
}

/** ssh2's internals this module relies on, if this ssh2 has them. */
const internalsOf = (client: Client): { protocol: Protocol; manager: ChannelManager } | null => {
  const c = client as unknown as {
    _protocol?: Partial<Protocol>;
    _chanMgr?: Partial<ChannelManager>;
  };
  const p = c._protocol;
  const m = c._chanMgr;
  const fns = [
    p?.directTcpip,
    p?.channelData,
    p?.channelEOF,
    p?.channelClose,
    p?.channelWindowAdjust,
    p?.channelFailure,
    m?.add,
    m?.remove,
  ];
  if (p === undefined || m === undefined || fns.some((f) => typeof f !== 'function')) return null;
  if (typeof p._handlers !== 'object' || p._handlers === null) return null;
  return { protocol: p as Protocol, manager: m as ChannelManager };
};

/** Why an open failed: ssh2's shape (`reason` is the SSH reason code). */
export type OpenError = Error & { reason?: number | string };

export interface TcpipTarget {
  readonly srcIP: string;
  readonly srcPort: number;
  readonly dstIP: string;
  readonly dstPort: number;
}

/**
 * One open direct-tcpip channel. Events: `data` (Buffer), `end` (the peer's
 * EOF), `drain` (after a `write` returned false), `finish` (our EOF sent),
 * `close` (the channel is gone; always last).
 */
export class TcpipChannel extends EventEmitter {
  /** Our side: the id the peer addresses, and what we granted. ssh2's names (receive-window.ts reads them). */
  readonly incoming: { readonly id: number; window: number; state: 'open' | 'eof' | 'closed' };
  readonly outgoing: {
    readonly id: number;
    window: number;
    readonly packetSize: number;
    state: 'open' | 'eof' | 'closing' | 'closed';
  };
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private readonly protocol: ChannelProtocol;
  /** `write` says stop once this many bytes wait for the peer's window. */
  private readonly highWater: number;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private needDrain = false;
  private paused = false;
  /** What arrived while paused, in order; `null` is the peer's EOF. */
  private held: (Buffer | null)[] = [];
  private ended = false;
  private closePending = false;
  private closeEmitted = false;

  constructor(
    protocol: ChannelProtocol,
    localId: number,
    remote: { readonly id: number; readonly window: number; readonly packetSize: number },
    highWater: number,
  ) {
    super();
    this.protocol = protocol;
    this.highWater = highWater;
    this.incoming = { id: localId, window: SSH2_WINDOW, state: 'open' };
    this.outgoing = {
      id: remote.id,
      window: remote.window,
      packetSize: Math.max(1, remote.packetSize),
      state: 'open',
    };
  }

  /**
   * Whether a write of `bytes` now goes into SSH packets before `write`
   * returns (`channelData` copies it into the packet), so the caller's
   * buffer may be reused at once.
   */
  takesNow(bytes: number): boolean {
    return (
      this.outgoing.state === 'open' &&
      this.outgoing.window >= bytes &&
      this.queued === 0 &&
      !this.writableEnded
    );
  }

  /** Sends, or keeps until the peer's window opens; false: stop writing until `drain`. */
  write(chunk: Uint8Array): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (this.outgoing.state !== 'open') return true; // the peer is gone: nowhere to send
    if (this.queued === 0) {
      const rest = this.send(chunk);
      if (rest === null) return true;
      this.queue.push(rest);
      this.queued = rest.length;
    } else {
      this.queue.push(chunk);
      this.queued += chunk.length;
    }
    if (this.queued < this.highWater) return true;
    this.needDrain = true;
    return false;
  }

  /** Our EOF, once what is queued has gone. */
  end(): this {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    if (this.queued === 0) this.finishWriting();
    return this;
  }

  pause(): this {
    this.paused = true;
    return this;
  }

  resume(): this {
    if (!this.paused) return this;
    this.paused = false;
    this.release();
    return this;
  }

  /** Lets go now: queued and held bytes are dropped, the channel closed. */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.queue = [];
    this.queued = 0;
    this.held = [];
    this.sendClose();
    if (this.closePending) this.emitClose();
    return this;
  }

  // The protocol's messages for this channel (from TcpipChannels).

  onData(data: Buffer): void {
    if (this.incoming.state !== 'open' || this.incoming.window === 0) return; // ssh2 drops these too
    this.incoming.window -= data.length;
    if (this.destroyed) return;
    if (this.paused || this.held.length > 0) {
      this.held.push(data);
      return;
    }
    this.emit('data', data);
    if (!this.paused && this.incoming.window <= SSH2_THRESHOLD) this.windowAdjust();
  }

  onWindowAdjust(amount: number): void {
    this.outgoing.window += amount;
    if (this.queued === 0) return;
    while (this.queue.length > 0 && this.outgoing.window > 0) {
      const first = this.queue[0] as Uint8Array;
      const rest = this.send(first);
      if (rest === null) {
        this.queue.shift();
        this.queued -= first.length;
      } else {
        this.queue[0] = rest;
        this.queued -= first.length - rest.length;
      }
    }
    if (this.queued > 0) return;
    if (this.writableEnded) this.finishWriting();
    if (this.needDrain) {
      this.needDrain = false;
      this.emit('drain');
    }
  }

  onEof(): void {
    if (this.incoming.state !== 'open') return;
    this.incoming.state = 'eof';
    if (this.destroyed) return;
    if (this.paused || this.held.length > 0) this.held.push(null);
    else this.emitEnd();
  }

  /** The peer's CLOSE, or (`dead`) the connection is gone. */
  onClose(dead: boolean): void {
    if (this.incoming.state === 'closed') return;
    this.incoming.state = 'closed';
    if (!dead) this.sendClose(); // answer the peer's CLOSE
    this.outgoing.state = 'closed';
    // Nothing queued can go now.
    this.queue = [];
    this.queued = 0;
    if (!this.writableFinished) {
      this.writableEnded = true;
      this.writableFinished = true;
      this.emit('finish');
    }
    this.closePending = true;
    if (this.destroyed || (!this.paused && this.held.length === 0)) {
      if (!this.destroyed) this.emitEnd();
      this.emitClose();
    }
  }

  /** A channel request (OpenSSH's keepalive uses one): we support none. */
  onRequest(wantReply: boolean): void {
    if (wantReply && this.outgoing.state !== 'closed') {
      this.protocol.channelFailure(this.outgoing.id);
    }
  }

  /** Sends what the window and packet size allow; returns the rest, or null. */
  private send(chunk: Uint8Array): Uint8Array | null {
    const out = this.outgoing;
    const size = out.packetSize;
    const len = chunk.length;
    let window = out.window;
    let p = 0;
    while (p < len && window > 0) {
      let n = len - p;
      if (n > window) n = window;
      if (n > size) n = size;
      this.protocol.channelData(out.id, p === 0 && n === len ? chunk : chunk.subarray(p, p + n));
      p += n;
      window -= n;
    }
    out.window = window;
    return p === len ? null : chunk.subarray(p);
  }

  private finishWriting(): void {
    if (this.writableFinished) return;
    if (this.outgoing.state === 'open') {
      this.outgoing.state = 'eof';
      this.protocol.channelEOF(this.outgoing.id);
    }
    this.writableFinished = true;
    this.emit('finish');
  }

  private sendClose(): void {
    const out = this.outgoing;
    if (out.state === 'open' || out.state === 'eof') {
      out.state = 'closing';
      this.protocol.channelClose(out.id);
    }
  }

  /** ssh2's top-up (Channel.js windowAdjust); receive-window.ts may stand in for the call. */
  private windowAdjust(): void {
    if (this.outgoing.state === 'closed') return;
    const amount = SSH2_WINDOW - this.incoming.window;
    if (amount <= 0) return;
    this.incoming.window += amount;
    this.protocol.channelWindowAdjust(this.outgoing.id, amount);
  }

  /** Delivers what was held while paused, until paused again. */
  private release(): void {
    while (!this.paused && this.held.length > 0) {
      const next = this.held.shift();
      if (next === null) this.emitEnd();
      else if (next !== undefined) this.emit('data', next);
    }
    if (this.paused) return;
    if (this.closePending) {
      this.emitEnd();
      this.emitClose();
    } else if (this.incoming.state === 'open' && this.incoming.window <= SSH2_THRESHOLD) {
      this.windowAdjust();
    }
  }

  private emitEnd(): void {
    if (this.ended) return;
    this.ended = true;
    this.emit('end');
  }

  private emitClose(): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    this.removeAllListeners('drain');
    this.emit('close');
  }
}

export interface TcpipChannels {
  /** Opens a channel; `done` gets it, or why the server refused. */
  readonly open: (
    target: TcpipTarget,
    done: (err: OpenError | null, channel: TcpipChannel | null) => void,
  ) => void;
  /** Channels open or being opened. */
  readonly size: () => number;
}

type Pending = (err: OpenError | null, channel: TcpipChannel | null) => void;

const openError = (message: string, reason: number | string): OpenError =>
  Object.assign(new Error(`(SSH) Channel open failure: ${message}`), { reason });

/**
 * direct-tcpip channels on `client` (connected and authenticated), or null
 * where this ssh2 lacks the internals (the caller then uses `forwardOut`).
 * `highWater`: `write` returns false once that many bytes wait for window.
 */
export const tcpipChannels = (client: Client, highWater: number): TcpipChannels | null => {
  const internals = internalsOf(client);
  if (internals === null) return null;
  const { protocol, manager } = internals;
  const channels = new Map<number, TcpipChannel | Pending>();
  const handlers = protocol._handlers;

  /** Wraps ssh2's handler: messages for our ids come to `ours`. */
  const claim = <A extends unknown[]>(
    name: string,
    ours: (entry: TcpipChannel | Pending, id: number, ...rest: A) => void,
  ): void => {
    const theirs = handlers[name] as ((p: unknown, id: number, ...rest: A) => void) | undefined;
    handlers[name] = ((p: unknown, id: number, ...rest: A) => {
      const entry = channels.get(id);
      if (entry === undefined) theirs?.(p, id, ...rest);
      else ours(entry, id, ...rest);
    }) as unknown as (...args: never[]) => void;
  };
  const forget = (id: number): void => {
    channels.delete(id);
    manager.remove(id);
  };

  // CHANNEL_OPEN_CONFIRMATION passes one object rather than the id.
  const confirm = handlers.CHANNEL_OPEN_CONFIRMATION as
    | ((
        p: unknown,
        info: { recipient: number; sender: number; window: number; packetSize: number },
      ) => void)
    | undefined;
  handlers.CHANNEL_OPEN_CONFIRMATION = ((
    p: unknown,
    info: { recipient: number; sender: number; window: number; packetSize: number },
  ) => {
    const entry = channels.get(info.recipient);
    if (entry === undefined) {
      confirm?.(p, info);
      return;
    }
    if (typeof entry !== 'function') return; // confirmed twice: ignore, as ssh2 does
    const channel = new TcpipChannel(
      protocol,
      info.recipient,
      { id: info.sender, window: info.window, packetSize: info.packetSize },
      highWater,
    );
    channels.set(info.recipient, channel);
    channel.once('close', () => {
      if (channels.get(info.recipient) === channel) forget(info.recipient);
    });
    entry(null, channel);
  }) as (...args: never[]) => void;

  claim('CHANNEL_OPEN_FAILURE', (entry, id, reason: number, description: string) => {
    forget(id);
    if (typeof entry === 'function') entry(openError(description, reason), null);
  });
  claim('CHANNEL_DATA', (entry, _id, data: Buffer) => {
    if (typeof entry !== 'function') entry.onData(data);
  });
  claim('CHANNEL_EXTENDED_DATA', () => {}); // none on direct-tcpip; ignored as ssh2 would (not stderr)
  claim('CHANNEL_WINDOW_ADJUST', (entry, _id, amount: number) => {
    if (typeof entry !== 'function') entry.onWindowAdjust(amount);
  });
  claim('CHANNEL_EOF', (entry) => {
    if (typeof entry !== 'function') entry.onEof();
  });
  claim('CHANNEL_CLOSE', (entry, id) => {
    if (typeof entry === 'function') {
      // CLOSE instead of an open failure (as ssh2's onCHANNEL_CLOSE treats it).
      forget(id);
      entry(openError('server closed channel unexpectedly', ''), null);
    } else {
      forget(id);
      entry.onClose(false);
    }
  });
  claim('CHANNEL_REQUEST', (entry, _id, _type: string, wantReply: boolean) => {
    if (typeof entry !== 'function') entry.onRequest(wantReply);
  });
  claim('CHANNEL_SUCCESS', () => {});
  claim('CHANNEL_FAILURE', () => {});

  // The connection is gone: every channel ends, every open fails.
  client.once('close', () => {
    const all = [...channels];
    channels.clear();
    for (const [, entry] of all) {
      if (typeof entry === 'function') entry(openError('connection closed', ''), null);
      else entry.onClose(true);
    }
  });

  return {
    open: (target, done) => {
      const id = manager.add();
      if (id === -1) {
        done(openError('no free channels available', ''), null);
        return;
      }
      channels.set(id, done);
      protocol.directTcpip(id, SSH2_WINDOW, PACKET_SIZE, {
        srcIP: target.srcIP,
        srcPort: target.srcPort,
        dstIP: target.dstIP,
        dstPort: target.dstPort,
      });
    },
    size: () => channels.size,
  };
};
