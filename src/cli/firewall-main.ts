/** The privileged firewall helper (`sshuttle-ts --firewall ...`); resolves to the exit code. */
export const runFirewall = async (_argv: readonly string[]): Promise<number> => {
  throw new Error('runFirewall: not wired yet');
};
