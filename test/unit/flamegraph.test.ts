import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc, it as itProp } from '@fast-check/vitest';
import { afterAll, describe, expect, it } from 'vitest';

// scripts/flame-lib.mjs is plain JavaScript (the scripts run without a build):
// load it by URL and type what the test uses, as bench-report.test.ts does.
interface Tree {
  name: string;
  value: number;
  self: number;
  children: Tree[];
}
interface Rect {
  name: string;
  value: number;
  self: number;
  x: number;
  w: number;
  depth: number;
}
interface FlameLib {
  foldCpuProfile(prof: unknown): Map<string, number>;
  foldPerfScript(text: string): Map<string, number>;
  perfFrameName(line: string): string | null;
  flameTree(folded: Map<string, number>, rootName?: string): Tree;
  flameRects(tree: Tree, minShare?: number): Rect[];
  areaOf(name: string): string;
  flameSvg(tree: Tree, opts?: { title?: string; minPx?: number; width?: number }): string;
}
const lib: FlameLib = await import(new URL('../../scripts/flame-lib.mjs', import.meta.url).href);
const ROOT = new URL('../..', import.meta.url).pathname;

const frame = (functionName: string, url = '', lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
  columnNumber: 0,
  scriptId: '0',
});

/** (root) -> main -> {fold, decrypt}; (root) -> (idle); (root) -> (garbage collector). */
const PROFILE = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 5, 6] },
    { id: 2, callFrame: frame('main', 'file:///work/x/dist/bundle/a.mjs', 9), children: [3, 4] },
    { id: 3, callFrame: frame('fold', 'file:///work/x/dist/bundle/a.mjs', 99), children: [] },
    {
      id: 4,
      callFrame: frame('decrypt', 'file:///work/x/node_modules/ssh2/lib/crypto.js', 0),
      children: [],
    },
    { id: 5, callFrame: frame('(idle)'), children: [] },
    { id: 6, callFrame: frame('(garbage collector)'), children: [] },
  ],
  samples: [3, 3, 4, 5, 2, 6],
  timeDeltas: [10, 20, 30, 1000, 50, 7],
};

describe('flame graph: folding', () => {
  it('folds a V8 profile into root-to-leaf stacks weighted by time, without (root) or (idle)', () => {
    expect(Object.fromEntries(lib.foldCpuProfile(PROFILE))).toEqual({
      'main dist/bundle/a.mjs:10;fold dist/bundle/a.mjs:100': 30,
      'main dist/bundle/a.mjs:10;decrypt node_modules/ssh2/lib/crypto.js:1': 30,
      'main dist/bundle/a.mjs:10': 50,
      '(garbage collector)': 7,
    });
  });

  it('folds perf script records leaf-last, thread first, offsets and addresses gone', () => {
    const text = [
      'node 15870 83376.927993:     250000 cpu-clock: ',
      '\tffffffff81fb581c tcp_sendmsg+0x8c ([kernel.kallsyms])',
      '\t    7fe2840ddec9 JS:*fold file:///work/main/dist/bundle/client-X.mjs:11598:16+0x349 (/tmp/perf-15870.map)',
      '\t         14ce0dc Builtins_JSEntryTrampoline+0x5c (/usr/bin/node)',
      '\t    7f00000000aa __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)',
      '',
      'node 15871 83376.928000:     250000 cpu-clock: ',
      '\t    7fe2840ddec9 [unknown] (/tmp/perf-15870.map)',
      '',
      'node 15870 83376.929993:     250000 cpu-clock: ',
      '\tffffffff81fb581c tcp_sendmsg+0x10 ([kernel.kallsyms])',
      '\t    7fe2840ddec9 JS:*fold file:///work/main/dist/bundle/client-X.mjs:11598:16+0x20 (/tmp/perf-15870.map)',
      '\t         14ce0dc Builtins_JSEntryTrampoline+0x5c (/usr/bin/node)',
      '\t    7f00000000aa __libc_start_call_main+0x7a (/usr/lib/x86_64-linux-gnu/libc.so.6)',
      '',
    ].join('\n');
    expect(Object.fromEntries(lib.foldPerfScript(text))).toEqual({
      'node;__libc_start_call_main [libc.so.6];Builtins_JSEntryTrampoline;JS:*fold dist/bundle/client-X.mjs:11598:16;tcp_sendmsg [k]': 2,
      'node;[unknown] [perf-15870.map]': 1,
    });
  });

  it('reads no frame from a line that is not one', () => {
    expect(lib.perfFrameName('node 1 2.0: 250000 cpu-clock:')).toBeNull();
  });
});

describe('flame graph: areas', () => {
  it('tells our code, ssh2, node internals, the kernel, the collector and native code apart', () => {
    expect(lib.areaOf('JS:*fold dist/bundle/client-X.mjs:1:2')).toBe('sshuttle-ts');
    expect(lib.areaOf('fold dist/bundle/a.mjs:100')).toBe('sshuttle-ts');
    expect(lib.areaOf('JS:*A /sshuttle-ts-helper.cjs:9:2539')).toBe('sshuttle-ts');
    expect(lib.areaOf('decrypt node_modules/ssh2/lib/crypto.js:1')).toBe('ssh2');
    expect(lib.areaOf('JS:*emit node:events:471:44')).toBe('node');
    expect(lib.areaOf('node::StreamBase::Writev')).toBe('native');
    expect(lib.areaOf('tcp_sendmsg [k]')).toBe('kernel');
    expect(lib.areaOf('v8::internal::Scavenger::ScavengePage')).toBe('gc');
    expect(lib.areaOf('(garbage collector)')).toBe('gc');
    expect(lib.areaOf('pino node_modules/pino/pino.js:3')).toBe('npm');
  });
});

const foldedArb = fc
  .array(
    fc.tuple(
      fc.array(fc.constantFrom('a', 'b', 'c', 'd<x>', 'e&f'), { minLength: 1, maxLength: 5 }),
      fc.integer({ min: 1, max: 1000 }),
    ),
    { maxLength: 30 },
  )
  .map((entries) => {
    const m = new Map<string, number>();
    for (const [stack, w] of entries) {
      const k = stack.join(';');
      m.set(k, (m.get(k) ?? 0) + w);
    }
    return m;
  });

const nodes = (t: Tree): Tree[] => [t, ...t.children.flatMap(nodes)];

describe('flame graph: layout', () => {
  itProp.prop([foldedArb])('every frame is its own samples plus its children', (folded) => {
    const tree = lib.flameTree(folded);
    expect(tree.value).toBe([...folded.values()].reduce((a, b) => a + b, 0));
    for (const n of nodes(tree)) {
      expect(n.value).toBe(n.self + n.children.reduce((a, c) => a + c.value, 0));
      const names = n.children.map((c) => c.name);
      expect(names).toEqual([...names].sort());
      expect(new Set(names).size).toBe(names.length);
    }
    // Every stack's weight lands as self time at the end of its path.
    for (const [stack, w] of folded) {
      let n: Tree | undefined = tree;
      for (const name of stack.split(';')) n = n?.children.find((c) => c.name === name);
      expect(n?.self).toBe(w);
    }
  });

  itProp.prop([foldedArb, fc.constantFrom(0, 0.01, 0.1)])(
    'children sit side by side inside their parent, and no kept frame is narrower than asked',
    (folded, minShare) => {
      const rects = lib.flameRects(lib.flameTree(folded), minShare);
      const eps = 1e-9;
      for (const r of rects) {
        expect(r.w).toBeGreaterThanOrEqual(minShare - eps);
        const kids = rects.filter(
          (k) => k.depth === r.depth + 1 && k.x >= r.x - eps && k.x < r.x + r.w - eps,
        );
        let end = r.x;
        for (const k of kids.sort((a, b) => a.x - b.x)) {
          expect(k.x).toBeGreaterThanOrEqual(end - eps);
          end = k.x + k.w;
        }
        expect(end).toBeLessThanOrEqual(r.x + r.w + eps);
      }
      if (folded.size > 0) expect(rects[0]).toMatchObject({ x: 0, w: 1, depth: 0 });
    },
  );

  it('leaves out a frame too narrow, with everything above it', () => {
    const tree = lib.flameTree(
      new Map([
        ['big;above', 990],
        ['small;above-small', 10],
      ]),
    );
    expect(lib.flameRects(tree, 0.02).map((r) => r.name)).toEqual(['all', 'big', 'above']);
    expect(lib.flameRects(tree, 0).map((r) => r.name)).toContain('above-small');
  });
});

describe('flame graph: SVG', () => {
  const tree = lib.flameTree(
    new Map([
      ['main;<anonymous> & co', 60],
      ['main;fold', 40],
    ]),
  );

  it('escapes names, draws one rect per frame and says each share in a tooltip', () => {
    const svg = lib.flameSvg(tree, { title: 'a <title>' });
    expect(svg).toContain('a &lt;title&gt;');
    expect(svg).toContain('&lt;anonymous&gt; &amp; co (60 samples, 60.00%; self 60.00%)');
    expect(svg).not.toMatch(/<anonymous>/);
    expect(svg.match(/<g><title>/g)).toHaveLength(4); // all, main, two leaves
  });

  it('draws the same profile the same way, whatever order its stacks came in', () => {
    const reversed = lib.flameTree(
      new Map([
        ['main;fold', 40],
        ['main;<anonymous> & co', 60],
      ]),
    );
    expect(lib.flameSvg(reversed)).toBe(lib.flameSvg(tree));
  });
});

describe('flame graph: the command, on a real V8 profile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flame-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('draws a .cpuprofile that node --cpu-prof wrote, with the profiled function in it', () => {
    const run = spawnSync(
      process.execPath,
      [
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        '-e',
        'function busyLoopForFlame(){let x=0;for(let i=0;i<3e7;i++)x+=i%7;return x}busyLoopForFlame()',
      ],
      { encoding: 'utf8' },
    );
    expect(run.status).toBe(0);
    const prof = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    expect(prof).toBeDefined();
    const out = join(dir, 'out.svg');
    const draw = spawnSync(
      process.execPath,
      [join(ROOT, 'scripts/flamegraph.mjs'), join(dir, prof ?? ''), out, '--title', 'busy'],
      { encoding: 'utf8' },
    );
    expect(draw.status).toBe(0);
    const svg = readFileSync(out, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('busyLoopForFlame');
  });

  it('refuses input that is neither, with one line and exit 2', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{not json\n');
    const draw = spawnSync(
      process.execPath,
      [join(ROOT, 'scripts/flamegraph.mjs'), bad, join(dir, 'x.svg')],
      {
        encoding: 'utf8',
      },
    );
    expect(draw.status).toBe(2);
    expect(draw.stderr.trim().split('\n')).toHaveLength(1);
  });
});
