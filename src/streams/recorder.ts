/**
 * `--record FILE`: every folded event and its commands as JSON lines.
 * Serialisation happens only when recording is on; lines are batched and
 * written through a stream so the data path never waits on the disk.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Command } from '../domain/commands.js';
import type { Event } from '../domain/events.js';
import {
  encodeLine,
  type Header,
  RECORDING_FORMAT,
  RECORDING_VERSION,
} from '../domain/recording.js';

export interface Recorder {
  readonly observe: (event: Event, state: unknown, commands: readonly Command[]) => void;
  /** Flushes and closes the file. */
  readonly close: () => Promise<void>;
}

export const openRecorder = (
  path: string,
  opts: { readonly program: string; readonly payload: boolean; readonly startedAt: Date },
): Recorder => {
  const out: WriteStream = createWriteStream(path, { flags: 'w', mode: 0o600 });
  const header: Header = {
    format: RECORDING_FORMAT,
    version: RECORDING_VERSION,
    program: opts.program,
    startedAt: opts.startedAt.toISOString(),
    payload: opts.payload,
  };
  let pending: string[] = [JSON.stringify(header)];
  let scheduled = false;
  let seq = 0;
  const flush = (): void => {
    scheduled = false;
    if (pending.length === 0) return;
    out.write(`${pending.join('\n')}\n`);
    pending = [];
  };
  return {
    observe: (event, _state, commands) => {
      seq += 1;
      pending.push(encodeLine(seq, event, commands, opts.payload));
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        flush();
        out.end(resolve);
      }),
  };
};
