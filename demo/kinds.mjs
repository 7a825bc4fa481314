// Every kind of request the demo producer knows (see the top of demo/producer/src/index.ts),
// shared by demo:traffic and demo:capture.
const CRON = "/cdn-cgi/local/scheduled?cron=";

export const kinds = [
  { label: "/", path: "/" },
  { label: "/warn", path: "/warn" },
  { label: "/reject", path: "/reject" },
  { label: "/500", path: "/500" },
  { label: "/404", path: "/404" },
  { label: "/burst?n=5", path: "/burst?n=5" },
  { label: "/error", path: "/error" },
  { label: "cron */5", path: `${CRON}*/5+*+*+*+*` },
  { label: "cron fail", path: `${CRON}fail` },
];
