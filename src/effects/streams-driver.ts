/**
 * The byte-stream driver: every local socket and every tunnel stream of a
 * session, keyed by connection id and side. It turns stream callbacks into
 * events and write/pause/resume/end/close commands into stream calls.
 *
 * Hot path: one event per chunk as the stream delivers it; no copies. Local
 * sockets may read into one shared buffer (`lent-reads.ts`): such a chunk is
 * valid only while its event is folded, so a write that would keep it (the
 * other side cannot take it at once) writes a copy.
 */
import { Socket } from 'node:net';
import { type Observable, Subject } from 'rxjs';
import type { Command } from '../domain/commands.js';
import type { Event, Side } from '../domain/events.js';
import { makeGcPacer } from './gc-pacer.js';
import { type LentReads, makeLentReads } from './lent-reads.js';

/**
 * What the driver uses of a stream: a Node Duplex (sockets, ssh2 channels)
 * has it, and so does a `TcpipChannel`.
 */
export interface RelayStream {
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error & { code?: string }) => void): unknown;
  once(event: 'finish', listener: () => void): unknown;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
}

interface Entry {
  readonly stream: RelayStream;
  /** Lets go of the stream (`stream.destroy()` unless the attacher knows better). */
  readonly destroy: () => void;
  /** The last write returned false and no drain has come yet. */
  full: boolean;
  error: string | null;
  /** Whether a write of `bytes` now is copied before `write` returns. */
  readonly takesNow: ((bytes: number) => boolean) | null;
}

export interface AttachOptions {
  /** Lets go of the stream (`stream.destroy()` unless given). */
  readonly destroy?: () => void;
  /**
   * Whether a write of `bytes` made now is copied out of the chunk before
   * `write` returns (so a lent chunk may be written without a copy).
   */
  readonly takesNow?: (bytes: number) => boolean;
}

export interface StreamsDriver {
  /** Starts relaying `stream` as `side` of connection `id`. */
  readonly attach: (id: number, side: Side, stream: RelayStream, opts?: AttachOptions) => void;
  readonly driver: (commands: Observable<Command>) => Observable<Event>;
  /** Destroys every stream (shutdown). */
  readonly destroyAll: () => void;
  readonly size: () => number;
  /** `chunk` is a view of the shared read buffer (valid only while its event is folded). */
  readonly isLent: (chunk: Uint8Array) => boolean;
}

const key = (id: number, side: Side): number => (side === 'local' ? id * 2 : id * 2 + 1);

export const makeStreamsDriver = (
  now: () => number,
  opts: {
    readonly gcEveryBytes?: number;
    /** Local sockets read into one shared buffer. */
    readonly lendLocalReads?: boolean;
  } = {},
): StreamsDriver => {
  const events = new Subject<Event>();
  const entries = new Map<number, Entry>();
  // Counts the bytes of Buffers made per chunk, the garbage to pace.
  const relayed = makeGcPacer(opts.gcEveryBytes);
  const lent: LentReads | null = opts.lendLocalReads === true ? makeLentReads() : null;

  const attach = (id: number, side: Side, stream: RelayStream, o: AttachOptions = {}): void => {
    const entry: Entry = {
      stream,
      destroy: o.destroy ?? (() => stream.destroy()),
      full: false,
      error: null,
      takesNow: o.takesNow ?? null,
    };
    entries.set(key(id, side), entry);
    const emit = (chunk: Buffer): void => {
      events.next({ kind: 'data', t: now(), id, from: side, size: chunk.length, chunk });
    };
    const lending =
      lent !== null && side === 'local' && stream instanceof Socket && lent.lend(stream, emit);
    if (!lending) {
      stream.on('data', (chunk: Buffer) => {
        emit(chunk);
        relayed(chunk.length);
      });
    }
    stream.on('end', () => events.next({ kind: 'eof', t: now(), id, from: side }));
    stream.on('drain', () => {
      if (!entry.full) return;
      entry.full = false;
      events.next({ kind: 'drain', t: now(), id, side });
    });
    stream.on('error', (err: Error & { code?: string }) => {
      entry.error = err.code ?? err.message;
    });
    stream.on('close', () => {
      entries.delete(key(id, side));
      events.next({ kind: 'closed', t: now(), id, side, error: entry.error });
    });
  };

  const handle = (c: Command): void => {
    switch (c.kind) {
      case 'write': {
        const e = entries.get(key(c.id, c.side));
        if (e === undefined || e.stream.writableEnded) return;
        let chunk = c.chunk;
        if (lent?.owns(chunk) === true && e.takesNow?.(chunk.length) !== true) {
          chunk = Buffer.from(chunk);
          relayed(chunk.length);
        }
        if (!e.stream.write(chunk) && !e.full) {
          e.full = true;
          events.next({ kind: 'full', t: now(), id: c.id, side: c.side });
        }
        return;
      }
      case 'pause':
        entries.get(key(c.id, c.side))?.stream.pause();
        return;
      case 'resume':
        entries.get(key(c.id, c.side))?.stream.resume();
        return;
      case 'end': {
        const e = entries.get(key(c.id, c.side));
        if (e !== undefined && !e.stream.writableEnded) e.stream.end();
        return;
      }
      case 'close': {
        const e = entries.get(key(c.id, c.side));
        if (e === undefined) return;
        if (c.abort) {
          e.destroy();
        } else if (e.stream.writableFinished) {
          e.destroy();
        } else {
          // Flush what is queued, then let go of the stream entirely.
          e.stream.once('finish', e.destroy);
          if (!e.stream.writableEnded) e.stream.end();
          e.stream.resume();
        }
        return;
      }
      default:
        return;
    }
  };

  return {
    attach,
    driver: (commands) => {
      commands.subscribe({ next: handle });
      return events.asObservable();
    },
    destroyAll: () => {
      for (const e of entries.values()) e.destroy();
    },
    size: () => entries.size,
    isLent: (chunk) => lent?.owns(chunk) === true,
  };
};
