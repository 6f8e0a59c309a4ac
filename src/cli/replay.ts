/**
 * `sshuttle-ts replay FILE`: folds a recording through the session reducer
 * and prints the state timeline, the final state, and the first divergence.
 */
import { readFile } from 'node:fs/promises';
import type { Event } from '../domain/events.js';
import { decodeRecording } from '../domain/recording.js';
import type { SessionState } from '../domain/session.js';
import { replayLines } from '../streams/replay.js';

const describeEvent = (e: Event): string => {
  switch (e.kind) {
    case 'data':
      return `data #${e.id} from ${e.from} ${e.size} B`;
    case 'conn.accept':
      return `accept #${e.id} ${e.src.ip}:${e.src.port} -> ${e.dst.ip}:${e.dst.port}`;
    case 'chan.open':
    case 'chan.failed':
    case 'full':
    case 'drain':
    case 'eof':
    case 'closed':
    case 'conn.accept-failed': {
      const { kind, t: _t, id, ...rest } = e;
      const extra = Object.values(rest)
        .filter((v) => v !== null)
        .join(' ');
      return `${kind} #${id}${extra ? ` ${extra}` : ''}`;
    }
    default: {
      const { kind, t: _t, ...rest } = e;
      return `${kind} ${JSON.stringify(rest)}`;
    }
  }
};

const summary = (s: SessionState): Record<string, unknown> => ({
  phase: s.phase,
  method: s.method,
  server: s.server?.address ?? null,
  listeners: s.listeners.map((l) => `${l.family === 6 ? `[${l.ip}]` : l.ip}:${l.port}`),
  open: s.conns.size,
  totals: s.totals,
  exit: s.exit,
});

export const runReplay = async (
  file: string,
  opts: { readonly verbose: number },
): Promise<number> => {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    process.stderr.write(`sshuttle-ts: cannot read recording ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  const decoded = decodeRecording(text);
  if (!decoded.ok) {
    process.stderr.write(`sshuttle-ts: ${file}:${decoded.line}: ${decoded.message}\n`);
    return 2;
  }
  const out = process.stdout;
  out.write(
    `recording by ${decoded.header.program}, started ${decoded.header.startedAt}, ${decoded.lines.length} events${decoded.header.payload ? ', with payloads' : ''}\n`,
  );
  const result = replayLines(decoded.lines, (line, s) => {
    if (line.event.kind === 'data' && opts.verbose === 0) return;
    const t = (line.event.t / 1000).toFixed(3).padStart(9);
    out.write(
      `${String(line.seq).padStart(6)} ${t}s  ${describeEvent(line.event).padEnd(60)} ${s.phase} open=${s.conns.size} up=${s.totals.bytesUp} down=${s.totals.bytesDown}\n`,
    );
  });
  out.write(`final state: ${JSON.stringify(summary(result.final))}\n`);
  if (result.divergence !== null) {
    const d = result.divergence;
    out.write(
      `DIVERGENCE at event ${d.seq}:\n  recorded: ${JSON.stringify(d.recorded)}\n  replayed: ${JSON.stringify(d.replayed)}\n  state before: ${JSON.stringify(summary(d.stateBefore))}\n`,
    );
    return 1;
  }
  out.write('replay matches the recording: every event produced the recorded commands\n');
  return 0;
};
