/**
 * The live status line on a terminal: redrawn about once a second in place
 * (carriage return, clear to end of line); cleared before each log line so
 * logs never mix with it.
 */
export interface StatusLine {
  /** Erases the line (before a log line is written). */
  readonly clear: () => void;
  /** Stops redrawing and erases the line. */
  readonly stop: () => void;
}

const CLEAR = '\r\x1b[K';

export const startStatusLine = (
  render: () => string,
  out: NodeJS.WriteStream = process.stderr,
  everyMs = 1_000,
): StatusLine => {
  let shown = false;
  let stopped = false;
  const draw = (): void => {
    if (stopped) return;
    const width = Math.max(20, (out.columns || 80) - 1);
    const text = render();
    out.write(`${CLEAR}${text.length > width ? `${text.slice(0, width - 1)}~` : text}`);
    shown = true;
  };
  const timer = setInterval(draw, everyMs);
  timer.unref();
  const clear = (): void => {
    if (!shown) return;
    out.write(CLEAR);
    shown = false;
  };
  return {
    clear,
    stop: () => {
      stopped = true;
      clearInterval(timer);
      clear();
    },
  };
};
