import { describe, expect, it } from 'vitest';

// scripts/bench-lib.mjs is plain JavaScript without type declarations: load it
// by URL so the type checker leaves it alone, and type what the test uses.
type Figure =
  | { median: number; min: number; max: number; n: number; values: number[] }
  | { text: string };
type Agg = Record<string, Record<string, Figure>>;
type Table = { header: string[]; rows: string[][] };
interface BenchLib {
  parseLine(line: string): { label: string; figures: Record<string, number | string> };
  parseLines(text: string): { label: string; figures: Record<string, number | string> }[];
  median(xs: readonly unknown[]): number | null;
  aggregate(rows: ReturnType<BenchLib['parseLines']>): Agg;
  ratio(a: unknown, b: unknown): number | null;
  fmt(x: unknown): string;
  cell(f: Figure | undefined): string;
  tableData(agg: Agg): Table;
  formatTable(t: Table): string;
  formatMarkdown(t: Table): string;
  renderSvg(agg: Agg, opts?: { title?: string; subtitle?: string }): string;
}
const lib: BenchLib = await import(new URL('../../scripts/bench-lib.mjs', import.meta.url).href);

const SAMPLE = `
sshuttle-ts up_MBps=280 down_MBps=250 rss_mb=150 dl100m_s=0.7
sshuttle-ts first_byte_ms=3000 conn_err=0 rss1k_mb=100 dns_qps=800
sshuttle-ts up_MBps=300 down_MBps=260 rss_mb=152 dl100m_s=0.8
sshuttle-ts first_byte_ms=2000 conn_err=0 rss1k_mb=98 dns_qps=900
sshuttle-ts up_MBps=290 down_MBps=255 rss_mb=151 dl100m_s=
sshuttle up_MBps=20 down_MBps=25
sshuttle up_MBps=18 down_MBps=21
sshuttle first_byte_ms=6000 conn_err=168 dns_qps=0
openssh-L up_MBps=320 down_MBps=240 dns_qps=
sshuttle-ts-helper error=tunnel-never-came-up
`;

describe('bench report: parsing', () => {
  it('reads labels and key=value pairs, numbers as numbers, empty and text as strings', () => {
    expect(lib.parseLine('  sshuttle-ts up_MBps=284.5 dns_qps= error=x=y junk  ')).toEqual({
      label: 'sshuttle-ts',
      figures: { up_MBps: 284.5, dns_qps: '', error: 'x=y' },
    });
  });
  it('skips blank lines', () => {
    expect(lib.parseLines('\n a k=1\n\n b k=2\n').map((r) => r.label)).toEqual(['a', 'b']);
  });
});

describe('bench report: median and spread', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(lib.median([3, 1, 2])).toBe(2);
    expect(lib.median([4, 1, 3, 2])).toBe(2.5);
    expect(lib.median([])).toBeNull();
    expect(lib.median(['', Number.NaN, 5])).toBe(5);
  });
  it('aggregates runs per label and figure with min, max and count', () => {
    const agg = lib.aggregate(lib.parseLines(SAMPLE));
    expect(agg['sshuttle-ts']?.up_MBps).toEqual({
      median: 290,
      min: 280,
      max: 300,
      n: 3,
      values: [280, 300, 290],
    });
    // A run that produced no number is left out, not counted as zero.
    expect(agg['sshuttle-ts']?.dl100m_s).toMatchObject({ median: 0.75, n: 2 });
    expect(agg.sshuttle?.down_MBps).toMatchObject({ median: 23, min: 21, max: 25 });
    expect(agg['openssh-L']?.dns_qps).toBeUndefined();
    expect(agg['sshuttle-ts-helper']?.error).toEqual({ text: 'tunnel-never-came-up' });
  });
});

describe('bench report: ratios and table', () => {
  it('divides two finite numbers, else null', () => {
    expect(lib.ratio(30, 10)).toBe(3);
    expect(lib.ratio(1, 0)).toBeNull();
    expect(lib.ratio(undefined, 3)).toBeNull();
    expect(lib.ratio('2', 1)).toBeNull();
  });
  it('shows median (min-max) per tunnel and the ratios of medians to stock and OpenSSH', () => {
    const t = lib.tableData(lib.aggregate(lib.parseLines(SAMPLE)));
    expect(t.header).toEqual([
      'figure',
      'sshuttle-ts direct',
      'sshuttle-ts helper',
      'stock sshuttle',
      'OpenSSH -L',
      'direct/stock',
      'direct/ssh -L',
      'helper/stock',
      'helper/ssh -L',
    ]);
    const up = t.rows.find((r) => r[0] === 'upload (MB/s)');
    expect(up).toEqual([
      'upload (MB/s)',
      '290 (280-300)',
      '-',
      '19 (18-20)',
      '320',
      '15.26x',
      '0.91x',
      '-',
      '-',
    ]);
    const dns = t.rows.find((r) => r[0] === 'DNS queries/s (q/s)');
    // Division by a zero median gives no ratio; OpenSSH has no DNS figure.
    expect(dns?.slice(1)).toEqual(['850 (800-900)', '-', '0', '-', '-', '-', '-', '-']);
    expect(t.rows.find((r) => r[0] === 'error')?.[2]).toBe('tunnel-never-came-up');
    const text = lib.formatTable(t);
    expect(text.split('\n')[0]).toMatch(/^figure\s+sshuttle-ts direct/);
    expect(lib.formatMarkdown(t).split('\n')[1]).toBe(
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
  });
  it('shows the warm-up figures (bench-warmup.sh) as rows, its per-second lists as text', () => {
    const t = lib.tableData(
      lib.aggregate(
        lib.parseLines(`
sshuttle-ts newconn_first_rps=900 newconn_warm_rps=2000 newconn_by_second=900,1500,2000,2000
sshuttle-ts newconn_first_rps=1100 newconn_warm_rps=2200 newconn_by_second=1100,1600,2200,2200
sshuttle newconn_first_rps=1000 newconn_warm_rps=1000 newconn_by_second=1000,1000,1000,1000
`),
      ),
    );
    expect(t.header).toEqual(['figure', 'sshuttle-ts direct', 'stock sshuttle', 'direct/stock']);
    const row = (name: string) => t.rows.find((r) => r[0] === name);
    expect(row('new connection, 1st second (req/s)')).toEqual([
      'new connection, 1st second (req/s)',
      '1000 (900-1100)',
      '1000',
      '1.00x',
    ]);
    expect(row('new connection, warm (req/s)')?.[3]).toBe('2.10x');
    // The per-second lists stay in the JSON (the aggregate), not the table.
    expect(t.rows.map((r) => r[0])).toEqual([
      'new connection, 1st second (req/s)',
      'new connection, warm (req/s)',
    ]);
  });
  it('shows a spread with the precision of its median', () => {
    expect(lib.cell({ median: 37.14, min: 36, max: 50.02, n: 3, values: [] })).toBe(
      '37.1 (36.0-50.0)',
    );
    expect(lib.cell({ median: 146, min: 145.4, max: 153, n: 3, values: [] })).toBe('146 (145-153)');
    expect(lib.cell({ median: 0.885, min: 0.75, max: 0.95, n: 3, values: [] })).toBe(
      '0.89 (0.75-0.95)',
    );
    expect(lib.cell({ median: 5, min: 5, max: 5, n: 3, values: [] })).toBe('5');
    expect(lib.cell(undefined)).toBe('-');
  });
  it('rounds to about three significant digits', () => {
    expect([lib.fmt(1234.5), lib.fmt(12.345), lib.fmt(1.2345), lib.fmt(7), lib.fmt(null)]).toEqual([
      '1235',
      '12.3',
      '1.23',
      '7',
      '-',
    ]);
  });
});

describe('bench report: SVG chart', () => {
  it('draws one bar per tunnel and figure, escapes text, and is well-formed enough', () => {
    const svg = lib.renderSvg(lib.aggregate(lib.parseLines(SAMPLE)), {
      subtitle: 'a <note> & more',
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('a &lt;note&gt; &amp; more');
    expect(svg).not.toContain('NaN');
    // upload panel: bars for direct, stock and OpenSSH; helper has none (n/a).
    expect(svg).toContain('upload (MB/s)');
    expect(svg).toContain('n/a');
  });
});
