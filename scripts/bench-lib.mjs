// The benchmark report's logic, importable (scripts/bench-report.mjs is the
// command; test/unit/bench-report.test.ts tests this).
//
// Input lines come from test/lab/bench-tunnel.sh, bench-extra.sh and
// bench-warmup.sh:
// "LABEL key=value ...". Several lines with the same label are runs (or parts
// of one run); every numeric figure becomes the median of its runs, with the
// min and max as its spread.
import { esc } from './svg-text.mjs';

/** The tunnels, in table order, with a display name. */
export const TUNNELS = [
  ['sshuttle-ts', 'sshuttle-ts direct'],
  ['sshuttle-ts-helper', 'sshuttle-ts helper'],
  ['sshuttle', 'stock sshuttle'],
  ['openssh-L', 'OpenSSH -L'],
];

/** Figures, in table order: key, what it is, unit, whether higher is better. */
export const FIGURES = [
  ['up_MBps', 'upload', 'MB/s', true],
  ['down_MBps', 'download', 'MB/s', true],
  ['http_keepalive_rps', 'HTTP keep-alive', 'req/s', true],
  ['http_newconn_rps', 'HTTP new connection', 'req/s', true],
  ['newconn_first_rps', 'new connection, 1st second', 'req/s', true],
  ['newconn_warm_rps', 'new connection, warm', 'req/s', true],
  ['p99_newconn_ms', 'p99 new connection', 'ms', false],
  ['p99_idle_ms', 'p99 idle', 'ms', false],
  ['p99_loaded_ms', 'p99 under transfer', 'ms', false],
  ['dl100m_s', '100 MiB download', 's', false],
  ['conn_err', '1,000 conns: errors', '', false],
  ['conn_open_s', '1,000 conns: open time', 's', false],
  ['rss1k_mb', 'RSS at 1,000 conns', 'MB', false],
  ['rss_mb', 'RSS peak (whole run)', 'MB', false],
  ['dns_qps', 'DNS queries/s', 'q/s', true],
  ['first_byte_ms', 'start to first byte', 'ms', false],
  ['dns_ok', 'DNS resolves', '', true],
  ['rules_left', 'rules left after TERM', '', false],
];

/** Per-second lists (bench-warmup.sh): kept in the JSON, too long for the table. */
export const DETAIL_KEYS = new Set(['newconn_by_second', 'cpu_us_per_req']);

/** "LABEL k=v k=v" → { label, figures } (numbers where they parse, else strings). */
export const parseLine = (line) => {
  const [label, ...pairs] = line.trim().split(/\s+/);
  const figures = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const k = p.slice(0, eq);
    const v = p.slice(eq + 1);
    const n = Number(v);
    figures[k] = v === '' || Number.isNaN(n) ? v : n;
  }
  return { label, figures };
};

export const parseLines = (text) =>
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(parseLine);

/** Median of numbers (mean of the middle two for an even count); null if none. */
export const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Rows → { label: { key: { median, min, max, n, values } | { text } } }, labels
 * in the order they first appear. A figure with no numeric value in any run
 * keeps its last text (e.g. "error=tunnel-never-came-up") as { text }.
 */
export const aggregate = (rows) => {
  const collected = new Map();
  for (const { label, figures } of rows) {
    if (!collected.has(label)) collected.set(label, new Map());
    const per = collected.get(label);
    for (const [k, v] of Object.entries(figures)) {
      if (!per.has(k)) per.set(k, []);
      per.get(k).push(v);
    }
  }
  const out = {};
  for (const [label, per] of collected) {
    out[label] = {};
    for (const [k, vs] of per) {
      const nums = vs.filter((v) => typeof v === 'number' && Number.isFinite(v));
      if (nums.length === 0) {
        const text = vs.filter((v) => v !== '').at(-1);
        if (text !== undefined) out[label][k] = { text };
        continue;
      }
      out[label][k] = {
        median: median(nums),
        min: Math.min(...nums),
        max: Math.max(...nums),
        n: nums.length,
        values: nums,
      };
    }
  }
  return out;
};

/** a / b for two finite numbers with b != 0, else null. */
export const ratio = (a, b) =>
  typeof a === 'number' &&
  typeof b === 'number' &&
  Number.isFinite(a) &&
  Number.isFinite(b) &&
  b !== 0
    ? a / b
    : null;

/** A number shown with about three significant digits. */
export const fmt = (x) => {
  if (x === null || x === undefined) return '-';
  if (typeof x !== 'number') return String(x);
  const a = Math.abs(x);
  if (a >= 100 || Number.isInteger(x)) return String(Math.round(x));
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
};

/** A figure's median and spread, all three with the median's precision. */
export const cell = (f) => {
  if (f === undefined) return '-';
  if ('text' in f) return f.text;
  if (!(f.n > 1 && f.min !== f.max)) return fmt(f.median);
  const a = Math.abs(f.median);
  const whole = [f.median, f.min, f.max].every(Number.isInteger);
  const digits = whole || a >= 100 ? 0 : a >= 10 ? 1 : 2;
  const show = (x) => x.toFixed(digits);
  return `${show(f.median)} (${show(f.min)}-${show(f.max)})`;
};

/** Labels present in agg, known tunnels first, then any others. */
export const labelsOf = (agg) => {
  const known = TUNNELS.map(([l]) => l).filter((l) => l in agg);
  return [...known, ...Object.keys(agg).filter((l) => !known.includes(l))];
};

export const displayName = (label) => TUNNELS.find(([l]) => l === label)?.[1] ?? label;

/** Ratio columns: each sshuttle-ts transport present vs stock and vs OpenSSH. */
export const ratioColumns = (agg) => {
  const cols = [];
  for (const ours of ['sshuttle-ts', 'sshuttle-ts-helper']) {
    if (!(ours in agg)) continue;
    const short = ours === 'sshuttle-ts' ? 'direct' : 'helper';
    for (const [peer, peerShort] of [
      ['sshuttle', 'stock'],
      ['openssh-L', 'ssh -L'],
    ]) {
      if (peer in agg) cols.push({ ours, peer, title: `${short}/${peerShort}` });
    }
  }
  return cols;
};

/** The ratio table as data: { header: [...], rows: [[...], ...] } of strings. */
export const tableData = (agg) => {
  const labels = labelsOf(agg);
  const rcols = ratioColumns(agg);
  const header = ['figure', ...labels.map(displayName), ...rcols.map((c) => c.title)];
  const rows = [];
  const keys = [
    ...FIGURES.map(([k]) => k),
    ...[...new Set(labels.flatMap((l) => Object.keys(agg[l])))].filter(
      (k) => !FIGURES.some(([f]) => f === k) && !DETAIL_KEYS.has(k),
    ),
  ];
  for (const k of keys) {
    if (!labels.some((l) => agg[l][k] !== undefined)) continue;
    const meta = FIGURES.find(([f]) => f === k);
    const name = meta ? `${meta[1]}${meta[2] ? ` (${meta[2]})` : ''}` : k;
    rows.push([
      name,
      ...labels.map((l) => cell(agg[l][k])),
      ...rcols.map((c) => {
        const r = ratio(agg[c.ours]?.[k]?.median, agg[c.peer]?.[k]?.median);
        return r === null ? '-' : `${r.toFixed(2)}x`;
      }),
    ]);
  }
  return { header, rows };
};

/** Plain-text table, columns padded. */
export const formatTable = ({ header, rows }) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
};

/** Markdown table of the same data. */
export const formatMarkdown = ({ header, rows }) =>
  [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');

const COLORS = {
  'sshuttle-ts': '#2563eb',
  'sshuttle-ts-helper': '#7c3aed',
  sshuttle: '#d97706',
  'openssh-L': '#059669',
};

/** Figures drawn in the chart (the ones that compare tunnels). */
export const CHART_FIGURES = [
  'up_MBps',
  'down_MBps',
  'http_keepalive_rps',
  'http_newconn_rps',
  'newconn_warm_rps',
  'p99_idle_ms',
  'p99_loaded_ms',
  'rss1k_mb',
  'dns_qps',
  'first_byte_ms',
];

/**
 * A hand-written SVG: one panel per figure, one horizontal bar per tunnel
 * (length = median relative to the panel's largest), a whisker for min-max,
 * and the value as text.
 */
export const renderSvg = (agg, { title = 'sshuttle-ts benchmark', subtitle = '' } = {}) => {
  const labels = labelsOf(agg);
  const figs = CHART_FIGURES.filter((k) => labels.some((l) => agg[l][k]?.median !== undefined));
  const cols = 3;
  const barH = 16;
  const gap = 4;
  const panelW = 300;
  const labelW = 120;
  const barMax = panelW - labelW - 60;
  const panelH = 24 + labels.length * (barH + gap) + 12;
  const top = 64;
  const width = cols * panelW + 20;
  const height = top + Math.ceil(figs.length / cols) * panelH + 10;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="40" fill="#555">${esc(subtitle)}</text>`,
  );
  let lx = 10;
  for (const l of labels) {
    out.push(
      `<rect x="${lx}" y="48" width="10" height="10" fill="${COLORS[l] ?? '#888'}"/>`,
      `<text x="${lx + 14}" y="57">${esc(displayName(l))}</text>`,
    );
    lx += 24 + displayName(l).length * 6.5;
  }
  figs.forEach((k, i) => {
    const meta = FIGURES.find(([f]) => f === k);
    const x0 = 10 + (i % cols) * panelW;
    const y0 = top + Math.floor(i / cols) * panelH;
    const better = meta[3] ? 'higher is better' : 'lower is better';
    out.push(
      `<text x="${x0}" y="${y0 + 14}" font-weight="bold">${esc(meta[1])} (${esc(meta[2] || 'count')})</text>`,
      `<text x="${x0 + panelW - 20}" y="${y0 + 14}" fill="#888" text-anchor="end" font-size="9">${better}</text>`,
    );
    const scale = Math.max(...labels.map((l) => agg[l][k]?.max ?? 0), 1e-9);
    labels.forEach((l, j) => {
      const f = agg[l][k];
      const y = y0 + 22 + j * (barH + gap);
      out.push(
        `<text x="${x0 + labelW - 6}" y="${y + barH - 4}" text-anchor="end">${esc(displayName(l))}</text>`,
      );
      if (f?.median === undefined) {
        out.push(`<text x="${x0 + labelW}" y="${y + barH - 4}" fill="#999">n/a</text>`);
        return;
      }
      const w = (f.median / scale) * barMax;
      out.push(
        `<rect x="${x0 + labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[l] ?? '#888'}"/>`,
      );
      if (f.max > f.min) {
        const a = x0 + labelW + (f.min / scale) * barMax;
        const b = x0 + labelW + (f.max / scale) * barMax;
        const m = y + barH / 2;
        out.push(
          `<path d="M${a.toFixed(1)} ${m}H${b.toFixed(1)}M${a.toFixed(1)} ${m - 4}V${m + 4}M${b.toFixed(1)} ${m - 4}V${m + 4}" stroke="#111" stroke-width="1"/>`,
        );
      }
      const tx = x0 + labelW + Math.max(w, (f.max / scale) * barMax) + 4;
      out.push(`<text x="${tx.toFixed(1)}" y="${y + barH - 4}">${esc(fmt(f.median))}</text>`);
    });
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
};
