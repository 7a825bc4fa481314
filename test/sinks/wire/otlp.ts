/**
 * Checks an OTLP/HTTP JSON logs request (`POST /v1/logs`, body an
 * `ExportLogsServiceRequest`) against the OTLP specification
 * (opentelemetry-proto docs/specification.md, "JSON Protobuf Encoding") and
 * the message definitions in opentelemetry/proto/{collector/logs,logs,common,resource}/v1/*.proto:
 *
 * - "OTLP/HTTP uses the proto3 JSON mapping" with field names in lowerCamelCase;
 *   unknown fields are reported here (a receiver would silently drop them).
 * - "values of enum fields MUST be encoded as integer values".
 * - "traceId and spanId ... MUST be represented as case-insensitive hex-encoded strings" (not base64).
 * - 64-bit integers (fixed64 times, int64 `intValue`) are decimal strings in the proto3 JSON mapping.
 *   Receivers also accept numbers; tailfan always sends strings, so numbers are reported.
 *
 * `validateOtlp` runs anywhere (workerd too). `protoRoundTripProblems` additionally
 * decodes the body with the official generated protobuf types, which need
 * Node (see test/e2e/otlp-wire.test.ts): the type is passed in, so this file
 * imports nothing from protobufjs.
 */

type Obj = Record<string, unknown>;
const isObject = (x: unknown): x is Obj => typeof x === "object" && x !== null && !Array.isArray(x);

/** Fields of each message (proto field names in lowerCamelCase). */
const FIELDS = {
  ExportLogsServiceRequest: ["resourceLogs"],
  ResourceLogs: ["resource", "scopeLogs", "schemaUrl"],
  Resource: ["attributes", "droppedAttributesCount", "entityRefs"],
  ScopeLogs: ["scope", "logRecords", "schemaUrl"],
  InstrumentationScope: ["name", "version", "attributes", "droppedAttributesCount"],
  LogRecord: [
    "timeUnixNano",
    "observedTimeUnixNano",
    "severityNumber",
    "severityText",
    "body",
    "attributes",
    "droppedAttributesCount",
    "flags",
    "traceId",
    "spanId",
    "eventName",
  ],
  KeyValue: ["key", "value"],
  AnyValue: ["stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue"],
} as const;

/** uint64 / fixed64 as a decimal string below 2^64. */
const isUint64String = (x: unknown) => typeof x === "string" && /^\d{1,20}$/.test(x) && BigInt(x) < 2n ** 64n;
/** int64 as a decimal string within range. */
const isInt64String = (x: unknown) =>
  typeof x === "string" && /^-?\d{1,19}$/.test(x) && BigInt(x) >= -(2n ** 63n) && BigInt(x) < 2n ** 63n;
const isUint32 = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x < 2 ** 32;

class Checker {
  problems: string[] = [];
  add(path: string, what: string) {
    this.problems.push(`${path}: ${what}`);
  }

  fields(path: string, o: Obj, message: keyof typeof FIELDS) {
    const known = FIELDS[message] as readonly string[];
    for (const k of Object.keys(o)) if (!known.includes(k)) this.add(`${path}.${k}`, `unknown field of ${message}`);
  }

  array(path: string, x: unknown, each: (path: string, item: unknown) => void) {
    if (x === undefined) return;
    if (!Array.isArray(x)) return this.add(path, "must be an array");
    x.forEach((item, i) => {
      each(`${path}[${i}]`, item);
    });
  }

  string(path: string, x: unknown) {
    if (x !== undefined && typeof x !== "string") this.add(path, "must be a string");
  }

  uint32(path: string, x: unknown) {
    if (x !== undefined && !isUint32(x)) this.add(path, "must be a uint32 number");
  }

  attributes(path: string, x: unknown) {
    const seen = new Set<string>();
    this.array(path, x, (p, kv) => {
      this.keyValue(p, kv);
      // Common spec: "attribute keys MUST be unique" within a set.
      if (isObject(kv) && typeof kv.key === "string") {
        if (seen.has(kv.key)) this.add(p, `duplicate attribute key ${JSON.stringify(kv.key)}`);
        seen.add(kv.key);
      }
    });
  }

  keyValue(path: string, kv: unknown) {
    if (!isObject(kv)) return this.add(path, "KeyValue must be an object");
    this.fields(path, kv, "KeyValue");
    if (typeof kv.key !== "string" || kv.key === "") this.add(`${path}.key`, "must be a non-empty string");
    if (kv.value !== undefined) this.anyValue(`${path}.value`, kv.value);
  }

  anyValue(path: string, v: unknown) {
    if (!isObject(v)) return this.add(path, "AnyValue must be an object");
    this.fields(path, v, "AnyValue");
    const set = Object.keys(v).filter((k) => (FIELDS.AnyValue as readonly string[]).includes(k));
    // `value` is a oneof: at most one member may be set.
    if (set.length > 1) this.add(path, `AnyValue sets ${set.length} members of the oneof: ${set.join(", ")}`);
    if ("stringValue" in v && typeof v.stringValue !== "string") this.add(`${path}.stringValue`, "must be a string");
    if ("boolValue" in v && typeof v.boolValue !== "boolean") this.add(`${path}.boolValue`, "must be a boolean");
    if ("intValue" in v && !isInt64String(v.intValue))
      this.add(`${path}.intValue`, "int64 must be a decimal string (proto3 JSON), in range");
    if ("doubleValue" in v && (typeof v.doubleValue !== "number" || !Number.isFinite(v.doubleValue)))
      this.add(`${path}.doubleValue`, "must be a finite number");
    if ("bytesValue" in v && (typeof v.bytesValue !== "string" || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v.bytesValue)))
      this.add(`${path}.bytesValue`, "bytes must be base64");
    if ("arrayValue" in v) {
      const a = v.arrayValue;
      if (!isObject(a)) this.add(`${path}.arrayValue`, "must be an object { values }");
      else {
        for (const k of Object.keys(a))
          if (k !== "values") this.add(`${path}.arrayValue.${k}`, "unknown field of ArrayValue");
        this.array(`${path}.arrayValue.values`, a.values, (p, x) => this.anyValue(p, x));
      }
    }
    if ("kvlistValue" in v) {
      const l = v.kvlistValue;
      if (!isObject(l)) this.add(`${path}.kvlistValue`, "must be an object { values }");
      else {
        for (const k of Object.keys(l))
          if (k !== "values") this.add(`${path}.kvlistValue.${k}`, "unknown field of KeyValueList");
        this.attributes(`${path}.kvlistValue.values`, l.values);
      }
    }
  }

  hexId(path: string, x: unknown, bytes: number) {
    if (x === undefined || x === "") return;
    if (typeof x !== "string" || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(x))
      return this.add(path, `must be ${bytes * 2} hex characters (OTLP JSON encodes ids as hex, not base64)`);
    // W3C Trace Context: an all-zero id is invalid.
    if (/^0+$/.test(x)) this.add(path, "must not be all zeros");
  }

  logRecord(path: string, r: unknown) {
    if (!isObject(r)) return this.add(path, "LogRecord must be an object");
    this.fields(path, r, "LogRecord");
    for (const k of ["timeUnixNano", "observedTimeUnixNano"] as const)
      if (r[k] !== undefined && !isUint64String(r[k]))
        this.add(`${path}.${k}`, "fixed64 must be a decimal string of nanoseconds (proto3 JSON)");
    // Data model: "If either field [Timestamp, ObservedTimestamp] is not present, ... use the other"; at least one.
    if (r.timeUnixNano === undefined && r.observedTimeUnixNano === undefined)
      this.add(path, "neither timeUnixNano nor observedTimeUnixNano is set");
    if (r.severityNumber !== undefined) {
      const n = r.severityNumber;
      if (typeof n !== "number") this.add(`${path}.severityNumber`, "enum must be an integer, not a name");
      else if (!Number.isInteger(n) || n < 0 || n > 24) this.add(`${path}.severityNumber`, "must be 0 to 24");
    }
    this.string(`${path}.severityText`, r.severityText);
    this.string(`${path}.eventName`, r.eventName);
    if (r.body !== undefined) this.anyValue(`${path}.body`, r.body);
    this.attributes(`${path}.attributes`, r.attributes);
    this.uint32(`${path}.droppedAttributesCount`, r.droppedAttributesCount);
    this.uint32(`${path}.flags`, r.flags);
    this.hexId(`${path}.traceId`, r.traceId, 16);
    this.hexId(`${path}.spanId`, r.spanId, 8);
  }

  request(body: unknown) {
    if (!isObject(body)) return this.add("body", "ExportLogsServiceRequest must be a JSON object");
    this.fields("body", body, "ExportLogsServiceRequest");
    if (!Array.isArray(body.resourceLogs)) return this.add("resourceLogs", "must be an array");
    if (body.resourceLogs.length === 0) this.add("resourceLogs", "is empty: nothing to export");
    this.array("resourceLogs", body.resourceLogs, (p, rl) => {
      if (!isObject(rl)) return this.add(p, "ResourceLogs must be an object");
      this.fields(p, rl, "ResourceLogs");
      this.string(`${p}.schemaUrl`, rl.schemaUrl);
      if (rl.resource !== undefined) {
        if (!isObject(rl.resource)) this.add(`${p}.resource`, "must be an object");
        else {
          this.fields(`${p}.resource`, rl.resource, "Resource");
          this.attributes(`${p}.resource.attributes`, rl.resource.attributes);
          this.uint32(`${p}.resource.droppedAttributesCount`, rl.resource.droppedAttributesCount);
        }
      }
      this.array(`${p}.scopeLogs`, rl.scopeLogs, (sp, sl) => {
        if (!isObject(sl)) return this.add(sp, "ScopeLogs must be an object");
        this.fields(sp, sl, "ScopeLogs");
        this.string(`${sp}.schemaUrl`, sl.schemaUrl);
        if (sl.scope !== undefined) {
          if (!isObject(sl.scope)) this.add(`${sp}.scope`, "must be an object");
          else {
            this.fields(`${sp}.scope`, sl.scope, "InstrumentationScope");
            this.string(`${sp}.scope.name`, sl.scope.name);
            this.string(`${sp}.scope.version`, sl.scope.version);
            this.attributes(`${sp}.scope.attributes`, sl.scope.attributes);
          }
        }
        this.array(`${sp}.logRecords`, sl.logRecords, (lp, r) => this.logRecord(lp, r));
      });
    });
  }
}

/** Problems with an OTLP/HTTP JSON logs request; empty when valid. */
export function validateOtlp(body: string, headers?: Record<string, string>): string[] {
  const c = new Checker();
  if (headers) {
    // "OTLP/HTTP ... JSON-encoded payloads ... Content-Type: application/json".
    const type = (headers["content-type"] ?? "").split(";")[0]?.trim();
    if (type !== "application/json") c.add("content-type", `is ${JSON.stringify(type)}, not application/json`);
  }
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    c.add("body", `not JSON (${err instanceof Error ? err.message : String(err)})`);
    return c.problems;
  }
  c.request(json);
  return c.problems;
}

/**
 * The slice of a protobufjs static-module message type the round trip uses
 * (`opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest` from the
 * generated code shipped in @opentelemetry/otlp-transformer).
 */
export interface ProtoMessageType {
  fromObject(object: Obj): unknown;
  verify(message: unknown): string | null;
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: Obj): Obj;
}

const hexToBase64 = (hex: string) => btoa(String.fromCharCode(...(hex.match(/../g) ?? []).map((h) => parseInt(h, 16))));
const base64ToHex = (b64: string) =>
  Array.from(atob(b64), (c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");

/** Applies `f` to the traceId/spanId of every log record of a request-shaped value (copying it). */
function mapIds(json: unknown, f: (id: string) => string): unknown {
  const copy = structuredClone(json) as { resourceLogs?: { scopeLogs?: { logRecords?: Obj[] }[] }[] };
  for (const rl of copy.resourceLogs ?? [])
    for (const sl of rl?.scopeLogs ?? [])
      for (const r of sl?.logRecords ?? [])
        for (const k of ["traceId", "spanId"])
          if (isObject(r) && typeof r[k] === "string" && r[k] !== "") r[k] = f(r[k] as string);
  return copy;
}

/** Drops empty arrays: proto3 JSON may omit an empty repeated field or send `[]`, both mean the same. */
function dropEmptyArrays(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(dropEmptyArrays);
  if (!isObject(x)) return x;
  const out: Obj = {};
  for (const [k, v] of Object.entries(x)) if (!(Array.isArray(v) && v.length === 0)) out[k] = dropEmptyArrays(v);
  return out;
}

/** First path where two JSON values differ, or null. */
function firstDifference(a: unknown, b: unknown, path = "body"): string | null {
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: ${a.length} item(s) sent, ${b.length} after decoding`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (isObject(a) && isObject(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!(k in b)) return `${path}.${k}: sent but not a field of the message (dropped when decoded)`;
      if (!(k in a)) return `${path}.${k}: appeared when decoded`;
      const d = firstDifference(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return Object.is(a, b) ? null : `${path}: sent ${JSON.stringify(a)}, decodes as ${JSON.stringify(b)}`;
}

/**
 * Decodes the JSON body through the official `ExportLogsServiceRequest` type
 * the way a receiver does (proto3 JSON → message, with OTLP's hex ids),
 * verifies it, encodes it to protobuf bytes, decodes those and maps the
 * message back to proto3 JSON (64-bit as strings, enums as numbers). Every
 * field sent must survive unchanged: a misspelled or snake_case field, an
 * enum name, a 64-bit number, a wrong-typed value or two oneof members all
 * show up as problems.
 */
export function protoRoundTripProblems(body: string, type: ProtoMessageType): string[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    return [`body: not JSON (${err instanceof Error ? err.message : String(err)})`];
  }
  if (!isObject(json)) return ["body: not a JSON object"];
  const problems: string[] = [];
  try {
    // OTLP deviates from proto3 JSON for ids: hex on the wire, base64 is what protobufjs reads.
    const message = type.fromObject(
      mapIds(json, (hex) => (/^[0-9a-fA-F]*$/.test(hex) ? hexToBase64(hex) : hex)) as Obj,
    );
    const verify = type.verify(message);
    if (verify) problems.push(`proto verify: ${verify}`);
    const decoded = type.decode(type.encode(message).finish());
    const back = type.toObject(decoded, { longs: String, enums: Number, bytes: String });
    const diff = firstDifference(dropEmptyArrays(json), dropEmptyArrays(mapIds(back, base64ToHex)));
    if (diff) problems.push(`proto round trip: ${diff}`);
  } catch (err) {
    problems.push(`proto decode: ${err instanceof Error ? err.message : String(err)}`);
  }
  return problems;
}
