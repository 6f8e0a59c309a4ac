#!/usr/bin/env node
// Builds the native addon (build/Release/sshuttle_native.node) with node-gyp.
// It is the package's `install` script, so `npm install` / `npm ci` run it.
// On failure it names what is missing (python3, make, a C compiler, Node's
// headers, node-gyp) in one message and exits non-zero.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const nodePrefix = path.resolve(path.dirname(process.execPath), '..');

const onPath = (cmd) =>
  (process.env.PATH || '')
    .split(path.delimiter)
    .filter(Boolean)
    .some((dir) => {
      try {
        fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });

// node-gyp: npm tells install scripts where its bundled copy is; otherwise
// look next to this node's npm.
const findNodeGyp = () => {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(nodePrefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    path.join(nodePrefix, 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  ];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally; fine
  }
  return candidates.find((p) => p && fs.existsSync(p));
};

// Node's headers: the configured nodedir, or the ones installed next to this
// node (Debian's nodejs-dev, official tarballs). Using them avoids node-gyp
// downloading headers, which fails offline.
const hasHeaders = (dir) => fs.existsSync(path.join(dir, 'include/node/node_api.h'));
const findNodeDir = () => {
  const configured = process.env.npm_config_nodedir;
  if (configured && hasHeaders(configured)) return configured;
  if (hasHeaders(nodePrefix)) return nodePrefix;
  return undefined;
};

const cachedHeaders = () => {
  const home = process.env.HOME || '';
  const version = process.versions.node;
  return [path.join(home, '.cache/node-gyp', version), path.join(home, '.node-gyp', version)].some(
    hasHeaders,
  );
};

const missing = () => {
  const out = [];
  if (!onPath('python3') && !onPath('python')) out.push('python3');
  if (!onPath('make')) out.push('make');
  if (!onPath('g++') && !onPath('c++')) out.push('g++');
  if (!onPath('cc') && !onPath('gcc')) out.push('a C compiler (gcc)');
  if (!findNodeDir() && !cachedHeaders()) {
    out.push(
      `Node headers (node_api.h for node ${process.versions.node}; set npm nodedir or install nodejs-dev)`,
    );
  }
  if (!findNodeGyp()) out.push('node-gyp (bundled with npm)');
  return out;
};

const fail = (why) => {
  console.error(
    `sshuttle-ts: building the native addon failed: ${why}.\n` +
      'The addon reads the original destination of redirected connections; without it the nft and nat methods cannot work.\n' +
      'On Debian/Ubuntu: apt-get install build-essential python3, then run npm install again.',
  );
  process.exit(1);
};

const gyp = findNodeGyp();
const lacking = missing();
if (!gyp || lacking.length > 0) fail(`missing ${lacking.join(', ')}`);

const args = [gyp, 'rebuild'];
const nodedir = findNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) {
  const now = missing();
  fail(
    now.length > 0
      ? `missing ${now.join(', ')}`
      : `node-gyp exited with ${r.status ?? r.signal} (tools look present; see its output above)`,
  );
}
if (!fs.existsSync(path.join(root, 'build/Release/sshuttle_native.node'))) {
  fail('node-gyp reported success but build/Release/sshuttle_native.node is missing');
}
