// Reads bench-tunnel.sh lines ("LABEL key=value ...") on stdin, prints a
// table with each figure's ratio to stock sshuttle and to OpenSSH -L, and
// writes them as JSON to the path given as the first argument.
import { readFileSync, writeFileSync } from 'node:fs';

const rows = readFileSync(0, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => {
    const [label, ...pairs] = l.trim().split(/\s+/);
    const figures = Object.fromEntries(
      pairs.map((p) => {
        const [k, v] = p.split('=');
        const n = Number(v);
        return [k, v === '' || Number.isNaN(n) ? v : n];
      }),
    );
    return { label, figures };
  });
const byLabel = Object.fromEntries(rows.map((r) => [r.label, r.figures]));
const keys = [
  'up_MBps',
  'down_MBps',
  'http_keepalive_rps',
  'http_newconn_rps',
  'p99_newconn_ms',
  'dl100m_s',
  'p99_idle_ms',
  'p99_loaded_ms',
  'rss_mb',
  'rules_left',
];
const ratio = (a, b) =>
  typeof a === 'number' && typeof b === 'number' && b !== 0 ? (a / b).toFixed(2) : '-';
const ours = byLabel['sshuttle-ts'];
const lines = [];
lines.push(
  ['figure', ...rows.map((r) => r.label), 'ts/stock', 'ts/openssh']
    .map((c) => String(c).padEnd(18))
    .join(''),
);
for (const k of keys) {
  const cells = rows.map((r) => r.figures[k] ?? '-');
  lines.push(
    [
      k,
      ...cells,
      ratio(ours?.[k], byLabel.sshuttle?.[k]),
      ratio(ours?.[k], byLabel['openssh-L']?.[k]),
    ]
      .map((c) => String(c).padEnd(18))
      .join(''),
  );
}
console.log(lines.join('\n'));
writeFileSync(
  process.argv[2] ?? 'bench.json',
  `${JSON.stringify({ at: new Date().toISOString(), rows }, null, 2)}\n`,
);
console.log(`\nwritten: ${process.argv[2]}`);
