/**
 * The dashboard's pages, server-rendered with Hono's JSX, no build step;
 * every value is escaped by the JSX runtime. The one script, the live view's
 * (LIVE_SCRIPT), only swaps in the records panel the server rendered.
 */
import type { Child, FC } from "hono/jsx";
import { describeFilter, type FilterSpec } from "../filter";
import type { LogRecord } from "../record";
import { describeShape, type ShapeSpec } from "../shape";
import type { FlushFailures, RecentAnswer, SinkError, SinkStats } from "../stats";
import { explainWhere } from "../where";
import { chartSeries, groupErrors, SERIES_KEYS, type Series, type SinkHealth, sinkHealth, utc } from "./model";

const CSS = `
:root{--fg:#1d2330;--muted:#5d6678;--line:#dde1e8;--bg:#f6f7f9;--card:#fff;--ok:#17803d;--bad:#c62828;--warn:#b86e00;--dead:#7b3fb5;--idle:#8a93a3}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;flex-wrap:wrap;gap:12px;align-items:center;padding:12px 20px;background:#1d2330;color:#fff}
header h1{font-size:18px;margin:0 12px 0 0}header .meta{color:#c5cbd6;font-size:13px}header form{margin-left:auto}
header a{color:#fff}main{padding:16px 20px;max-width:1400px;margin:0 auto}
h2{font-size:16px;margin:24px 0 8px}section{margin-bottom:8px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(330px,100%),1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px}
ul.leaves{margin:4px 0 0;padding-left:16px;font-size:13px}ul.leaves li[data-matched=true]{color:var(--ok)}ul.leaves li[data-matched=false]{color:var(--bad)}
.card h3{margin:0 0 2px;font-size:15px;display:flex;gap:8px;align-items:center}
.card .type{color:var(--muted);font-weight:400;font-size:13px}.reason{color:var(--muted);margin:2px 0 8px;font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.badge.healthy{background:var(--ok)}.badge.degraded{background:var(--warn)}.badge.failing{background:var(--bad)}.badge.idle{background:var(--idle)}
.nums{display:grid;grid-template-columns:repeat(4,1fr);gap:4px;margin-top:8px;font-size:12px;color:var(--muted)}.nums b{display:block;font-size:15px;color:var(--fg)}
svg.chart{width:100%;height:auto;background:#fbfcfd;border:1px solid var(--line);border-radius:4px}
.legend{display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px;color:var(--muted);margin-top:4px}.legend span{white-space:nowrap}.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line)}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}th{background:#eef0f4;font-weight:600;font-size:13px}
td.msg{max-width:520px;word-break:break-word}td.t{white-space:nowrap}code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;max-height:420px;overflow:auto;background:#f3f4f7;padding:8px;margin:6px 0 0}
.chip{display:inline-block;background:#e7ecf7;border-radius:4px;padding:0 6px;margin:0 4px 2px 0;font-size:12px}.none{color:var(--muted)}
.level-warn{color:var(--warn);font-weight:600}.level-error{color:var(--bad);font-weight:600}.outcome-bad{color:var(--bad);font-weight:600}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin-bottom:10px}
label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:2px}
select,input,button{font:inherit;padding:4px 8px;border:1px solid #b9c0cc;border-radius:4px;background:#fff}
button{background:#2b59c3;color:#fff;border-color:#2b59c3;cursor:pointer}header button{background:transparent;border-color:#8b93a3}
.errors li{margin-bottom:4px}.alert{background:#fdecea;border:1px solid #f3b8b2;padding:10px 12px;border-radius:6px}
.login{max-width:420px;margin:10vh auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:24px}
.login form{display:flex;flex-direction:column;gap:12px}.login p{color:var(--muted)}
.scroll{max-width:100%;overflow-x:auto}td code{word-break:break-all}.live{font-size:12px;color:var(--muted)}
@media (max-width:700px){header{padding:10px 12px}header form{margin-left:0}main{padding:12px}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}table.stack thead{display:none}
table.stack tr{border-bottom:1px solid var(--line);padding:6px 0}table.stack td{border:0;padding:1px 8px;max-width:none}
table.stack td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);font-size:12px}}
`;

/** The favicon, served at /favicon.svg: tailfan's fan of lines on the header's colour. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1d2330"/><g stroke-width="3" stroke-linecap="round"><path d="M6 16h8" stroke="#fff"/><path d="M14 16l12-9" stroke="#17803d"/><path d="M14 16h12" stroke="#2b59c3"/><path d="M14 16l12 9" stroke="#b86e00"/></g></svg>`;

/** Seconds between the live view's reloads of the records panel. */
export const LIVE_SECONDS = 3;

/**
 * The live view, served at /dashboard.js: every LIVE_SECONDS it fetches the
 * records panel of the page's own URL (its filters) and swaps it in. The
 * panel is HTML the server rendered and escaped; nothing is built from JSON.
 */
export const LIVE_SCRIPT = `(() => {
  const status = document.getElementById("live-status");
  const panel = () => document.getElementById("records-live");
  if (!panel() || !status) return;
  const seconds = Number(panel().dataset.live) || ${LIVE_SECONDS};
  const url = new URL(location.href);
  url.searchParams.set("part", "records");
  async function tick() {
    if (!document.hidden) {
      try {
        const res = await fetch(url, { credentials: "same-origin" });
        if (!res.ok) throw new Error("tailfan answered " + res.status);
        const fresh = new DOMParser().parseFromString(await res.text(), "text/html").getElementById("records-live");
        if (!fresh) throw new Error("no records in the answer");
        panel().replaceWith(document.importNode(fresh, true));
        status.textContent = "live: updated " + new Date().toISOString().slice(11, 19) + " UTC, every " + seconds + " s";
      } catch (err) {
        status.textContent = "live: " + (err && err.message ? err.message : "tailfan did not answer") + "; retrying";
      }
    }
    setTimeout(tick, seconds * 1000);
  }
  setTimeout(tick, seconds * 1000);
})();
`;

const Layout: FC<{ title: string; refresh?: number; live?: boolean; children?: Child }> = ({
  title,
  refresh,
  live,
  children,
}) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="robots" content="noindex" />
      {refresh ? <meta http-equiv="refresh" content={String(refresh)} /> : null}
      <title>{title}</title>
      <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
      <style dangerouslySetInnerHTML={{ __html: CSS }} />
      {live ? <script src="/dashboard.js" defer /> : null}
    </head>
    <body>{children}</body>
  </html>
);

export const LoginPage: FC<{ error?: string }> = ({ error }) => (
  <Layout title="tailfan: log in">
    <div class="login">
      <h1>tailfan</h1>
      <p>Log in with the admin token (the ADMIN_TOKEN secret).</p>
      {error ? (
        <p class="alert" role="alert" id="login-error">
          {error}
        </p>
      ) : null}
      <form method="post" action="/login" id="login">
        <label>
          Admin token
          <input type="password" name="token" autocomplete="current-password" required autofocus />
        </label>
        <button type="submit">Log in</button>
      </form>
    </div>
  </Layout>
);

export const SetupPage: FC = () => (
  <Layout title="tailfan: set ADMIN_TOKEN">
    <div class="login">
      <h1>tailfan</h1>
      <p>The dashboard and the API are off until the secret ADMIN_TOKEN is set:</p>
      <pre>npx wrangler secret put ADMIN_TOKEN</pre>
      <p>
        Locally, put <code>ADMIN_TOKEN=...</code> in <code>.dev.vars</code> (<code>npm run dev</code> does it for you).
      </p>
    </div>
  </Layout>
);

const SERIES_STYLE: Record<(typeof SERIES_KEYS)[number], { label: string; color: string; dash?: string }> = {
  sent: { label: "sent", color: "var(--ok)" },
  failed: { label: "failed", color: "var(--bad)" },
  deadLettered: { label: "dead-lettered", color: "var(--dead)" },
  retried: { label: "retried", color: "var(--warn)" },
  pending: { label: "pending", color: "var(--idle)", dash: "3 2" },
};
const SERIES = SERIES_KEYS.map((key) => ({ key, ...SERIES_STYLE[key] }));

const W = 320;
const H = 90;
const PAD = 4;

/** Sent, failed, dead-lettered and retried per bucket, and the records pending, as lines. */
const Chart: FC<{ sink: string; series: Series }> = ({ sink, series }) => {
  const n = series.starts.length;
  let max = 1;
  for (const s of SERIES) for (const v of series[s.key]) if (v > max) max = v;
  const x = (i: number) => (n <= 1 ? W / 2 : PAD + (i * (W - 2 * PAD)) / (n - 1));
  const y = (v: number) => H - PAD - (v * (H - 2 * PAD)) / max;
  // Pending is a level: its figure is the latest, not a sum.
  const total = (key: (typeof SERIES_KEYS)[number]) =>
    key === "pending" ? (series.pending[n - 1] ?? 0) : series[key].reduce((a, b) => a + b, 0);
  const totals = SERIES.map((s) => `${total(s.key)} ${s.label}`).join(", ");
  return (
    <figure style="margin:0">
      <svg
        class="chart"
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={`${sink}: ${totals} from ${utc(series.starts[0] ?? 0)} UTC`}
        data-sink={sink}
      >
        <line x1={PAD} y1={H - PAD} x2={W - PAD} y2={H - PAD} stroke="#dde1e8" />
        {SERIES.map((s) => (
          <polyline
            data-series={s.key}
            data-total={String(total(s.key))}
            fill="none"
            stroke={s.color}
            stroke-width="1.5"
            stroke-dasharray={s.dash}
            points={series[s.key].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ")}
          />
        ))}
        <text x={PAD + 2} y={12} font-size="10" fill="#5d6678">
          {`max ${max}/bucket`}
        </text>
      </svg>
      <figcaption class="legend">
        {SERIES.map((s) => (
          <span>
            <i style={`background:${s.color}`} />
            {s.label}
          </span>
        ))}
        <span>{utc(series.starts[0] ?? 0).slice(11, 16)}–now UTC</span>
      </figcaption>
    </figure>
  );
};

export interface SinkView {
  name: string;
  type: string;
  options: Record<string, unknown>;
  filter: FilterSpec;
  /** Its shaping (`fields`, `exclude`, `rename`, `add`), when it has one. */
  shape?: ShapeSpec;
}

export interface DashboardData {
  version: string;
  now: number;
  windowMinutes: number;
  delivery: { mode: string; durable: boolean; deadLetter: boolean; counters: boolean };
  configErrors: string[] | null;
  warnings: string[];
  sinks: SinkView[];
  routes: { sinks: string[]; filter: FilterSpec }[] | null;
  stats: SinkStats[] | null;
  /** The latest delivery errors, newest first. */
  errors: SinkError[];
  recent: RecentAnswer | null;
  /** The counters object's health: a failed read, and this isolate's failed writes. */
  counters?: { error: string | null; missing?: string | null; writes: FlushFailures };
  query: {
    level: string;
    outcome: string;
    script: string;
    type: string;
    limit: number;
    refresh: number;
    live: boolean;
  };
}

const NUMBERS = [
  ["received", "received"],
  ["sent", "sent"],
  ["retried", "retried"],
  ["deadLettered", "dead-lettered"],
  ["failed", "failed"],
  ["pending", "pending"],
  ["droppedLimit", "too large"],
  ["droppedSample", "sampled out"],
  ["unaccounted", "unaccounted"],
] as const;

const SinkCard: FC<{ sink: SinkView; stats: SinkStats | undefined; data: DashboardData; health: SinkHealth }> = ({
  sink,
  stats,
  data,
  health,
}) => (
  <div class="card" data-sink={sink.name} data-health={health.health}>
    <h3>
      {sink.name} <span class="type">{sink.type}</span>
      <span class={`badge ${health.health}`}>{health.health}</span>
    </h3>
    <p class="reason">{health.reason}</p>
    {data.delivery.counters ? (
      <Chart
        sink={sink.name}
        series={chartSeries(stats?.minutes ?? [], data.now, data.windowMinutes, 60, stats?.totals.pending ?? 0)}
      />
    ) : null}
    <div class="nums">
      {NUMBERS.map(([key, label]) => (
        <span data-count={key}>
          <b>{String(stats ? (key === "unaccounted" ? stats.unaccounted : stats.totals[key]) : 0)}</b>
          {label}
        </span>
      ))}
    </div>
  </div>
);

const LEVEL_OPTIONS = ["", "debug", "info", "warn", "error"];
const TYPE_OPTIONS = ["", "invocation", "log", "exception", "diagnostic"];
/** Chart windows, minutes. */
export const WINDOWS = [15, 60, 360, 1440];
/** Refresh periods, seconds. */
export const REFRESHES = [5, 15, 60];
export const NO_SCRIPT = "(none)";

const Select: FC<{ name: string; label: string; value: string; options: string[]; any?: string }> = (p) => (
  <label>
    {p.label}
    <select name={p.name}>
      {p.options.map((o) => (
        <option value={o} selected={o === p.value}>
          {o === "" ? (p.any ?? "any") : o}
        </option>
      ))}
    </select>
  </label>
);

function pretty(line: string): string {
  try {
    return JSON.stringify(JSON.parse(line), null, 2);
  } catch {
    return line;
  }
}

/** The count line and the records table: what the live view reloads (GET /?part=records). */
export const RecordsPanel: FC<{ recent: RecentAnswer; live: boolean }> = ({ recent, live }) => (
  <div id="records-live" data-live={live ? String(LIVE_SECONDS) : undefined}>
    <p class="none" id="records-count">
      {recent.kept === 0
        ? "No records yet. Name tailfan in a Worker's tail_consumers (locally: npm run demo:traffic) and they appear here."
        : recent.records.length === 0
          ? `No record matches these filters (of the ${recent.kept} latest kept).`
          : `${recent.records.length} shown of the ${recent.kept} latest kept`}
    </p>
    <table id="records" class="stack">
      <thead>
        <tr>
          <th>time (UTC)</th>
          <th>type</th>
          <th>level</th>
          <th>outcome</th>
          <th>script</th>
          <th>message</th>
          <th>went to</th>
        </tr>
      </thead>
      <tbody>
        {recent.records.map((r) => (
          <tr data-level={r.level} data-outcome={r.outcome} data-type={r.type} data-script={r.script ?? NO_SCRIPT}>
            <td class="t">{utc(r.at)}</td>
            <td data-label="type">{r.type}</td>
            <td data-label="level" class={`level-${r.level}`}>
              {r.level}
            </td>
            <td data-label="outcome" class={r.outcome === "ok" ? "" : "outcome-bad"}>
              {r.outcome}
            </td>
            <td data-label="script">{r.script ?? <span class="none">{NO_SCRIPT}</span>}</td>
            <td class="msg">
              {r.message}
              {r.line === null ? null : (
                <details>
                  <summary>record</summary>
                  <pre>{pretty(r.line)}</pre>
                </details>
              )}
            </td>
            <td data-label="went to">
              {r.sinks.length === 0 ? (
                <span class="none">no sink</span>
              ) : (
                r.sinks.map((s) => <span class="chip">{s}</span>)
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  </div>
);

const Records: FC<{ data: DashboardData }> = ({ data }) => {
  const { recent, query } = data;
  if (data.configErrors) return <p class="none">Not shown while the configuration is invalid.</p>;
  if (!recent) {
    return (
      <p class="none">
        Not kept: the latest records are stored beside the counters; set DELIVERY.stats (and DELIVERY.recent &gt; 0).
      </p>
    );
  }
  const outcomes = ["", ...recent.outcomes];
  if (query.outcome && !outcomes.includes(query.outcome)) outcomes.push(query.outcome);
  const scripts = ["", ...recent.scripts.map((s) => s ?? NO_SCRIPT)];
  if (query.script && !scripts.includes(query.script)) scripts.push(query.script);
  return (
    <>
      <form class="filters" method="get" action="/" id="filters">
        <Select name="level" label="Level (at least)" value={query.level} options={LEVEL_OPTIONS} />
        <Select name="outcome" label="Outcome" value={query.outcome} options={outcomes} />
        <Select name="script" label="Script" value={query.script} options={scripts} />
        <Select name="type" label="Record type" value={query.type} options={TYPE_OPTIONS} />
        <Select
          name="window"
          label="Chart window"
          value={String(data.windowMinutes)}
          options={WINDOWS.map(String)}
          any=""
        />
        <Select
          name="refresh"
          label="Refresh"
          value={query.refresh ? String(query.refresh) : ""}
          options={["", ...REFRESHES.map(String)]}
          any="off"
        />
        <label>
          Live records
          <input type="checkbox" name="live" value="1" checked={query.live} />
        </label>
        <button type="submit">Apply</button>
        <a href="/">clear</a>
      </form>
      {query.live ? (
        <p class="live" id="live-status">{`live: the records below reload every ${LIVE_SECONDS} s`}</p>
      ) : null}
      <RecordsPanel recent={recent} live={query.live} />
    </>
  );
};

const PageHeader: FC<{ data: DashboardData }> = ({ data }) => (
  <header>
    <h1>tailfan</h1>
    <span class="meta">
      {`v${data.version} · ${data.delivery.mode} delivery · retries ${data.delivery.durable ? "through the queue" : "in-invocation only"} · dead letter ${data.delivery.deadLetter ? "on" : "off"} · charts: last ${data.windowMinutes} min`}
    </span>
    <form method="post" action="/logout">
      <button type="submit">Log out</button>
    </form>
  </header>
);

const ConfigErrors: FC<{ errors: DashboardData["configErrors"] }> = ({ errors }) =>
  errors ? (
    <section class="alert" id="config-errors">
      <b>The configuration is invalid; nothing is delivered until it is fixed and redeployed.</b>
      <ul class="errors">
        {errors.map((e) => (
          <li>
            <code>{e}</code>
          </li>
        ))}
      </ul>
    </section>
  ) : null;

/** Why the counts may be short: the counters failed, or are not kept at all. */
const CountersNote: FC<{ data: DashboardData }> = ({ data }) =>
  data.counters && (data.counters.error !== null || data.counters.missing || data.counters.writes.failed > 0) ? (
    <p class="alert" id="counter-failures">
      {data.counters.error === null ? "" : `Counters unavailable: ${data.counters.error}. `}
      {data.counters.missing ? `Counters incomplete: ${data.counters.missing}. ` : ""}
      {data.counters.writes.failed > 0
        ? `${data.counters.writes.failed} counters write(s) failed since ${new Date(data.counters.writes.since ?? 0).toISOString()}; the counts below miss them (${data.counters.writes.held} record(s) wait for the next write, ${data.counters.writes.lost} given up).`
        : ""}
    </p>
  ) : data.delivery.counters || data.configErrors ? null : (
    <p class="none">Counters are not kept: set DELIVERY.stats to a TailfanStats Durable Object binding.</p>
  );

const SinksSection: FC<{ data: DashboardData; byName: Map<string, SinkStats> }> = ({ data, byName }) => {
  const loop = byName.get("*");
  return (
    <>
      <section class="cards" id="sinks">
        {data.sinks.map((s) => (
          <SinkCard
            sink={s}
            stats={byName.get(s.name)}
            data={data}
            health={sinkHealth(byName.get(s.name), data.now, data.windowMinutes)}
          />
        ))}
      </section>
      {loop && loop.totals.droppedLoop > 0 ? (
        <p class="none">{`${loop.totals.droppedLoop} TraceItem(s) of tailfan itself dropped by the loop guard.`}</p>
      ) : null}
    </>
  );
};

const ErrorsSection: FC<{ errors: DashboardData["errors"]; warnings: string[] }> = ({ errors, warnings }) => (
  <section id="errors">
    {errors.length === 0 && warnings.length === 0 ? <p class="none">No delivery errors.</p> : null}
    {errors.length > 0 ? (
      <table class="stack">
        <thead>
          <tr>
            <th>last seen (UTC)</th>
            <th>sink</th>
            <th>status</th>
            <th>times</th>
            <th>first seen (UTC)</th>
            <th>error</th>
          </tr>
        </thead>
        <tbody>
          {groupErrors(errors).map((e) => (
            <tr data-sink={e.sink} data-count={String(e.count)}>
              <td class="t">{utc(e.last)}</td>
              <td data-label="sink">{e.sink}</td>
              <td data-label="status">{e.status === null ? "—" : String(e.status)}</td>
              <td data-label="times">{String(e.count)}</td>
              <td data-label="first seen" class="t">
                {utc(e.first)}
              </td>
              <td class="msg">{e.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    ) : null}
    {warnings.length > 0 ? (
      <ul class="errors">
        {warnings.map((w) => (
          <li>{`Config warning: ${w}`}</li>
        ))}
      </ul>
    ) : null}
  </section>
);

/** The newest kept record, as its sinks got it: what the routes table tests each `where` leaf on. */
function newestRecord(recent: RecentAnswer | null): LogRecord | null {
  const line = recent?.records.find((r) => r.line !== null)?.line;
  if (!line) return null;
  try {
    return JSON.parse(line) as LogRecord;
  } catch {
    return null;
  }
}

/** A filter in words, and each `where` leaf marked for the newest record: ✓ matched, ✗ failed. */
const FilterCell: FC<{ filter: FilterSpec; record: LogRecord | null }> = ({ filter, record }) => {
  if (!filter.where || !record) return <td>{describeFilter(filter)}</td>;
  const { matched, leaves } = explainWhere(filter.where, record);
  return (
    <td>
      {describeFilter(filter)}
      <ul class="leaves" data-matched={String(matched)}>
        {leaves.map((l) => (
          <li data-at={l.at} data-matched={String(l.matched)}>
            {`${l.matched ? "✓" : "✗"} ${l.leaf}`}
          </li>
        ))}
      </ul>
    </td>
  );
};

const WhereNote: FC<{ record: LogRecord | null; show: boolean }> = ({ record, show }) =>
  show && record ? (
    <p class="none" id="where-record">
      {`✓ and ✗: each where leaf tested on the newest kept record (${record.id}, ${record.type}, ${record.level}).`}
    </p>
  ) : null;

const RoutesTable: FC<{ routes: DashboardData["routes"]; record: LogRecord | null }> = ({ routes, record }) =>
  routes === null ? (
    <p class="none">No ROUTES: each sink takes every record its own filter lets through.</p>
  ) : (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            <th>#</th>
            <th>records matching</th>
            <th>go to</th>
          </tr>
        </thead>
        <tbody>
          {routes.map((r, i) => (
            <tr>
              <td>{String(i)}</td>
              <FilterCell filter={r.filter} record={record} />
              <td>
                {r.sinks.map((s) => (
                  <span class="chip">{s}</span>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );

const SinkTable: FC<{ sinks: DashboardData["sinks"]; record: LogRecord | null }> = ({ sinks, record }) => (
  <div class="scroll">
    <table style="margin-top:8px" id="sink-table">
      <thead>
        <tr>
          <th>sink</th>
          <th>type</th>
          <th>own filter</th>
          <th>shape</th>
          <th>options (secrets by name)</th>
        </tr>
      </thead>
      <tbody>
        {sinks.map((s) => (
          <tr>
            <td>{s.name}</td>
            <td>{s.type}</td>
            <FilterCell filter={s.filter} record={record} />
            <td>{s.shape ? describeShape(s.shape) : "none"}</td>
            <td>
              <code>{JSON.stringify(s.options)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  </div>
);

export const DashboardPage: FC<{ data: DashboardData }> = ({ data }) => {
  const byName = new Map((data.stats ?? []).map((s) => [s.sink, s]));
  const newest = newestRecord(data.recent);
  return (
    <Layout title="tailfan" refresh={data.query.refresh} live={data.query.live && data.recent !== null}>
      <PageHeader data={data} />
      <main>
        <ConfigErrors errors={data.configErrors} />
        <h2>Sinks</h2>
        <CountersNote data={data} />
        <SinksSection data={data} byName={byName} />

        <h2>Recent errors</h2>
        <ErrorsSection errors={data.errors} warnings={data.warnings} />

        <h2>Routes</h2>
        <section id="routes">
          <WhereNote record={newest} show={[...(data.routes ?? []), ...data.sinks].some((x) => x.filter.where)} />
          <RoutesTable routes={data.routes} record={newest} />
          <SinkTable sinks={data.sinks} record={newest} />
        </section>

        <h2>Latest records</h2>
        <section id="latest">
          <Records data={data} />
        </section>
      </main>
    </Layout>
  );
};
