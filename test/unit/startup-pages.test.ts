/**
 * Unmapping the Node runtime's start-up pages: which mappings may go (a
 * private, read-only mapping of the runtime with no copy-on-write page,
 * resident or swapped), and
 * that a process that did it has fewer resident file pages and keeps working.
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fc, it as itProp } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { droppableRanges, isRuntimeFile, rssFileKb } from '../../src/domain/startup-pages.js';

const NODE = '/usr/bin/node';
const isRuntime = isRuntimeFile(NODE);

// From a client's /proc/self/smaps (fields trimmed): the ELF header
// segment, text, rodata, the RELRO segment (r--p but relocated: anonymous
// pages), data, a library, the heap and V8's remap of its builtins.
const SMAPS = `00400000-00b6f000 r--p 00000000 fe:00 260689                             /usr/bin/node
Size:               7612 kB
Rss:                7160 kB
Anonymous:             0 kB
Swap:                  0 kB
00b72000-025fe000 r-xp 00772000 fe:00 260689                             /usr/bin/node
Size:              27184 kB
Rss:               22008 kB
Anonymous:             0 kB
Swap:                  0 kB
02601000-0563a000 r--p 02201000 fe:00 260689                             /usr/bin/node
Size:              49380 kB
Rss:               10872 kB
Anonymous:             0 kB
Swap:                  0 kB
0563a000-0563e000 r--p 05239000 fe:00 260689                             /usr/bin/node
Size:                 16 kB
Rss:                  16 kB
Anonymous:            16 kB
Swap:                  0 kB
0563e000-0565d000 rw-p 0523d000 fe:00 260689                             /usr/bin/node
Size:                124 kB
Rss:                 124 kB
Anonymous:            48 kB
Swap:                  0 kB
7f793c5f0000-7f793c782000 r-xp 00028000 fe:00 1311                       /usr/lib/x86_64-linux-gnu/libc.so.6
Size:               1608 kB
Rss:                1240 kB
Anonymous:             0 kB
Swap:                  0 kB
0565d000-05fd0000 rw-p 00000000 00:00 0                                  [heap]
Size:               9676 kB
Rss:                4224 kB
Anonymous:          4224 kB
Swap:                  0 kB
7f7937e40000-7f7937fd2000 r-xp 014c4000 fe:00 260689                     /usr/bin/node
Size:               1608 kB
Rss:                 896 kB
Anonymous:             0 kB
Swap:                  0 kB
`;

describe('droppableRanges', () => {
  it('takes the runtime read-only segments and leaves RELRO, data, libraries and the heap', () => {
    expect(droppableRanges(SMAPS, isRuntime).map((r) => r.start.toString(16))).toEqual([
      '400000',
      'b72000',
      '2601000',
      '7f7937e40000',
    ]);
  });

  it.each(['Anonymous:', 'Swap:'])('never takes a mapping whose %s line is missing', (field) => {
    const noField = SMAPS.split('\n')
      .filter((l) => !l.startsWith(field))
      .join('\n');
    expect(droppableRanges(noField, isRuntime)).toEqual([]);
  });

  it('leaves a read-only runtime mapping with swapped-out private pages', () => {
    const swapped = SMAPS.replace(
      /(b72000-025fe000[\s\S]*?)Swap: +0 kB/,
      '$1Swap:                  8 kB',
    );
    expect(droppableRanges(swapped, isRuntime).map((r) => r.start.toString(16))).toEqual([
      '400000',
      '2601000',
      '7f7937e40000',
    ]);
  });

  it('knows a shared libnode as the runtime, and nothing else by its name', () => {
    expect(isRuntimeFile('/usr/bin/node')('/usr/lib/x86_64-linux-gnu/libnode.so.109')).toBe(true);
    expect(isRuntimeFile('/usr/bin/node')('/usr/lib/libnode.so')).toBe(true);
    expect(isRuntimeFile('/usr/bin/node')('/usr/bin/nodejs')).toBe(false);
    expect(isRuntimeFile('/usr/bin/node')('/tmp/libnode.so.evil.txt')).toBe(false);
  });

  const mapping = fc.record({
    start: fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }),
    pages: fc.integer({ min: 0, max: 1 << 16 }),
    read: fc.boolean(),
    write: fc.boolean(),
    exec: fc.boolean(),
    priv: fc.boolean(),
    path: fc.constantFrom(
      NODE,
      '/usr/lib/x86_64-linux-gnu/libnode.so.109',
      '/usr/lib/x86_64-linux-gnu/libc.so.6',
      '[heap]',
      '[stack]',
      '',
    ),
    anonymousKb: fc.option(fc.nat(4096), { nil: undefined }),
    swapKb: fc.option(fc.constantFrom(0, 0, 4, 1024), { nil: undefined }),
    rssKb: fc.nat(100_000),
  });

  itProp.prop([fc.array(mapping, { maxLength: 30 })])(
    'chooses exactly the private, non-writable runtime mappings with no anonymous page',
    (maps) => {
      const hex = (n: bigint) => n.toString(16).padStart(8, '0');
      const text = maps
        .map((m) => {
          const end = m.start + BigInt(m.pages) * 4096n;
          const perms = `${m.read ? 'r' : '-'}${m.write ? 'w' : '-'}${m.exec ? 'x' : '-'}${m.priv ? 'p' : 's'}`;
          return [
            `${hex(m.start)}-${hex(end)} ${perms} 00000000 fe:00 42 ${m.path}`.trimEnd(),
            `Size: ${m.pages * 4} kB`,
            `Rss: ${m.rssKb} kB`,
            ...(m.anonymousKb === undefined ? [] : [`Anonymous: ${m.anonymousKb} kB`]),
            'AnonHugePages: 0 kB',
            ...(m.swapKb === undefined ? [] : [`Swap: ${m.swapKb} kB`]),
            'VmFlags: rd mr mw me',
          ].join('\n');
        })
        .join('\n');
      const want = maps.filter(
        (m) =>
          !m.write &&
          m.priv &&
          m.pages > 0 &&
          m.anonymousKb === 0 &&
          m.swapKb === 0 &&
          (m.path === NODE || m.path.includes('libnode.so')),
      );
      const got = droppableRanges(text, isRuntime);
      expect(got.map((r) => [r.start, r.end, r.path])).toEqual(
        want.map((m) => [m.start, m.start + BigInt(m.pages) * 4096n, m.path]),
      );
    },
  );
});

describe('rssFileKb', () => {
  it('reads RssFile from /proc/PID/status text', () => {
    expect(rssFileKb('Name:\tnode\nRssAnon:\t   19124 kB\nRssFile:\t   44748 kB\n')).toBe(44748);
    expect(rssFileKb('Name:\tnode\n')).toBeNull();
  });
});

describe('releaseStartupPages, in a fresh node process', () => {
  it('lowers its resident file pages and the process keeps working', () => {
    const root = resolve(import.meta.dirname, '../..');
    const script = `
      import { createHash } from 'node:crypto';
      import { gzipSync, gunzipSync } from 'node:zlib';
      import { releaseStartupPages } from ${JSON.stringify(join(root, 'dist/effects/startup-pages.js'))};
      const r = releaseStartupPages();
      if (r._tag !== 'Right') throw new Error(r.left);
      // Code and data start-up used run again after the drop.
      const http = await import('node:http');
      const digest = createHash('sha256').update('abc').digest('hex');
      const round = gunzipSync(gzipSync(Buffer.alloc(1 << 20, 7))).length;
      const later = /RssFile:\\s+(\\d+)/.exec(await import('node:fs').then((f) => f.readFileSync('/proc/self/status', 'utf8')))[1];
      console.log(JSON.stringify({ ...r.right, digest, round, http: typeof http.createServer, later: Number(later) }));
    `;
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout) as {
      ranges: number;
      rssFileBeforeKb: number;
      rssFileAfterKb: number;
      digest: string;
      round: number;
      http: string;
      later: number;
    };
    expect(r.ranges).toBeGreaterThan(0);
    // At least a third of the resident file pages go, and stay gone after more work.
    expect(r.rssFileAfterKb).toBeLessThan((r.rssFileBeforeKb * 2) / 3);
    expect(r.later).toBeLessThan((r.rssFileBeforeKb * 2) / 3);
    expect(r.digest).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(r.round).toBe(1 << 20);
    expect(r.http).toBe('function');
  });
});
