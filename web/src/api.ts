// The one gRPC-Web client of the dashboard. The server serves this page and
// the API on the same listener, so the base URL is the page's own origin.
// Every call carries the token the user gave, if any, as a bearer token; it
// is kept in sessionStorage, so it lasts as long as the tab and no longer.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { WatchtowerService } from "./gen/watchtower/v1/watchtower_pb.js";

const TOKEN_KEY = "watchtower.token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => (req) => {
  const t = token();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [bearer],
});

export const client = createClient(WatchtowerService, transport);
