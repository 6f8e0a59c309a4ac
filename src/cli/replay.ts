/** `sshuttle-ts replay FILE`: folds a recording; resolves to the exit code. */
export const runReplay = async (
  _file: string,
  _opts: { readonly verbose: number },
): Promise<number> => {
  throw new Error('runReplay: not wired yet');
};
