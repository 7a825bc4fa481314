/**
 * The state of one alert rule (one sink with `rules`), in a SQLite-backed
 * Durable Object named after the sink, so that it holds across isolates and
 * colos. Isolates call `add` with their groups' counts at most once per
 * `flushMs` each; the object decides what to post and posts it from its
 * alarm:
 *
 * - a new group: "new" at once (without a threshold);
 * - with a threshold: "threshold" once the group has more than `count`
 *   records in the last `minutes` (per-minute buckets);
 * - at the end of each window after a message: "update" with the window's
 *   count when records came since the message, otherwise "resolved" (the
 *   group was quiet for a whole window) and the group is forgotten, so its
 *   next record is new again.
 *
 * Messages wait in an outbox until posted: a retryable answer (429, 5xx,
 * network) is tried again later, honouring Retry-After, up to POST_TRIES
 * times; a refusal is dropped and logged. Writes: one row per group per
 * `add` (plus a bucket row in the threshold form), one per message.
 */
import { DurableObject } from "cloudflare:workers";
import {
  type AddResult,
  ALERT_POSTERS,
  type AlertEvent,
  type AlertTarget,
  type GroupDelta,
  type RuleSettings,
} from "../../sinks/index";
import { logError } from "../log";
import { type Level, levelRank } from "../record";

/** Attempts to post one message before it is dropped. */
export const POST_TRIES = 5;
/** Per-attempt timeout of a post. */
const POST_TIMEOUT_MS = 10_000;
/** Between two messages of one rule: Slack and Discord take about one message per second per webhook. */
export const POST_GAP_MS = 1_000;
/** The group that holds the records of new groups once a rule has `maxGroups`. */
export const OVERFLOW_FINGERPRINT = "00000000000000";
const MINUTE_MS = 60_000;

type GroupRow = {
  fp: string;
  key: string;
  sample: string;
  script: string;
  level: string;
  state: "open" | "watch";
  first_seen: number;
  last_seen: number;
  last_arrival: number;
  window_start: number;
  window_count: number;
  unreported: number;
  total: number;
};

/** A group as `groups()` shows it (tests, inspection). */
export interface GroupState {
  fingerprint: string;
  key: GroupDelta["key"];
  sample: string;
  script: string;
  state: "open" | "watch";
  total: number;
  windowCount: number;
  unreported: number;
  firstSeen: number;
  lastSeen: number;
}

const rank = (l: string) => levelRank(l as Level) ?? 0;

export class TailfanAlerts extends DurableObject {
  private readonly sql: SqlStorage;
  private written = 0;
  /** The rule and target last written to `meta`, to write them only when they change. */
  private meta: string | null = null;
  /** The alarm time set, as far as this instance knows (null: none or unknown). */
  private alarmAt: number | null = null;
  private running = false;
  private rerun = false;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS groups (fp TEXT PRIMARY KEY, key TEXT NOT NULL, sample TEXT NOT NULL, script TEXT NOT NULL, level TEXT NOT NULL, state TEXT NOT NULL, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL, last_arrival INTEGER NOT NULL, window_start INTEGER NOT NULL, window_count INTEGER NOT NULL, unreported INTEGER NOT NULL, total INTEGER NOT NULL)",
    );
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS buckets (fp TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (fp, minute))",
    );
    this.sql.exec(
      "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL, tries INTEGER NOT NULL, due INTEGER NOT NULL)",
    );
    this.sql.exec("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
  }

  private run(query: string, ...args: SqlStorageValue[]): SqlStorageCursor<Record<string, SqlStorageValue>> {
    const cursor = this.sql.exec(query, ...args);
    cursor.toArray();
    this.written += cursor.rowsWritten;
    return cursor;
  }

  private settings(): { target: AlertTarget; rule: RuleSettings } | null {
    const row = this.sql.exec<{ v: string }>("SELECT v FROM meta WHERE k = 'rule'").toArray()[0];
    return row ? (JSON.parse(row.v) as { target: AlertTarget; rule: RuleSettings }) : null;
  }

  private event(kind: AlertEvent["kind"], g: GroupRow, rule: RuleSettings, count: number, minutes: number): AlertEvent {
    return {
      kind,
      rule: rule.rule,
      fingerprint: g.fp,
      key: JSON.parse(g.key) as GroupDelta["key"],
      sample: g.sample,
      script: g.script,
      level: g.level as Level,
      count,
      minutes,
      total: g.total,
      firstSeen: g.first_seen,
      lastSeen: g.last_seen,
      threshold: rule.threshold,
    };
  }

  private enqueue(e: AlertEvent, now: number): void {
    this.run("INSERT INTO outbox (event, tries, due) VALUES (?, 0, ?)", JSON.stringify(e), now);
  }

  /** One isolate's counts for some groups. Returns the rows written. */
  async add(target: AlertTarget, rule: RuleSettings, deltas: GroupDelta[]): Promise<AddResult> {
    this.written = 0;
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      const meta = JSON.stringify({ target, rule });
      if (meta !== this.meta) {
        this.run("INSERT INTO meta (k, v) VALUES ('rule', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", meta);
        this.meta = meta;
      }
      for (const d of deltas) this.addGroup(rule, d, now);
    });
    await this.schedule(now, rule);
    return { rowsWritten: this.written };
  }

  private addGroup(rule: RuleSettings, delta: GroupDelta, now: number): void {
    let d = delta;
    const n = Math.max(0, Math.trunc(d.count));
    let g = this.sql.exec<GroupRow>("SELECT * FROM groups WHERE fp = ?", d.fingerprint).toArray()[0];
    if (!g && this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM groups").one().n >= (rule.maxGroups ?? 100)) {
      // A rule with more groups than it keeps (a message whose variable part is not masked): one more group at most.
      d = {
        ...d,
        fingerprint: OVERFLOW_FINGERPRINT,
        key: {},
        sample: `other ${d.level === "warn" ? "warnings" : "errors"} (more than ${rule.maxGroups ?? 100} groups)`,
      };
      g = this.sql.exec<GroupRow>("SELECT * FROM groups WHERE fp = ?", d.fingerprint).toArray()[0];
    }
    if (!g) {
      g = {
        fp: d.fingerprint,
        key: JSON.stringify(d.key),
        sample: d.sample,
        script: d.script,
        level: d.level,
        state: rule.threshold ? "watch" : "open",
        first_seen: d.firstSeen,
        last_seen: d.lastSeen,
        last_arrival: now,
        window_start: now,
        window_count: n,
        unreported: 0,
        total: n,
      };
      if (!rule.threshold) this.enqueue(this.event("new", g, rule, n, 0), now);
    } else {
      g.window_count += n;
      g.unreported += n;
      g.total += n;
      g.last_seen = Math.max(g.last_seen, d.lastSeen);
      g.last_arrival = now;
      if (rank(d.level) > rank(g.level)) g.level = d.level;
    }
    if (rule.threshold) {
      const minute = Math.floor(now / MINUTE_MS);
      this.run(
        "INSERT INTO buckets (fp, minute, n) VALUES (?, ?, ?) ON CONFLICT (fp, minute) DO UPDATE SET n = n + excluded.n",
        g.fp,
        minute,
        n,
      );
      const from = minute - rule.threshold.minutes;
      this.run("DELETE FROM buckets WHERE fp = ? AND minute <= ?", g.fp, from);
      const sum =
        this.sql
          .exec<{ s: number | null }>("SELECT SUM(n) AS s FROM buckets WHERE fp = ? AND minute > ?", g.fp, from)
          .one().s ?? 0;
      if (g.state === "watch" && sum > rule.threshold.count) {
        g.state = "open";
        g.window_start = now;
        g.window_count = 0;
        g.unreported = 0;
        this.enqueue(this.event("threshold", g, rule, sum, rule.threshold.minutes), now);
      }
    }
    this.run(
      "INSERT INTO groups (fp, key, sample, script, level, state, first_seen, last_seen, last_arrival, window_start, window_count, unreported, total) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (fp) DO UPDATE SET level = excluded.level, state = excluded.state, last_seen = excluded.last_seen, last_arrival = excluded.last_arrival, window_start = excluded.window_start, window_count = excluded.window_count, unreported = excluded.unreported, total = excluded.total",
      g.fp,
      g.key,
      g.sample,
      g.script,
      g.level,
      g.state,
      g.first_seen,
      g.last_seen,
      g.last_arrival,
      g.window_start,
      g.window_count,
      g.unreported,
      g.total,
    );
  }

  /** The next time something is due: a message to post, a window to close, a group to forget. */
  private nextDue(rule: RuleSettings | undefined): number | null {
    const due: number[] = [];
    const outbox = this.sql.exec<{ d: number | null }>("SELECT MIN(due) AS d FROM outbox").one().d;
    if (outbox !== null) due.push(outbox);
    if (rule) {
      const w = rule.windowMinutes * MINUTE_MS;
      const open = this.sql
        .exec<{ d: number | null }>("SELECT MIN(window_start) AS d FROM groups WHERE state = 'open'")
        .one().d;
      if (open !== null) due.push(open + w);
      const watch = this.sql
        .exec<{ d: number | null }>("SELECT MIN(last_arrival) AS d FROM groups WHERE state = 'watch'")
        .one().d;
      if (watch !== null) due.push(watch + w);
    }
    return due.length ? Math.min(...due) : null;
  }

  /** Sets the alarm to the next due time, when it is earlier than the one set (or none is). */
  private async schedule(now: number, rule: RuleSettings): Promise<void> {
    const next = this.nextDue(rule);
    if (next === null) return;
    this.alarmAt ??= await this.ctx.storage.getAlarm();
    if (this.alarmAt !== null && this.alarmAt <= next) return;
    this.alarmAt = Math.max(next, now);
    await this.ctx.storage.setAlarm(this.alarmAt);
  }

  /** Closes the windows that have ended, posts what is due, and sets the next alarm. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    if (this.running) {
      this.rerun = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.rerun = false;
        await this.step();
      } while (this.rerun);
    } finally {
      this.running = false;
    }
  }

  private async step(): Promise<void> {
    const settings = this.settings();
    if (!settings) return;
    const { target, rule } = settings;
    const now = Date.now();
    const w = rule.windowMinutes * MINUTE_MS;
    this.ctx.storage.transactionSync(() => {
      const ended = this.sql
        .exec<GroupRow>(
          "SELECT * FROM groups WHERE (state = 'open' AND window_start <= ?) OR (state = 'watch' AND last_arrival <= ?)",
          now - w,
          now - w,
        )
        .toArray();
      for (const g of ended) {
        if (g.state === "open" && g.unreported > 0) {
          this.enqueue(this.event("update", g, rule, g.window_count, rule.windowMinutes), now);
          this.run("UPDATE groups SET window_start = ?, window_count = 0, unreported = 0 WHERE fp = ?", now, g.fp);
          continue;
        }
        if (g.state === "open") this.enqueue(this.event("resolved", g, rule, g.total, rule.windowMinutes), now);
        this.run("DELETE FROM groups WHERE fp = ?", g.fp);
        this.run("DELETE FROM buckets WHERE fp = ?", g.fp);
      }
    });
    await this.post(target, rule, now);
    await this.schedule(Date.now(), rule);
  }

  /** Posts the due messages in order; stops at the first retryable answer (the webhook is busy). */
  private async post(target: AlertTarget, rule: RuleSettings, now: number): Promise<void> {
    const poster = ALERT_POSTERS[target.type];
    const due = this.sql
      .exec<{ seq: number; event: string; tries: number }>(
        "SELECT seq, event, tries FROM outbox WHERE due <= ? ORDER BY seq",
        now,
      )
      .toArray();
    let posted = 0;
    for (const row of due) {
      if (!poster) {
        this.run("DELETE FROM outbox WHERE seq = ?", row.seq);
        continue;
      }
      if (posted++ > 0) await new Promise((resolve) => setTimeout(resolve, POST_GAP_MS));
      const result = await poster.post(
        target,
        poster.body(JSON.parse(row.event) as AlertEvent),
        AbortSignal.timeout(POST_TIMEOUT_MS),
      );
      if (result.outcome === "ok" || result.outcome === "partial") {
        this.run("DELETE FROM outbox WHERE seq = ?", row.seq);
        continue;
      }
      const tries = row.tries + 1;
      if (result.outcome === "fail" || tries >= POST_TRIES) {
        this.run("DELETE FROM outbox WHERE seq = ?", row.seq);
        logError(`tailfan: alert rule "${rule.rule}" dropped a message after ${tries} attempt(s): ${result.reason}`);
        continue;
      }
      // The webhook is busy: this message and every later one wait.
      const until = Date.now() + Math.max(result.retryAfterMs ?? 0, 1000 * 2 ** tries);
      this.run("UPDATE outbox SET tries = ? WHERE seq = ?", tries, row.seq);
      this.run("UPDATE outbox SET due = ? WHERE due < ?", until, until);
      break;
    }
  }

  /** The groups the rule holds now. */
  groups(): GroupState[] {
    return this.sql
      .exec<GroupRow>("SELECT * FROM groups ORDER BY first_seen, fp")
      .toArray()
      .map((g) => ({
        fingerprint: g.fp,
        key: JSON.parse(g.key) as GroupDelta["key"],
        sample: g.sample,
        script: g.script,
        state: g.state,
        total: g.total,
        windowCount: g.window_count,
        unreported: g.unreported,
        firstSeen: g.first_seen,
        lastSeen: g.last_seen,
      }));
  }
}
