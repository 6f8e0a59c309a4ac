/**
 * The streaming mux decoder: bytes in (chunks as the pipe delivers them),
 * whole frames out. Pure: `feed(state, chunk) -> [state, frames, error]`.
 *
 * - A frame that lies inside one chunk comes out as a view of that chunk
 *   (no copy). A TCP_DATA frame split across chunks comes out in pieces,
 *   one per chunk, each a view (its bytes are a stream; a 32 KiB frame
 *   crosses an SSH packet, so in a bulk transfer nearly every frame is
 *   split). Any other split frame is assembled, once, when its last byte
 *   arrives. The caller must not reuse a chunk's memory after feeding it.
 * - The state holds at most one partial frame (header plus at most 65535
 *   payload bytes, as views of the chunks that carried them; none for
 *   TCP_DATA).
 * - A framing error (bad magic; upstream has no resync either) puts the
 *   decoder in `failed` for good: the session must end. Nothing here throws.
 * - The client side first scans for sshuttle's `\0\0SSHUTTLE0001` banner,
 *   skipping stray shell output as upstream does (everything up to a NUL,
 *   then everything up to a second NUL), then requires `SSHUTTLE0001`.
 */
import { Cmd, HDR_LEN, MAGIC, type RawFrame, show } from './frame.js';

// ---------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------

/** What the server writes before its first frame. */
export const BANNER = Buffer.from('\0\0SSHUTTLE0001', 'latin1');
const BANNER_WORD = BANNER.subarray(2);

/** Junk we skip before giving up on ever seeing a banner (upstream skips forever). */
export const MAX_BANNER_JUNK = 1 << 20;

/** Immutable list of chunk views, newest first (O(1) append, one copy at the end). */
interface Pieces {
  readonly head: Uint8Array;
  readonly tail: Pieces | null;
}

export type Partial =
  /** Fewer than 8 header bytes so far (a private copy, at most 7 bytes). */
  | { readonly stage: 'header'; readonly bytes: Uint8Array }
  | {
      readonly stage: 'payload';
      readonly channel: number;
      readonly cmd: number;
      readonly len: number;
      readonly have: number;
      readonly pieces: Pieces | null;
    };

export type DecoderState =
  | {
      readonly phase: 'banner';
      /** NULs seen so far (0 or 1), or 2 once we are matching `SSHUTTLE0001`. */
      readonly nuls: 0 | 1 | 2;
      /** Bytes of `SSHUTTLE0001` matched so far. */
      readonly matched: number;
      readonly skipped: number;
    }
  | {
      readonly phase: 'frames';
      readonly partial: Partial | null;
      /** Stream offset of the next byte, counted from the first frame (for messages). */
      readonly offset: number;
    }
  | { readonly phase: 'failed'; readonly error: string };

export type FeedResult = readonly [DecoderState, readonly RawFrame[], string | null];

// ---------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------

/** A decoder for the stream a server sends (banner first) or a client sends (frames only). */
export const initialDecoder = (expectBanner: boolean): DecoderState =>
  expectBanner
    ? { phase: 'banner', nuls: 0, matched: 0, skipped: 0 }
    : { phase: 'frames', partial: null, offset: 0 };

const framesAt = (offset: number, partial: Partial | null = null): DecoderState => ({
  phase: 'frames',
  partial,
  offset,
});

/** Frames whose payload comes out piece by piece as it arrives. */
const streamed = (cmd: number): boolean => cmd === Cmd.TCP_DATA;

/** Bytes held by the decoder (its partial frame); bounded by 8 + 65535. */
export const bufferedBytes = (s: DecoderState): number => {
  if (s.phase !== 'frames' || s.partial === null) return 0;
  if (s.partial.stage === 'header') return s.partial.bytes.length;
  return streamed(s.partial.cmd) ? 0 : HDR_LEN + s.partial.have;
};

// ---------------------------------------------------------------------------
// banner
// ---------------------------------------------------------------------------

const quoted = (b: Uint8Array): string =>
  show(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1'));

/** Scans for the banner; returns the new state and how much of `chunk` it used. */
const scanBanner = (
  s: Extract<DecoderState, { phase: 'banner' }>,
  chunk: Uint8Array,
): readonly [DecoderState, number] => {
  let { nuls, matched, skipped } = s;
  let off = 0;
  while (off < chunk.length) {
    if (nuls < 2) {
      const z = chunk.indexOf(0, off);
      const end = z < 0 ? chunk.length : z;
      skipped += end - off;
      if (skipped > MAX_BANNER_JUNK) {
        const error = `no sshuttle banner in the first ${MAX_BANNER_JUNK} bytes from the server (is the remote command printing output?)`;
        return [{ phase: 'failed', error }, chunk.length];
      }
      if (z < 0) return [{ phase: 'banner', nuls, matched, skipped }, chunk.length];
      nuls = nuls === 0 ? 1 : 2;
      off = z + 1;
      continue;
    }
    const take = Math.min(BANNER_WORD.length - matched, chunk.length - off);
    const got = chunk.subarray(off, off + take);
    if (Buffer.compare(got, BANNER_WORD.subarray(matched, matched + take)) !== 0) {
      const seen = Buffer.concat([BANNER_WORD.subarray(0, matched), got]);
      const error = `expected server init string "SSHUTTLE0001"; got ${quoted(seen)}`;
      return [{ phase: 'failed', error }, chunk.length];
    }
    matched += take;
    off += take;
    if (matched === BANNER_WORD.length) return [framesAt(0), off];
  }
  return [{ phase: 'banner', nuls, matched, skipped }, off];
};

// ---------------------------------------------------------------------------
// frames
// ---------------------------------------------------------------------------

const badMagic = (b0: number, b1: number | undefined, at: number): DecoderState => {
  const got = b1 === undefined ? [b0] : [b0, b1];
  const bytes = got.map((x) => x.toString(16).padStart(2, '0')).join(' ');
  return {
    phase: 'failed',
    error: `mux framing error at stream offset ${at}: expected magic "SS" (53 53), got ${bytes}; closing the session`,
  };
};

const assemble = (p: Extract<Partial, { stage: 'payload' }>): Uint8Array => {
  const out = Buffer.allocUnsafe(p.len);
  let end = p.len;
  for (let n = p.pieces; n !== null; n = n.tail) {
    end -= n.head.length;
    out.set(n.head, end);
  }
  return out;
};

/** Cuts frames from `chunk` (from `start`), beginning with the one in progress. */
const scanFrames = (
  s: Extract<DecoderState, { phase: 'frames' }>,
  chunk: Uint8Array,
  start: number,
): readonly [DecoderState, RawFrame[]] => {
  const out: RawFrame[] = [];
  const n = chunk.length;
  let off = start;
  let offset = s.offset;
  let partial = s.partial;

  if (partial !== null && partial.stage === 'header') {
    const have = partial.bytes.length;
    const take = Math.min(HDR_LEN - have, n - off);
    const hdr = new Uint8Array(have + take);
    hdr.set(partial.bytes, 0);
    hdr.set(chunk.subarray(off, off + take), have);
    off += take;
    if (hdr[0] !== MAGIC || (hdr.length > 1 && hdr[1] !== MAGIC)) {
      return [badMagic(hdr[0]!, hdr[1], offset - have), out];
    }
    if (hdr.length < HDR_LEN) {
      return [framesAt(offset + take, { stage: 'header', bytes: hdr }), out];
    }
    offset += take;
    const channel = (hdr[2]! << 8) | hdr[3]!;
    const cmd = (hdr[4]! << 8) | hdr[5]!;
    const len = (hdr[6]! << 8) | hdr[7]!;
    partial = len === 0 ? null : { stage: 'payload', channel, cmd, len, have: 0, pieces: null };
    if (len === 0) out.push({ channel, cmd, payload: chunk.subarray(off, off) });
  }

  if (partial !== null && partial.stage === 'payload') {
    const take = Math.min(partial.len - partial.have, n - off);
    const have = partial.have + take;
    const piece = take > 0 ? chunk.subarray(off, off + take) : null;
    const stream = streamed(partial.cmd);
    if (stream && piece !== null) {
      out.push({ channel: partial.channel, cmd: partial.cmd, payload: piece });
    }
    const pieces =
      !stream && piece !== null ? { head: piece, tail: partial.pieces } : partial.pieces;
    off += take;
    offset += take;
    // A literal: V8 copies a spread through a slow path, and this runs per chunk.
    const next: Extract<Partial, { stage: 'payload' }> = {
      stage: 'payload',
      channel: partial.channel,
      cmd: partial.cmd,
      len: partial.len,
      have,
      pieces,
    };
    if (have < partial.len) return [framesAt(offset, next), out];
    if (!stream) out.push({ channel: partial.channel, cmd: partial.cmd, payload: assemble(next) });
    partial = null;
  }

  while (off < n) {
    const rem = n - off;
    const b0 = chunk[off]!;
    const b1 = rem > 1 ? chunk[off + 1] : undefined;
    if (b0 !== MAGIC || (b1 !== undefined && b1 !== MAGIC)) return [badMagic(b0, b1, offset), out];
    if (rem < HDR_LEN) {
      return [framesAt(offset + rem, { stage: 'header', bytes: chunk.slice(off) }), out];
    }
    const channel = (chunk[off + 2]! << 8) | chunk[off + 3]!;
    const cmd = (chunk[off + 4]! << 8) | chunk[off + 5]!;
    const len = (chunk[off + 6]! << 8) | chunk[off + 7]!;
    if (rem >= HDR_LEN + len) {
      out.push({ channel, cmd, payload: chunk.subarray(off + HDR_LEN, off + HDR_LEN + len) });
      off += HDR_LEN + len;
      offset += HDR_LEN + len;
      continue;
    }
    const first = chunk.subarray(off + HDR_LEN);
    const stream = streamed(cmd);
    if (stream && first.length > 0) out.push({ channel, cmd, payload: first });
    const p: Partial = {
      stage: 'payload',
      channel,
      cmd,
      len,
      have: first.length,
      pieces: !stream && first.length > 0 ? { head: first, tail: null } : null,
    };
    return [framesAt(offset + rem, p), out];
  }
  return [framesAt(offset, partial), out];
};

// ---------------------------------------------------------------------------
// reducer
// ---------------------------------------------------------------------------

const withError = (s: DecoderState, frames: readonly RawFrame[]): FeedResult => [
  s,
  frames,
  s.phase === 'failed' ? s.error : null,
];

/**
 * Feeds one chunk. Returns the new state, the frames completed by this chunk
 * and the TCP_DATA pieces it carried (in order; payloads are views of `chunk`
 * where possible), and an error when
 * the stream is broken (then the state is `failed` and stays so). Frames cut
 * before the error are still returned.
 */
export const feed = (state: DecoderState, chunk: Uint8Array): FeedResult => {
  if (state.phase === 'failed') return [state, [], state.error];
  if (state.phase === 'banner') {
    const [next, used] = scanBanner(state, chunk);
    if (next.phase !== 'frames' || used === chunk.length) return withError(next, []);
    const [after, frames] = scanFrames(next, chunk, used);
    return withError(after, frames);
  }
  const [next, frames] = scanFrames(state, chunk, 0);
  return withError(next, frames);
};

/** The stream ended here: an error if it stopped before the banner or inside a frame. */
export const finish = (state: DecoderState): string | null => {
  switch (state.phase) {
    case 'failed':
      return state.error;
    case 'banner':
      return 'the server closed the connection before sending its sshuttle banner';
    case 'frames': {
      const p = state.partial;
      if (p === null) return null;
      const have = p.stage === 'header' ? p.bytes.length : HDR_LEN + p.have;
      const want = p.stage === 'header' ? HDR_LEN : HDR_LEN + p.len;
      return `mux stream truncated: it ended inside a frame (${have} of ${want} bytes)`;
    }
  }
};
