/**
 * The recording format: JSON lines. Line 1 is a header; every other line is
 * one folded event with the commands the reducer answered, so a replay can
 * point at the first event whose commands differ.
 */
import { isLeft } from 'fp-ts/lib/Either.js';
import * as t from 'io-ts';
import { PathReporter } from 'io-ts/lib/PathReporter.js';
import { type Command, summarizeCommand } from './commands.js';
import { type Event, EventC } from './events.js';

export const RECORDING_FORMAT = 'sshuttle-ts-recording';
export const RECORDING_VERSION = 1;

export const HeaderC = t.type({
  format: t.literal(RECORDING_FORMAT),
  version: t.literal(RECORDING_VERSION),
  program: t.string,
  startedAt: t.string,
  payload: t.boolean,
});
export type Header = t.TypeOf<typeof HeaderC>;

export const LineC = t.type({
  seq: t.number,
  event: EventC,
  commands: t.array(t.UnknownRecord),
});
export type Line = t.TypeOf<typeof LineC>;

const EMPTY = Buffer.alloc(0);

/** An event as recorded: without its payload unless payloads are recorded. */
export const redact = (e: Event, payload: boolean): Event =>
  (e.kind === 'data' || e.kind === 'udp.recv' || e.kind === 'udp.data') && !payload
    ? { ...e, chunk: EMPTY }
    : e;

/** One line of a recording, as text (without the newline). */
export const encodeLine = (
  seq: number,
  e: Event,
  commands: readonly Command[],
  payload: boolean,
): string =>
  JSON.stringify({
    seq,
    event: EventC.encode(redact(e, payload)),
    commands: commands.map(summarizeCommand),
  });

const reason = (errors: t.Errors): string =>
  PathReporter.report(t.failures(errors))[0] ?? 'invalid';

const parseJson = (text: string): { ok: true; value: unknown } | { ok: false } => {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
};

export type Decoded =
  | { readonly ok: true; readonly header: Header; readonly lines: readonly Line[] }
  | { readonly ok: false; readonly line: number; readonly message: string };

/** Decodes a whole recording; the error names the 1-based line number. */
export const decodeRecording = (text: string): Decoded => {
  const rows = text.split('\n');
  if (rows.at(-1) === '') rows.pop();
  if (rows.length === 0) return { ok: false, line: 1, message: 'empty file, no header' };
  const head = parseJson(rows[0] ?? '');
  if (!head.ok) return { ok: false, line: 1, message: 'header is not JSON' };
  const header = HeaderC.decode(head.value);
  if (isLeft(header)) {
    const v = head.value as { format?: unknown; version?: unknown } | null;
    const message =
      v?.format === RECORDING_FORMAT && v.version !== RECORDING_VERSION
        ? `recording version ${String(v.version)} is not supported (this program reads version ${RECORDING_VERSION})`
        : `not an sshuttle-ts recording header: ${reason(header.left)}`;
    return { ok: false, line: 1, message };
  }
  const lines: Line[] = [];
  for (let i = 1; i < rows.length; i++) {
    const json = parseJson(rows[i] ?? '');
    if (!json.ok) return { ok: false, line: i + 1, message: 'not JSON' };
    const line = LineC.decode(json.value);
    if (isLeft(line)) return { ok: false, line: i + 1, message: reason(line.left) };
    lines.push(line.right);
  }
  return { ok: true, header: header.right, lines };
};
