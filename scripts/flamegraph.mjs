// A flame graph (SVG) from a V8 .cpuprofile or from `perf script` output.
//   node scripts/flamegraph.mjs IN OUT.svg [--title TEXT] [--subtitle TEXT]
// IN is read as a .cpuprofile when it is JSON, as `perf script` text
// otherwise; `-` reads standard input.
import { readFileSync, writeFileSync } from 'node:fs';
import { flameSvg, flameTree, foldCpuProfile, foldPerfScript } from './flame-lib.mjs';

const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const title = opt('--title');
const subtitle = opt('--subtitle');
const [input, output] = args;
if (input === undefined || output === undefined || args.length !== 2) {
  console.error('usage: flamegraph.mjs IN OUT.svg [--title TEXT] [--subtitle TEXT]');
  process.exit(2);
}
const text = readFileSync(input === '-' ? 0 : input, 'utf8');
const isProfile = text.trimStart().startsWith('{');
let folded;
try {
  folded = isProfile ? foldCpuProfile(JSON.parse(text)) : foldPerfScript(text);
} catch (e) {
  console.error(`flamegraph: ${input} is neither a .cpuprofile nor perf script text: ${e}`);
  process.exit(2);
}
const tree = flameTree(folded);
if (tree.value === 0) {
  console.error(`flamegraph: no samples in ${input}`);
  process.exit(1);
}
const unit = isProfile ? 'µs' : 'samples';
writeFileSync(
  output,
  flameSvg(tree, {
    title: title ?? `flame graph of ${input}`,
    subtitle: subtitle ?? `${tree.value} ${unit} (busy time only)`,
    unit,
  }),
);
console.error(`flamegraph: ${output} (${tree.value} ${unit})`);
