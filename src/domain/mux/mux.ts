/**
 * One end (client or server role) of sshuttle's mux, as a pure reducer over
 * an abstract byte pipe: `(state, event) => [state, commands]`.
 *
 * Per channel it runs upstream's half-close machine (§3.2): TCP_EOF means "no
 * more data from me", TCP_STOP_SENDING "I accept no more data"; a channel is
 * let go once both of its directions are shut. Flow control has two modes:
 *
 * - `stock` (the peer is a stock sshuttle, or we did not offer credit):
 *   sshuttle's latency control exactly. `fullness` counts payload bytes sent
 *   since the last PONG; once it exceeds `latencyBufferSize` we send `PING
 *   rttest` and hold back TCP_DATA (only) until a PONG arrives. TCP_DATA
 *   frames carry at most 2048 bytes. With `latencyControl` off there is no gate.
 * - `credit` (both ends ours, negotiated with caps PINGs, see `Caps` in
 *   frame.ts): every channel has a window. The sender never has more than the
 *   window outstanding, the receiver grants CREDIT as its local consumer
 *   drains, frames carry up to 65535 bytes, and channels take turns (round
 *   robin, one frame per turn) under a transport-wide in-flight cap, so a
 *   bulk or stalled channel never starves the others. A channel id is reused
 *   only after both ends sent CLOSED, so a late CREDIT never lands on a new
 *   channel.
 *
 * Hot path: a local chunk of any size is one event; frames are views of it
 * (`subarray`, no copies) and all frames of one step leave in one `write`.
 * Received payloads are delivered as views of the pipe chunk. The caller
 * must not reuse chunk memory it handed in.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { LogLevel } from '../commands.js';
import { IntMap } from '../int-map.js';
import { allocateChannel, type ChannelAllocator, newAllocator } from './channel-allocator.js';
import { BANNER, type DecoderState, feed, finish, initialDecoder } from './decoder.js';
import {
  type Caps,
  Cmd,
  cmdName,
  cmdOf,
  decodeFrame,
  encodePayload,
  type Frame,
  type FrameOf,
  isChicken,
  MAX_PAYLOAD,
  type RawFrame,
  STOCK_DATA_MAX,
} from './frame.js';
import { WriteBatch } from './write-batch.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

export type MuxRole = 'client' | 'server';
export type FlowMode = 'negotiating' | 'stock' | 'credit';

export interface MuxConfig {
  readonly role: MuxRole;
  /** sshuttle's latency control (stock mode); off = `--no-latency-control`. */
  readonly latencyControl: boolean;
  /** `--latency-buffer-size`, default 32768. */
  readonly latencyBufferSize: number;
  /** Offer credit mode to the peer (it is used only if the peer offers too). */
  readonly offerCredit: boolean;
  /** Credit mode: the per-channel receive window we grant the peer. */
  readonly creditWindow: number;
  /** Credit mode: the largest TCP_DATA payload we send (and want to receive). */
  readonly maxFrame: number;
  /** Bytes handed to the pipe and not yet flushed, above which no more TCP_DATA is scheduled. */
  readonly pipeCap: number;
  /**
   * The same cap while channels take turns ({@link SHARED_TICKS}): what the
   * pipe holds is what another channel's next frame waits behind.
   */
  readonly pipeCapShared: number;
  /** Queued bytes per channel at which local reading is paused (resumed at half). */
  readonly localHighWater: number;
  /** Stock mode: delivered-but-undrained bytes (all channels) at which pipe reading pauses; 0 = never. */
  readonly stockRecvLimit: number;
  /** `--wrap`: largest channel id. */
  readonly wrap: number;
  /** Expect sshuttle's banner before the first frame (the client reading a server). */
  readonly expectBanner: boolean;
  /** Write the banner before the first frame (the server). */
  readonly sendBanner: boolean;
  /** Warn when a PING has gone unanswered this long (ms); 0 = never. */
  readonly pingWarnMs: number;
}

/** Defaults: sshuttle's for stock mode, ours for credit mode. */
export const defaultMuxConfig = (role: MuxRole): MuxConfig => ({
  role,
  latencyControl: true,
  latencyBufferSize: 32768,
  offerCredit: true,
  creditWindow: 1 << 20,
  maxFrame: MAX_PAYLOAD,
  pipeCap: 256 * 1024,
  pipeCapShared: 64 * 1024,
  localHighWater: 128 * 1024,
  stockRecvLimit: 16 * 1024 * 1024,
  wrap: 65535,
  expectBanner: role === 'client',
  sendBanner: role === 'server',
  pingWarnMs: 30_000,
});

/** Where a client wants a channel to lead (`TCP_CONNECT`). */
export interface Destination {
  readonly family: number;
  readonly ip: string;
  readonly port: number;
}

/** One TCP channel, from this end's point of view. */
export interface MuxChannel {
  readonly id: number;
  /** Client: where to connect; TCP_CONNECT waits while the mode is being negotiated. */
  readonly dst: Destination | null;
  readonly connectSent: boolean;
  /** Local bytes not yet framed, oldest first (views of the local chunks). */
  readonly queue: readonly Uint8Array[];
  readonly queued: number;
  /** The local reader ended: TCP_EOF goes out once the queue is empty. */
  readonly localEof: boolean;
  readonly readPaused: boolean;
  /** Upstream's `shut_write`: we send no more (EOF sent, or STOP_SENDING received). */
  readonly sendShut: boolean;
  /** Upstream's `shut_read`: we take no more (EOF received, or STOP_SENDING sent). */
  readonly recvShut: boolean;
  /** Credit mode: bytes we may still send. */
  readonly sendCredit: number;
  /** Credit mode: bytes the peer may still send us. */
  readonly recvAllowance: number;
  /** Credit mode: drained bytes not yet granted back. */
  readonly toGrant: number;
  /** Delivered to the local consumer and not yet drained by it. */
  readonly undrained: number;
  readonly localClosed: boolean;
  /** Credit mode: our CLOSED is out / the peer's has arrived. */
  readonly closedSent: boolean;
  readonly peerClosed: boolean;
  readonly inRing: boolean;
}

export interface MuxState {
  readonly config: MuxConfig;
  readonly mode: FlowMode;
  readonly peer: Caps | null;
  readonly decoder: DecoderState;
  readonly alloc: ChannelAllocator;
  /** Persistent: a step that touches one channel does not copy the others. */
  readonly channels: IntMap<MuxChannel>;
  /** DNS and UDP channels (their traffic is handled above the mux). */
  readonly datagrams: ReadonlySet<number>;
  /** Round-robin order of channels with something to send. */
  readonly ring: readonly number[];
  readonly fullness: number;
  readonly tooFull: boolean;
  /** Bytes written to the pipe and not yet reported flushed. */
  readonly inFlight: number;
  /** The pipe said it is full (`pipeFull`) and has not said `pipeWritable` since. */
  readonly pipeBlocked: boolean;
  /** The channel of the last TCP_DATA frame sent (-1: none yet). */
  readonly lastSender: number;
  /** Ticks left during which the pipe counts as shared (see `pipeCapShared`). */
  readonly sharedTicks: number;
  /** Delivered-but-undrained bytes over all channels. */
  readonly undrained: number;
  readonly pipePaused: boolean;
  readonly t: number;
  readonly pingSince: number | null;
  readonly pingWarned: boolean;
  /** Why the session ended, once it has. */
  readonly ended: string | null;
}

/** Frames the layers above send themselves; TCP frames belong to the mux. */
export type ControlFrame = FrameOf<
  | 'EXIT'
  | 'PING'
  | 'ROUTES'
  | 'HOST_REQ'
  | 'HOST_LIST'
  | 'DNS_REQ'
  | 'DNS_RESPONSE'
  | 'UDP_OPEN'
  | 'UDP_DATA'
  | 'UDP_CLOSE'
>;

export type MuxEvent =
  /** Bytes from the peer, as the pipe delivered them. */
  | { readonly kind: 'pipeData'; readonly bytes: Uint8Array }
  /** The pipe took `bytes` of what we wrote (counts against `pipeCap`). */
  | { readonly kind: 'pipeFlushed'; readonly bytes: number }
  /** The pipe's own buffer is full (a write returned false): hold TCP_DATA. */
  | { readonly kind: 'pipeFull' }
  /** The pipe drained after `pipeFull`. */
  | { readonly kind: 'pipeWritable' }
  /** The peer's stream ended. */
  | { readonly kind: 'pipeEnd' }
  /** Time passes (ms since the session started). */
  | { readonly kind: 'tick'; readonly t: number }
  /** Client: a local connection wants a channel to `dst`; answered by `opened`/`openFailed`. */
  | {
      readonly kind: 'open';
      readonly ref: number;
      readonly family: number;
      readonly ip: string;
      readonly port: number;
    }
  /**
   * The local socket read a chunk. `transient`: the chunk's memory is reused
   * once this step returns (a shared read buffer), so what the step cannot
   * send is queued as a copy; the frames it sends must be consumed by the
   * driver before the step returns.
   */
  | {
      readonly kind: 'localData';
      readonly channel: number;
      readonly bytes: Uint8Array;
      readonly transient?: boolean;
    }
  /** The local socket's read side ended. */
  | { readonly kind: 'localEof'; readonly channel: number }
  /** The local consumer has taken `bytes` of what we delivered (a write completed). */
  | { readonly kind: 'localDrained'; readonly channel: number; readonly bytes: number }
  /** The local socket can take no more data (EPIPE): tell the peer to stop sending. */
  | { readonly kind: 'localWriteShut'; readonly channel: number }
  /** The local socket is gone (error, reset, remote connect failure): shut both ways. */
  | { readonly kind: 'localAbort'; readonly channel: number }
  /** Client: a channel id for DNS or UDP; answered by `allocated`/`allocateFailed`. */
  | { readonly kind: 'allocate'; readonly ref: number }
  /** A DNS/UDP channel is finished with. */
  | { readonly kind: 'release'; readonly channel: number }
  /** Send a control or datagram frame (not gated by flow control, as upstream). */
  | { readonly kind: 'send'; readonly frame: ControlFrame };

export type MuxCommand =
  /** Write these bytes to the pipe, in order (one `writev`). */
  | { readonly kind: 'write'; readonly chunks: readonly Uint8Array[]; readonly bytes: number }
  /** The server's banner has been read; frames follow. */
  | { readonly kind: 'banner' }
  /** The flow-control mode is settled. */
  | { readonly kind: 'mode'; readonly mode: 'stock' | 'credit'; readonly peer: Caps | null }
  | { readonly kind: 'opened'; readonly ref: number; readonly channel: number }
  | { readonly kind: 'openFailed'; readonly ref: number; readonly reason: string }
  /** Server: open the real connection for a new channel. */
  | {
      readonly kind: 'connect';
      readonly channel: number;
      readonly family: number;
      readonly ip: string;
      readonly port: number;
    }
  /** Write to the local socket; report `localDrained` when it has taken the bytes. */
  | { readonly kind: 'deliver'; readonly channel: number; readonly bytes: Uint8Array }
  | { readonly kind: 'pauseLocal'; readonly channel: number }
  | { readonly kind: 'resumeLocal'; readonly channel: number }
  /** The peer takes no more: stop reading the local socket, drop what was read. */
  | { readonly kind: 'stopLocalRead'; readonly channel: number }
  /** The peer sent EOF: `shutdown(SHUT_WR)` the local socket after pending writes. */
  | { readonly kind: 'endLocal'; readonly channel: number }
  /** Both directions are shut: close the local socket once its writes are flushed. */
  | { readonly kind: 'closeLocal'; readonly channel: number }
  /** A control or datagram frame for the layers above (ROUTES, HOST_*, DNS_*, UDP_*, EXIT). */
  | { readonly kind: 'control'; readonly frame: Frame }
  | { readonly kind: 'allocated'; readonly ref: number; readonly channel: number }
  | { readonly kind: 'allocateFailed'; readonly ref: number; readonly reason: string }
  /** Stop / restart reading the pipe (stock mode's bound on undrained data). */
  | { readonly kind: 'pausePipe' }
  | { readonly kind: 'resumePipe' }
  /** The session is over: close every local socket and the pipe. */
  | { readonly kind: 'sessionEnd'; readonly reason: string; readonly error: boolean }
  | { readonly kind: 'log'; readonly level: LogLevel; readonly msg: string };

export type MuxStep = readonly [MuxState, readonly MuxCommand[]];

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

const CHICKEN = Buffer.from('chicken', 'latin1');
const RTTEST = Buffer.from('rttest', 'latin1');

/**
 * A fresh mux end and the bytes it sends first: the banner (server), `PING
 * chicken` (as upstream) and, when offering credit, our caps PING.
 */
export const initMux = (config: MuxConfig, t = 0): MuxStep => {
  const state: MuxState = {
    config,
    mode: config.offerCredit ? 'negotiating' : 'stock',
    peer: null,
    decoder: initialDecoder(config.expectBanner),
    alloc: newAllocator(config.wrap),
    channels: IntMap.empty(),
    datagrams: new Set(),
    ring: [],
    fullness: 0,
    tooFull: false,
    inFlight: 0,
    pipeBlocked: false,
    lastSender: -1,
    sharedTicks: 0,
    undrained: 0,
    pipePaused: false,
    t,
    pingSince: null,
    pingWarned: false,
    ended: null,
  };
  const ctx = begin(state);
  if (config.sendBanner) {
    ctx.batch.raw(BANNER);
    ctx.s.inFlight += BANNER.length;
  }
  sendFrame(ctx, { kind: 'PING', channel: 0, data: CHICKEN });
  if (config.offerCredit) {
    sendFrame(ctx, {
      kind: 'CAPS',
      channel: 0,
      caps: { credit: config.creditWindow, frame: config.maxFrame },
    });
  }
  return end(ctx);
};

/** Open TCP channels (including ones waiting for the peer's CLOSED). */
export const channelCount = (s: MuxState): number => s.channels.size;

// ---------------------------------------------------------------------------
// step context: mutable drafts inside one step, frozen into a new state at the end
// ---------------------------------------------------------------------------

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
interface Draft extends Mutable<MuxChannel> {
  queue: Uint8Array[];
}
type Scalars = Mutable<Omit<MuxState, 'channels' | 'datagrams' | 'ring'>>;

interface Ctx {
  readonly s: Scalars;
  readonly base: MuxState;
  channels: IntMap<MuxChannel> | null;
  readonly drafts: Set<number>;
  datagrams: Set<number> | null;
  ring: number[] | null;
  readonly cmds: MuxCommand[];
  readonly batch: WriteBatch;
}

// begin and end run for every event (every chunk): their fields are listed
// rather than spread or rest-destructured, which V8 does far more slowly.
const begin = (state: MuxState): Ctx => {
  const s: Scalars = {
    config: state.config,
    mode: state.mode,
    peer: state.peer,
    decoder: state.decoder,
    alloc: state.alloc,
    fullness: state.fullness,
    tooFull: state.tooFull,
    inFlight: state.inFlight,
    pipeBlocked: state.pipeBlocked,
    lastSender: state.lastSender,
    sharedTicks: state.sharedTicks,
    undrained: state.undrained,
    pipePaused: state.pipePaused,
    t: state.t,
    pingSince: state.pingSince,
    pingWarned: state.pingWarned,
    ended: state.ended,
  };
  return {
    s,
    base: state,
    channels: null,
    drafts: new Set(),
    datagrams: null,
    ring: null,
    cmds: [],
    batch: new WriteBatch(),
  };
};

const end = (ctx: Ctx): MuxStep => {
  const cmds = ctx.cmds;
  if (ctx.batch.bytes > 0) {
    cmds.push({ kind: 'write', chunks: ctx.batch.take(), bytes: ctx.batch.bytes });
  }
  const { s, base } = ctx;
  const state: MuxState = {
    config: s.config,
    mode: s.mode,
    peer: s.peer,
    decoder: s.decoder,
    alloc: s.alloc,
    channels: ctx.channels ?? base.channels,
    datagrams: ctx.datagrams ?? base.datagrams,
    ring: ctx.ring ?? base.ring,
    fullness: s.fullness,
    tooFull: s.tooFull,
    inFlight: s.inFlight,
    pipeBlocked: s.pipeBlocked,
    lastSender: s.lastSender,
    sharedTicks: s.sharedTicks,
    undrained: s.undrained,
    pipePaused: s.pipePaused,
    t: s.t,
    pingSince: s.pingSince,
    pingWarned: s.pingWarned,
    ended: s.ended,
  };
  return [state, cmds];
};

const setChan = (ctx: Ctx, c: MuxChannel): void => {
  ctx.channels = (ctx.channels ?? ctx.base.channels).set(c.id, c);
};

const peek = (ctx: Ctx, id: number): MuxChannel | undefined =>
  (ctx.channels ?? ctx.base.channels).get(id);

/** A writable copy, as a literal naming every field (a spread copies through V8's slow path). */
const copyChannel = (c: MuxChannel): Draft => ({
  id: c.id,
  dst: c.dst,
  connectSent: c.connectSent,
  queue: c.queue.slice(),
  queued: c.queued,
  localEof: c.localEof,
  readPaused: c.readPaused,
  sendShut: c.sendShut,
  recvShut: c.recvShut,
  sendCredit: c.sendCredit,
  recvAllowance: c.recvAllowance,
  toGrant: c.toGrant,
  undrained: c.undrained,
  localClosed: c.localClosed,
  closedSent: c.closedSent,
  peerClosed: c.peerClosed,
  inRing: c.inRing,
});

/** The channel, made writable for this step. */
const draft = (ctx: Ctx, id: number): Draft | undefined => {
  const c = peek(ctx, id);
  if (c === undefined) return undefined;
  if (ctx.drafts.has(id)) return c as Draft;
  const d = copyChannel(c);
  setChan(ctx, d);
  ctx.drafts.add(id);
  return d;
};

const dgrams = (ctx: Ctx): Set<number> => {
  ctx.datagrams ??= new Set(ctx.base.datagrams);
  return ctx.datagrams;
};

const ring = (ctx: Ctx): number[] => {
  ctx.ring ??= ctx.base.ring.slice();
  return ctx.ring;
};

const inUse = (ctx: Ctx, id: number): boolean =>
  peek(ctx, id) !== undefined || (ctx.datagrams ?? ctx.base.datagrams).has(id);

const log = (ctx: Ctx, level: LogLevel, msg: string): void => {
  ctx.cmds.push({ kind: 'log', level, msg });
};

// ---------------------------------------------------------------------------
// sending
// ---------------------------------------------------------------------------

/** Queues one frame into this step's write and does upstream's fullness accounting. */
const sendRaw = (ctx: Ctx, channel: number, cmd: number, payload: Uint8Array): void => {
  ctx.s.inFlight += ctx.batch.frame(channel, cmd, payload);
  ctx.s.fullness += payload.length;
  if (cmd === Cmd.PING && ctx.s.pingSince === null) ctx.s.pingSince = ctx.s.t;
  checkFullness(ctx);
};

const sendFrame = (ctx: Ctx, f: Frame): void => sendRaw(ctx, f.channel, cmdOf(f), encodePayload(f));

/** Upstream's `check_fullness`, run after every frame rather than once per loop. */
const checkFullness = (ctx: Ctx): void => {
  const { s } = ctx;
  if (s.mode === 'credit' || !s.config.latencyControl) return;
  if (s.fullness > s.config.latencyBufferSize && !s.tooFull) {
    s.tooFull = true;
    sendRaw(ctx, 0, Cmd.PING, RTTEST);
  }
};

const EMPTY = new Uint8Array(0);

const ready = (ctx: Ctx, c: MuxChannel): boolean =>
  c.connectSent && !c.sendShut && c.queued > 0 && (ctx.s.mode !== 'credit' || c.sendCredit > 0);

/**
 * How much of a `length`-byte chunk the next frame carries, at most `max`:
 * a chunk over `max` goes as equal frames rather than full ones and a
 * remainder (a 64 KiB socket read was a 65535-byte frame and a 1-byte one,
 * which the far side wrote to its socket as a separate system call and TCP
 * segment).
 */
export const frameShare = (length: number, max: number): number =>
  length <= max ? length : Math.ceil(length / Math.ceil(length / max));

/** Sends the next TCP_DATA frame of `c` (which is `ready`). */
const sendData = (ctx: Ctx, c: Draft): void => {
  const head = c.queue[0]!;
  const n =
    ctx.s.mode === 'credit'
      ? Math.min(
          frameShare(
            head.length,
            Math.min(ctx.s.config.maxFrame, ctx.s.peer?.frame ?? MAX_PAYLOAD),
          ),
          c.sendCredit,
        )
      : Math.min(head.length, STOCK_DATA_MAX);
  if (n === head.length) c.queue.shift();
  else c.queue[0] = head.subarray(n);
  c.queued -= n;
  if (ctx.s.mode === 'credit') c.sendCredit -= n;
  if (c.id !== ctx.s.lastSender) {
    // Taking turns with a channel that keeps the pipe busy (a turn after a
    // quiet spell, such as a transfer's first frame, queues behind nothing).
    if (ctx.s.lastSender !== -1 && ctx.s.inFlight >= ctx.s.config.pipeCapShared / 2) {
      ctx.s.sharedTicks = SHARED_TICKS;
    }
    ctx.s.lastSender = c.id;
  }
  sendRaw(ctx, c.id, Cmd.TCP_DATA, n === head.length ? head : head.subarray(0, n));
};

/**
 * Ticks (1 s each in the drivers) the pipe stays shared after TCP_DATA last
 * went out on a different channel than the frame before it while the pipe
 * held at least half of `pipeCapShared`. A bulk transfer alone fills the
 * pipe up to `pipeCap`, which it needs for full speed; once another channel
 * has spoken, the cap is `pipeCapShared`, because every byte in the pipe
 * (and in the kernel's pipe and sshd's buffer after it) is queued ahead of
 * that channel's next answer. In the lab (helper, small requests under a
 * download): median 2.0-2.4 ms against 3.1-3.3 with the cap always 256 KiB,
 * p99 4.2-5.5 against 6.0-8.9, download unchanged; a download alone was 8%
 * slower with the cap always 64 KiB, hence the two (docs/performance-log.md).
 */
export const SHARED_TICKS = 2;

/** The pipe cap now: smaller while channels are taking turns. */
const pipeCapNow = (s: Scalars): number =>
  s.sharedTicks > 0 ? Math.min(s.config.pipeCap, s.config.pipeCapShared) : s.config.pipeCap;

/** Schedules TCP_DATA: channels in turn, one frame each, while the gates are open. */
const pump = (ctx: Ctx): void => {
  const { s } = ctx;
  if (s.ended !== null || s.mode === 'negotiating') return;
  if ((ctx.ring ?? ctx.base.ring).length === 0) return;
  const r = ring(ctx);
  let head = 0;
  while (head < r.length) {
    if (s.inFlight >= pipeCapNow(s) || s.pipeBlocked) break;
    if (s.mode === 'stock' && s.config.latencyControl && s.tooFull) break;
    const id = r[head++]!;
    // settle() below may push `id` back onto `r`; it never filters `r` here,
    // because the channel's inRing is false while it is being served.
    const c = draft(ctx, id);
    if (c === undefined) continue;
    c.inRing = false;
    if (ready(ctx, c)) sendData(ctx, c);
    settle(ctx, c);
  }
  ctx.ring = r.slice(head);
};

// ---------------------------------------------------------------------------
// per-channel state machine
// ---------------------------------------------------------------------------

/**
 * Brings a channel's consequences up to date after any change: EOF once the
 * queue is empty, ring membership, resuming local reads, and letting go once
 * both directions are shut.
 */
const settle = (ctx: Ctx, c: Draft): void => {
  if (!c.connectSent) return;
  if (!c.sendShut && c.localEof && c.queued === 0) {
    sendRaw(ctx, c.id, Cmd.TCP_EOF, EMPTY);
    c.sendShut = true;
  }
  if (!c.inRing && ready(ctx, c)) {
    ring(ctx).push(c.id);
    c.inRing = true;
  }
  if (c.readPaused && !c.localEof && !c.sendShut && c.queued <= ctx.s.config.localHighWater / 2) {
    c.readPaused = false;
    ctx.cmds.push({ kind: 'resumeLocal', channel: c.id });
  }
  if (!(c.sendShut && c.recvShut)) return;
  if (!c.localClosed) {
    c.localClosed = true;
    ctx.cmds.push({ kind: 'closeLocal', channel: c.id });
  }
  if (ctx.s.mode === 'credit') {
    if (!c.closedSent) {
      sendRaw(ctx, c.id, Cmd.CLOSED, EMPTY);
      c.closedSent = true;
    }
    if (!c.peerClosed) return;
  }
  forget(ctx, c);
};

const forget = (ctx: Ctx, c: Draft): void => {
  ctx.s.undrained -= c.undrained;
  ctx.channels = (ctx.channels ?? ctx.base.channels).delete(c.id);
  ctx.drafts.delete(c.id);
  if (c.inRing) ctx.ring = ring(ctx).filter((id) => id !== c.id);
  log(ctx, 'debug', `channel ${c.id}: closed`);
  maybeResumePipe(ctx);
};

const newChannel = (ctx: Ctx, id: number, dst: Destination | null): Draft => {
  const d: Draft = {
    id,
    dst,
    connectSent: false,
    queue: [],
    queued: 0,
    localEof: false,
    readPaused: false,
    sendShut: false,
    recvShut: false,
    sendCredit: 0,
    recvAllowance: 0,
    toGrant: 0,
    undrained: 0,
    localClosed: false,
    closedSent: false,
    peerClosed: false,
    inRing: false,
  };
  setChan(ctx, d);
  ctx.drafts.add(id);
  return d;
};

/** The channel is known to both ends from here on; its windows follow the mode. */
const connected = (ctx: Ctx, c: Draft): void => {
  c.connectSent = true;
  const credit = ctx.s.mode === 'credit';
  c.sendCredit = credit ? (ctx.s.peer?.credit ?? 0) : Number.POSITIVE_INFINITY;
  c.recvAllowance = credit ? ctx.s.config.creditWindow : Number.POSITIVE_INFINITY;
};

const sendConnect = (ctx: Ctx, c: Draft): void => {
  const dst = c.dst!;
  sendFrame(ctx, { kind: 'TCP_CONNECT', channel: c.id, ...dst });
  if (c.recvShut) sendRaw(ctx, c.id, Cmd.TCP_STOP_SENDING, EMPTY);
  connected(ctx, c);
  settle(ctx, c);
};

/** Shuts both directions at once (local abort, protocol violation): STOP_SENDING, then EOF. */
const abortChannel = (ctx: Ctx, c: Draft): void => {
  if (!c.connectSent) {
    // The peer never heard of it: just let go.
    if (!c.localClosed) ctx.cmds.push({ kind: 'closeLocal', channel: c.id });
    forget(ctx, c);
    return;
  }
  dropUndrained(ctx, c);
  if (!c.recvShut) {
    sendRaw(ctx, c.id, Cmd.TCP_STOP_SENDING, EMPTY);
    c.recvShut = true;
  }
  if (!c.sendShut) {
    c.queue = [];
    c.queued = 0;
    sendRaw(ctx, c.id, Cmd.TCP_EOF, EMPTY);
    c.sendShut = true;
  }
  settle(ctx, c);
};

/** The local consumer is gone: what it had not taken will never be drained. */
const dropUndrained = (ctx: Ctx, c: Draft): void => {
  ctx.s.undrained -= c.undrained;
  c.undrained = 0;
  maybeResumePipe(ctx);
};

const maybeResumePipe = (ctx: Ctx): void => {
  const { s } = ctx;
  if (s.pipePaused && s.undrained <= s.config.stockRecvLimit / 2) {
    s.pipePaused = false;
    ctx.cmds.push({ kind: 'resumePipe' });
  }
};

// ---------------------------------------------------------------------------
// frames from the peer
// ---------------------------------------------------------------------------

/** Settles the mode on the first frame that is not `PING chicken` (see `Caps`). */
const decide = (ctx: Ctx, f: Frame | null): void => {
  const { s } = ctx;
  if (f !== null && f.kind === 'CAPS') {
    s.mode = 'credit';
    s.peer = f.caps;
    s.fullness = 0;
    s.tooFull = false;
    log(ctx, 'info', `mux: credit mode (peer window ${f.caps.credit}, frames ${f.caps.frame})`);
  } else {
    s.mode = 'stock';
    log(ctx, 'info', "mux: stock mode (sshuttle's latency control)");
  }
  ctx.cmds.push({ kind: 'mode', mode: s.mode, peer: s.peer });
  for (const id of (ctx.channels ?? ctx.base.channels).keys()) {
    const c = draft(ctx, id)!;
    if (!c.connectSent) sendConnect(ctx, c);
  }
};

const unknownChannel = (ctx: Ctx, f: Frame): void =>
  log(ctx, 'debug', `warning: closed channel ${f.channel} got cmd=${f.kind}`);

const onPeerData = (ctx: Ctx, c: Draft, data: Uint8Array): void => {
  const { s } = ctx;
  if (c.recvShut) {
    log(ctx, 'debug', `channel ${c.id}: ${data.length} bytes after shutting reads: dropped`);
    return;
  }
  if (s.mode === 'credit') {
    if (data.length > c.recvAllowance) {
      log(
        ctx,
        'warn',
        `channel ${c.id}: the peer sent ${data.length} bytes with ${c.recvAllowance} of credit left: closing the channel`,
      );
      abortChannel(ctx, c);
      return;
    }
    c.recvAllowance -= data.length;
  }
  if (data.length === 0) return;
  c.undrained += data.length;
  s.undrained += data.length;
  ctx.cmds.push({ kind: 'deliver', channel: c.id, bytes: data });
  if (
    s.mode !== 'credit' &&
    s.config.stockRecvLimit > 0 &&
    s.undrained > s.config.stockRecvLimit &&
    !s.pipePaused
  ) {
    s.pipePaused = true;
    ctx.cmds.push({ kind: 'pausePipe' });
  }
};

const onTcpConnect = (ctx: Ctx, f: FrameOf<'TCP_CONNECT'>): void => {
  if (ctx.s.config.role !== 'server') {
    log(ctx, 'warn', `channel ${f.channel}: TCP_CONNECT from the server: ignored`);
    return;
  }
  if (f.channel === 0 || inUse(ctx, f.channel)) {
    log(ctx, 'warn', `channel ${f.channel}: TCP_CONNECT for a channel in use: ignored`);
    return;
  }
  const c = newChannel(ctx, f.channel, null);
  connected(ctx, c);
  ctx.cmds.push({ kind: 'connect', channel: f.channel, family: f.family, ip: f.ip, port: f.port });
};

const onDatagramOpen = (ctx: Ctx, f: FrameOf<'DNS_REQ' | 'UDP_OPEN'>): void => {
  if (ctx.s.config.role !== 'server') {
    log(ctx, 'warn', `channel ${f.channel}: ${f.kind} from the server: ignored`);
  } else if (f.channel === 0 || inUse(ctx, f.channel)) {
    log(ctx, 'warn', `channel ${f.channel}: ${f.kind} for a channel in use: ignored`);
  } else {
    dgrams(ctx).add(f.channel);
    ctx.cmds.push({ kind: 'control', frame: f });
  }
};

const onFrame = (ctx: Ctx, f: Frame): void => {
  const { s } = ctx;
  switch (f.kind) {
    case 'PING':
    case 'CAPS':
      sendRaw(ctx, 0, Cmd.PONG, encodePayload(f));
      return;
    case 'PONG':
      s.fullness = 0;
      s.tooFull = false;
      if (s.pingSince !== null) log(ctx, 'debug', `mux: PONG after ${s.t - s.pingSince} ms`);
      s.pingSince = null;
      s.pingWarned = false;
      return;
    case 'EXIT':
      endSession(ctx, 'the peer sent EXIT', false);
      return;
    case 'TCP_CONNECT':
      onTcpConnect(ctx, f);
      return;
    case 'TCP_DATA':
    case 'TCP_EOF':
    case 'TCP_STOP_SENDING':
    case 'CREDIT':
    case 'CLOSED': {
      // A channel whose TCP_CONNECT is not out yet is unknown to the peer.
      const c = peek(ctx, f.channel)?.connectSent ? draft(ctx, f.channel) : undefined;
      if (c === undefined) unknownChannel(ctx, f);
      else onChannelFrame(ctx, c, f);
      return;
    }
    case 'DNS_REQ':
    case 'UDP_OPEN':
      onDatagramOpen(ctx, f);
      return;
    case 'DNS_RESPONSE':
    case 'UDP_DATA':
    case 'UDP_CLOSE':
      if (!(ctx.datagrams ?? ctx.base.datagrams).has(f.channel)) unknownChannel(ctx, f);
      else {
        if (f.kind === 'UDP_CLOSE') dgrams(ctx).delete(f.channel);
        ctx.cmds.push({ kind: 'control', frame: f });
      }
      return;
    case 'ROUTES':
    case 'HOST_REQ':
    case 'HOST_LIST':
      ctx.cmds.push({ kind: 'control', frame: f });
      return;
  }
};

const onChannelFrame = (
  ctx: Ctx,
  c: Draft,
  f: FrameOf<'TCP_DATA' | 'TCP_EOF' | 'TCP_STOP_SENDING' | 'CREDIT' | 'CLOSED'>,
): void => {
  switch (f.kind) {
    case 'TCP_DATA':
      onPeerData(ctx, c, f.data);
      return;
    case 'TCP_EOF':
      if (c.recvShut) return;
      c.recvShut = true;
      ctx.cmds.push({ kind: 'endLocal', channel: c.id });
      settle(ctx, c);
      return;
    case 'TCP_STOP_SENDING':
      if (c.sendShut) return;
      c.sendShut = true;
      c.queue = [];
      c.queued = 0;
      ctx.cmds.push({ kind: 'stopLocalRead', channel: c.id });
      settle(ctx, c);
      return;
    case 'CREDIT': {
      if (ctx.s.mode !== 'credit') {
        log(ctx, 'warn', `channel ${c.id}: CREDIT outside credit mode: ignored`);
        return;
      }
      // Never more than a full window: a peer granting more is broken.
      const cap = ctx.s.peer?.credit ?? 0;
      c.sendCredit = Math.min(cap, c.sendCredit + f.bytes);
      settle(ctx, c);
      return;
    }
    case 'CLOSED':
      if (ctx.s.mode !== 'credit') {
        log(ctx, 'warn', `channel ${c.id}: CLOSED outside credit mode: ignored`);
        return;
      }
      c.peerClosed = true;
      if (!(c.sendShut && c.recvShut)) {
        // Its last frame, yet not both directions shut: the peer is broken.
        log(ctx, 'warn', `channel ${c.id}: the peer let go of an open channel: closing it`);
        dropUndrained(ctx, c);
        c.sendShut = true;
        c.recvShut = true;
        c.closedSent = true;
      }
      settle(ctx, c);
      return;
  }
};

/** A frame whose payload does not parse: log it; a TCP channel it names is closed. */
const onBadFrame = (ctx: Ctx, raw: RawFrame, why: string): void => {
  log(ctx, 'warn', `mux: bad ${cmdName(raw.cmd)} frame on channel ${raw.channel}: ${why}`);
  if (raw.channel === 0) return;
  const c = draft(ctx, raw.channel);
  if (c !== undefined) abortChannel(ctx, c);
};

const onRaw = (ctx: Ctx, raw: RawFrame): void => {
  const r = decodeFrame(raw);
  const f = E.isRight(r) ? r.right : null;
  if (ctx.s.mode === 'negotiating' && (f === null || !isChicken(f))) decide(ctx, f);
  if (f === null) onBadFrame(ctx, raw, E.isLeft(r) ? r.left : '');
  else onFrame(ctx, f);
};

// ---------------------------------------------------------------------------
// session
// ---------------------------------------------------------------------------

const endSession = (ctx: Ctx, reason: string, error: boolean): void => {
  if (ctx.s.ended !== null) return;
  ctx.s.ended = reason;
  log(ctx, error ? 'error' : 'info', reason);
  ctx.cmds.push({ kind: 'sessionEnd', reason, error });
  ctx.channels = IntMap.empty();
  ctx.drafts.clear();
  ctx.datagrams = new Set();
  ctx.ring = [];
  ctx.s.undrained = 0;
};

const onPipeData = (ctx: Ctx, bytes: Uint8Array): void => {
  const before = ctx.s.decoder.phase;
  const [decoder, frames, error] = feed(ctx.s.decoder, bytes);
  ctx.s.decoder = decoder;
  if (before === 'banner' && decoder.phase === 'frames') ctx.cmds.push({ kind: 'banner' });
  for (const raw of frames) {
    onRaw(ctx, raw);
    if (ctx.s.ended !== null) return;
  }
  if (error !== null) endSession(ctx, error, true);
};

// ---------------------------------------------------------------------------
// local events
// ---------------------------------------------------------------------------

const onOpen = (ctx: Ctx, e: Extract<MuxEvent, { kind: 'open' }>): void => {
  if (ctx.s.config.role !== 'client') {
    ctx.cmds.push({ kind: 'openFailed', ref: e.ref, reason: 'only the client opens channels' });
    return;
  }
  const [alloc, r] = allocateChannel(ctx.s.alloc, (id) => inUse(ctx, id));
  ctx.s.alloc = alloc;
  if (E.isLeft(r)) {
    log(ctx, 'warn', `mux: ${r.left}: connection to ${e.ip}:${e.port} refused`);
    ctx.cmds.push({ kind: 'openFailed', ref: e.ref, reason: r.left });
    return;
  }
  const c = newChannel(ctx, r.right, { family: e.family, ip: e.ip, port: e.port });
  ctx.cmds.push({ kind: 'opened', ref: e.ref, channel: c.id });
  if (ctx.s.mode !== 'negotiating') sendConnect(ctx, c);
};

const onAllocate = (ctx: Ctx, ref: number): void => {
  if (ctx.s.config.role !== 'client') {
    ctx.cmds.push({ kind: 'allocateFailed', ref, reason: 'only the client opens channels' });
    return;
  }
  const [alloc, r] = allocateChannel(ctx.s.alloc, (id) => inUse(ctx, id));
  ctx.s.alloc = alloc;
  if (E.isLeft(r)) {
    ctx.cmds.push({ kind: 'allocateFailed', ref, reason: r.left });
    return;
  }
  dgrams(ctx).add(r.right);
  ctx.cmds.push({ kind: 'allocated', ref, channel: r.right });
};

const onLocalData = (ctx: Ctx, c: Draft, bytes: Uint8Array): void => {
  if (c.sendShut || c.localEof) {
    log(ctx, 'debug', `channel ${c.id}: ${bytes.length} local bytes after shutdown: dropped`);
    return;
  }
  if (bytes.length === 0) return;
  c.queue.push(bytes);
  c.queued += bytes.length;
  if (!c.readPaused && c.queued >= ctx.s.config.localHighWater) {
    c.readPaused = true;
    ctx.cmds.push({ kind: 'pauseLocal', channel: c.id });
  }
  settle(ctx, c);
};

const onLocalDrained = (ctx: Ctx, c: Draft, n0: number): void => {
  const { s } = ctx;
  const n = Math.min(Math.max(0, n0), c.undrained);
  c.undrained -= n;
  s.undrained -= n;
  if (s.mode === 'credit' && !c.recvShut) {
    c.toGrant += n;
    if (c.toGrant >= Math.max(1, Math.floor(s.config.creditWindow / 4))) {
      sendFrame(ctx, { kind: 'CREDIT', channel: c.id, bytes: c.toGrant });
      c.recvAllowance += c.toGrant;
      c.toGrant = 0;
    }
  }
  maybeResumePipe(ctx);
};

const onLocal = (
  ctx: Ctx,
  e: Extract<
    MuxEvent,
    { kind: 'localData' | 'localEof' | 'localDrained' | 'localWriteShut' | 'localAbort' }
  >,
): void => {
  const c = draft(ctx, e.channel);
  if (c === undefined) {
    if (e.kind === 'localData') {
      log(ctx, 'debug', `channel ${e.channel}: local data for a closed channel: dropped`);
    }
    return;
  }
  switch (e.kind) {
    case 'localData':
      onLocalData(ctx, c, e.bytes);
      return;
    case 'localEof':
      if (c.localEof) return;
      c.localEof = true;
      settle(ctx, c);
      return;
    case 'localDrained':
      onLocalDrained(ctx, c, e.bytes);
      return;
    case 'localWriteShut':
      dropUndrained(ctx, c);
      if (c.recvShut) return;
      c.recvShut = true;
      // Before TCP_CONNECT is out, sendConnect sends the STOP_SENDING.
      if (c.connectSent) sendRaw(ctx, c.id, Cmd.TCP_STOP_SENDING, EMPTY);
      settle(ctx, c);
      return;
    case 'localAbort':
      abortChannel(ctx, c);
      return;
  }
};

const onTick = (ctx: Ctx, t: number): void => {
  const { s } = ctx;
  s.t = t;
  if (s.sharedTicks > 0) s.sharedTicks--;
  const warnMs = s.config.pingWarnMs;
  if (warnMs > 0 && s.pingSince !== null && !s.pingWarned && t - s.pingSince >= warnMs) {
    s.pingWarned = true;
    log(ctx, 'warn', `mux: no PONG from the peer for ${t - s.pingSince} ms (is the tunnel stuck?)`);
  }
};

// ---------------------------------------------------------------------------
// reducer
// ---------------------------------------------------------------------------

const none: readonly MuxCommand[] = [];

/** One step of the mux: folds `e` into `state`; returns the new state and what to do. */
export const muxReduce = (state: MuxState, e: MuxEvent): MuxStep => {
  if (state.ended !== null) return [state, none];
  const ctx = begin(state);
  switch (e.kind) {
    case 'pipeData':
      onPipeData(ctx, e.bytes);
      break;
    case 'pipeFlushed':
      ctx.s.inFlight = Math.max(0, ctx.s.inFlight - e.bytes);
      break;
    case 'pipeFull':
    case 'pipeWritable':
      ctx.s.pipeBlocked = e.kind === 'pipeFull';
      break;
    case 'pipeEnd': {
      const error = finish(ctx.s.decoder);
      endSession(ctx, error ?? 'the peer closed the mux stream', error !== null);
      break;
    }
    case 'tick':
      onTick(ctx, e.t);
      break;
    case 'open':
      onOpen(ctx, e);
      break;
    case 'allocate':
      onAllocate(ctx, e.ref);
      break;
    case 'release':
      if ((ctx.datagrams ?? ctx.base.datagrams).has(e.channel)) dgrams(ctx).delete(e.channel);
      break;
    case 'send':
      sendFrame(ctx, e.frame);
      // The client's UDP_CLOSE ends a datagram channel: its id may be reused.
      if (e.frame.kind === 'UDP_CLOSE' && ctx.s.config.role === 'client')
        if ((ctx.datagrams ?? ctx.base.datagrams).has(e.frame.channel))
          dgrams(ctx).delete(e.frame.channel);
      break;
    default:
      onLocal(ctx, e);
  }
  pump(ctx);
  if (e.kind === 'localData' && e.transient === true) ownQueued(ctx, e.channel, e.bytes);
  return end(ctx);
};

/** Replaces what is still queued of a transient chunk by a copy. */
const ownQueued = (ctx: Ctx, channel: number, bytes: Uint8Array): void => {
  // Only a channel this step drafted can have queued the chunk.
  if (!ctx.drafts.has(channel)) return;
  const c = draft(ctx, channel);
  if (c === undefined) return;
  const q = c.queue;
  for (let i = q.length - 1; i >= 0; i--) {
    const v = q[i]!;
    if (v.buffer !== bytes.buffer) continue;
    const copy = new Uint8Array(v.length);
    copy.set(v);
    q[i] = copy;
  }
};
