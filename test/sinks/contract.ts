/**
 * The sink contract from sinks/types.ts, as tests every sink type runs:
 * strict options with defaults, a pure and deterministic `encode`, and a
 * `send` that never throws and always resolves to a well-formed SendResult.
 */
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import type { AnySinkDefinition, SendResult } from "../../sinks/index";
import type { SerializedRecord } from "../../src/record";
import { deepFreeze, makeSink, someRecords } from "./helpers";

export interface RejectingCase {
  /** What makes the send fail, for the test name. */
  name: string;
  /** Raw options of a sink whose send cannot succeed. */
  options: Record<string, unknown>;
  /** Records to send (default: a few ordinary ones). */
  records?: () => SerializedRecord[];
  /** When set, the case currently fails because of this bug and is marked `it.fails`. */
  knownBug?: string;
}

export interface ContractCase {
  def: AnySinkDefinition;
  /** Minimal valid raw options. */
  valid: Record<string, unknown>;
  /** What `valid` must resolve to, defaults applied. */
  resolved: Record<string, unknown>;
  /** Options with a value of the wrong type or out of range, each must be rejected at `path`. */
  invalid: { name: string; options: Record<string, unknown>; path: string }[];
  /** Sinks whose send fails: each must resolve to retry or fail, never throw. */
  rejecting: RejectingCase[];
  /**
   * Raw options for the abort test (default `valid`). The signal aborts 50 ms
   * into the send, not before it: workerd reports a fetch started with an
   * already-aborted signal as an uncatchable unhandled rejection (workerd#1020).
   */
  abortOptions?: Record<string, unknown>;
  /** Whether an abort mid-send must turn the result into a non-ok (sinks that can cancel their I/O). */
  abortIsHonoured: boolean;
}

export function expectSendResult(result: unknown): asserts result is SendResult {
  expect(result).toBeTypeOf("object");
  const r = result as SendResult;
  expect(["ok", "retry", "fail", "partial"]).toContain(r.outcome);
  if (r.outcome !== "ok") {
    expect(r.reason).toBeTypeOf("string");
    expect(r.reason.length).toBeGreaterThan(0);
  }
  if ((r.outcome === "retry" || r.outcome === "partial") && r.retryAfterMs !== undefined) {
    expect(r.retryAfterMs).toBeGreaterThanOrEqual(0);
  }
  if (r.outcome === "partial") {
    // Indices into the batch, none both retried and refused.
    for (const i of [...r.retry, ...r.fail]) expect(Number.isInteger(i) && i >= 0).toBe(true);
    expect(r.retry.filter((i) => r.fail.includes(i))).toEqual([]);
  }
}

/** Calls `send` and captures a throw or rejection as a value, so a broken sink fails the assertion instead of the runner. */
async function settle(
  fn: () => Promise<SendResult>,
): Promise<{ threw: false; result: SendResult } | { threw: true; error: unknown }> {
  try {
    return { threw: false, result: await fn() };
  } catch (error) {
    return { threw: true, error };
  }
}

function issuePaths(def: AnySinkDefinition, raw: unknown): string[] {
  const res = v.safeParse(def.options, raw);
  expect(res.success).toBe(false);
  if (res.success) return [];
  return res.issues.map((i) => (i.path ?? []).map((p) => String(p.key)).join("."));
}

export function sinkContract(c: ContractCase): void {
  describe(`${c.def.type} sink: contract`, () => {
    it("accepts valid options and applies every default", () => {
      expect(v.parse(c.def.options, c.valid)).toEqual(c.resolved);
    });

    it("keeps explicit values over defaults", () => {
      // Re-parsing resolved options must be a fixed point: nothing is reset to a default.
      expect(v.parse(c.def.options, c.resolved)).toEqual(c.resolved);
    });

    it("rejects an unknown option key", () => {
      expect(issuePaths(c.def, { ...c.valid, colour: "blue" })).toContain("colour");
    });

    it("rejects missing required options", () => {
      expect(v.safeParse(c.def.options, {}).success).toBe(false);
    });

    it.each(c.invalid)("rejects $name", ({ options, path }) => {
      expect(issuePaths(c.def, options)).toContain(path);
    });

    it("has a type, a description and sane batch limits", () => {
      expect(c.def.type).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(c.def.description.length).toBeGreaterThan(10);
      const limits = c.def.batch(v.parse(c.def.options, c.valid));
      expect(limits.maxRecords).toBeGreaterThanOrEqual(1);
      expect(limits.maxBytes).toBeGreaterThanOrEqual(1024);
      if (limits.maxRecordBytes !== undefined) expect(limits.maxRecordBytes).toBeGreaterThan(0);
    });

    it("encode is deterministic: same records, deep-equal payloads (same and separate instances)", async () => {
      const records = someRecords(4, "contract-det");
      const a = makeSink(c.def, c.valid).sink;
      const b = makeSink(c.def, c.valid).sink;
      const first = a.encode(records);
      await new Promise((r) => setTimeout(r, 5)); // a clock-dependent encode would differ now
      const second = a.encode(records);
      expect(second).toEqual(first);
      expect(b.encode(records.map((r) => ({ ...r })))).toEqual(first);
      // Not the same object handed out twice, which would let a sender's mutation leak into a retry.
      expect(second).not.toBe(first);
    });

    it("encode is pure: input records are not mutated (deep-frozen input encodes fine, snapshot unchanged)", () => {
      const records = someRecords(3, "contract-pure");
      const snapshot = structuredClone(records);
      const { sink } = makeSink(c.def, c.valid);
      const frozen = deepFreeze(records);
      const payload = sink.encode(frozen);
      expect(payload).toBeDefined();
      expect(records).toEqual(snapshot);
    });

    it("send whose signal aborts mid-send resolves to a SendResult and does not throw", async () => {
      const { sink } = makeSink(c.def, c.abortOptions ?? c.valid);
      const payload = sink.encode(someRecords(2, "contract-abort"));
      const controller = new AbortController();
      setTimeout(() => controller.abort(new DOMException("test aborted", "AbortError")), 50);
      const outcome = await settle(() => sink.send(payload, controller.signal));
      expect(outcome.threw, outcome.threw ? String(outcome.error) : "").toBe(false);
      if (outcome.threw) return;
      expectSendResult(outcome.result);
      if (c.abortIsHonoured) {
        expect(outcome.result.outcome).not.toBe("ok");
        if (outcome.result.outcome !== "ok") expect(outcome.result.reason).toMatch(/abort/i);
      }
    });

    for (const rc of c.rejecting) {
      const title = `send never throws when ${rc.name}: resolves to retry or fail`;
      const body = async () => {
        const { sink } = makeSink(c.def, rc.options);
        const payload = sink.encode(rc.records ? rc.records() : someRecords(2, "contract-reject"));
        const outcome = await settle(() => sink.send(payload, AbortSignal.timeout(5_000)));
        expect(outcome.threw, outcome.threw ? `send threw: ${String(outcome.error)}` : "").toBe(false);
        if (outcome.threw) return;
        expectSendResult(outcome.result);
        expect(["retry", "fail"]).toContain(outcome.result.outcome);
      };
      if (rc.knownBug) it.fails(`${title} [known bug: ${rc.knownBug}]`, body);
      else it(title, body);
    }
  });
}
