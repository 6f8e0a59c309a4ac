/**
 * Replay: fold recorded events through the same reducer, with no drivers,
 * and compare the commands it answers with the recorded ones.
 */
import { summarizeCommand } from '../domain/commands.js';
import type { Line } from '../domain/recording.js';
import { initialSession, reduceSession, type SessionState } from '../domain/session.js';

export interface Divergence {
  readonly seq: number;
  readonly recorded: readonly Record<string, unknown>[];
  readonly replayed: readonly Record<string, unknown>[];
  readonly stateBefore: SessionState;
}

export interface ReplayResult {
  readonly final: SessionState;
  readonly divergence: Divergence | null;
}

/** Folds `lines`; `onStep` sees each state (for a timeline). Stops at the first divergence. */
export const replayLines = (
  lines: readonly Line[],
  onStep?: (line: Line, state: SessionState) => void,
): ReplayResult => {
  let state = initialSession;
  for (const line of lines) {
    const [next, commands] = reduceSession(state, line.event);
    const replayed = commands.map(summarizeCommand);
    if (JSON.stringify(replayed) !== JSON.stringify(line.commands)) {
      return {
        final: state,
        divergence: { seq: line.seq, recorded: line.commands, replayed, stateBefore: state },
      };
    }
    state = next;
    onStep?.(line, state);
  }
  return { final: state, divergence: null };
};
