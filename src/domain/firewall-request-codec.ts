/**
 * The firewall request as an io-ts codec: the privileged helper checks the
 * request it assembled from protocol lines against this, field by field,
 * before any rule is planned, so what reaches `nft`/`iptables` argv is only
 * ever a family, a clean IP literal, a width, a port, an id or a mark.
 * (The line decoders in `firewall-protocol.ts` already refuse junk; this is
 * the second, declarative gate at the root boundary.)
 */
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import * as t from 'io-ts';
import { PathReporter } from 'io-ts/lib/PathReporter.js';
import { type FirewallRequest, isIpLiteral, subnetProblem, viaProblem } from './firewall-plan.js';

const int = (name: string, min: number, max: number) =>
  t.refinement(t.number, (n) => Number.isInteger(n) && n >= min && n <= max, name);

const FamilyC = t.union([t.literal(4), t.literal(6)]);
const PortC = int('Port', 0, 65535);
/** A uid/gid; (uid_t)-1 is "no id", never a real one. */
const IdC = t.union([int('Id', 0, 2 ** 32 - 2), t.null]);

const SubnetRuleC = t.refinement(
  t.type({
    family: FamilyC,
    ip: t.string,
    width: int('Width', 0, 128),
    exclude: t.boolean,
    fport: PortC,
    lport: PortC,
  }),
  (r) => subnetProblem(r) === null,
  'SubnetRule',
);

const NameserverC = t.refinement(
  t.intersection([
    t.type({ family: FamilyC, ip: t.string }),
    t.partial({ via: t.type({ ip: t.string, port: PortC }) }),
  ]),
  (n) => isIpLiteral(n.family, n.ip, true) && viaProblem(n) === null,
  'Nameserver',
);

const TmarkC = t.refinement(t.string, (s) => /^0x[0-9A-Fa-f]{1,8}$/.test(s), 'Tmark');

export const FirewallRequestC = t.strict({
  subnets: t.readonlyArray(SubnetRuleC),
  nameservers: t.readonlyArray(NameserverC),
  ports: t.strict({ tcp4: PortC, tcp6: PortC, dns4: PortC, dns6: PortC }),
  udp: t.boolean,
  user: IdC,
  group: IdC,
  tmark: TmarkC,
  clientPid: int('Pid', 1, 2 ** 31 - 1),
});

/** The request if every field is valid, else the first problems as one line. */
export const validateRequest = (req: unknown): E.Either<string, FirewallRequest> =>
  pipe(
    FirewallRequestC.decode(req),
    E.mapLeft((errors) => PathReporter.report(E.left(errors)).slice(0, 3).join('; ').slice(0, 400)),
  );
