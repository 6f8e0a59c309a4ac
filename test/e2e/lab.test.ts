/**
 * The lab harness itself: the network is what lab.sh's header promises (the
 * client is cut off from the target, the server reaches it, ssh works with
 * the lab key and its known_hosts), the helpers see what they claim to, and
 * teardown leaves nothing behind.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  countOurRules,
  describeLab,
  describeWhen,
  iptablesObjects,
  killGroup,
  LAB_SH,
  labAvailable,
  labLeftovers,
  nftObjects,
  ourFirewallObjects,
  run,
  spawnInNs,
  startLab,
  waitFor,
} from './lab.js';

// The name of the describeLab suite's lab, checked after its teardown.
let suiteLabName: string | undefined;

const ms = async <T>(f: () => Promise<T>): Promise<[T, number]> => {
  const t0 = Date.now();
  const v = await f();
  return [v, Date.now() - t0];
};

describeLab('lab harness', (lab) => {
  it('is up under a short unique name, with the documented variables and files', async () => {
    const e = lab.env;
    suiteLabName = e.name;
    expect(e.name).toMatch(/^t[0-9a-f]{4}$/);
    expect([e.clientNs, e.serverNs, e.targetNs]).toEqual([
      `${e.name}-c`,
      `${e.name}-s`,
      `${e.name}-t`,
    ]);
    expect(e).toMatchObject({
      serverIp: '198.51.100.1',
      serverIp6: '2001:db8:1::1',
      clientIp: '198.51.100.2',
      targetIp: '203.0.113.2',
      targetIp6: '2001:db8:2::2',
      targetNet: '203.0.113.0/24',
      targetNet6: '2001:db8:2::/64',
      targetName: 'web.lab.test',
      sshUser: 'root',
    });
    for (const f of [e.sshKey, e.sshConfig, e.sshConfigStrict, e.knownHosts]) {
      expect(existsSync(f), f).toBe(true);
    }
    const hostKey = readFileSync(`${e.dir}/ssh_host_ed25519_key.pub`, 'utf8').split(' ');
    expect(readFileSync(e.knownHosts, 'utf8')).toBe(
      `198.51.100.1 ${hostKey[0]} ${hostKey[1]}\n2001:db8:1::1 ${hostKey[0]} ${hostKey[1]}\n`,
    );
    const list = await run(['ip', 'netns', 'list']);
    for (const ns of [e.clientNs, e.serverNs, e.targetNs]) expect(list.stdout).toContain(ns);
  });

  it('the client cannot reach the target directly, and finds out fast', async () => {
    for (const url of ['http://203.0.113.2/', 'http://[2001:db8:2::2]/']) {
      const [r, took] = await ms(() => lab.curl(url, { maxTimeS: 2 }));
      expect(r.code, url).not.toBe(0);
      expect(took, url).toBeLessThan(6_000);
    }
  });

  it('the server reaches the target web server over IPv4 and IPv6', async () => {
    for (const host of ['203.0.113.2', '[2001:db8:2::2]']) {
      const r = await lab.inServer(['curl', '-sS', '--max-time', '5', `http://${host}/`]);
      expect(r).toMatchObject({ code: 0, stdout: 'hello from lab\n' });
    }
    const big = await lab.inServer([
      'curl',
      '-sS',
      '--max-time',
      '5',
      '-o',
      '/dev/null',
      '-w',
      '%{size_download}',
      'http://203.0.113.2/bytes/64k',
    ]);
    expect(big.stdout).toBe('65536');
  });

  it('the target echoes TCP and answers DNS for lab.test; the client resolves nothing', async () => {
    const echo = await lab.inServer(['socat', '-t', '2', '-', 'TCP:203.0.113.2:7'], {
      input: 'ping\n',
    });
    expect(echo).toMatchObject({ code: 0, stdout: 'ping\n' });
    // db.lab.test is only in DNS (the server's hosts file lacks it).
    const dns = await lab.inServer(['getent', 'hosts', 'db.lab.test']);
    expect(dns.stdout).toMatch(/^203\.0\.113\.5\s+db\.lab\.test/);
    const env = { ...process.env, RES_OPTIONS: 'timeout:1 attempts:1' };
    const none = await lab.inClient(['getent', 'hosts', 'web.lab.test'], { env });
    expect(none.code).not.toBe(0);
    const known = await lab.inServer(['getent', 'hosts', 'printer.lab.test']);
    expect(known.stdout).toMatch(/^203\.0\.113\.7\s/);
  });

  it('ssh from the client logs in to the server with the lab key (IPv4 and IPv6)', async () => {
    for (const host of ['198.51.100.1', '2001:db8:1::1']) {
      const r = await lab.inClient(['ssh', '-F', lab.env.sshConfig, `root@${host}`, 'id', '-u']);
      expect(r, `${host}: ${r.stderr}`).toMatchObject({ code: 0, stdout: '0\n' });
    }
    const plain = await lab.inClient(['ssh', '-F', lab.env.sshConfig, 'root@198.51.100.1', 'true']);
    expect(plain.code).toBe(0);
  });

  it('known_hosts lets strict host-key checking pass, and it is really checked', async () => {
    for (const host of ['198.51.100.1', '2001:db8:1::1']) {
      const r = await lab.inClient(['ssh', '-F', lab.env.sshConfigStrict, `root@${host}`, 'true']);
      expect(r.code, `${host}: ${r.stderr}`).toBe(0);
    }
    const unknown = await lab.inClient([
      'ssh',
      '-F',
      lab.env.sshConfigStrict,
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'LogLevel=INFO',
      'root@198.51.100.1',
      'true',
    ]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/Host key verification failed/);
  });

  it('countOurRules counts sshuttle nft tables and iptables chains, and nothing else', async () => {
    const ns = lab.env.clientNs;
    const ok = async (cmd: string) => {
      const r = await lab.inClient(cmd.split(' '));
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(0);
    };
    expect(await countOurRules(ns)).toBe(0);
    // Someone else's table does not count.
    await ok('nft add table inet other');
    await ok('nft add chain inet other out { type nat hook output priority -100 ; }');
    await ok('nft add rule inet other out tcp dport 9 redirect to :10');
    expect(await countOurRules(ns)).toBe(0);
    // Ours, nft: the table, its chain (with its hook line) and a rule.
    const t = 'sshuttle-ipv4-1025';
    await ok(`nft add table inet ${t}`);
    expect(await countOurRules(ns)).toBe(1);
    await ok(`nft add chain inet ${t} output { type nat hook output priority -100 ; }`);
    await ok(
      `nft add rule inet ${t} output ip daddr 203.0.113.0/24 tcp dport 80 redirect to :1025`,
    );
    expect(await countOurRules(ns)).toBe(4);
    await ok(`nft delete table inet ${t}`);
    await ok('nft delete table inet other');
    expect(await countOurRules(ns)).toBe(0);
    // Ours, iptables and ip6tables: a chain, a rule in it, the jump to it.
    for (const ipt of ['iptables', 'ip6tables']) {
      await ok(`${ipt} -w -t nat -N sshuttle-1025`);
      await ok(`${ipt} -w -t nat -A sshuttle-1025 -p tcp -j REDIRECT --to-ports 1025`);
      await ok(`${ipt} -w -t nat -I OUTPUT 1 -j sshuttle-1025`);
    }
    const objects = await ourFirewallObjects(ns);
    expect(objects.filter((l) => l.startsWith('iptables: '))).toHaveLength(3);
    expect(objects.filter((l) => l.startsWith('ip6tables: '))).toHaveLength(3);
    expect(objects).toHaveLength(6); // iptables-nft's own nft tables are not counted twice
    for (const ipt of ['iptables', 'ip6tables']) {
      await ok(`${ipt} -w -t nat -D OUTPUT -j sshuttle-1025`);
      await ok(`${ipt} -w -t nat -F sshuttle-1025`);
      expect(await countOurRules(ns)).toBeGreaterThan(0); // the empty chain is still ours
      await ok(`${ipt} -w -t nat -X sshuttle-1025`);
    }
    expect(await countOurRules(ns)).toBe(0);
  });

  it('spawnInClient runs in the client namespace in its own process group', async () => {
    const child = lab.spawnInClient(['sleep', '300']);
    const pid = child.pid;
    expect(pid).toBeDefined();
    const inNsPids = await waitFor('sleep to be in the client namespace', async () => {
      const r = await run(['ip', 'netns', 'pids', lab.env.clientNs]);
      return r.stdout.split('\n').includes(String(pid)) ? true : undefined;
    });
    expect(inNsPids).toBe(true);
    const pgid = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[2];
    expect(pgid).toBe(String(pid));
    await killGroup(child, 1_000);
    expect(child.signalCode).toBe('SIGTERM');
  });
});

describeWhen(labAvailable(), 'lab teardown', () => {
  it('the describeLab suite above left no namespaces, /etc/netns entries or files', () => {
    expect(suiteLabName).toBeDefined();
    expect(labLeftovers(suiteLabName!)).toEqual([]);
  });

  it('down kills daemons and processes inside, removes everything, and is idempotent', async () => {
    const lab = await startLab('d');
    const { name, serverNs, clientNs, dir } = lab.env;
    let downed = false;
    try {
      const sshdPid = Number(readFileSync(`${dir}/sshd.pid`, 'utf8'));
      const orphan = spawnInNs(clientNs, ['sleep', '300']);
      await waitFor('server namespace to hold sshd', async () => {
        const r = await run(['ip', 'netns', 'pids', serverNs]);
        return r.stdout.split('\n').includes(String(sshdPid)) ? true : undefined;
      });
      await lab.down();
      downed = true;
      expect(labLeftovers(name, dir)).toEqual([]);
      const list = await run(['ip', 'netns', 'list']);
      expect(list.stdout).not.toContain(name);
      await waitFor(
        'processes in the lab to die',
        () => {
          const alive = (p: number) => existsSync(`/proc/${p}`);
          const orphanGone = orphan.exitCode !== null || orphan.signalCode !== null;
          return !alive(sshdPid) && orphanGone ? true : undefined;
        },
        5_000,
      );
      await lab.down(); // again: fine
      const again = await run(['bash', LAB_SH, 'down', name], {
        env: { ...process.env, LAB_DIR: dir },
      });
      expect(again.code).toBe(0);
    } finally {
      if (!downed) await lab.down();
    }
  });
});

describe('firewall listing parsers', () => {
  it('nftObjects keeps only tables named sshuttle, with everything inside them', () => {
    const ruleset = [
      'table ip nat {',
      '\tchain OUTPUT {',
      '\t\ttype nat hook output priority dstnat; policy accept;',
      '\t\tcounter packets 0 bytes 0 jump sshuttle-1025',
      '\t}',
      '}',
      'table inet sshuttle-ipv4-1025 {',
      '\tchain output {',
      '\t\ttype nat hook output priority dstnat; policy accept;',
      '\t\tjump sshuttle-ipv4-1025',
      '\t}',
      '\tchain sshuttle-ipv4-1025 {',
      '\t\tip daddr 203.0.113.0/24 redirect to :1025',
      '\t}',
      '}',
      'table inet filter {',
      '}',
    ].join('\n');
    expect(nftObjects(ruleset)).toEqual([
      'table inet sshuttle-ipv4-1025 {',
      'chain output {',
      'type nat hook output priority dstnat; policy accept;',
      'jump sshuttle-ipv4-1025',
      'chain sshuttle-ipv4-1025 {',
      'ip daddr 203.0.113.0/24 redirect to :1025',
    ]);
  });

  it('iptablesObjects keeps sshuttle chains and rules', () => {
    const save = [
      '*nat',
      ':OUTPUT ACCEPT [0:0]',
      ':sshuttle-1025 - [0:0]',
      '-A OUTPUT -j sshuttle-1025',
      '-A OUTPUT -j other',
      '-A sshuttle-1025 -d 203.0.113.0/24 -p tcp -j REDIRECT --to-ports 1025',
      'COMMIT',
    ].join('\n');
    expect(iptablesObjects(save)).toHaveLength(3);
  });
});
