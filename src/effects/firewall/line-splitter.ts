/**
 * Cuts a byte stream into `\n`-terminated lines for the firewall line
 * protocol, refusing lines longer than a bound (so a misbehaving peer cannot
 * make either side buffer without limit).
 */
import { StringDecoder } from 'node:string_decoder';

export interface LineSplitter {
  /** Feed a chunk; returns the complete lines it finished (without `\n`). */
  readonly push: (chunk: Buffer | string) => string[];
  /** True once a line grew beyond the bound; later input is ignored. */
  readonly overflowed: () => boolean;
  /** Text after the last `\n` (an unterminated last line at EOF). */
  readonly rest: () => string;
}

export const makeLineSplitter = (maxLength: number): LineSplitter => {
  const decoder = new StringDecoder('utf8');
  let buf = '';
  let overflow = false;
  return {
    push: (chunk) => {
      if (overflow) return [];
      buf += typeof chunk === 'string' ? chunk : decoder.write(chunk);
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      if (buf.length > maxLength || parts.some((p) => p.length > maxLength)) {
        overflow = true;
        const ok: string[] = [];
        for (const p of parts) {
          if (p.length > maxLength) break;
          ok.push(p);
        }
        buf = '';
        return ok;
      }
      return parts;
    },
    overflowed: () => overflow,
    rest: () => buf,
  };
};
