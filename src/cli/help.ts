/**
 * The `--help` text, rendered from the option table so every option appears.
 */
import { EXIT_CODES } from '../domain/exit-codes.js';
import { OPTION_GROUPS, OPTIONS, type OptionDef } from './options-table.js';

const USAGE = [
  'Usage: sshuttle-ts [options] -r [USER[:PASSWORD]@]HOST[:PORT] <subnets...>',
  '       sshuttle-ts replay FILE [-v]',
  '       sshuttle-ts status [PID|PORT] [--json]',
  '',
  'Capture TCP connections to the given subnets and carry them over ssh',
  '("poor man\'s VPN"). Options may also come from SSHUTTLE_ARGS (read first,',
  'so the command line wins) and from @FILE arguments (one argument per line).',
  '',
  'Subnets: IP[/WIDTH][:PORT[-PORT]], e.g. 10.0.0.0/8, 0/0 (everything),',
  '  1.2.3.4:80, 1.2.3.0/24:8000-9000, ::/0, [2001:db8::/64]:443, example.com/24.',
];

/** Column where descriptions start; longer option names push it to the next line. */
const DESCRIPTION_COLUMN = 34;
const LINE_WIDTH = 80;

/** Greedy wrap of words to `width` columns (an over-long word keeps its own line). */
const wrap = (words: readonly string[], width: number): string[] => {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  return [...lines, line];
};

const optionNames = (o: OptionDef): string => {
  const long = o.metavar === null ? `--${o.long}` : `--${o.long} ${o.metavar}`;
  return o.short === undefined ? `    ${long}` : `-${o.short}, ${long}`;
};

const optionLines = (o: OptionDef): string[] => {
  const names = `  ${optionNames(o)}`;
  // The default stays in one piece so it can be found on one line.
  const words = [
    ...o.help.split(' '),
    ...(o.default === undefined ? [] : [`[default: ${o.default}]`]),
  ];
  const indent = ' '.repeat(DESCRIPTION_COLUMN);
  const body = wrap(words, LINE_WIDTH - DESCRIPTION_COLUMN).map((l) => `${indent}${l}`);
  const [first, ...rest] = body;
  return names.length + 2 <= DESCRIPTION_COLUMN && first !== undefined
    ? [`${names.padEnd(DESCRIPTION_COLUMN)}${first.trimStart()}`, ...rest]
    : [names, ...body];
};

/** The full help text, ending with a newline. */
export const helpText = (): string => {
  const lines = [...USAGE];
  for (const group of OPTION_GROUPS) {
    lines.push('', `${group}:`);
    for (const o of OPTIONS as readonly OptionDef[]) {
      if (o.group === group) lines.push(...optionLines(o));
    }
  }
  lines.push('', 'Exit codes (docs/exit-codes.md):');
  for (const row of EXIT_CODES) lines.push(`  ${String(row.code).padStart(2)}  ${row.meaning}`);
  return `${lines.join('\n')}\n`;
};
