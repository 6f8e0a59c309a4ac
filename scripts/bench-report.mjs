// Reads bench-tunnel.sh / bench-extra.sh lines ("LABEL key=value ...", one or
// more per tunnel and run) on stdin, prints each figure's median (min-max) for
// every tunnel with the ratios of sshuttle-ts (direct and helper) to stock
// sshuttle and to OpenSSH -L, and writes:
//   argv[2]                JSON: raw rows, medians/spreads, the table
//   argv[3] (optional)     an SVG bar chart
// Environment: BENCH_NOTE (a line for the chart's subtitle and the JSON).
import { readFileSync, writeFileSync } from 'node:fs';
import {
  aggregate,
  formatMarkdown,
  formatTable,
  parseLines,
  renderSvg,
  tableData,
} from './bench-lib.mjs';

const [jsonOut = 'bench.json', svgOut] = process.argv.slice(2);
const rows = parseLines(readFileSync(0, 'utf8'));
const agg = aggregate(rows);
const table = tableData(agg);
const at = new Date().toISOString();
const runs = Math.max(
  0,
  ...Object.values(agg).map((figs) => Math.max(0, ...Object.values(figs).map((f) => f.n ?? 0))),
);
const note = process.env.BENCH_NOTE ?? '';
console.log(formatTable(table));
console.log('\nmedian (min-max) of each figure; ratios are of medians');
writeFileSync(
  jsonOut,
  `${JSON.stringify({ at, note, runs, rows, aggregate: agg, table, markdown: formatMarkdown(table) }, null, 2)}\n`,
);
console.log(`written: ${jsonOut}`);
if (svgOut) {
  const subtitle = `${at.slice(0, 16).replace('T', ' ')} UTC, median of ${runs} run(s), whiskers min-max${note ? `; ${note}` : ''}`;
  writeFileSync(svgOut, renderSvg(agg, { subtitle }));
  console.log(`written: ${svgOut}`);
}
