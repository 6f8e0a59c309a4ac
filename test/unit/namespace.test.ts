import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../../src/cli/options-defaults.js';
import { namespacePath, planNamespace } from '../../src/effects/namespace.js';

const config = (over: { namespace?: string; namespacePid?: number }) => ({
  ...defaultConfig('/h'),
  namespace: over.namespace ?? null,
  namespacePid: over.namespacePid ?? null,
});

describe('--namespace / --namespace-pid', () => {
  it('name the namespace file as upstream', () => {
    expect(namespacePath(config({}))).toBeNull();
    expect(namespacePath(config({ namespace: 'vpn' }))).toBe('/var/run/netns/vpn');
    expect(namespacePath(config({ namespacePid: 42 }))).toBe('/proc/42/ns/net');
  });
  it('run here when there is no option, or when already inside that namespace', () => {
    expect(planNamespace(config({}))).toEqual(E.right({ kind: 'here' }));
    expect(planNamespace(config({ namespacePid: process.pid }))).toEqual(E.right({ kind: 'here' }));
  });
  it('say why a namespace that does not exist cannot be entered', () => {
    expect(planNamespace(config({ namespace: 'no_such_ns_sshuttle_ts' }))).toEqual(
      E.left('--namespace no_such_ns_sshuttle_ts: /var/run/netns/no_such_ns_sshuttle_ts: ENOENT'),
    );
  });
});
