/** What the local receiver recorded of one request; shared by Node-side and workerd-side tests. */
export interface ReceivedRequest {
  label: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  /** Body as text, gunzipped when Content-Encoding was gzip. */
  body: string;
  /** Raw body size on the wire. */
  wireBytes: number;
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the local HTTP receiver started by the global setup. */
    receiverUrl: string;
  }
}
