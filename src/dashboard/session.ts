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
