/**
 * POSIX shell word splitting (no expansions), as Python's `shlex.split`
 * does for `SSHUTTLE_ARGS`: blanks separate words; `'...'` is literal;
 * inside `"..."` a backslash escapes only `\ " $ \`` and newline; outside
 * quotes a backslash escapes any character and backslash-newline joins lines.
 */
import * as E from 'fp-ts/lib/Either.js';

const BLANK = /[ \t\n\r]/;
const ESCAPABLE_IN_DOUBLE = new Set(['\\', '"', '$', '`', '\n']);

/** Splits `text` into words; Left on an unterminated quote or trailing backslash. */
export const shellWords = (text: string): E.Either<string, string[]> => {
  const words: string[] = [];
  let word = '';
  // A word can be empty (`''`), so "inside a word" is tracked apart from its text.
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (BLANK.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) return E.left('unterminated single quote');
      word += text.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= text.length) return E.left('unterminated double quote');
        const d = text[i] as string;
        if (d === '"') break;
        const next = text[i + 1];
        if (d === '\\' && next !== undefined && ESCAPABLE_IN_DOUBLE.has(next)) {
          if (next !== '\n') word += next;
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) return E.left('ends with a lone backslash');
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return E.right(words);
};

/** Quotes `word` for a POSIX shell, so that `shellWords` reads it back as one word. */
export const shellQuote = (word: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
