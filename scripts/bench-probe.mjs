// Small measuring tools for test/lab/bench-extra.sh, run inside the lab's
// client namespace. Each prints one line of key=value pairs.
//
//   bench-probe.mjs firstbyte HOST PORT OUTFILE
//     Starts an HTTP request to HOST:PORT every 20 ms (each with a 2 s
//     timeout) until one gets a first response byte; writes the wall-clock
//     time of that byte (ms since the epoch) to OUTFILE and exits. Started
//     before the tunnel, so the caller subtracts the tunnel's start time.
//   bench-probe.mjs conns HOST PORT N PGID
//     Opens N keep-alive HTTP connections (50 at a time), sends one request on
//     each and waits for its response (all within BENCH_CONN_DEADLINE seconds,
//     default 15), holds them all open, then sums VmRSS of
//     every process in process group PGID (the tunnel's tree), checks that none
//     closed, and closes them. Prints conn_ok, conn_err, conn_open_s, rss1k_mb.
//   bench-probe.mjs dns SERVER NAME SECONDS [WINDOW]
//     Sends A queries for NAME to SERVER:53 over UDP, WINDOW (default 16) in
//     flight, for SECONDS; a query unanswered after 1 s counts as lost and is
//     replaced. Prints dns_qps (answers per second) and dns_lost.
import dgram from 'node:dgram';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';

const [mode, ...args] = process.argv.slice(2);

const firstbyte = (host, port, out) => {
  const pending = new Set();
  const attempt = () => {
    const s = net.connect({ host, port: Number(port) });
    pending.add(s);
    const timer = setTimeout(() => s.destroy(), 2000);
    s.on('connect', () => s.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`));
    s.once('data', () => {
      writeFileSync(out, `${Date.now()}\n`);
      for (const p of pending) p.destroy();
      process.exit(0);
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      pending.delete(s);
    });
  };
  attempt();
  setInterval(attempt, 20);
};

const groupRssKb = (pgid) => {
  let kb = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the ")" of the command name: state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[2] !== String(pgid)) continue;
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += m ? Number(m[1]) : 0;
    } catch {
      // the process went away
    }
  }
  return kb;
};

const conns = async (host, port, n, pgid) => {
  const total = Number(n);
  const open = [];
  let closedEarly = 0;
  const t0 = process.hrtime.bigint();
  // Bounded: whatever is not answered by the deadline counts as an error.
  const deadline = Date.now() + Number(process.env.BENCH_CONN_DEADLINE ?? 15) * 1000;
  const one = () =>
    new Promise((resolve) => {
      const s = net.connect({ host, port: Number(port) });
      let done = false;
      const finish = (ok) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (ok) {
          open.push(s);
          s.on('close', () => {
            closedEarly++;
          });
        } else {
          s.destroy();
        }
        resolve();
      };
      const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
      s.on('connect', () => s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
      s.on('data', () => finish(true));
      s.on('error', () => finish(false));
      s.on('close', () => finish(false));
    });
  for (let i = 0; i < total && Date.now() < deadline; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, total - i) }, one));
  }
  const openS = Number(process.hrtime.bigint() - t0) / 1e9;
  await new Promise((r) => setTimeout(r, 1000));
  const rssKb = groupRssKb(pgid);
  const ok = open.length - closedEarly;
  for (const s of open) s.destroy();
  console.log(
    `conn_ok=${ok} conn_err=${total - ok} conn_open_s=${openS.toFixed(2)} rss1k_mb=${Math.round(rssKb / 1024)}`,
  );
  process.exit(0);
};

const query = (id, name) => {
  const labels = name.split('.').filter((l) => l !== '');
  const parts = [Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'ascii'));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
};

const dns = (server, name, seconds, window = '16') => {
  const sock = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
  const inFlight = new Map(); // id -> sent at (ms)
  let nextId = 1;
  let answered = 0;
  let lost = 0;
  let running = true;
  const send = () => {
    if (!running) return;
    nextId = (nextId % 65535) + 1;
    inFlight.set(nextId, Date.now());
    sock.send(query(nextId, name), 53, server);
  };
  sock.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    if (!inFlight.delete(id)) return;
    answered++;
    send();
  });
  sock.on('error', () => {});
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, at] of inFlight) {
      if (now - at > 1000) {
        inFlight.delete(id);
        lost++;
        send();
      }
    }
  }, 100);
  for (let i = 0; i < Number(window); i++) send();
  setTimeout(() => {
    running = false;
    clearInterval(sweep);
    console.log(`dns_qps=${Math.round(answered / Number(seconds))} dns_lost=${lost}`);
    sock.close();
    process.exit(0);
  }, Number(seconds) * 1000);
};

if (mode === 'firstbyte') firstbyte(args[0], args[1], args[2]);
else if (mode === 'conns') await conns(args[0], args[1], args[2], args[3]);
else if (mode === 'dns') dns(args[0], args[1], args[2], args[3]);
else {
  console.error('usage: bench-probe.mjs firstbyte|conns|dns ...');
  process.exit(2);
}
