/**
 * `-H/--auto-hosts`: names learned from the server go into the local
 * /etc/hosts as lines tagged with the instance's port, as sshuttle tags
 * them, so several instances merge and each removes only its own lines.
 */
import ipaddr from 'ipaddr.js';

export interface HostName {
  readonly name: string;
  readonly ip: string;
}

/** sshuttle's tag for the lines one instance (named by its port) owns. */
export const hostsTag = (port: number): string => `# sshuttle-firewall-${port} AUTOCREATED`;

/** `text` without this instance's lines, plus one line per entry (sorted, padded as upstream). */
export const mergeHosts = (text: string, port: number, entries: readonly HostName[]): string => {
  const tag = hostsTag(port);
  const kept = text.split('\n').filter((line) => !line.includes(tag));
  while (kept.length > 0 && kept.at(-1) === '') kept.pop();
  const ours = [...entries]
    .sort((a, b) => a.name.localeCompare(b.name) || a.ip.localeCompare(b.ip))
    .map((e) => `${`${e.ip} ${e.name}`.padEnd(30)} ${tag}`);
  return `${[...kept, ...ours].join('\n')}\n`;
};

const LOCAL = /^(127\.|::1$|0\.|255\.|fe80:)/i;
const NAME = /^[-A-Za-z0-9_.]{1,253}$/;

/**
 * An address worth a hosts line: an IP literal (IPv4 a dotted quad; no `%zone`),
 * not loopback or link-local. Safe to pass to a shell.
 */
export const isUsableHostIp = (ip: string): boolean =>
  /^[0-9A-Fa-f:.]+$/.test(ip) &&
  ipaddr.isValid(ip) &&
  !LOCAL.test(ip) &&
  (ip.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(ip));

/** A name worth a hosts line: hosts-file characters only, not localhost. */
export const isUsableHostName = (name: string): boolean =>
  NAME.test(name) && !name.startsWith('localhost');

/** Only the entries that may go into /etc/hosts, each once (names from a peer are not trusted). */
export const usableHosts = (entries: readonly HostName[]): HostName[] =>
  entries.filter(
    (e, i) =>
      isUsableHostName(e.name) &&
      isUsableHostIp(e.ip) &&
      entries.findIndex((o) => o.name === e.name && o.ip === e.ip) === i,
  );

/**
 * Name/address pairs from hosts-file text or `getent hosts` output
 * (`IP NAME [ALIAS...]`), without loopback, localhost or odd names.
 */
export const parseHostsText = (text: string): HostName[] => {
  const out: HostName[] = [];
  for (const raw of text.split('\n')) {
    const [ip, ...names] = raw.replace(/#.*$/, '').trim().split(/\s+/);
    if (ip === undefined || !isUsableHostIp(ip)) continue;
    for (const name of names) {
      if (!isUsableHostName(name)) continue;
      if (!out.some((e) => e.name === name && e.ip === ip)) out.push({ name, ip });
    }
  }
  return out;
};
