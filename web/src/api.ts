// The one gRPC-Web client of the dashboard. The server serves this page and
// the API on the same listener, so the base URL is the page's own origin.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { WatchtowerService } from "./gen/watchtower/v1/watchtower_pb.js";

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
});

export const client = createClient(WatchtowerService, transport);
