/** An endpoint: IP literal (no brackets, no scope for v4) and port. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}
