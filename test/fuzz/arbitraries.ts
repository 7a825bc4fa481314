/**
 * fast-check arbitraries for TraceItem-like input: the shapes the runtime
 * sends (every event type, logs of every level, exceptions, diagnostics
 * channel events), the same with missing and wrong-typed fields, unknown
 * event types and top-level fields, nasty strings (lone surrogates, control
 * characters, U+2028, BOM), deep nesting (to depth 40), the odd huge string
 * (up to ~1 MB), non-JSON values (BigInt, Date, NaN, cycles, typed arrays),
 * and the real fixtures with fields dropped or replaced at random.
 */
import fc from "fast-check";
import captured from "../fixtures/trace-items.json";
import synthetic from "../fixtures/trace-items.synthetic.json";

// ---------------------------------------------------------------- strings

/** Characters that break naive escaping, framing or UTF-8 handling. */
const NASTY_CHARS = [
  "\u0000",
  "\u0001",
  "\u0007",
  "\b",
  "\t",
  "\n",
  "\r",
  "\u000b",
  "\u000c",
  "\u001b",
  "\u001f",
  "\u007f",
  "\u0085",
  "\u00a0",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\ufffd",
  "\uffff",
  '"',
  "\\",
  "/",
  "<",
  ">",
  "&",
  "`",
  "*",
  "_",
  "~",
  "|",
  "@here",
  "<!channel>",
  "${X}",
  "%s",
  "{}",
  "[]",
  ",",
  ":",
  "=",
  "#",
  "é",
  "ß",
  "€",
  "💳",
  "👩‍👩‍👧",
  "\u0301",
];

/** A lone (unpaired) UTF-16 surrogate. */
export const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));

const piece = fc.oneof(
  { arbitrary: fc.string({ maxLength: 8 }), weight: 4 },
  { arbitrary: fc.constantFrom(...NASTY_CHARS), weight: 3 },
  { arbitrary: loneSurrogate, weight: 1 },
  { arbitrary: fc.string({ unit: "binary", maxLength: 4 }), weight: 1 },
);

/** A short string salted with control characters, lone surrogates, markup and emoji. */
export const nastyString: fc.Arbitrary<string> = fc.array(piece, { maxLength: 10 }).map((parts) => parts.join(""));

/** A string of 64 KiB to ~1 MiB (UTF-16 units), with some nasty characters in it. */
export const hugeString: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 64 * 1024, max: 1_000_000 }), fc.constantFrom("a", "é", "€", "💳", '"', "\n"), nastyString)
  .map(([n, ch, salt]) => {
    const body = ch.repeat(Math.max(1, Math.floor(n / ch.length)));
    const mid = Math.floor(body.length / 2) & ~1; // never between the halves of a pair
    return `${salt}${body.slice(0, mid)}${salt}${body.slice(mid)}${salt}`;
  });

/** Mostly short strings; rarely a huge one. */
export const anyString: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: nastyString, weight: 60 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 30 },
  { arbitrary: fc.constant(""), weight: 5 },
);

// ---------------------------------------------------------------- values

/** A new value per generated case, so no case can change what another one sees. */
function fresh<T>(make: () => T): fc.Arbitrary<T> {
  return fc.constant(null).map(make);
}

const numbers = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, 1, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, -(2 ** 63)),
  fc.constantFrom(1e21, 1e-7, Number.MAX_VALUE, Number.MIN_VALUE),
);

/** Epoch-ms-like numbers, including out-of-range and non-finite ones. */
export const timestamp = fc.oneof(
  { arbitrary: fc.integer({ min: 1_600_000_000_000, max: 1_900_000_000_000 }), weight: 8 },
  { arbitrary: numbers, weight: 1 },
  { arbitrary: fc.constantFrom(8.64e15, -8.64e15, 8.64e15 + 1, 0), weight: 1 },
);

/** Values that are not JSON: the normalizer must turn them into JSON. */
/** Values that are not JSON: the normalizer must turn them into JSON. Built fresh for every case. */
const nonJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.bigInt(),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false }),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0),
  fc.uint8Array({ maxLength: 8 }),
  fresh(() => Symbol("s")),
  fresh(() => () => 1),
  fresh(() => new Map([["k", 1]])),
  fresh(() => new Error("boom")),
  fresh(() => Object.create(null)),
  fresh(() => {
    const sparse: unknown[] = [];
    sparse[1] = 1;
    sparse[3] = 2;
    return sparse;
  }),
  fresh(() => ({
    get boom(): never {
      throw new Error("getter throws");
    },
    ok: 1,
  })),
  fresh(() => ({ toJSON: () => ({ replaced: true }) })),
);

/** A leaf: JSON scalars, nasty strings and, sometimes, non-JSON values. */
const leaf: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anyString, weight: 6 },
  { arbitrary: numbers, weight: 3 },
  { arbitrary: fc.boolean(), weight: 1 },
  { arbitrary: fc.constant(null), weight: 1 },
  { arbitrary: nonJson, weight: 1 },
);

/** Any key, including `__proto__`, `constructor`, the empty key and known field names. */
const key = fc.oneof(
  { arbitrary: nastyString, weight: 4 },
  {
    arbitrary: fc.constantFrom(
      "__proto__",
      "constructor",
      "toJSON",
      "",
      "id",
      "type",
      "level",
      "message",
      "timestamp",
      "invocationId",
      "_time",
      "@timestamp",
    ),
    weight: 1,
  },
);

/** Any value: nested objects and arrays of leaves. */
export const anyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { arbitrary: leaf, weight: 6 },
    { arbitrary: fc.array(tie("value"), { maxLength: 4 }), weight: 1 },
    { arbitrary: fc.dictionary(key, tie("value"), { maxKeys: 4 }), weight: 1 },
  ),
})).value;

/** Plain JSON only (for the parts of runtime objects that are kept by reference). */
export const jsonValue: fc.Arbitrary<unknown> = fc.jsonValue({ maxDepth: 3 });

/** A value nested 1 to 40 levels deep in arrays and objects. */
export const deepValue: fc.Arbitrary<unknown> = fc
  .tuple(fc.array(fc.constantFrom("array", "object"), { minLength: 1, maxLength: 40 }), leaf, key)
  .map(([kinds, inner, k]) => {
    let v: unknown = inner;
    for (const kind of kinds) v = kind === "array" ? [v, 1] : { [k]: v, n: 1 };
    return v;
  });

/** A value with a cycle. */
const cyclic: fc.Arbitrary<unknown> = fresh(() => {
  const a: Record<string, unknown> = { name: "a" };
  a.self = a;
  a.list = [a, { back: a }];
  return a;
});

/** What a field may hold when it has the wrong type (or anything at all). */
export const wrong: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anyValue, weight: 8 },
  { arbitrary: deepValue, weight: 2 },
  { arbitrary: cyclic, weight: 1 },
);

/** A field that is usually well typed, sometimes missing, sometimes anything. */
function field<T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: good, weight: 8 }, { arbitrary: wrong, weight: 1 });
}

// ---------------------------------------------------------------- events

const headers = fc.dictionary(
  fc.oneof(fc.constantFrom("authorization", "cookie", "user-agent", "x-forwarded-for", "content-type"), nastyString),
  field(anyString),
  { maxKeys: 5 },
);

const url = fc.oneof(
  fc.webUrl({ withQueryParameters: true, withFragments: true }),
  fc.constantFrom("http://127.0.0.1:8787/ok", "https://shop.example.com/cart?token=abc&x=1", "/relative", ""),
  anyString,
);

const fetchEvent = fc.record(
  {
    request: field(
      fc.record(
        {
          url: field(url),
          method: field(fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "")),
          headers: field(headers),
          cf: field(
            fc.record(
              {
                colo: field(fc.constantFrom("DFW", "AMS", "NRT", "")),
                country: field(fc.constantFrom("US", "NL", "JP", "T1", "XX")),
                asn: field(fc.integer()),
                tlsClientAuth: field(fc.dictionary(fc.string({ maxLength: 6 }), anyString, { maxKeys: 3 })),
              },
              { requiredKeys: [] },
            ),
          ),
        },
        { requiredKeys: [] },
      ),
    ),
    response: field(fc.record({ status: field(fc.integer({ min: 0, max: 999 })) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);

const cron = fc.oneof(fc.constantFrom("* * * * *", "*/5 * * * *", "0 0 1 1 *", ""), anyString);

const scheduledEvent = fc.record({ cron: field(cron), scheduledTime: field(timestamp) }, { requiredKeys: ["cron"] });

const alarmEvent = fc.record(
  {
    scheduledTime: fc.oneof(
      fc.date({ noInvalidDate: false }),
      fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
      timestamp,
      wrong,
    ),
  },
  { requiredKeys: ["scheduledTime"] },
);

const queueEvent = fc.record(
  { queue: field(anyString), batchSize: field(fc.integer({ min: 0, max: 100 })) },
  { requiredKeys: ["queue", "batchSize"] },
);

const emailEvent = fc.record(
  { mailFrom: field(anyString), rcptTo: field(anyString), rawSize: field(fc.nat()) },
  { requiredKeys: ["mailFrom"] },
);

const rpcEvent = fc.record({ rpcMethod: field(anyString) }, { requiredKeys: ["rpcMethod"] });

const websocketEvent = fc.record(
  {
    getWebSocketEvent: field(
      fc.record(
        {
          webSocketEventType: field(fc.constantFrom("message", "close", "error")),
          code: field(fc.integer({ min: 0, max: 5000 })),
          wasClean: field(fc.boolean()),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: ["getWebSocketEvent"] },
);

const tailEvent = fc.record(
  {
    consumedEvents: field(
      fc.array(fc.oneof(fc.record({ scriptName: field(fc.option(anyString)) }, { requiredKeys: [] }), wrong), {
        maxLength: 4,
      }),
    ),
  },
  { requiredKeys: ["consumedEvents"] },
);

const hibernateEvent = fc.record({ reason: field(anyString) });

const unknownEvent = fc.dictionary(
  nastyString.filter((k) => k !== ""),
  anyValue,
  { minKeys: 1, maxKeys: 4 },
);

/**
 * An event made by a class of the runtime's name (`FetchEventInfo`, ...),
 * the way the runtime's own objects look; its data is plain JSON, as the
 * runtime's is, since the normalizer keeps such objects by reference.
 */
const runtimeEvent = fc
  .tuple(
    fc.constantFrom(
      "FetchEventInfo",
      "JsRpcEventInfo",
      "ScheduledEventInfo",
      "QueueEventInfo",
      "EmailEventInfo",
      "CustomEventInfo",
      "OnHibernateEventInfo",
    ),
    fc.dictionary(fc.string({ maxLength: 10 }), jsonValue, { maxKeys: 4 }),
  )
  .map(([name, props]) => {
    const Cls = { [name]: class {} }[name] as new () => object;
    return Object.assign(new Cls(), props);
  });

/** Every event shape tailfan knows, plus unknown, null, missing and wrong-typed events. */
export const event: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fetchEvent, weight: 6 },
  { arbitrary: scheduledEvent, weight: 1 },
  { arbitrary: alarmEvent, weight: 1 },
  { arbitrary: queueEvent, weight: 1 },
  { arbitrary: emailEvent, weight: 1 },
  { arbitrary: rpcEvent, weight: 1 },
  { arbitrary: websocketEvent, weight: 1 },
  { arbitrary: tailEvent, weight: 1 },
  { arbitrary: hibernateEvent, weight: 1 },
  { arbitrary: fc.constant({}), weight: 1 }, // custom or connect
  { arbitrary: fc.constantFrom(null, undefined), weight: 1 },
  { arbitrary: unknownEvent, weight: 1 },
  { arbitrary: runtimeEvent, weight: 1 },
  { arbitrary: wrong, weight: 1 }, // arrays, strings, numbers, ...
);

// ---------------------------------------------------------------- logs, exceptions, diagnostics

const level = fc.oneof(
  { arbitrary: fc.constantFrom("debug", "info", "log", "warn", "error", "trace"), weight: 8 },
  { arbitrary: fc.constantFrom("", "fatal", "WARN", "table", "__proto__"), weight: 1 },
  { arbitrary: wrong, weight: 1 },
);

const stack = fc
  .array(
    fc
      .tuple(fc.string({ maxLength: 12 }), fc.nat(9999), fc.nat(200))
      .map(([fn, l, c]) => `    at ${fn} (file:///w.js:${l}:${c})`),
    { maxLength: 6 },
  )
  .chain((frames) => fc.tuple(fc.constant(frames), nastyString))
  .map(([frames, head]) => [head, ...frames].join("\n"));

const errorInfo = fc.record(
  { name: field(anyString), message: field(anyString), stack: field(stack) },
  { requiredKeys: [] },
);

const messagePart: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anyString, weight: 6 },
  { arbitrary: numbers, weight: 2 },
  { arbitrary: fc.constant(null), weight: 1 },
  { arbitrary: anyValue, weight: 2 },
  { arbitrary: deepValue, weight: 1 },
);

export const logEntry: fc.Arbitrary<unknown> = fc.oneof(
  {
    arbitrary: fc.record(
      {
        level,
        message: fc.oneof(
          { arbitrary: fc.array(messagePart, { maxLength: 6 }), weight: 8 },
          { arbitrary: wrong, weight: 1 }, // a string, a number, an object, ...
        ),
        timestamp: field(timestamp),
        errorInfo: field(fc.array(fc.oneof(errorInfo, fc.constant(null)), { maxLength: 2 })),
      },
      { requiredKeys: ["level", "message"] },
    ),
    weight: 9,
  },
  { arbitrary: wrong, weight: 1 },
);

export const exceptionEntry: fc.Arbitrary<unknown> = fc.oneof(
  {
    arbitrary: fc.record(
      {
        name: field(fc.constantFrom("Error", "TypeError", "RangeError", "AbortError", "")),
        message: field(anyString),
        stack: field(stack),
        timestamp: field(timestamp),
      },
      { requiredKeys: ["name", "message"] },
    ),
    weight: 9,
  },
  { arbitrary: wrong, weight: 1 },
);

export const diagnosticEntry: fc.Arbitrary<unknown> = fc.oneof(
  {
    arbitrary: fc.record(
      { channel: field(anyString), message: wrong, timestamp: field(timestamp) },
      { requiredKeys: ["channel", "message"] },
    ),
    weight: 9,
  },
  { arbitrary: wrong, weight: 1 },
);

/** A list that is sometimes not a list. */
function list(entry: fc.Arbitrary<unknown>, maxLength: number): fc.Arbitrary<unknown> {
  return fc.oneof({ arbitrary: fc.array(entry, { maxLength }), weight: 9 }, { arbitrary: wrong, weight: 1 });
}

// ---------------------------------------------------------------- TraceItems

const OUTCOMES = [
  "ok",
  "exception",
  "exceededCpu",
  "exceededMemory",
  "scriptNotFound",
  "canceled",
  "unknown",
  "responseStreamDisconnected",
  "killSwitch",
  "daemonDown",
  "loadShed",
];

/** A TraceItem as the runtime sends it, with fields sometimes missing or of the wrong type. */
export const traceItem: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.record(
      {
        event,
        eventTimestamp: field(timestamp),
        logs: list(logEntry, 6),
        exceptions: list(exceptionEntry, 3),
        diagnosticsChannelEvents: list(diagnosticEntry, 3),
        scriptName: field(fc.option(fc.oneof(fc.constantFrom("shop-api", "api-v2", "billing"), anyString))),
        entrypoint: field(fc.option(anyString)),
        scriptVersion: field(
          fc.record({ id: field(fc.uuid()), tag: field(anyString), message: field(anyString) }, { requiredKeys: [] }),
        ),
        dispatchNamespace: field(fc.option(anyString)),
        scriptTags: field(fc.array(field(anyString), { maxLength: 3 })),
        tailAttributes: field(fc.dictionary(fc.string({ maxLength: 8 }), anyValue, { maxKeys: 3 })),
        preview: wrong,
        durableObjectId: field(fc.option(fc.stringMatching(/^[0-9a-f]{64}$/))),
        outcome: fc.oneof({ arbitrary: fc.constantFrom(...OUTCOMES), weight: 9 }, { arbitrary: wrong, weight: 1 }),
        executionModel: field(fc.constantFrom("stateless", "durableObject", "workflow")),
        truncated: field(fc.boolean()),
        cpuTime: field(fc.nat(30_000)),
        wallTime: field(fc.nat(300_000)),
      },
      { requiredKeys: ["event", "outcome", "logs"] },
    ),
    // Fields a future runtime may add.
    fc.dictionary(fc.constantFrom("traceId", "spans", "future", "__proto__", "x-new"), wrong, { maxKeys: 2 }),
  )
  .map(([item, unknown]) => Object.assign(item, unknown));

// ---------------------------------------------------------------- fixtures, mutated

type Fixture = Record<string, unknown>;

const FIXTURES: Fixture[] = [
  ...Object.values(captured as Record<string, Fixture>),
  ...Object.entries(synthetic as Record<string, unknown>)
    .filter(([label]) => !label.startsWith("_"))
    .map(([, item]) => item as Fixture),
];

/** Every `[parent, key]` in a JSON value, in a stable order. */
function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const seen = new Set<unknown>();
  const walk = (v: unknown) => {
    if (seen.has(v)) return;
    if (typeof v === "object" && v !== null) seen.add(v);
    if (Array.isArray(v)) {
      v.forEach((child, i) => {
        out.push([v, i]);
        walk(child);
      });
    } else if (typeof v === "object" && v !== null) {
      for (const k of Object.keys(v)) {
        out.push([v as Record<string, unknown>, k]);
        try {
          walk((v as Record<string, unknown>)[k]);
        } catch {
          // a getter that throws: keep the slot, skip what is under it
        }
      }
    }
  };
  walk(root);
  return out;
}

/** A real captured (or hand-written) TraceItem with up to 4 fields dropped or replaced by anything. */
export const mutatedFixture: fc.Arbitrary<unknown> = fc
  .tuple(
    fc.nat(FIXTURES.length - 1),
    fc.array(fc.tuple(fc.nat(), fc.constantFrom("drop", "replace"), wrong), { maxLength: 4 }),
  )
  .map(([which, ops]) => {
    const item = structuredClone(FIXTURES[which]) as Fixture;
    for (const [at, op, value] of ops) {
      const all = slots(item);
      if (all.length === 0) break;
      const [parent, k] = all[at % all.length] as [Record<string | number, unknown>, string | number];
      try {
        if (op === "drop") {
          if (Array.isArray(parent)) parent.splice(k as number, 1);
          else delete parent[k];
        } else parent[k] = value;
      } catch {
        // a frozen or typed-array slot: leave it
      }
    }
    return item;
  });

/** A fixture, unchanged. */
export const fixture: fc.Arbitrary<unknown> = fc
  .nat(FIXTURES.length - 1)
  .map((i) => structuredClone(FIXTURES[i]) as unknown);

/** One TraceItem slot of a tail() batch: mostly TraceItems, sometimes not even an object. */
export const traceItemLike: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: traceItem, weight: 10 },
  { arbitrary: mutatedFixture, weight: 6 },
  { arbitrary: fixture, weight: 1 },
  { arbitrary: wrong, weight: 1 },
);

/** A TraceItem with one huge string (~64 KiB to 1 MiB) in a log message, a stack or a URL. */
export const hugeItem: fc.Arbitrary<unknown> = fc
  .tuple(fixture, hugeString, fc.constantFrom("log", "stack", "url", "diagnostic"))
  .map(([raw, big, where]) => {
    const item = raw as Record<string, unknown>;
    if (where === "log") item.logs = [{ level: "error", message: [big, { big }], timestamp: 1795248103711 }];
    else if (where === "stack") item.exceptions = [{ name: "Error", message: big.slice(0, 1000), stack: big }];
    else if (where === "url") item.event = { request: { url: big, method: "GET" }, response: { status: 500 } };
    else item.diagnosticsChannelEvents = [{ channel: "c", message: { big }, timestamp: 1 }];
    return item;
  });

/** A tail() batch: 0 to 4 TraceItem-like values, rarely one with a huge string. */
export const traceBatch: fc.Arbitrary<unknown[]> = fc.oneof(
  { arbitrary: fc.array(traceItemLike, { maxLength: 4 }), weight: 99 },
  { arbitrary: fc.tuple(hugeItem, traceItemLike), weight: 1 },
);

/** A tail() batch without huge strings (for properties that do I/O). */
export const smallTraceBatch: fc.Arbitrary<unknown[]> = fc.array(traceItemLike, { maxLength: 3 });
