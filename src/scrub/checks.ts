/** Checks the detector catalogue calls on a match: shapes a RegExp alone cannot tell. */

export const notRedacted = (s: string): boolean => s !== "REDACTED" && s !== "[REDACTED]";

export function isIpv6(s: string): boolean {
  let groups = 0;
  let rest = s;
  const v4 = /(?:^|:)((?:\d{1,3}\.){3}\d{1,3})$/.exec(rest);
  if (v4) {
    if (!(v4[1] as string).split(".").every((o) => Number(o) <= 255)) return false;
    groups += 2;
    rest = rest.slice(0, rest.length - (v4[1] as string).length);
    if (rest.endsWith(":") && !rest.endsWith("::")) rest = rest.slice(0, -1);
  }
  const halves = rest.split("::");
  if (halves.length > 2) return false;
  for (const half of halves) {
    if (half === "") continue;
    for (const g of half.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return false;
      groups++;
    }
  }
  if (groups === 0) return false;
  return halves.length === 2 ? groups <= 7 : groups === 8;
}

function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Issuer prefixes and lengths of the card networks, so timestamps and most ids are not taken for cards. */
function cardShaped(d: string): boolean {
  const n = d.length;
  const two = Number(d.slice(0, 2));
  const four = Number(d.slice(0, 4));
  switch (d[0]) {
    case "2": // Mastercard 2-series
      return n === 16 && four >= 2221 && four <= 2720;
    case "3": // Amex 34/37; JCB 35; Diners 30/36/38/39
      return two === 34 || two === 37 ? n === 15 : [30, 35, 36, 38, 39].includes(two) && n >= 14;
    case "4": // Visa
      return n === 13 || n >= 16;
    case "5": // Mastercard 51-55; Maestro 50, 56-58
      return n >= 16 || (two !== 51 && two !== 52 && two !== 53 && two !== 54 && two !== 55 && n >= 13);
    case "6": // Discover, UnionPay, Maestro
      return n >= 16 || (n >= 13 && two !== 60 && two !== 62 && two !== 64 && two !== 65);
    default:
      return false;
  }
}

/**
 * The longest card number that starts at `start` within the digit run
 * `s[start, end)`, as [start, end) in `s`, or null.
 */
export function cardSpan(s: string, start: number, end: number): [number, number] | null {
  // Offsets in `s` just after each digit.
  const ends: number[] = [];
  let digits = "";
  for (let i = start; i < end; i++) {
    // A space in a URL is "%20": its digits are not the card's.
    if (s.startsWith("%20", i)) {
      i += 2;
      continue;
    }
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      digits += s[i];
      ends.push(i + 1);
    }
  }
  for (let n = Math.min(19, digits.length); n >= 13; n--) {
    const d = digits.slice(0, n);
    if (cardShaped(d) && luhn(d)) return [start, ends[n - 1] as number];
  }
  return null;
}
