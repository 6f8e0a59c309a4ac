/**
 * The two line-oriented file formats of the command line: `@file` argument
 * files and `-X`/`-s` subnet lists.
 */

/**
 * The arguments of an `@file`: one per line, surrounding blanks stripped, then
 * one matching pair of surrounding `'` or `"` (users paste shell-quoted
 * values). Lines starting with `#` are comments. Blank lines are skipped
 * (upstream turns them into empty arguments, which then fail as subnets).
 */
export const argsFromArgFile = (content: string): string[] =>
  content
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) =>
      line.length >= 2 && (line[0] === "'" || line[0] === '"') && line[line.length - 1] === line[0]
        ? line.slice(1, -1)
        : line,
    );

/** One non-comment line of a list file, with its 1-based line number for messages. */
export interface ListEntry {
  readonly line: number;
  readonly text: string;
}

/** Entries of a `-X`/`-s` file: one per line, `#` comments and blank lines skipped. */
export const entriesFromListFile = (content: string): ListEntry[] =>
  content
    .split(/\r?\n/)
    .map((raw, index) => ({ line: index + 1, text: raw.trim() }))
    .filter((entry) => entry.text !== '' && !entry.text.startsWith('#'));
