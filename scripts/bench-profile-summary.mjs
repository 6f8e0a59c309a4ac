// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and
// per area (our code, ssh2, node internals, GC, ...), as shares of the busy
// (non-idle) time.
//   node scripts/bench-profile-summary.mjs FILE.cpuprofile [TOP=25]
import { readFileSync } from 'node:fs';

const [file, topArg = '25'] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
prof.samples.forEach((id, i) => {
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
});

const area = (url, name) => {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'native/program';
  if (url.includes('/node_modules/ssh2/')) return 'ssh2';
  if (url.includes('/node_modules/')) return `npm:${url.split('/node_modules/')[1].split('/')[0]}`;
  if (url.includes('/dist/')) return 'sshuttle-ts';
  if (url.startsWith('node:')) return 'node internals';
  return url === '' ? 'native/builtin' : 'other';
};

const fns = new Map();
const areas = new Map();
let busy = 0;
let idle = 0;
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const { functionName, url, lineNumber } = n.callFrame;
  const name = functionName || '(anonymous)';
  const a = area(url, name);
  if (a === 'idle') {
    idle += us;
    continue;
  }
  busy += us;
  const short = url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^file:\/\//, '');
  const key = `${name} ${short}${url ? `:${lineNumber + 1}` : ''}`;
  fns.set(key, (fns.get(key) ?? 0) + us);
  areas.set(a, (areas.get(a) ?? 0) + us);
}
const pct = (us) => `${((100 * us) / busy).toFixed(1)}%`.padStart(6);
console.log(
  `profile: ${(busy / 1e6).toFixed(1)} s busy, ${(idle / 1e6).toFixed(1)} s idle (${file})`,
);
console.log('\nself time by area:');
for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1])) console.log(`${pct(us)}  ${a}`);
console.log(`\ntop ${topArg} functions by self time:`);
for (const [k, us] of [...fns].sort((x, y) => y[1] - x[1]).slice(0, Number(topArg))) {
  console.log(`${pct(us)}  ${k}`);
}
