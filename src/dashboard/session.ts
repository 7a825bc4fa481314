/**
 * The dashboard's login session: a cookie that proves the holder knew
 * ADMIN_TOKEN, without holding the token itself. Its value is
 * `v1.<expiry>.<HMAC-SHA256(ADMIN_TOKEN, "tailfan-session.<expiry>")>`, so it
 * expires on its own and every session ends when the token is rotated.
 */

export const SESSION_COOKIE = "tailfan_session";
/** Twelve hours. */
export const SESSION_SECONDS = 12 * 60 * 60;

const enc = new TextEncoder();

/** Compares secrets in constant time (over their SHA-256, so lengths do not leak either). */
export async function sameSecret(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(a)),
    crypto.subtle.digest("SHA-256", enc.encode(b)),
  ]);
  return crypto.subtle.timingSafeEqual(x, y);
}

async function sign(token: string, expiry: number): Promise<string> {
  const key = await crypto.subtle.importKey("raw", enc.encode(token), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(`tailfan-session.${expiry}`)));
  let hex = "";
  for (const b of mac) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** A new session value, valid for SESSION_SECONDS from `now`. */
export async function newSession(token: string, now = Date.now()): Promise<string> {
  const expiry = Math.floor(now / 1000) + SESSION_SECONDS;
  return `v1.${expiry}.${await sign(token, expiry)}`;
}

/** Whether a session value was made with this token and has not expired; compared in constant time. */
export async function validSession(value: string, token: string, now = Date.now()): Promise<boolean> {
  const m = /^v1\.(\d{1,12})\.([0-9a-f]{64})$/.exec(value);
  if (!m) return false;
  const expiry = Number(m[1]);
  if (expiry * 1000 <= now || expiry * 1000 > now + SESSION_SECONDS * 1000) return false;
  const expected = enc.encode(await sign(token, expiry));
  const given = enc.encode(m[2] as string);
  return expected.byteLength === given.byteLength && crypto.subtle.timingSafeEqual(expected, given);
}

/** The Set-Cookie header value: HttpOnly, Secure, SameSite=Strict, whole site. */
export function sessionCookie(value: string, maxAge = SESSION_SECONDS): string {
  return `${SESSION_COOKIE}=${value}; Max-Age=${maxAge}; Path=/; HttpOnly; Secure; SameSite=Strict`;
}

/** Reads the session cookie from a Cookie header. */
export function readSession(cookieHeader: string | undefined): string | null {
  if (!cookieHeader) return null;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return null;
}

/**
 * The Workers Rate Limiting binding that slows credential guessing:
 * `[[ratelimits]] name = "LOGIN_LIMITER"`. Optional: without it failed
 * logins and bearer tokens are not limited, and /health says so.
 */
export const LOGIN_LIMITER = "LOGIN_LIMITER";
/** Failed attempts per client IP per period, as wrangler.toml declares them (documented in docs/security.md). */
export const LOGIN_LIMIT = 10;
export const LOGIN_PERIOD_SECONDS = 60;

interface RateLimit {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

function limiterOf(env: Record<string, unknown>): RateLimit | null {
  const b = env[LOGIN_LIMITER] as Partial<RateLimit> | undefined;
  return b !== null && typeof b === "object" && typeof b.limit === "function" ? (b as RateLimit) : null;
}

export function hasLoginLimiter(env: Record<string, unknown>): boolean {
  return limiterOf(env) !== null;
}

/** The client's IP as Cloudflare's edge reports it; every request without one shares one budget. */
export function clientIp(headers: Headers): string {
  return headers.get("cf-connecting-ip") ?? "unknown";
}

/**
 * IPs that spent their budget, until when (ms). The binding only counts (it
 * has no "peek"), and only failures are counted; so once a failure is
 * refused, this isolate refuses every credential from that IP, right or
 * wrong, until the period ends. Otherwise a guesser would be told the right
 * guess by the one answer that is not 429.
 */
const spent = new Map<string, number>();
const MAX_SPENT = 10_000;

/** Whether this IP is locked out for now (it spent its budget of failures). */
export function lockedOut(ip: string, now = Date.now()): boolean {
  const until = spent.get(ip);
  if (until === undefined) return false;
  if (until > now) return true;
  spent.delete(ip);
  return false;
}

/**
 * Counts one failed login or bearer token against the IP's budget; true
 * when the budget is spent (answer 429). Never throws: a limiter that
 * fails counts as no limiter.
 */
export async function countFailure(env: Record<string, unknown>, ip: string, now = Date.now()): Promise<boolean> {
  const limiter = limiterOf(env);
  if (limiter === null) return false;
  let over = false;
  try {
    over = !(await limiter.limit({ key: `auth:${ip}` })).success;
  } catch {
    return false;
  }
  if (over) {
    if (spent.size >= MAX_SPENT) spent.clear();
    spent.set(ip, now + LOGIN_PERIOD_SECONDS * 1000);
  }
  return over;
}

/** The 429 answer's body and headers: how long to wait. */
export const TOO_MANY = {
  body: {
    error: "too many failed attempts",
    hint: `wait ${LOGIN_PERIOD_SECONDS} s; at most ${LOGIN_LIMIT} failed logins or bearer tokens per client IP per ${LOGIN_PERIOD_SECONDS} s`,
  },
  headers: { "retry-after": String(LOGIN_PERIOD_SECONDS) },
} as const;
