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
  /** When the body had been read, epoch ms. */
  at: number;
  /** What the receiver did: the status it answered, or `hang` / `drop` when it did not answer. */
  answer: number | "hang" | "drop";
}

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the local HTTP receiver started by the global setup. */
    receiverUrl: string;
  }
}
