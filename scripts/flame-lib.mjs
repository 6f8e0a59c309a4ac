// Flame graphs as one self-contained SVG, from either profiler we use:
// V8's `.cpuprofile` (node --cpu-prof) or the text of `perf script` (perf
// record -g, node --perf-basic-prof). Both are folded into stacks first
// (`root;...;leaf` -> weight), so the drawing does not care where they came
// from. Plain JavaScript like bench-lib.mjs: the scripts run without a build.
import { esc } from './svg-text.mjs';

/** `file:///x/y/dist/bundle/a.mjs` -> `dist/bundle/a.mjs`; node_modules kept from there. */
const shortUrl = (url) =>
  url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist|src|scripts|test)\//, '$1/');

/** The frame of a V8 profile node as a label. */
const cpuFrameName = ({ functionName, url, lineNumber }) => {
  const name = functionName || '(anonymous)';
  if (!url) return name;
  return `${name} ${shortUrl(url)}:${lineNumber + 1}`;
};

/**
 * A V8 `.cpuprofile` folded: the path from the root to each sampled node,
 * weighted by the sample's time in µs (`timeDeltas[i]` for sample `i`, as
 * bench-profile-summary.mjs counts it). `(root)` is left out of the paths and
 * `(idle)` samples are dropped: a flame graph shows where busy time goes.
 */
export const foldCpuProfile = (prof) => {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const pathOf = new Map();
  const path = (id) => {
    const known = pathOf.get(id);
    if (known !== undefined) return known;
    const n = byId.get(id);
    const up = parent.get(id);
    const p =
      up === undefined || n.callFrame.functionName === '(root)'
        ? []
        : [...path(up), cpuFrameName(n.callFrame)];
    pathOf.set(id, p);
    return p;
  };
  const folded = new Map();
  prof.samples.forEach((id, i) => {
    const n = byId.get(id);
    if (n === undefined || n.callFrame.functionName === '(idle)') return;
    const p = path(id);
    if (p.length === 0) return;
    const key = p.join(';');
    folded.set(key, (folded.get(key) ?? 0) + (prof.timeDeltas?.[i] ?? 1));
  });
  return folded;
};

/**
 * One frame line of `perf script` (`ADDR SYMBOL+OFFSET (DSO)`) as a label:
 * offsets and addresses go, kernel frames get ` [k]`, frames of shared
 * libraries other than node get the library's name, JIT frames keep
 * perf-basic-prof's `JS:` name with the URL shortened.
 */
export const perfFrameName = (line) => {
  const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(line);
  if (m === null) return null;
  let [, sym, dso] = m;
  sym = sym.replace(/\+0x[0-9a-f]+$/, '');
  const lib = dso.split('/').pop() ?? dso;
  if (sym === '[unknown]') return `[unknown] [${lib}]`;
  if (dso === '[kernel.kallsyms]') return `${sym} [k]`;
  if (sym.startsWith('JS:')) {
    return sym.replace(/(file:\/\/)?\/\S*?\/(node_modules|dist|src)\//, '$2/');
  }
  if (lib === 'node' || lib.startsWith('perf-')) return sym;
  return `${sym} [${lib}]`;
};

/**
 * `perf script` text folded: one sample per blank-line-separated record, its
 * frames listed leaf first; weight 1 per sample. The thread's command name
 * (first word of the record's header) is the root frame, so the compiler and
 * GC threads show apart from the main thread.
 */
export const foldPerfScript = (text) => {
  const folded = new Map();
  for (const record of text.split(/\n\s*\n/)) {
    const lines = record.split('\n').filter((l) => l.trim() !== '');
    if (lines.length < 2) continue;
    const thread = lines[0].trim().split(/\s+/)[0];
    const frames = [];
    for (const l of lines.slice(1)) {
      const f = perfFrameName(l);
      if (f !== null) frames.push(f);
    }
    if (frames.length === 0) continue;
    const key = [thread, ...frames.reverse()].join(';');
    folded.set(key, (folded.get(key) ?? 0) + 1);
  }
  return folded;
};

/**
 * Folded stacks merged into one tree: `value` is a frame's total weight,
 * `self` what was sampled in it, children sorted by name (as flamegraph.pl
 * does, so the same profile always draws the same; x says nothing of time).
 */
export const flameTree = (folded, rootName = 'all') => {
  const mk = (name) => ({ name, value: 0, self: 0, children: new Map() });
  const root = mk(rootName);
  for (const [stack, w] of folded) {
    if (!(w > 0)) continue;
    root.value += w;
    let node = root;
    for (const name of stack.split(';')) {
      let next = node.children.get(name);
      if (next === undefined) {
        next = mk(name);
        node.children.set(name, next);
      }
      next.value += w;
      node = next;
    }
    node.self += w;
  }
  const freeze = (n) => ({
    name: n.name,
    value: n.value,
    self: n.self,
    children: [...n.children.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map(freeze),
  });
  return freeze(root);
};

/**
 * Each frame of the tree at least `minShare` of the total wide, with its
 * position: `x` and `w` as shares of the total (0..1), `depth` from the root.
 * A frame too narrow is left out with everything above it.
 */
export const flameRects = (tree, minShare = 0) => {
  const out = [];
  if (!(tree.value > 0)) return out;
  const walk = (n, x, depth) => {
    const w = n.value / tree.value;
    if (w < minShare) return;
    out.push({ name: n.name, value: n.value, self: n.self, x, w, depth });
    let cx = x;
    for (const c of n.children) {
      walk(c, cx, depth + 1);
      cx += c.value / tree.value;
    }
  };
  walk(tree, 0, 0);
  return out;
};

/** Which part of the stack a frame belongs to, for its colour. */
export const areaOf = (name) => {
  if (name.endsWith(' [k]')) return 'kernel';
  if (/garbage collector|Scavenge|MarkCompact|ConcurrentMarking|Sweeper|::Heap::/.test(name)) {
    return 'gc';
  }
  if (name.includes('node_modules/ssh2/')) return 'ssh2';
  // The remote helper runs from stdin under the name sshuttle-ts-helper.cjs.
  if (/(^|\s)(dist|src)\/|\/sshuttle-ts-helper\.cjs:/.test(name)) return 'sshuttle-ts';
  if (name.includes('node_modules/')) return 'npm';
  if (/\snode:[a-z_]/.test(name)) return 'node';
  return 'native';
};

/** Hue ranges per area; within one, a frame's hue comes from its name. */
const PALETTE = {
  'sshuttle-ts': [205, 225],
  ssh2: [265, 290],
  node: [95, 135],
  npm: [165, 185],
  kernel: [20, 40],
  gc: [0, 0],
  native: [45, 60],
};

const hash = (s) => {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) / 4294967296;
};

const colorOf = (name) => {
  const area = areaOf(name);
  if (area === 'gc') return `hsl(0, 0%, ${Math.round(62 + 16 * hash(name))}%)`;
  const [lo, hi] = PALETTE[area];
  return `hsl(${Math.round(lo + (hi - lo) * hash(name))}, 70%, ${Math.round(62 + 10 * hash(`${name}.`))}%)`;
};

/** Characters of 11 px sans-serif that fit in `px`, about. */
const fits = (px) => Math.floor((px - 6) / 6.2);

/**
 * The SVG: a flame graph (root at the bottom), a title and subtitle, and a
 * legend of the areas' colours. Every frame has a tooltip with its total
 * and self share; a label where it fits. `unit` names the weight (samples,
 * µs) in the tooltips.
 */
export const flameSvg = (
  tree,
  { title = 'flame graph', subtitle = '', width = 1200, minPx = 1, unit = 'samples' } = {},
) => {
  const rowH = 16;
  const top = 62;
  const rects = flameRects(tree, minPx / width);
  const maxDepth = rects.reduce((m, r) => Math.max(m, r.depth), 0);
  const height = top + (maxDepth + 1) * rowH + 8;
  const pct = (v) => ((100 * v) / tree.value).toFixed(2);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="37" fill="#555">${esc(subtitle)}</text>`,
  ];
  let lx = 10;
  for (const area of ['sshuttle-ts', 'ssh2', 'node', 'npm', 'native', 'gc', 'kernel']) {
    const sample = area === 'gc' ? 'hsl(0, 0%, 70%)' : `hsl(${PALETTE[area][0]}, 70%, 66%)`;
    const label = area === 'native' ? 'native (V8, node, libc)' : area;
    out.push(
      `<rect x="${lx}" y="45" width="10" height="10" fill="${sample}"/>`,
      `<text x="${lx + 14}" y="54">${esc(label)}</text>`,
    );
    lx += 24 + label.length * 6.2;
  }
  for (const r of rects) {
    const x = r.x * width;
    const w = r.w * width;
    const y = height - 8 - (r.depth + 1) * rowH;
    const tip = `${r.name} (${r.value} ${unit}, ${pct(r.value)}%; self ${pct(r.self)}%)`;
    const n = fits(w);
    const label =
      n >= 3 ? (r.name.length <= n ? r.name : `${r.name.slice(0, Math.max(1, n - 2))}..`) : '';
    out.push(
      `<g><title>${esc(tip)}</title><rect x="${x.toFixed(2)}" y="${y}" width="${Math.max(0.1, w - 0.5).toFixed(2)}" height="${rowH - 1}" fill="${colorOf(r.name)}" rx="1"/>${
        label ? `<text x="${(x + 3).toFixed(2)}" y="${y + rowH - 4}">${esc(label)}</text>` : ''
      }</g>`,
    );
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
};
